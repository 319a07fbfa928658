//! The generator's Server-Sent Events subscribers: a small HTTP/1.1 client of our
//! own over a tokio `TcpStream`, for pushwire's `/sse` and for Mercure hubs
//! (`GET /.well-known/mercure?match=…`).
//!
//! One connection is one task and one read buffer: [`SseConn::open`] sends the
//! `GET`, reads the response head (a status other than 200, or a type other than
//! `text/event-stream`, is an error), and [`SseConn::next`] reads the body
//! (chunked, with a length, or up to the end of the connection), decodes it
//! ([`Dechunker`]) and parses events out of it ([`EventParser`], after the
//! WHATWG event-stream rules: lines end with CRLF, LF or CR; `data:` lines join
//! with LF; comments and `retry:` are skipped; an event without data is not
//! dispatched). The event's data is what a scenario reads, as it reads a
//! WebSocket message ([`Frame::Data`]).
//!
//! Connections come from loopback source addresses like the WebSockets' (see
//! `conn::sources`), so that no address runs out of ephemeral ports.

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use super::conn::{Frame, Target};

/// The longest response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// The largest event (its data) accepted.
const MAX_EVENT: usize = 16 * 1024 * 1024;
/// How much one read asks for.
const READ_SIZE: usize = 4096;

/// One open event stream.
pub(crate) struct SseConn {
    stream: TcpStream,
    /// Bytes read and not yet decoded.
    raw: Vec<u8>,
    /// How the body is framed, and where its decoding is.
    body: Dechunker,
    /// Decoded body bytes not yet parsed into events.
    text: Vec<u8>,
    parser: EventParser,
    /// The body ended (or the connection did).
    ended: bool,
}

impl SseConn {
    /// Connects from `source` (any when `None`) and sends `GET` for the target's
    /// path and query with `headers` besides `Host` and `Accept`; answers once
    /// the response head (200, `text/event-stream`) is read.
    pub(crate) async fn open(
        target: &Target,
        source: Option<IpAddr>,
        headers: &[(String, String)],
    ) -> Result<Self, String> {
        let stream = connect(target.addr(), source).await?;
        let path = match target.path() {
            "" => "/",
            path => path,
        };
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\
             Cache-Control: no-cache\r\n",
            target.authority()
        );
        for (name, value) in headers {
            request.push_str(name);
            request.push_str(": ");
            request.push_str(value);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let mut conn = Self {
            stream,
            raw: Vec::with_capacity(READ_SIZE),
            body: Dechunker::UntilClose,
            text: Vec::new(),
            parser: EventParser::default(),
            ended: false,
        };
        conn.stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("writing the request: {e}"))?;
        let head_end = loop {
            if let Some(end) = find(&conn.raw, b"\r\n\r\n") {
                break end;
            }
            if conn.raw.len() > MAX_HEAD {
                return Err(format!("a response head over {MAX_HEAD} bytes"));
            }
            if conn.read().await? == 0 {
                return Err("the server closed the connection before answering".into());
            }
        };
        let head = String::from_utf8_lossy(&conn.raw[..head_end]).into_owned();
        conn.raw.drain(..head_end + 4);
        let (status, framing, event_stream) = parse_head(&head)?;
        if status != 200 {
            // Say why, with what of the body came with the head.
            let body = String::from_utf8_lossy(&conn.raw[..conn.raw.len().min(200)]);
            return Err(format!("GET {path}: {status} {}", body.trim()));
        }
        if !event_stream {
            return Err(format!("GET {path}: 200 but not text/event-stream"));
        }
        conn.body = framing;
        Ok(conn)
    }

    /// Reads more of the connection into `raw`; 0 at its end.
    async fn read(&mut self) -> Result<usize, String> {
        self.raw.reserve(READ_SIZE);
        self.stream
            .read_buf(&mut self.raw)
            .await
            .map_err(|e| format!("reading: {e}"))
    }

    /// The next event's data; [`Frame::Closed`] (with 0) when the stream ended.
    pub(crate) async fn next(&mut self) -> Result<Frame<'_>, String> {
        loop {
            if self.parser.parse(&mut self.text)? {
                return Ok(Frame::Data(self.parser.data()));
            }
            if self.ended {
                return Ok(Frame::Closed(0));
            }
            if !self.raw.is_empty() {
                let before = self.raw.len();
                self.ended = self.body.decode(&mut self.raw, &mut self.text)?;
                if self.text.len() > MAX_EVENT {
                    return Err(format!("an event over {MAX_EVENT} bytes"));
                }
                if self.ended || self.raw.len() < before {
                    continue;
                }
            }
            // Nothing (more) to decode without more bytes.
            if self.read().await? == 0 {
                if !self.body.may_end_here() {
                    return Err("the connection ended inside the body".into());
                }
                self.ended = true;
            }
        }
    }

    /// The type (`event:` field) of the event [`SseConn::next`] answered last
    /// (`message` when it had none).
    pub(crate) fn event_type(&self) -> &str {
        self.parser.event_type()
    }
}

