//! The protocols people already use, spoken on the same [`Hub`](crate::hub::Hub)
//! as pushwire's own: each is an adapter that turns its wire format into hub calls,
//! so a message published through one reaches subscribers of every other.
//!
//! - [`pusher`]: the Pusher Channels protocol (pusher-js, Laravel Echo, the
//!   `pusher` server SDKs): its client protocol at `/app/{key}`, its HTTP API at
//!   `/apps/{app_id}/…`, and its webhooks.

pub mod pusher;
