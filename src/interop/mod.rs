//! The protocols people already use, spoken on the same [`Hub`](crate::hub::Hub)
//! as pushwire's own: each is an adapter that turns its wire format into hub calls,
//! so a message published through one reaches subscribers of every other.
//!
//! - [`pusher`]: the Pusher Channels protocol (pusher-js, Laravel Echo, the
//!   `pusher` server SDKs): its client protocol at `/app/{key}`, its HTTP API at
//!   `/apps/{app_id}/…`, and its webhooks.
//! - [`mercure`]: a Mercure 1.0 hub at `/.well-known/mercure` (a browser's own
//!   `EventSource` subscribes, a backend publishes with a form), with a 0.x
//!   compatibility mode.
//!
//! What one protocol publishes is kept in its topic as an [`Envelope`]
//! ([`envelope`]), which the others read.

pub mod envelope;
pub mod mercure;
pub mod pusher;

pub use envelope::{DEFAULT_EVENT, Envelope};