/// Opens a TCP connection from `source` (any when `None`).
async fn connect(addr: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, String> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(ip) = source {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| format!("bind {ip}: {e}"))?;
    }
    let stream = socket
        .connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// The status, the body's framing and whether the type is `text/event-stream`.
fn parse_head(head: &str) -> Result<(u16, Dechunker, bool), String> {
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP/1 status line: {status_line:?}"))?;
    let mut framing = Dechunker::UntilClose;
    let mut event_stream = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            if value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            {
                framing = Dechunker::Chunked(ChunkState::Size);
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            if !matches!(framing, Dechunker::Chunked(_)) {
                let length = value
                    .parse()
                    .map_err(|_| format!("a bad Content-Length: {value:?}"))?;
                framing = Dechunker::Length(length);
            }
        } else if name.eq_ignore_ascii_case("content-type") {
            event_stream = value
                .split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"));
        }
    }
    Ok((status, framing, event_stream))
}

/// The index of the first `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// How a response body is framed, and how far its decoding got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dechunker {
    /// `Transfer-Encoding: chunked`.
    Chunked(ChunkState),
    /// `Content-Length`: this many bytes are still to come.
    Length(u64),
    /// Neither: the body ends with the connection.
    UntilClose,
}

/// Where in the chunked framing the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk: this many data bytes are still to come.
    Data(usize),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk (size 0): trailers, then the end.
    Done,
}

/// The longest chunk-size line accepted (with extensions).
const MAX_CHUNK_LINE: usize = 1024;

impl Dechunker {
    /// Moves what of `raw` can be decoded into `out` (consuming it from `raw`);
    /// answers whether the body is complete.
    fn decode(&mut self, raw: &mut Vec<u8>, out: &mut Vec<u8>) -> Result<bool, String> {
        match self {
            Self::UntilClose => {
                out.append(raw);
                Ok(false)
            }
            Self::Length(left) => {
                let n = raw.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend(raw.drain(..n));
                *left -= n as u64;
                raw.clear(); // Anything after the body is not ours.
                Ok(*left == 0)
            }
            Self::Chunked(state) => {
                let mut at = 0;
                let done = loop {
                    match *state {
                        ChunkState::Size => {
                            let Some(end) = find(&raw[at..], b"\r\n") else {
                                if raw.len() - at > MAX_CHUNK_LINE {
                                    return Err("a chunk-size line too long".into());
                                }
                                break false;
                            };
                            let line = &raw[at..at + end];
                            let size = line.split(|&b| b == b';').next().unwrap_or_default();
                            let size = std::str::from_utf8(size)
                                .ok()
                                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                                .ok_or_else(|| {
                                    format!("a bad chunk size: {:?}", String::from_utf8_lossy(line))
                                })?;
                            at += end + 2;
                            *state = if size == 0 {
                                ChunkState::Done
                            } else {
                                ChunkState::Data(size)
                            };
                        }
                        ChunkState::Data(left) => {
                            if at == raw.len() {
                                break false;
                            }
                            let n = left.min(raw.len() - at);
                            out.extend_from_slice(&raw[at..at + n]);
                            at += n;
                            *state = if n == left {
                                ChunkState::DataEnd
                            } else {
                                ChunkState::Data(left - n)
                            };
                        }
                        ChunkState::DataEnd => {
                            if raw.len() - at < 2 {
                                break false;
                            }
                            if &raw[at..at + 2] != b"\r\n" {
                                return Err("a chunk without its CRLF".into());
                            }
                            at += 2;
                            *state = ChunkState::Size;
                        }
                        // Trailers are not read: the stream is over.
                        ChunkState::Done => break true,
                    }
                };
                raw.drain(..at);
                Ok(done)
            }
        }
    }

