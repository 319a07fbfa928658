#![doc = include_str!("../README.md")]
//!
//! ## The layers, bottom up
//!
//! - [`frame`]: headers and masking;
//! - [`handshake`]: checking an upgrade request, computing the accept key;
//! - [`deflate`]: negotiation, compression, inflation;
//! - `conn`: the connection task (frames in, frames out, close handshake, keepalive);
//! - [`Socket`], [`Sender`], [`Prepared`]: what an application holds;
//! - [`server`]: accepting an upgrade request ([`server::accept`] on a TCP stream,
//!   [`server::Accept`] in a handler);
//! - [`client`]: opening a connection to a server;
//! - [`open_connection`]: what both roles do once the handshake is done;
//! - [`Registry`]: a server's open connections, for keepalive and shutdown.

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
mod sync;
mod utf8;

pub use conn::{Config, Initiator, Outcome, Transport};
pub use error::{CloseCode, ProtocolError};
pub use message::{CloseFrame, Message, Role, Utf8Bytes};
pub use open::{Negotiation, open_connection};
pub use queue::TrySendError;
pub use registry::Registry;
pub use socket::{Closed, ConnId, Prepared, Sender, Socket};
pub use stream::Stream;
