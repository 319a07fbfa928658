//! Our WebSocket layer: RFC 6455 frames, the opening and closing handshakes, and the
//! per-connection task that reads and writes them.
//!
//! Why our own and not a crate: a push server sends the same message to many
//! connections, so a frame is encoded once and its bytes shared ([`bytes::Bytes`])
//! by every connection's outbound queue; each connection drains its queue with one
//! vectored write per wake-up. See `docs/architecture.md`.
//!
//! The layers, bottom up:
//! - [`frame`]: headers and masking;
//! - [`handshake`]: checking an upgrade request, computing the accept key;
//! - `conn`: the connection task (frames in, frames out, close handshake);
//! - [`Socket`]: what an application holds.

mod conn;
mod error;
pub mod frame;
pub mod handshake;
mod message;
mod socket;

pub(crate) use conn::{Channels, drive};
pub use conn::{Config, Initiator, Outcome};
pub use error::{CloseCode, ProtocolError};
pub use message::{CloseFrame, Message, Utf8Bytes};
pub use socket::{Closed, ConnId, Socket};
