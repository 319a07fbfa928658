//! The load generator's side of a WebSocket: lean on purpose. It shares the cores
//! with the server it measures, so it parses frame headers and reads payloads in
//! place (no per-message allocation, no UTF-8 check), inflates only what arrives
//! compressed, and masks what it sends, as RFC 6455 requires of a client.
//!
//! It asks for `server_no_context_takeover`, so that every compressed message stands
//! alone. A server that compresses once per publish then sends every subscriber the
//! same bytes, and the generator inflates each distinct message once per thread
//! (see [`Memo`]) instead of once per subscriber: inflating is the receivers' work,
//! which real clients do on their own machines, and here it would otherwise make the
//! generator the bottleneck of every compressed fan-out.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use pushwire_ws::deflate::Inflater;
use pushwire_ws::frame::{FrameHeader, OpCode, apply_mask};

/// The largest message the generator accepts (inflated).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Where to connect: `ws://host:port/path`, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl Target {
    /// Parses and resolves `url`; `path` replaces its path when given.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let rest = url
            .strip_prefix("ws://")
            .ok_or_else(|| format!("invalid URL {url:?}: expected ws://host:port/path"))?;
        let (host, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
        let addr = std::net::ToSocketAddrs::to_socket_addrs(host)
            .map_err(|err| format!("cannot resolve {host:?}: {err}"))?
            .next()
            .ok_or_else(|| format!("{host:?} resolves to no address"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            path,
        })
    }
}

/// Loopback source addresses to spread connections over (127.0.0.1, .2, …, after
/// the first `skip`), so that no source address runs out of ephemeral ports.
pub(crate) fn sources(count: usize, skip: usize, target: &Target) -> Vec<Option<IpAddr>> {
    if (count <= 1 && skip == 0) || !target.addr.ip().is_loopback() || !target.addr.is_ipv4() {
        return vec![None];
    }
    (skip + 1..=(skip + count.max(1)).min(250))
        .map(|i| Some(IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, i as u8))))
        .collect()
}

/// One open WebSocket, client side.
pub(crate) struct Conn {
    tcp: TcpStream,
    buf: BytesMut,
    /// The payload of the message being assembled or inflated.
    message: BytesMut,
    /// Whether the server agreed to permessage-deflate.
    pub(crate) deflate: bool,
    /// The inflater of a server that keeps its compression context between
    /// messages (it declined `server_no_context_takeover`).
    context: Option<Inflater>,
    /// Whether the server keeps its context (then nothing is memoized).
    takes_over: bool,
}

/// How many recently inflated messages each thread remembers: enough for every
/// message in flight when subscribers fall seconds behind a fast publisher (a
/// small memo would then miss, and inflating would slow the generator further).
const MEMO_ENTRIES: usize = 8192;

/// Recently inflated single-frame messages of this thread, by their compressed
/// bytes. Valid only for messages compressed without context takeover: then the
/// same compressed bytes always inflate to the same message.
#[derive(Default)]
struct Memo {
    messages: std::collections::HashMap<Box<[u8]>, Box<[u8]>>,
    /// Keys in the order they came, to forget the oldest.
    order: std::collections::VecDeque<Box<[u8]>>,
}

impl Memo {
    fn get(&self, compressed: &[u8]) -> Option<&[u8]> {
        self.messages.get(compressed).map(|message| &**message)
    }

    fn insert(&mut self, compressed: &[u8], message: &[u8]) {
        if self.order.len() == MEMO_ENTRIES
            && let Some(oldest) = self.order.pop_front()
        {
            self.messages.remove(&oldest);
        }
        let key: Box<[u8]> = compressed.into();
        self.order.push_back(key.clone());
        self.messages.insert(key, message.into());
    }
}

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::default();
}

/// One message as read: its payload is valid until the next read.
pub(crate) enum Frame<'a> {
    /// A text or binary message.
    Data(&'a [u8]),
    /// The server closed the connection (its close code, 1006 for a bare EOF).
    Closed(u16),
}

