//! One server-side WebSocket connection after the handshake: reading and checking
//! frames, answering pings, the close handshake, and writing what the application
//! queued.
//!
//! The connection runs as one task ([`drive`]) that owns the stream. The application
//! talks to it through two bounded channels: frames to send (already encoded, so one
//! encoded frame can be shared by many connections) and complete messages received.
//! Neither side ever waits on the other while holding the stream: when the
//! application stops reading, the connection stops reading the socket (TCP
//! back-pressure) but keeps writing; when the peer stops reading, the application's
//! sends wait on the bounded queue.

use std::io::IoSlice;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::sync::CancellationToken;

use super::error::{CloseCode, ProtocolError};
use super::frame::{FrameHeader, OpCode, apply_mask};
use super::message::{CloseFrame, Message, Utf8Bytes, encode_server_frame};

/// Limits and timeouts of a connection.
#[derive(Debug, Clone)]
pub struct Config {
    /// Largest message (after reassembly of fragments) accepted from the peer; larger
    /// ones close the connection with 1009.
    pub max_message_size: usize,
    /// How many outgoing frames the application may queue before `send` waits.
    pub queue_capacity: usize,
    /// How many received messages may wait for the application before the connection
    /// stops reading from the socket.
    pub inbound_capacity: usize,
    /// How long to wait for the peer's close frame after sending ours.
    pub close_timeout: Duration,
    /// How long one write may make no progress before the peer is given up on.
    pub write_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            queue_capacity: 64,
            inbound_capacity: 16,
            close_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// What the application hands the connection to send.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A complete encoded data frame.
    Data(Bytes),
    /// Start the close handshake.
    Close(CloseFrame),
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
}

/// The ends of the channels the application uses.
pub(crate) struct Channels {
    pub(crate) outgoing: mpsc::Receiver<Outgoing>,
    pub(crate) incoming: mpsc::Sender<Message>,
}

/// Most frames one wake-up writes with a single vectored write.
const MAX_BATCH: usize = 64;

/// How much a read asks for when no frame is in progress.
const READ_CHUNK: usize = 4096;

enum State {
    Open,
    /// We sent a close frame and wait for the peer's until the deadline.
    CloseSent {
        deadline: Instant,
    },
    /// Nothing more to read or write.
    Done,
}

struct Assembly {
    opcode: OpCode,
    data: BytesMut,
    /// For text: how many leading bytes are known to be valid UTF-8.
    valid_up_to: usize,
}

struct Driver<'a, S> {
    io: S,
    config: &'a Config,
    rbuf: BytesMut,
    assembly: Option<Assembly>,
    control: Vec<Bytes>,
    pending_in: Option<Message>,
    state: State,
    outcome: Outcome,
}

/// Runs a server-side connection until it is closed and reports how it ended.
///
/// `prefix` holds bytes the HTTP layer read past the handshake; they are parsed first.
pub(crate) async fn drive<S>(
    io: S,
    prefix: Bytes,
    config: &Config,
    mut channels: Channels,
    shutdown: CancellationToken,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut driver = Driver {
        io,
        config,
        rbuf: BytesMut::from(&prefix[..]),
        assembly: None,
        control: Vec::new(),
        pending_in: None,
        state: State::Open,
        outcome: Outcome {
            code: CloseCode::ABNORMAL,
            reason: String::new(),
            initiator: Initiator::Transport,
            messages_sent: 0,
        },
    };
    driver.process_buffered(&channels.incoming);
    loop {
        if !driver.control.is_empty() {
            let mut frames = std::mem::take(&mut driver.control);
            if let Err(reason) = driver.write_all(&mut frames).await {
                driver.transport_failed(reason);
            }
        }
        let open = matches!(driver.state, State::Open);
        let deadline = match driver.state {
            State::CloseSent { deadline } => Some(deadline),
            State::Done => break,
            State::Open => None,
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if open => {
                driver.start_close(CloseFrame::new(CloseCode::GOING_AWAY, "server shutting down"));
            }
            permit = channels.incoming.reserve(), if driver.pending_in.is_some() => {
                if let (Ok(permit), Some(message)) = (permit, driver.pending_in.take()) {
                    permit.send(message);
                } else {
                    // The application stopped listening; what it would have read is moot.
                    driver.pending_in = None;
                }
                driver.process_buffered(&channels.incoming);
            }
            outgoing = channels.outgoing.recv(), if open => {
                driver.send_batch(outgoing, &mut channels.outgoing).await;
            }
            read = driver.read_some(), if driver.pending_in.is_none() => {
                match read {
                    Ok(0) => driver.peer_eof(),
                    Ok(_) => driver.process_buffered(&channels.incoming),
                    Err(err) => driver.transport_failed(format!("read failed: {err}")),
                }
            }
            () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                driver.transport_failed("peer did not answer our close frame".into());
            }
        }
    }
    // Best effort: the peer may already be gone.
    let _ = timeout(config.close_timeout, driver.io.shutdown()).await;
    driver.outcome
}

