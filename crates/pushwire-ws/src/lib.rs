//! pushwire-ws: RFC 6455 frames and handshakes, permessage-deflate (RFC 7692), and
//! the per-connection task that reads and writes them, in the server and the client
//! role. It knows nothing of topics, HTTP routing or certificates on disk: hyper
//! does HTTP, and a server or client built on it hands this crate the upgraded
//! stream.
//!
//! Why our own and not a crate: a push server sends the same message to many
//! connections, so a frame is encoded (and compressed) once as a [`Prepared`] and
//! its bytes shared by every connection's outbound queue; each connection drains its
//! queue with one vectored write per wake-up, and an idle connection holds neither a
//! read buffer nor zlib state.
//!
//! The layers, bottom up:
//! - [`frame`]: headers and masking;
//! - [`handshake`]: checking an upgrade request, computing the accept key;
//! - [`deflate`]: negotiation, compression, inflation;
//! - `conn`: the connection task (frames in, frames out, close handshake, keepalive);
//! - [`Socket`], [`Sender`], [`Prepared`]: what an application holds;
//! - [`server`]: accepting an upgrade request ([`server::Accept`]);
//! - [`client`]: opening a connection to a server;
//! - [`open_connection`]: what both roles do once the handshake is done;
//! - [`Registry`]: a server's open connections, for keepalive and shutdown.
//!
//! The crate's README has a complete echo server and client.

pub mod client;
mod conn;
pub mod deflate;
mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod handshake;
mod message;
mod open;
mod queue;
mod registry;
pub mod server;
mod socket;
mod stream;
mod utf8;

pub use conn::{Config, Initiator, Outcome, Transport};
pub use error::{CloseCode, ProtocolError};
pub use message::{CloseFrame, Message, Role, Utf8Bytes};
pub use open::{Negotiation, open_connection};
pub use queue::TrySendError;
pub use registry::Registry;
pub use socket::{Closed, ConnId, Prepared, Sender, Socket};
pub use stream::Stream;