    /// Whether the connection may end here without cutting the body short.
    fn may_end_here(&self) -> bool {
        matches!(
            self,
            Self::UntilClose | Self::Length(0) | Self::Chunked(ChunkState::Done)
        )
    }
}

/// Parses events out of an event stream's text, line by line.
#[derive(Debug, Default)]
pub(crate) struct EventParser {
    /// The data of the event being read (`data:` lines joined with LF).
    pending_data: Vec<u8>,
    /// Whether the event being read has a `data:` line (it may be empty).
    has_data: bool,
    /// Its `event:` field.
    pending_event: String,
    /// The dispatched event: its data and type.
    data: Vec<u8>,
    event: String,
    /// The first byte was read (a byte order mark there is skipped).
    started: bool,
}

impl EventParser {
    /// Consumes whole lines of `text` until an event is complete: answers
    /// whether one was (its data is [`EventParser::data`]). What is left of
    /// `text` is an unfinished line.
    pub(crate) fn parse(&mut self, text: &mut Vec<u8>) -> Result<bool, String> {
        if !self.started && !text.is_empty() {
            if text.starts_with("\u{feff}".as_bytes()) {
                text.drain(..3);
            } else if "\u{feff}".as_bytes().starts_with(text) {
                return Ok(false); // Perhaps a byte order mark, not all here yet.
            }
            self.started = true;
        }
        let mut at = 0;
        let mut dispatched = false;
        while let Some(end) = text[at..].iter().position(|&b| b == b'\n' || b == b'\r') {
            let line_end = at + end;
            let mut next = line_end + 1;
            if text[line_end] == b'\r' {
                match text.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    // A CR last: it may be the first half of a CRLF.
                    None => break,
                }
            }
            let line = &text[at..line_end];
            at = next;
            if self.line(line) {
                dispatched = true;
                break;
            }
            if self.pending_data.len() > MAX_EVENT {
                return Err(format!("an event over {MAX_EVENT} bytes"));
            }
        }
        text.drain(..at);
        Ok(dispatched)
    }

    /// Takes one line; answers whether it completed an event with data.
    fn line(&mut self, line: &[u8]) -> bool {
        if line.is_empty() {
            let dispatch = self.has_data;
            if dispatch {
                std::mem::swap(&mut self.data, &mut self.pending_data);
                std::mem::swap(&mut self.event, &mut self.pending_event);
            }
            self.pending_data.clear();
            self.pending_event.clear();
            self.has_data = false;
            return dispatch;
        }
        if line[0] == b':' {
            return false; // A comment (a heartbeat).
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"data" => {
                if self.has_data {
                    self.pending_data.push(b'\n');
                }
                self.pending_data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.pending_event = String::from_utf8_lossy(value).into_owned(),
            // `id` and `retry` do not matter to a load generator; other fields
            // are ignored, as the rules say.
            _ => {}
        }
        false
    }

    /// The data of the event [`EventParser::parse`] completed last.
    pub(crate) fn data(&self) -> &[u8] {
        &self.data
    }

    /// Its type: `message` when it had no `event:` field.
    pub(crate) fn event_type(&self) -> &str {
        if self.event.is_empty() {
            "message"
        } else {
            &self.event
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` one after the other; answers every event as (type, data).
    fn events(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut parser = EventParser::default();
        let mut text = Vec::new();
        let mut seen = Vec::new();
        for piece in pieces {
            text.extend_from_slice(piece);
            while parser.parse(&mut text).unwrap_or(false) {
                seen.push((
                    parser.event_type().to_owned(),
                    String::from_utf8_lossy(parser.data()).into_owned(),
                ));
            }
        }
        seen
    }

    #[test]
    fn events_are_parsed_across_pieces_and_line_endings() {
        let seen = events(&[
            b"\xef\xbb\xbf: hello\n\nid: 1\nda",
            b"ta: one\ndata:two\r\n\r",
            b"\nevent: subscribed\rdata: {\"subs\":[]}\r\r",
            b"retry: 10\n\n",
            b"data\n\ndata: last",
        ]);
        assert_eq!(
            seen,
            vec![
                ("message".to_owned(), "one\ntwo".to_owned()),
                ("subscribed".to_owned(), r#"{"subs":[]}"#.to_owned()),
                ("message".to_owned(), String::new()),
            ]
        );
    }

    /// Decodes `raw` in pieces of `step` bytes.
    fn dechunk(raw: &[u8], step: usize) -> (Vec<u8>, bool) {
        let mut decoder = Dechunker::Chunked(ChunkState::Size);
        let (mut pending, mut out, mut done) = (Vec::new(), Vec::new(), false);
        for piece in raw.chunks(step) {
            pending.extend_from_slice(piece);
            done = decoder.decode(&mut pending, &mut out).unwrap_or(false);
        }
        (out, done && decoder.may_end_here())
    }

    #[test]
    fn chunked_bodies_decode_in_any_pieces() {
        let raw = b"5\r\ndata:\r\n3;ext=1\r\n ab\r\n2\r\n\n\n\r\n0\r\n\r\n";
        for step in 1..raw.len() {
            assert_eq!(
                dechunk(raw, step),
                (b"data: ab\n\n".to_vec(), true),
                "{step}"
            );
        }
        let mut decoder = Dechunker::Chunked(ChunkState::Size);
        assert!(
            decoder
                .decode(&mut b"zz\r\n".to_vec(), &mut Vec::new())
                .is_err()
        );
        let mut decoder = Dechunker::Chunked(ChunkState::Size);
        assert!(
            decoder
                .decode(&mut b"1\r\nabc".to_vec(), &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn heads_tell_status_framing_and_type() {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
                    transfer-encoding: chunked";
        assert_eq!(
            parse_head(head),
            Ok((200, Dechunker::Chunked(ChunkState::Size), true))
        );
        let head = "HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: 12";
        assert_eq!(parse_head(head), Ok((401, Dechunker::Length(12), false)));
        assert!(parse_head("SSH-2.0").is_err());
    }

    /// A real socket: a server that answers one stream in odd pieces, then ends it.
    #[tokio::test]
    async fn a_stream_is_read_over_a_socket() -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.ok()?;
            let mut request = vec![0u8; 4096];
            let mut got = 0;
            while find(&request[..got], b"\r\n\r\n").is_none() {
                got += tcp.read(&mut request[got..]).await.ok()?;
            }
            request.truncate(got);
            let pieces: [&[u8]; 4] = [
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n",
                b"Transfer-Encoding: chunked\r\n\r\n8\r\n: hi\n\nda\r\n",
                b"9\r\nta: 1 2\n\n\r\n",
                b"0\r\n\r\n",
            ];
            for piece in pieces {
                tcp.write_all(piece).await.ok()?;
                tcp.flush().await.ok()?;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            String::from_utf8(request).ok()
        });
        let target = Target::parse(&format!("http://{addr}/.well-known/mercure?match=a"))?;
        let headers = [("Authorization".to_owned(), "Bearer t".to_owned())];
        let mut conn = SseConn::open(&target, None, &headers).await?;
        match conn.next().await? {
            Frame::Data(data) => assert_eq!(data, b"1 2"),
            Frame::Closed(_) => return Err("closed before the event".into()),
        }
        assert_eq!(conn.event_type(), "message");
        assert!(matches!(conn.next().await?, Frame::Closed(0)));
        let request = server
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the test server failed")?;
        assert!(request.starts_with("GET /.well-known/mercure?match=a HTTP/1.1\r\n"));
        assert!(request.contains(&format!("\r\nHost: {addr}\r\n")));
        assert!(request.contains("\r\nAuthorization: Bearer t\r\n"));
        Ok(())
    }

    #[tokio::test]
    async fn a_refusal_says_its_status() -> Result<(), String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.ok()?;
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await.ok()?;
            tcp.write_all(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 7\r\n\r\nno auth")
                .await
                .ok()
        });
        let target = Target::parse(&format!("http://{addr}/sse?topic=a"))?;
        match SseConn::open(&target, None, &[]).await {
            Err(why) => assert_eq!(why, "GET /sse?topic=a: 401 no auth"),
            Ok(_) => return Err("a 401 was taken for a stream".into()),
        }
        Ok(())
    }
}
