//! One WebSocket connection after the handshake, in either role: reading and checking
//! frames, inflating, answering pings, keepalive, the close handshake, and writing
//! what the application queued.
//!
//! The connection runs as one task ([`drive`]) that owns the stream. The application
//! talks to it through [`Shared`]: frames to send (already encoded, so one encoded
//! frame can be shared by many connections) and complete messages received. Neither
//! side ever waits on the other while holding the stream: when the application stops
//! reading, the connection stops reading the socket (TCP back-pressure) but keeps
//! writing; when the peer stops reading, the application's sends wait on the bounded
//! queue (or fail fast with `try_send`).
//!
//! An idle connection holds no read buffer: the task waits for the socket to become
//! readable and only then allocates one, and gives it back once it is drained.

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep, sleep_until, timeout};

use super::deflate::{DeflateConfig, Inflater};
use super::error::{CloseCode, ProtocolError};
use super::frame::{FrameHeader, OpCode, RSV1, apply_mask};
use super::message::{CloseFrame, Encoder, Message, Role, Utf8Bytes};
use super::queue::{EVENT_IDLE, EVENT_PING, EVENT_SHUTDOWN, Outgoing, Shared};
use super::utf8::Utf8Check;

/// Limits, timeouts and compression settings of a connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest message (after reassembly and inflation) accepted from the peer;
    /// larger ones close the connection with 1009.
    pub max_message_size: usize,
    /// Bytes queued for a slow peer at which `send` waits and `try_send` refuses.
    pub high_watermark: usize,
    /// Bytes queued at which waiting senders may go on.
    pub low_watermark: usize,
    /// How many received messages may wait for the application before the connection
    /// stops reading from the socket.
    pub inbound_capacity: usize,
    /// Send a ping after this long without one; `None` turns keepalive off.
    pub ping_interval: Option<Duration>,
    /// Close a connection from which nothing arrived for this long: no whole
    /// message, and no whole frame between messages (a pong counts). Bytes of a
    /// frame or message still arriving do not: a peer that trickles a frame or
    /// sends a message in endless fragments is closed with 1008 `no complete
    /// message in N s`; a silent one with 1001 `nothing received for N s`.
    pub idle_timeout: Duration,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// How long one write may make no progress before the peer is given up on.
    pub write_timeout: Duration,
    /// permessage-deflate (RFC 7692).
    pub deflate: DeflateConfig,
    /// Subprotocols this endpoint speaks, most preferred first. A server picks the
    /// first of these that the client offers in `Sec-WebSocket-Protocol` (or none);
    /// a client offers all of them.
    pub subprotocols: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            high_watermark: 1024 * 1024,
            low_watermark: 256 * 1024,
            inbound_capacity: 16,
            ping_interval: Some(Duration::from_secs(25)),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
            deflate: DeflateConfig::default(),
            subprotocols: Vec::new(),
        }
    }
}

impl Config {
    /// A new connection's shared state, sized by this config.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        Arc::new(
            Shared::new(
                self.high_watermark,
                self.low_watermark,
                self.inbound_capacity,
            )
            .with_keepalive(self.ping_interval, self.idle_timeout),
        )
    }
}

/// Who ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// The peer sent the first close frame.
    Peer,
    /// We sent the first close frame (application, shutdown or a protocol error).
    Local,
    /// The connection ended without a close handshake (reset, EOF, timeout).
    Transport,
}

/// How a connection ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The close code of the handshake (1005 when the close frame had none,
    /// 1006 when there was no close frame at all).
    pub code: CloseCode,
    /// The close reason, or what went wrong.
    pub reason: String,
    /// Who started the close.
    pub initiator: Initiator,
    /// Data messages written to the peer.
    pub messages_sent: u64,
    /// Data messages received from the peer (and handed to the application).
    pub messages_received: u64,
    /// Bytes written to the stream: frames, headers included (after compression).
    pub bytes_sent: u64,
    /// Bytes read from the stream, including any read with the handshake.
    pub bytes_received: u64,
}