impl Conn {
    /// Connects from `source` (any when `None`) and performs the handshake.
    pub(crate) async fn open(
        target: &Target,
        source: Option<IpAddr>,
        deflate: bool,
    ) -> Result<Self, String> {
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| format!("socket: {e}"))?;
        if let Some(ip) = source {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| format!("bind {ip}: {e}"))?;
        }
        let mut tcp = socket
            .connect(target.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", target.addr))?;
        let _ = tcp.set_nodelay(true);
        let extensions = if deflate {
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_max_window_bits\r\n"
        } else {
            ""
        };
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extensions}\r\n",
            target.path, target.host
        );
        tcp.write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send handshake: {e}"))?;
        let mut buf = BytesMut::with_capacity(1024);
        let head_len = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buf.len() > 16 * 1024 {
                return Err("handshake response too large".into());
            }
            if tcp
                .read_buf(&mut buf)
                .await
                .map_err(|e| format!("read handshake: {e}"))?
                == 0
            {
                return Err("connection closed during the handshake".into());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_ascii_lowercase();
        if !head.starts_with("http/1.1 101") {
            let first = head.lines().next().unwrap_or("").to_owned();
            return Err(format!("not upgraded: {first}"));
        }
        let answer = head.lines().find(|l| {
            l.starts_with("sec-websocket-extensions:") && l.contains("permessage-deflate")
        });
        let negotiated = answer.is_some();
        let takes_over = answer.is_some_and(|l| !l.contains("server_no_context_takeover"));
        buf.advance(head_len);
        Ok(Self {
            tcp,
            buf,
            message: BytesMut::new(),
            deflate: negotiated,
            context: takes_over.then(Inflater::for_connection),
            takes_over,
        })
    }

    /// Sends one masked text frame.
    pub(crate) async fn send_text(&mut self, payload: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(payload.len() + 14);
        encode_client_frame(&mut frame, OpCode::Text, payload);
        self.tcp
            .write_all(&frame)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// Writes frames already encoded with [`encode_client_frame`].
    pub(crate) async fn send_raw(&mut self, frames: &[u8]) -> Result<(), String> {
        self.tcp
            .write_all(frames)
            .await
            .map_err(|e| format!("write: {e}"))
    }

    /// The next data message; pings are answered, pongs skipped.
    pub(crate) async fn next(&mut self) -> Result<Frame<'_>, String> {
        let mut assembling: Option<(bool, Option<Inflater>)> = None;
        self.message.clear();
        loop {
            let parsed = FrameHeader::parse(&self.buf).map_err(|e| format!("bad frame: {e}"))?;
            let Some((header, head_len)) = parsed else {
                self.fill().await?;
                continue;
            };
            let len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
            if len > MAX_MESSAGE {
                return Err(format!("a frame of {len} bytes"));
            }
            if self.buf.len() < head_len + len {
                self.buf.reserve(head_len + len - self.buf.len());
                self.fill().await?;
                continue;
            }
            match header.opcode {
                OpCode::Ping => {
                    let payload = self.buf[head_len..head_len + len].to_vec();
                    self.buf.advance(head_len + len);
                    let mut pong = Vec::with_capacity(len + 14);
                    encode_client_frame(&mut pong, OpCode::Pong, &payload);
                    self.send_raw(&pong).await?;
                }
                OpCode::Pong => self.buf.advance(head_len + len),
                OpCode::Close => {
                    let code = match &self.buf[head_len..head_len + len] {
                        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                        _ => 1005,
                    };
                    self.buf.advance(head_len + len);
                    return Ok(Frame::Closed(code));
                }
                OpCode::Text | OpCode::Binary | OpCode::Continuation => {
                    // A single compressed frame that stands alone: inflated once per
                    // thread, however many subscribers receive it.
                    if assembling.is_none()
                        && header.opcode != OpCode::Continuation
                        && header.fin
                        && header.rsv & 0b100 != 0
                        && !self.takes_over
                    {
                        let payload = &self.buf[head_len..head_len + len];
                        let message = &mut self.message;
                        let hit = MEMO.with(|memo| {
                            memo.borrow()
                                .get(payload)
                                .map(|m| message.extend_from_slice(m))
                        });
                        if hit.is_none() {
                            let mut inflater = Inflater::for_one_message();
                            inflater
                                .inflate(payload, true, message, MAX_MESSAGE)
                                .map_err(|e| format!("inflate: {e}"))?;
                            inflater.finish();
                            MEMO.with(|memo| memo.borrow_mut().insert(payload, message));
                        }
                        self.buf.advance(head_len + len);
                        return Ok(Frame::Data(&self.message));
                    }
                    let compressed = match (&mut assembling, header.opcode) {
                        (None, OpCode::Continuation) => {
                            return Err("unexpected continuation".into());
                        }
                        (None, _) => {
                            let compressed = header.rsv & 0b100 != 0;
                            // With context takeover the connection's inflater is lent
                            // to the message and given back when it ends.
                            let inflater = compressed.then(|| {
                                self.context
                                    .take()
                                    .unwrap_or_else(Inflater::for_one_message)
                            });
                            assembling = Some((compressed, inflater));
                            compressed
                        }
                        (Some((compressed, _)), _) => *compressed,
                    };
                    // A single uncompressed frame: hand out the payload in place.
                    if header.fin && !compressed && self.message.is_empty() {
                        let start = head_len;
                        // Drop the head now; the payload stays in the buffer until
                        // the next read.
                        self.buf.advance(start);
                        let payload = self.buf.split_to(len);
                        self.message = payload;
                        return Ok(Frame::Data(&self.message));
                    }
                    let payload = &self.buf[head_len..head_len + len];
                    if let Some((_, Some(inflater))) = &mut assembling {
                        inflater
                            .inflate(payload, header.fin, &mut self.message, MAX_MESSAGE)
                            .map_err(|e| format!("inflate: {e}"))?;
                    } else {
                        self.message.extend_from_slice(payload);
                    }
                    self.buf.advance(head_len + len);
                    if header.fin {
                        if let Some((_, Some(inflater))) = assembling.take() {
                            if inflater.is_persistent() {
                                self.context = Some(inflater);
                            } else {
                                inflater.finish();
                            }
                        }
                        return Ok(Frame::Data(&self.message));
                    }
                }
            }
        }
    }

    async fn fill(&mut self) -> Result<(), String> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(4096);
        }
        match self.tcp.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }

    /// The two halves of the TCP stream (the handshake must be over and nothing
    /// left unread that matters).
    pub(crate) fn into_split(
        self,
    ) -> (
        tokio::net::tcp::OwnedReadHalf,
        tokio::net::tcp::OwnedWriteHalf,
    ) {
        self.tcp.into_split()
    }

    /// Sends a close frame (1000) and stops.
    pub(crate) async fn close(mut self) {
        let mut frame = Vec::with_capacity(16);
        encode_client_frame(&mut frame, OpCode::Close, &1000u16.to_be_bytes());
        let _ = self.tcp.write_all(&frame).await;
        let _ = self.tcp.shutdown().await;
    }
}

/// Appends a masked client frame (FIN set) to `out`.
pub(crate) fn encode_client_frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    let header = FrameHeader {
        fin: true,
        rsv: 0,
        opcode,
        mask: Some(rand::random::<[u8; 4]>()),
        payload_len: payload.len() as u64,
    };
    let mut head = [0u8; pushwire_ws::frame::MAX_HEADER_LEN];
    let head_len = header.encode(&mut head);
    out.extend_from_slice(&head[..head_len]);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = header.mask {
        apply_mask(&mut out[start..], key, 0);
    }
}