impl<S> Driver<'_, S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    async fn read_some(&mut self) -> std::io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        self.io.read_buf(&mut self.rbuf).await
    }

    /// Parses every complete frame in the read buffer, stopping early when a message
    /// waits for the application or the connection is done.
    fn process_buffered(&mut self, incoming: &mpsc::Sender<Message>) {
        while self.pending_in.is_none() && !matches!(self.state, State::Done) {
            match self.next_frame() {
                Ok(Some(message)) => match incoming.try_send(message) {
                    Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
                    Err(mpsc::error::TrySendError::Full(message)) => {
                        self.pending_in = Some(message);
                    }
                },
                Ok(None) => {
                    if !self.frame_in_buffer() {
                        break;
                    }
                }
                Err(err) => {
                    self.fail(err);
                    break;
                }
            }
        }
        if self.rbuf.is_empty() && self.rbuf.capacity() > 4 * READ_CHUNK {
            // A large message has passed; an idle connection keeps no large buffer.
            self.rbuf = BytesMut::new();
        }
    }

    /// Whether the read buffer still starts with a complete frame.
    fn frame_in_buffer(&self) -> bool {
        match FrameHeader::parse(&self.rbuf) {
            Ok(Some((header, head_len))) => {
                (self.rbuf.len() - head_len) as u64 >= header.payload_len
            }
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// Consumes one complete frame from the buffer. Returns a message when the frame
    /// completes one; `Ok(None)` when the frame was a control frame or a fragment, or
    /// when the buffer holds no complete frame yet (then it reserves room for it).
    fn next_frame(&mut self) -> Result<Option<Message>, ProtocolError> {
        let Some((header, head_len)) = FrameHeader::parse(&self.rbuf)? else {
            return Ok(None);
        };
        if header.rsv != 0 {
            return Err(ProtocolError::ReservedBitsSet);
        }
        let Some(mask) = header.mask else {
            return Err(ProtocolError::UnmaskedClientFrame);
        };
        if !header.opcode.is_control() {
            let so_far = self.assembly.as_ref().map_or(0, |a| a.data.len() as u64);
            let limit = self.config.max_message_size;
            if so_far + header.payload_len > limit as u64 {
                return Err(ProtocolError::MessageTooBig { limit });
            }
        }
        // Bounded by the control-frame and message limits checked above.
        let payload_len = header.payload_len as usize;
        let frame_len = head_len + payload_len;
        if self.rbuf.len() < frame_len {
            self.rbuf.reserve(frame_len - self.rbuf.len());
            return Ok(None);
        }
        let mut frame = self.rbuf.split_to(frame_len);
        frame.advance(head_len);
        apply_mask(&mut frame, mask, 0);
        match header.opcode {
            OpCode::Ping => {
                if matches!(self.state, State::Open) {
                    self.control.push(encode_server_frame(OpCode::Pong, &frame));
                }
                Ok(None)
            }
            OpCode::Pong => Ok(None),
            OpCode::Close => {
                self.on_close_frame(&frame)?;
                Ok(None)
            }
            OpCode::Text | OpCode::Binary => {
                if self.assembly.is_some() {
                    return Err(ProtocolError::ExpectedContinuation);
                }
                let mut assembly = Assembly {
                    opcode: header.opcode,
                    data: frame,
                    valid_up_to: 0,
                };
                check_utf8_progress(&mut assembly, header.fin)?;
                if header.fin {
                    Ok(self.deliver(assembly))
                } else {
                    self.assembly = Some(assembly);
                    Ok(None)
                }
            }
            OpCode::Continuation => {
                let Some(mut assembly) = self.assembly.take() else {
                    return Err(ProtocolError::UnexpectedContinuation);
                };
                assembly.data.unsplit(frame);
                check_utf8_progress(&mut assembly, header.fin)?;
                if header.fin {
                    Ok(self.deliver(assembly))
                } else {
                    self.assembly = Some(assembly);
                    Ok(None)
                }
            }
        }
    }

    /// Turns a finished message into what the application receives, unless we are
    /// already closing (then data is discarded, RFC 6455 §1.4).
    fn deliver(&mut self, assembly: Assembly) -> Option<Message> {
        if !matches!(self.state, State::Open) {
            return None;
        }
        let bytes = assembly.data.freeze();
        match assembly.opcode {
            // `check_utf8_progress` validated the whole text when the final fragment came.
            OpCode::Text => Some(Message::Text(Utf8Bytes::from_validated(bytes))),
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
        match self.state {
            State::Open => {
                // Echo the peer's code (RFC 6455 §5.5.1); an empty close gets an empty reply.
                let reply = if code == CloseCode::NO_STATUS {
                    encode_server_frame(OpCode::Close, &[])
                } else {
                    encode_server_frame(OpCode::Close, &code.0.to_be_bytes())
                };
                self.control.push(reply);
                self.outcome.code = code;
                self.outcome.reason = reason;
                self.outcome.initiator = Initiator::Peer;
            }
            State::CloseSent { .. } | State::Done => {}
        }
        self.state = State::Done;
        Ok(())
    }

    /// Fails the connection (RFC 6455 §7.1.7): one close frame naming the violation,
    /// then nothing more is read.
    fn fail(&mut self, err: ProtocolError) {
        tracing::debug!(error = %err, "closing on protocol error");
        if matches!(self.state, State::Open) {
            let frame = CloseFrame::new(err.close_code(), err.to_string());
            self.control
                .push(encode_server_frame(OpCode::Close, &frame.payload()));
            self.outcome.code = frame.code;
            self.outcome.reason = frame.reason;
            self.outcome.initiator = Initiator::Local;
        }
        self.state = State::Done;
    }

    fn start_close(&mut self, frame: CloseFrame) {
        if !matches!(self.state, State::Open) {
            return;
        }
        let code = if frame.code.is_sendable() {
            frame.code
        } else {
            CloseCode::NORMAL
        };
        let frame = CloseFrame::new(code, frame.reason);
        self.control
            .push(encode_server_frame(OpCode::Close, &frame.payload()));
        self.outcome.code = frame.code;
        self.outcome.reason = frame.reason;
        self.outcome.initiator = Initiator::Local;
        self.state = State::CloseSent {
            deadline: Instant::now() + self.config.close_timeout,
        };
    }

    fn peer_eof(&mut self) {
        match self.state {
            State::CloseSent { .. } => {
                // The peer closed TCP instead of answering our close: done all the same.
                self.state = State::Done;
            }
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

    /// Writes `first` and whatever else is already queued, up to a batch, with as few
    /// vectored writes as the socket allows.
    async fn send_batch(
        &mut self,
        first: Option<Outgoing>,
        outgoing: &mut mpsc::Receiver<Outgoing>,
    ) {
        let mut frames = Vec::new();
        let mut close = None;
        let mut next = first;
        loop {
            match next {
                None if frames.is_empty() => {
                    // The application dropped its socket: a normal end.
                    close = Some(CloseFrame::new(CloseCode::NORMAL, ""));
                    break;
                }
                None => break,
                Some(Outgoing::Data(frame)) => frames.push(frame),
                Some(Outgoing::Close(frame)) => {
                    close = Some(frame);
                    break;
                }
            }
            if frames.len() >= MAX_BATCH {
                break;
            }
            next = match outgoing.try_recv() {
                Ok(item) => Some(item),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
        }
        let count = frames.len() as u64;
        if !frames.is_empty() {
            match self.write_all(&mut frames).await {
                Ok(()) => self.outcome.messages_sent += count,
                Err(reason) => {
                    self.transport_failed(reason);
                    return;
                }
            }
        }
        if let Some(frame) = close {
            self.start_close(frame);
        }
    }

    /// Writes every frame, in order, using vectored writes.
    async fn write_all(&mut self, frames: &mut [Bytes]) -> Result<(), String> {
        let mut slices: Vec<IoSlice<'_>> = frames.iter().map(|f| IoSlice::new(f)).collect();
        let mut remaining: &mut [IoSlice<'_>] = &mut slices;
        while !remaining.is_empty() {
            let written =
                match timeout(self.config.write_timeout, self.io.write_vectored(remaining)).await {
                    Ok(Ok(0)) => return Err("write returned zero bytes".into()),
                    Ok(Ok(n)) => n,
                    Ok(Err(err)) => return Err(format!("write failed: {err}")),
                    Err(_) => return Err("peer stopped reading (write timed out)".into()),
                };
            IoSlice::advance_slices(&mut remaining, written);
        }
        self.io
            .flush()
            .await
            .map_err(|err| format!("flush failed: {err}"))
    }
}

/// Checks the UTF-8 of a text message as far as it has arrived, failing as soon as an
/// invalid sequence is seen; an incomplete sequence at the end is fine until `fin`.
fn check_utf8_progress(assembly: &mut Assembly, fin: bool) -> Result<(), ProtocolError> {
    if assembly.opcode != OpCode::Text {
        return Ok(());
    }
    let tail = &assembly.data[assembly.valid_up_to..];
    match simdutf8::compat::from_utf8(tail) {
        Ok(_) => {
            assembly.valid_up_to = assembly.data.len();
            Ok(())
        }
        Err(err) => {
            if err.error_len().is_some() || fin {
                return Err(ProtocolError::InvalidUtf8);
            }
            assembly.valid_up_to += err.valid_up_to();
            Ok(())
        }
    }
}
