//! What the application holds: [`Socket`] (one connection, owned), [`Sender`] (a
//! cheap handle that can only send), and [`Prepared`] (a message encoded once for
//! many connections).

use std::borrow::Cow;
use std::fmt;
use std::future::{Future, poll_fn};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use super::error::CloseCode;
use super::message::{CloseFrame, Encoder, Message, Role, compressed_frame, encode_frame};
use super::queue::{Shared, TrySendError};

/// A process-unique connection id, shown in logs as `c<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The next unused id. Every WebSocket connection draws one; an application
    /// may draw more for its other kinds of connection (pushwire's SSE streams and
    /// long-polls), so that one sequence names them all.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// The connection is closed: nothing more can be sent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the WebSocket connection is closed")]
pub struct Closed;

/// A message encoded once, to be sent to many connections.
///
/// The uncompressed frame is built at once; the compressed frame (for connections
/// that negotiated permessage-deflate) on first use, once, and shared after that.
/// Sending a `Prepared` to a server-side connection copies no payload bytes.
pub struct Prepared {
    message: Message,
    plain: Bytes,
    compressed: OnceLock<Option<Bytes>>,
}

impl Prepared {
    /// Encodes `message` for sending from the server side.
    pub fn new(message: impl Into<Message>) -> Self {
        let message = message.into();
        let plain = encode_frame(message.opcode(), message.payload(), None);
        Self {
            message,
            plain,
            compressed: OnceLock::new(),
        }
    }

    /// The message itself.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The frame bytes for a connection with `encoder`.
    fn frame_for(&self, encoder: &Encoder) -> Bytes {
        match (encoder.role, encoder.deflate) {
            // Client frames are masked with a fresh key each: nothing to share.
            (Role::Client, _) => encoder.data(&self.message),
            (Role::Server, Some(negotiated))
                if negotiated.send_window_bits == 15
                    && self.message.payload().len() >= encoder.min_size =>
            {
                self.compressed
                    .get_or_init(|| {
                        compressed_frame(
                            self.message.opcode(),
                            self.message.payload(),
                            15,
                            encoder.level,
                            None,
                        )
                    })
                    .clone()
                    .unwrap_or_else(|| self.plain.clone())
            }
            (Role::Server, _) => self.plain.clone(),
        }
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("message", &self.message)
            .finish_non_exhaustive()
    }
}

/// A handle that sends on one connection; cheap to clone, and it does not keep the
/// connection open (dropping the [`Socket`] closes it).
#[derive(Clone)]
pub struct Sender {
    id: ConnId,
    shared: Arc<Shared>,
    encoder: Encoder,
}

impl Sender {
    /// The connection's id.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Sends a message, waiting while the outbound queue is above its high watermark.
    ///
    /// The message is encoded when `send` is called; the future only waits for room.
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Closed>> + '_ {
        self.queue(self.encoder.data(&message.into()))
    }

    /// Waits for room and queues an encoded frame. A small future: a reference and the
    /// frame, nothing else.
    fn queue(&self, frame: Bytes) -> impl Future<Output = Result<(), Closed>> + '_ {
        let mut frame = Some(frame);
        poll_fn(move |cx| self.shared.poll_send(cx, &mut frame).map_err(|_| Closed))
    }

    /// Queues a message unless the peer is not keeping up ([`TrySendError::Full`]).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.shared.try_send(self.encoder.data(&message.into()))
    }

    /// Sends a prepared message, waiting while the queue is above its high watermark.
    pub fn send_prepared(
        &self,
        prepared: &Prepared,
    ) -> impl Future<Output = Result<(), Closed>> + '_ {
        self.queue(prepared.frame_for(&self.encoder))
    }

    /// Queues a prepared message unless the peer is not keeping up.
    pub fn try_send_prepared(&self, prepared: &Prepared) -> Result<(), TrySendError> {
        self.shared.try_send(prepared.frame_for(&self.encoder))
    }

    /// Bytes queued for this connection and not yet written to the socket.
    pub fn queued_bytes(&self) -> usize {
        self.shared.queued_bytes()
    }

    /// Starts the close handshake after everything queued before.
    pub fn close(&self, code: CloseCode, reason: impl Into<String>) {
        self.shared.request_close(CloseFrame::new(code, reason));
    }

    /// Whether the connection has closed (or is closing).
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// Resolves when the connection has closed (or is closing).
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| self.shared.poll_closed(cx))
    }
}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The application's end of one WebSocket connection.
///
/// `send` queues a message (waiting while the connection's outbound queue is above
/// its high watermark); `recv` yields the peer's messages. Pings, pongs and the close
/// handshake are answered by the connection itself. Dropping the `Socket` closes the
/// connection normally (code 1000) once everything queued before has been written.
pub struct Socket {
    sender: Sender,
    peer: SocketAddr,
    extensions: Option<Cow<'static, str>>,
    protocol: Option<Arc<str>>,
}

impl Socket {
    pub(crate) fn new(
        id: ConnId,
        peer: SocketAddr,
        shared: Arc<Shared>,
        encoder: Encoder,
        extensions: Option<Cow<'static, str>>,
        protocol: Option<Arc<str>>,
    ) -> Self {
        Self {
            sender: Sender {
                id,
                shared,
                encoder,
            },
            peer,
            extensions,
            protocol,
        }
    }

    /// The subprotocol chosen in the handshake (`Sec-WebSocket-Protocol`), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// This connection's id, as it appears in the logs.
    pub fn id(&self) -> ConnId {
        self.sender.id
    }

    /// The state this socket shares with its connection's task.
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.sender.shared
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The negotiated extensions, as in the handshake's `Sec-WebSocket-Extensions`.
    pub fn extensions(&self) -> Option<&str> {
        self.extensions.as_deref()
    }

    /// A handle for sending from elsewhere (another task, a topic's fan-out).
    pub fn sender(&self) -> Sender {
        self.sender.clone()
    }

    /// Sends a text or binary message: `socket.send(n.to_string())` sends text,
    /// `socket.send(bytes)` binary. Waits while the outbound queue is above its high
    /// watermark; fails once the connection is closed.
    pub fn send(
        &self,
        message: impl Into<Message>,
    ) -> impl Future<Output = Result<(), Closed>> + '_ {
        self.sender.send(message)
    }

    /// Queues a message unless the peer is not keeping up ([`TrySendError::Full`]).
    pub fn try_send(&self, message: impl Into<Message>) -> Result<(), TrySendError> {
        self.sender.try_send(message)
    }

    /// Sends a message encoded once for many connections.
    pub fn send_prepared(
        &self,
        prepared: &Prepared,
    ) -> impl Future<Output = Result<(), Closed>> + '_ {
        self.sender.send_prepared(prepared)
    }

    /// The next message from the peer, or `None` once the connection is closed.
    pub fn recv(&mut self) -> impl Future<Output = Option<Message>> + '_ {
        poll_fn(|cx| self.sender.shared.poll_recv(cx))
    }

    /// Resolves when the connection has closed (or is closing), whatever the reason.
    pub fn closed(&self) -> impl Future<Output = ()> + '_ {
        self.sender.closed()
    }

    /// How the connection ended, once it has: the close code it ended with (the
    /// peer's when the peer closed first, ours when we did, 1006 when the
    /// connection broke without a close handshake). `None` while it is still open
    /// or closing.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.sender.shared.close_code().map(CloseCode)
    }

    /// Starts the close handshake with `code` and `reason` after everything queued
    /// before it has been written.
    pub fn close(self, code: CloseCode, reason: impl Into<String>) {
        self.sender.close(code, reason);
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.sender.shared.app_dropped();
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.sender.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
