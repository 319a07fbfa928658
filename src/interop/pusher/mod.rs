//! Pusher Channels on the hub: pusher-js, Laravel Echo and the `pusher` server SDKs
//! work against pushwire unchanged (`docs/interop.md`).
//!
//! A Pusher app ([`PusherApp`]) owns a namespace of topics: its channel `orders`
//! is the topic `{namespace}:orders` ([`PusherApp::topic`]), so an event published
//! through the Pusher HTTP API reaches `/ws`, SSE and long-poll subscribers of that
//! topic, and a pushwire publish reaches pusher-js subscribers as an event. A Pusher
//! event is kept in its topic as an [`Envelope`]; history, the broker and every
//! limit apply to it as to any other message.
//!
//! The pieces, bottom up:
//! - [`app`]: apps (id, key, secret, features, limits, webhooks) and their lookup;
//! - [`channel`]: channel names, their kinds, and the channel ↔ topic mapping;
//! - [`event`]: the envelope of an event in a topic, and a push's Pusher frame
//!   (encoded once, shared by every subscriber);
//! - [`signature`]: HMAC-SHA256 signatures (channel auth, the HTTP API, webhooks);
//! - [`socket_id`]: socket ids, unique across nodes;
//! - [`session`]: one client connection of the Pusher protocol, a sans-IO
//!   machine ([`PusherSession`]); [`roster`]: a presence channel's members as
//!   one connection shows them (users, not sockets);
//! - [`Pusher`] (`context`): apps on a hub, what connections and API requests
//!   share; the connection driver (`socket`) and the HTTP API (`api`), which the
//!   server mounts (`App::pusher`);
//! - [`webhook`]: the apps' webhooks, batched, signed and retried.

pub(crate) mod api;
pub mod app;
pub mod channel;
mod context;
pub mod event;
mod notice;
pub mod roster;
pub mod session;
pub mod signature;
pub(crate) mod socket;
pub mod socket_id;
pub mod webhook;

pub use app::{AppError, PusherApp, PusherApps, PusherLimits, Webhook, WebhookEvent};
pub use channel::{Channel, ChannelError, ChannelKind};
pub use context::{Pusher, PusherSetupError};
pub use event::{DEFAULT_EVENT, Envelope, PusherFrame, TERMINATE_EVENT};
pub use notice::Notice;
pub use roster::Roster;
pub use session::{PusherAction, PusherSession};
pub use socket_id::{SocketId, SocketIds};
