//! Opening a connection once its handshake is done, in either role: the one place
//! that joins a [`Socket`] (what the application holds) to the frame layer's task
//! (what reads and writes the stream).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use super::conn::{Config, Outcome, Transport, drive};
use super::message::Encoder;
use super::socket::{ConnId, Socket};

/// What a completed handshake settled, for [`open_connection`].
#[derive(Debug, Clone)]
pub struct Negotiation {
    /// How frames are encoded: the role (masking) and the negotiated compression.
    pub(crate) encoder: Encoder,
    /// The `Sec-WebSocket-Extensions` value of the handshake, if any.
    pub(crate) extensions: Option<Cow<'static, str>>,
    /// The chosen subprotocol, if any.
    pub(crate) protocol: Option<Arc<str>>,
}

/// Opens a connection on `io` whose handshake is done: returns the [`Socket`] for
/// the application and the frame layer's future, which reads and writes `io` until
/// the connection ends and then says how it ended. `prefix` holds bytes already read
/// past the handshake. The caller runs the future (in a task of its own, or joined
/// with the application's handler) and decides what to log.
pub fn open_connection<S: Transport + 'static>(
    io: S,
    prefix: Bytes,
    peer: SocketAddr,
    config: Arc<Config>,
    negotiation: Negotiation,
) -> (Socket, impl Future<Output = Outcome> + Send + 'static) {
    let shared = config.shared();
    let Negotiation {
        encoder,
        extensions,
        protocol,
    } = negotiation;
    let socket = Socket::new(
        ConnId::next(),
        peer,
        Arc::clone(&shared),
        encoder,
        extensions,
        protocol,
    );
    (socket, drive(io, prefix, config, encoder, shared))
}