impl Default for Outcome {
    /// What is known before anything happened: no close handshake (1006).
    fn default() -> Self {
        Self {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            initiator: Initiator::Transport,
            messages_sent: 0,
            messages_received: 0,
            bytes_sent: 0,
            bytes_received: 0,
        }
    }
}

/// A byte stream a connection runs on. Streams with a readiness API (TCP) let an
/// idle connection wait without holding a read buffer.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Ready when a read would not block. The default says "always": such streams
    /// wait inside `poll_read`, with a buffer.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl Transport for TcpStream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        TcpStream::poll_read_ready(self, cx)
    }
}

impl<T: hyper::rt::Read + hyper::rt::Write + Unpin + Send> Transport for TokioIo<T> {}

/// How long a connection that broke the protocol waits for the application to
/// answer the messages that came before the violation.
const FAIL_GRACE: Duration = Duration::from_millis(500);

/// How much a read asks for when no frame is in progress.
const READ_CHUNK: usize = 4096;

/// The close frame a draining connection sends once the application is done.
enum AfterDrain {
    /// Fail the connection for this violation (RFC 6455 §7.1.7).
    Fail(ProtocolError),
    /// Answer the peer's close with this frame.
    AnswerClose(Bytes),
}

enum State {
    Open,
    /// The peer broke the protocol or sent its close; the application still handles
    /// the messages that came before (so their answers go out first, nothing read is
    /// lost), then we send our close, at the latest at the deadline.
    Draining {
        /// Boxed: rare, and the state is part of every idle connection.
        then: Box<AfterDrain>,
        deadline: Instant,
    },
    /// We sent a close frame and wait for the peer's until the deadline.
    CloseSent {
        deadline: Instant,
    },
    /// Client role: the close handshake is done; the server should close TCP first.
    AwaitEof {
        deadline: Instant,
    },
    /// Nothing more to read or write.
    Done,
}

struct Assembly {
    opcode: OpCode,
    data: BytesMut,
    /// Set while a compressed message is being inflated.
    inflater: Option<Inflater>,
}

struct Driver<S> {
    io: S,
    config: Arc<Config>,
    encoder: Encoder,
    rbuf: BytesMut,
    /// The fragmented message in progress (boxed: most messages are one frame).
    assembly: Option<Box<Assembly>>,
    /// The inflater of a peer that keeps compression context between messages.
    persistent_inflater: Option<Inflater>,
    control: Vec<Bytes>,
    /// A message waiting for room in the application's inbox (boxed: rare).
    pending_in: Option<Box<Message>>,
    /// The UTF-8 check of the text message in progress.
    utf8: Option<Utf8Check>,
    /// Payload bytes of the (incomplete) frame at the front of `rbuf` already
    /// unmasked and checked.
    frame_fed: usize,
    state: State,
    outcome: Outcome,
}

/// Runs a connection until it is closed and reports how it ended.
///
/// `prefix` holds bytes read past the handshake; they are parsed first.
pub(crate) fn drive<S: Transport>(
    io: S,
    prefix: Bytes,
    config: Arc<Config>,
    encoder: Encoder,
    shared: Arc<Shared>,
) -> impl Future<Output = Outcome> {
    let persistent_inflater = match encoder.deflate {
        Some(negotiated) if !negotiated.peer_no_context_takeover => {
            Some(Inflater::for_connection())
        }
        _ => None,
    };
    let rbuf = BytesMut::from(&prefix[..]);
    // The prefix may share hyper's whole read buffer: let it go now.
    drop(prefix);
    let outcome = Outcome {
        bytes_received: rbuf.len() as u64,
        ..Outcome::default()
    };
    let mut driver = Driver {
        io,
        encoder,
        rbuf,
        assembly: None,
        persistent_inflater,
        control: Vec::new(),
        pending_in: None,
        utf8: None,
        frame_fed: 0,
        state: State::Open,
        outcome,
        config,
    };
    // Built here and moved into the future once: an `async fn` would keep its
    // arguments and the driver built from them side by side for the connection's life.
    async move { driver.run(&shared).await }
}

