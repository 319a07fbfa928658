//! [`Socket`]: the application's end of one WebSocket connection.

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::conn::Outgoing;
use super::error::CloseCode;
use super::message::{CloseFrame, Message, encode_server_frame};

/// A process-unique connection id, shown in logs as `c<number>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    /// The next unused id.
    pub(crate) fn next() -> Self {
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

/// The application's end of one WebSocket connection.
///
/// `send` queues a message (waiting while the connection's bounded queue is full);
/// `recv` yields the peer's messages. Pings, pongs and the close handshake are
/// answered by the connection itself. Dropping the `Socket` closes the connection
/// normally (code 1000) once everything queued before has been written.
pub struct Socket {
    id: ConnId,
    peer: SocketAddr,
    outgoing: mpsc::Sender<Outgoing>,
    incoming: mpsc::Receiver<Message>,
}

impl Socket {
    pub(crate) fn new(
        id: ConnId,
        peer: SocketAddr,
        outgoing: mpsc::Sender<Outgoing>,
        incoming: mpsc::Receiver<Message>,
    ) -> Self {
        Self {
            id,
            peer,
            outgoing,
            incoming,
        }
    }

    /// This connection's id, as it appears in the logs.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends a text or binary message: `socket.send(n.to_string())` sends text,
    /// `socket.send(bytes)` binary. Waits while the outbound queue is full; fails
    /// once the connection is closed.
    pub async fn send(&self, message: impl Into<Message>) -> Result<(), Closed> {
        let message = message.into();
        let frame = encode_server_frame(message.opcode(), message.payload());
        self.send_frame(frame).await
    }

    /// Queues an already encoded frame; the same bytes may go to many sockets.
    pub(crate) async fn send_frame(&self, frame: Bytes) -> Result<(), Closed> {
        self.outgoing
            .send(Outgoing::Data(frame))
            .await
            .map_err(|_| Closed)
    }

    /// The next message from the peer, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<Message> {
        self.incoming.recv().await
    }

    /// Resolves when the connection has closed, whatever the reason.
    pub async fn closed(&self) {
        self.outgoing.closed().await;
    }

    /// Starts the close handshake with `code` and `reason` after everything queued
    /// before it has been written.
    pub async fn close(self, code: CloseCode, reason: impl Into<String>) {
        // An already closed connection needs no close frame.
        let _ = self
            .outgoing
            .send(Outgoing::Close(CloseFrame::new(code, reason)))
            .await;
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("id", &self.id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}
