//! Our WebSocket layer: RFC 6455 frames and handshakes, permessage-deflate
//! (RFC 7692), and the per-connection task that reads and writes them, in the server
//! and the client role.
//!
//! Why our own and not a crate: a push server sends the same message to many
//! connections, so a frame is encoded (and compressed) once as a [`Prepared`] and
//! its bytes shared by every connection's outbound queue; each connection drains its
//! queue with one vectored write per wake-up, and an idle connection holds neither a
//! read buffer nor zlib state. See `docs/architecture.md`.
//!
//! The layers, bottom up:
//! - [`frame`]: headers and masking;
//! - [`handshake`]: checking an upgrade request, computing the accept key;
//! - [`deflate`]: negotiation, compression, inflation;
//! - `conn`: the connection task (frames in, frames out, close handshake, keepalive);
//! - [`Socket`], [`Sender`], [`Prepared`]: what an application holds;
//! - [`client`]: opening a connection to a server.

pub mod client;
mod client_tls;
mod conn;
pub mod deflate;
mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
mod message;
mod queue;
mod registry;
mod socket;
mod stream;
mod utf8;

pub(crate) use conn::drive;
pub use conn::{Config, Initiator, Outcome, Transport};
pub use error::{CloseCode, ProtocolError};
pub(crate) use message::Encoder;
pub use message::{CloseFrame, Message, Role, Utf8Bytes};
pub use queue::TrySendError;
pub(crate) use registry::Registry;
pub use socket::{Closed, ConnId, Prepared, Sender, Socket};
pub(crate) use stream::Stream;