impl<S: Transport> Driver<S> {
    async fn run(&mut self, shared: &Shared) -> Outcome {
        let driver = self;
        let mut batch: Vec<Bytes> = Vec::new();
        // The bytes of the frames in `batch`, once there are some to write.
        let mut to_write: Option<usize> = None;
        // The timer of the closing states, allocated only when one is needed.
        let mut timer: Option<Pin<Box<Sleep>>> = None;
        driver.process_buffered(shared);
        loop {
            if !driver.control.is_empty() {
                let frames = std::mem::take(&mut driver.control);
                match driver.write_all(&frames).await {
                    Ok(()) => {
                        let bytes: usize = frames.iter().map(Bytes::len).sum();
                        driver.outcome.bytes_sent += bytes as u64;
                    }
                    Err(reason) => driver.transport_failed(reason),
                }
            }
            if let Some(bytes) = to_write.take() {
                let count = batch.len() as u64;
                let result = driver.write_all(&batch).await;
                shared.written(bytes);
                match result {
                    Ok(()) => {
                        driver.outcome.messages_sent += count;
                        driver.outcome.bytes_sent += bytes as u64;
                    }
                    Err(reason) => driver.transport_failed(reason),
                }
                // A full batch means more is probably queued: keep its room. Otherwise
                // the connection is likely to go quiet, and a quiet one keeps no buffer.
                if batch.len() < super::queue::MAX_BATCH {
                    batch = Vec::new();
                } else {
                    batch.clear();
                }
            }
            if !matches!(driver.state, State::Open | State::Draining { .. }) {
                // Closing: the application can no longer send, and may learn how
                // it ended.
                shared.record_close(driver.outcome.code.0);
                shared.finish();
            }
            let open = matches!(driver.state, State::Open);
            let draining = matches!(driver.state, State::Draining { .. });
            let deadline = match driver.state {
                State::Done => break,
                State::CloseSent { deadline }
                | State::AwaitEof { deadline }
                | State::Draining { deadline, .. } => Some(deadline),
                State::Open => None,
            };
            let reading = driver.pending_in.is_none() && !draining;
            tokio::select! {
                biased;
                () = poll_fn(|cx| shared.poll_inbox_space(cx)), if driver.pending_in.is_some() => {
                    if let Some(message) = driver.pending_in.take()
                        && let Err(message) = shared.deliver(*message)
                    {
                        driver.pending_in = Some(Box::new(message));
                    }
                    if !draining {
                        driver.process_buffered(shared);
                    }
                }
                outgoing = poll_fn(|cx| shared.poll_outgoing(cx, &mut batch)), if open || draining => {
                    to_write = driver.handle_outgoing(outgoing, shared);
                }
                read = poll_fn(|cx| driver.poll_read(cx)), if reading => {
                    match read {
                        Ok(0) => driver.peer_eof(),
                        Ok(read) => {
                            driver.outcome.bytes_received += read as u64;
                            // Sending, if only part of a frame: no ping for this peer
                            // (the idle timeout counts whole frames, see below).
                            shared.heard();
                            driver.process_buffered(shared);
                        }
                        Err(err) => driver.transport_failed(format!("read failed: {err}")),
                    }
                }
                () = poll_fn(|cx| poll_timer(&mut timer, cx, deadline)), if deadline.is_some() => {
                    driver.on_timer(shared);
                }
            }
        }
        shared.record_close(driver.outcome.code.0);
        shared.finish();
        // Best effort: the peer may already be gone.
        let _ = timeout(driver.config.close_timeout, driver.io.shutdown()).await;
        std::mem::take(&mut driver.outcome)
    }
}

/// Ready at `deadline`; the sleep is boxed and kept only while one is needed.
fn poll_timer(
    timer: &mut Option<Pin<Box<Sleep>>>,
    cx: &mut Context<'_>,
    deadline: Option<Instant>,
) -> Poll<()> {
    let Some(deadline) = deadline else {
        *timer = None;
        return Poll::Pending;
    };
    match timer {
        Some(sleep) if sleep.deadline() == deadline => {}
        Some(sleep) => sleep.as_mut().reset(deadline),
        None => *timer = Some(Box::pin(sleep_until(deadline))),
    }
    match timer {
        Some(sleep) => sleep.as_mut().poll(cx),
        None => Poll::Pending,
    }
}

impl<S: Transport> Driver<S> {
    /// Waits for readability, then reads into a buffer that exists only while bytes
    /// are arriving.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        ready!(self.io.poll_read_ready(cx))?;
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf) {
            Poll::Pending => {
                if self.rbuf.is_empty() {
                    self.rbuf = BytesMut::new();
                }
                Poll::Pending
            }
            ready => ready,
        }
    }

    fn on_timer(&mut self, shared: &Shared) {
        let now = Instant::now();
        match self.state {
            State::Draining { deadline, .. } if now >= deadline => self.finish_draining(shared),
            State::CloseSent { deadline } | State::AwaitEof { deadline } if now >= deadline => {
                if matches!(self.state, State::CloseSent { .. }) {
                    self.transport_failed("peer did not answer our close frame".into());
                } else {
                    self.state = State::Done;
                }
            }
            _ => {}
        }
    }

    /// Parses every complete frame in the read buffer, stopping early when a message
    /// waits for room in the application's inbox or the connection is done.
    fn process_buffered(&mut self, shared: &Shared) {
        while self.pending_in.is_none()
            && matches!(self.state, State::Open | State::CloseSent { .. })
        {
            let buffered = self.rbuf.len();
            let next = self.next_frame();
            if self.rbuf.len() < buffered && self.assembly.is_none() {
                // A whole frame arrived, and no message is left half done: the peer
                // is alive. Bytes alone do not count, so a peer that trickles a
                // frame, or a message in endless fragments, is closed by the idle
                // check (see `on_events`).
                shared.touch();
            }
            match next {
                // After our close the application can take nothing more: what the
                // peer sent before answering it is read (to find the answer) and
                // dropped (RFC 6455 §1.4).
                Ok(Some(_)) if matches!(self.state, State::CloseSent { .. }) => {}
                Ok(Some(message)) => {
                    self.outcome.messages_received += 1;
                    if let Err(message) = shared.deliver(message) {
                        self.pending_in = Some(Box::new(message));
                    }
                }
                Ok(None) => {
                    if matches!(self.state, State::Draining { .. }) {
                        // The peer's close: nothing after it is read.
                        if !shared.watch_idle() {
                            self.finish_draining(shared);
                        }
                        break;
                    }
                    if !self.frame_in_buffer() {
                        break;
                    }
                }
                Err(err) => {
                    self.fail(err, shared);
                    break;
                }
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            // Nothing is arriving: an idle connection keeps no buffer.
            self.rbuf = BytesMut::new();
        }
    }

    /// Whether the read buffer still starts with a complete frame (or a bad header).
    fn frame_in_buffer(&self) -> bool {
        match FrameHeader::parse(&self.rbuf) {
            Ok(Some((header, head_len))) => {
                (self.rbuf.len() - head_len) as u64 >= header.payload_len
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Checks a header against the role, the extensions and the limits.
    fn check_header(&self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let allowed_rsv = match header.opcode {
            OpCode::Text | OpCode::Binary if self.encoder.deflate.is_some() => RSV1,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        match (self.encoder.role, header.mask) {
            (Role::Server, None) => return Err(ProtocolError::UnmaskedClientFrame),
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedServerFrame),
            _ => {}
        }
        match (header.opcode, &self.assembly) {
            (OpCode::Text | OpCode::Binary, Some(_)) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            (OpCode::Continuation, None) => return Err(ProtocolError::UnexpectedContinuation),
            _ => {}
        }
        if !header.opcode.is_control() {
            let limit = self.config.max_message_size;
            let compressed = header.rsv & RSV1 != 0
                || self.assembly.as_ref().is_some_and(|a| a.inflater.is_some());
            // Compressed frames may be a little larger than what they inflate to.
            let frame_limit = if compressed {
                limit.saturating_add(limit / 8).saturating_add(1024)
            } else {
                limit
            };
            let so_far = self
                .assembly
                .as_ref()
                .filter(|a| a.inflater.is_none())
                .map_or(0, |a| a.data.len() as u64);
            if so_far + header.payload_len > frame_limit as u64 {
                return Err(ProtocolError::MessageTooBig { limit });
            }
        }
        Ok(())
    }

    /// Whether this frame carries uncompressed text, which is checked as it arrives.
    fn streams_text(&self, header: &FrameHeader) -> bool {
        match header.opcode {
            OpCode::Text => header.rsv & RSV1 == 0,
            OpCode::Continuation => self
                .assembly
                .as_ref()
                .is_some_and(|a| a.opcode == OpCode::Text && a.inflater.is_none()),
            _ => false,
        }
    }

    /// Consumes one complete frame from the buffer. Returns a message when the frame
    /// completes one; `Ok(None)` for control frames and fragments, and when the
    /// buffer holds no complete frame yet (then it reserves room for it, and checks
    /// the text that has arrived so far).
    fn next_frame(&mut self) -> Result<Option<Message>, ProtocolError> {
        let Some((header, head_len)) = FrameHeader::parse(&self.rbuf)? else {
            return Ok(None);
        };
        self.check_header(&header)?;
        // Bounded by the control-frame and message limits just checked.
        let payload_len = header.payload_len as usize;
        let frame_len = head_len + payload_len;
        let available = (self.rbuf.len() - head_len).min(payload_len);
        if self.streams_text(&header) && available > self.frame_fed {
            // Unmask and check what has arrived, so invalid text fails at once.
            let piece = &mut self.rbuf[head_len + self.frame_fed..head_len + available];
            if let Some(key) = header.mask {
                apply_mask(piece, key, self.frame_fed);
            }
            self.utf8
                .get_or_insert_with(Utf8Check::default)
                .feed(piece)?;
            self.frame_fed = available;
        }
        if self.rbuf.len() < frame_len {
            self.rbuf.reserve(frame_len - self.rbuf.len());
            return Ok(None);
        }
        let fed = std::mem::take(&mut self.frame_fed);
        let mut payload = self.rbuf.split_to(frame_len);
        payload.advance(head_len);
        if let Some(key) = header.mask {
            apply_mask(&mut payload[fed..], key, fed);
        }
        match header.opcode {
            OpCode::Ping => {
                if matches!(self.state, State::Open) {
                    self.control
                        .push(self.encoder.control(OpCode::Pong, &payload));
                }
                Ok(None)
            }
            OpCode::Pong => Ok(None),
            OpCode::Close => {
                self.on_close_frame(&payload)?;
                Ok(None)
            }
            OpCode::Text | OpCode::Binary => {
                let compressed = header.rsv & RSV1 != 0;
                let mut assembly = Assembly {
                    opcode: header.opcode,
                    data: BytesMut::new(),
                    inflater: compressed.then(|| {
                        self.persistent_inflater
                            .take()
                            .unwrap_or_else(Inflater::for_one_message)
                    }),
                };
                self.append(&mut assembly, payload, header.fin)?;
                self.complete_or_keep(assembly, header.fin)
            }
            OpCode::Continuation => {
                let Some(mut assembly) = self.assembly.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                self.append(&mut assembly, payload, header.fin)?;
                self.complete_or_keep(*assembly, header.fin)
            }
        }
    }

    /// Adds a fragment's payload to a message in progress, inflating it if the
    /// message is compressed (and checking the inflated text).
    fn append(
        &mut self,
        assembly: &mut Assembly,
        payload: BytesMut,
        fin: bool,
    ) -> Result<(), ProtocolError> {
        match assembly.inflater.as_mut() {
            Some(inflater) => {
                let before = assembly.data.len();
                inflater.inflate(
                    &payload,
                    fin,
                    &mut assembly.data,
                    self.config.max_message_size,
                )?;
                if assembly.opcode == OpCode::Text {
                    self.utf8
                        .get_or_insert_with(Utf8Check::default)
                        .feed(&assembly.data[before..])?;
                }
            }
            // The common case, one uncompressed frame: no copy.
            None if assembly.data.is_empty() => assembly.data = payload,
            None => assembly.data.unsplit(payload),
        }
        Ok(())
    }

    fn complete_or_keep(
        &mut self,
        mut assembly: Assembly,
        fin: bool,
    ) -> Result<Option<Message>, ProtocolError> {
        if !fin {
            self.assembly = Some(Box::new(assembly));
            return Ok(None);
        }
        if let Some(inflater) = assembly.inflater.take() {
            if inflater.is_persistent() {
                self.persistent_inflater = Some(inflater);
            } else {
                inflater.finish();
            }
        }
        if let Some(check) = self.utf8.take() {
            check.finish()?;
        }
        Ok(self.deliver(assembly))
    }

    /// Turns a finished message into what the application receives, unless we are
    /// already closing (then data is discarded, RFC 6455 §1.4).
    fn deliver(&mut self, assembly: Assembly) -> Option<Message> {
        if !matches!(self.state, State::Open) {
            return None;
        }
        let bytes = assembly.data.freeze();
        match assembly.opcode {
            // SAFETY: `Utf8Check` saw every byte of the text, and its end, and
            // closes the connection (1007) before delivery when one is invalid.
            OpCode::Text => Some(Message::Text(unsafe { Utf8Bytes::from_validated(bytes) })),
            _ => Some(Message::Binary(bytes)),
        }
    }

    fn on_close_frame(&mut self, payload: &[u8]) -> Result<(), ProtocolError> {
        let (code, reason) = match payload {
            [] => (CloseCode::NO_STATUS, String::new()),
            [_] => return Err(ProtocolError::CloseFrameOneByte),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                if !code.is_sendable() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                let reason =
                    simdutf8::basic::from_utf8(reason).map_err(|_| ProtocolError::InvalidUtf8)?;
                (code, reason.to_owned())
            }
        };
        if matches!(self.state, State::Open) {
            // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty reply.
            let reply: &[u8] = if code == CloseCode::NO_STATUS {
                &[]
            } else {
                &payload[..2]
            };
            let reply = self.encoder.control(OpCode::Close, reply);
            self.outcome.code = code;
            self.outcome.reason = reason;
            self.outcome.initiator = Initiator::Peer;
            // Answered once the application has handled what came before the close
            // (see `process_buffered`).
            self.state = State::Draining {
                then: Box::new(AfterDrain::AnswerClose(reply)),
                deadline: Instant::now() + FAIL_GRACE,
            };
            return Ok(());
        }
        self.state = self.after_handshake();
        Ok(())
    }

    /// Where the close handshake leaves us: a server closes TCP at once; a client
    /// waits (bounded) for the server to do it (RFC 6455 §7.1.1).
    fn after_handshake(&self) -> State {
        match self.encoder.role {
            Role::Server => State::Done,
            Role::Client => State::AwaitEof {
                deadline: Instant::now() + self.config.close_timeout,
            },
        }
    }

    /// Fails the connection (RFC 6455 §7.1.7) — once the application has handled
    /// the messages that arrived before the violation, so their answers go out first
    /// (within [`FAIL_GRACE`]).
    fn fail(&mut self, error: ProtocolError, shared: &Shared) {
        tracing::debug!(%error, "closing on protocol error");
        if !matches!(self.state, State::Open) {
            self.state = State::Done;
            return;
        }
        self.state = State::Draining {
            then: Box::new(AfterDrain::Fail(error)),
            deadline: Instant::now() + FAIL_GRACE,
        };
        if !shared.watch_idle() {
            self.finish_draining(shared);
        }
    }

    /// The application has answered what it was given (or ran out of time): send
    /// what it queued, then our close frame; nothing more is read.
    fn finish_draining(&mut self, shared: &Shared) {
        let State::Draining { then, .. } = std::mem::replace(&mut self.state, State::Done) else {
            return;
        };
        self.flush_outbox_first(shared);
        match *then {
            AfterDrain::Fail(error) => {
                let frame = CloseFrame::new(error.close_code(), error.to_string());
                self.control
                    .push(self.encoder.control(OpCode::Close, &frame.payload()));
                self.outcome.code = frame.code;
                self.outcome.reason = frame.reason;
                self.outcome.initiator = Initiator::Local;
            }
            AfterDrain::AnswerClose(reply) => {
                self.control.push(reply);
                self.state = self.after_handshake();
            }
        }
    }

    /// Moves what the application queued ahead of the close frame about to be sent:
    /// answers it gave before the close go out, in order.
    fn flush_outbox_first(&mut self, shared: &Shared) {
        let before = self.control.len();
        shared.take_all(&mut self.control);
        self.outcome.messages_sent += (self.control.len() - before) as u64;
    }

    fn start_close(&mut self, frame: CloseFrame, shared: &Shared) {
        if !matches!(self.state, State::Open) {
            return;
        }
        self.flush_outbox_first(shared);
        let code = if frame.code.is_sendable() {
            frame.code
        } else {
            CloseCode::NORMAL
        };
        let frame = CloseFrame::new(code, frame.reason);
        self.control
            .push(self.encoder.control(OpCode::Close, &frame.payload()));
        self.outcome.code = frame.code;
        self.outcome.reason = frame.reason;
        self.outcome.initiator = Initiator::Local;
        self.state = State::CloseSent {
            deadline: Instant::now() + self.config.close_timeout,
        };
    }

    fn peer_eof(&mut self) {
        match self.state {
            // The peer closed TCP instead of answering our close, or after the
            // handshake as it should: done either way.
            State::CloseSent { .. } | State::AwaitEof { .. } => self.state = State::Done,
            _ => self.transport_failed("connection closed without a close frame".into()),
        }
    }

    fn transport_failed(&mut self, reason: String) {
        if matches!(self.state, State::Open) {
            self.outcome.code = CloseCode::ABNORMAL;
            self.outcome.reason = reason;
            self.outcome.initiator = Initiator::Transport;
        }
        self.state = State::Done;
    }

    /// Acts on what the application asked for; answers the size of the frames moved
    /// into the batch when there are some to write.
    fn handle_outgoing(&mut self, outgoing: Outgoing, shared: &Shared) -> Option<usize> {
        match outgoing {
            Outgoing::Frames { bytes } => return Some(bytes),
            Outgoing::Events(events) => self.on_events(events, shared),
            Outgoing::Idle => self.finish_draining(shared),
            Outgoing::Close(_) | Outgoing::AppGone
                if matches!(self.state, State::Draining { .. }) =>
            {
                self.finish_draining(shared);
            }
            Outgoing::Close(frame) => self.start_close(frame, shared),
            Outgoing::AppGone => self.start_close(CloseFrame::new(CloseCode::NORMAL, ""), shared),
        }
        None
    }

    /// Keepalive and shutdown, raised by the registry's sweeper.
    fn on_events(&mut self, events: u8, shared: &Shared) {
        if matches!(self.state, State::Draining { .. }) {
            if events & (EVENT_SHUTDOWN | EVENT_IDLE) != 0 {
                self.finish_draining(shared);
            }
            return;
        }
        if events & EVENT_SHUTDOWN != 0 {
            self.start_close(
                CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"),
                shared,
            );
        } else if events & EVENT_IDLE != 0 {
            let idle = self.config.idle_timeout.as_secs();
            let stalled_message =
                self.pending_in.is_none() && (!self.rbuf.is_empty() || self.assembly.is_some());
            let frame = if !stalled_message {
                CloseFrame::new(
                    CloseCode::GOING_AWAY,
                    format!("nothing received for {idle} s"),
                )
            } else {
                // Bytes came, but no whole message (or frame between messages):
                // a slowloris on frames.
                CloseFrame::new(
                    CloseCode::POLICY,
                    format!("no complete message in {idle} s"),
                )
            };
            self.start_close(frame, shared);
            // An unresponsive peer will not answer: do not wait for it.
            self.state = State::Done;
        } else if events & EVENT_PING != 0 && matches!(self.state, State::Open) {
            self.control.push(self.encoder.control(OpCode::Ping, b""));
        }
    }

    /// Writes every frame, in order, using vectored writes.
    /// Writes `frames` in order with vectored writes, then flushes.
    fn write_all<'a>(&'a mut self, frames: &'a [Bytes]) -> WriteAll<'a, S> {
        WriteAll {
            io: &mut self.io,
            frames,
            done: 0,
            offset: 0,
            limit: self.config.write_timeout,
            timer: None,
            progressed: false,
        }
    }
}

/// The most slices handed to one vectored write.
const MAX_SLICES: usize = 64;

/// Writes frames with vectored writes and flushes, failing when one write makes no
/// progress for `limit`. Written by hand so that a write allocates nothing: the
/// slices live on the stack of each poll, and the timer exists only once the socket
/// has pushed back.
struct WriteAll<'a, S> {
    io: &'a mut S,
    frames: &'a [Bytes],
    /// Frames written completely.
    done: usize,
    /// Bytes written of `frames[done]`.
    offset: usize,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// Bytes went out since the timer was last set.
    progressed: bool,
}

impl<S: Transport> Future for WriteAll<'_, S> {
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            // Empty frames never reach the socket on their own.
            while this.done < this.frames.len() && this.frames[this.done].len() == this.offset {
                this.done += 1;
                this.offset = 0;
            }
            if this.done == this.frames.len() {
                return Pin::new(&mut *this.io)
                    .poll_flush(cx)
                    .map_err(|err| format!("flush failed: {err}"));
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for (i, frame) in this.frames[this.done..].iter().take(MAX_SLICES).enumerate() {
                let skip = if i == 0 { this.offset } else { 0 };
                slices[i] = IoSlice::new(&frame[skip..]);
                count += 1;
            }
            match Pin::new(&mut *this.io).poll_write_vectored(cx, &slices[..count]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err("write returned zero bytes".into())),
                Poll::Ready(Ok(mut written)) => {
                    this.progressed = true;
                    while written > 0 && this.done < this.frames.len() {
                        let left = this.frames[this.done].len() - this.offset;
                        if written >= left {
                            written -= left;
                            this.done += 1;
                            this.offset = 0;
                        } else {
                            this.offset += written;
                            written = 0;
                        }
                    }
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(format!("write failed: {err}"))),
                Poll::Pending => {
                    let deadline = Instant::now() + this.limit;
                    match &mut this.timer {
                        None => this.timer = Some(Box::pin(sleep_until(deadline))),
                        Some(timer) if this.progressed => timer.as_mut().reset(deadline),
                        Some(_) => {}
                    }
                    this.progressed = false;
                    if let Some(timer) = &mut this.timer
                        && timer.as_mut().poll(cx).is_ready()
                    {
                        return Poll::Ready(Err("peer stopped reading (write timed out)".into()));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Every idle connection holds this future in its task: keep it small (600 bytes
    /// before writes stopped being boxed futures and rare state moved behind boxes;
    /// 448 with rustc 1.95; 480 since `Outcome` counts messages received and bytes
    /// each way, for the connection log).
    #[tokio::test]
    async fn an_idle_connection_is_small() -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let stream = TcpStream::connect(listener.local_addr()?).await?;
        let config = Arc::new(Config::default());
        let encoder = Encoder {
            role: Role::Server,
            deflate: None,
            level: 1,
            min_size: 0,
        };
        let shared = config.shared();
        let future = drive(stream, Bytes::new(), config, encoder, shared);
        let size = std::mem::size_of_val(&future);
        assert!(size <= 480, "the connection future grew to {size} bytes");
        Ok(())
    }
}
