//! The admin page's server side: its credential ([`auth`]: a password that buys
//! short-lived tokens), the data it shows ([`feed`]: a snapshot a second on the
//! system topic `$sys/admin`), and the list of the nodes sharing the broker
//! ([`nodes`]: a heartbeat in Redis). The page itself (`web/admin.html`,
//! `web/static/admin.js`) and its routes are the HTTP layer's (`http/admin.rs`).
//!
//! Between the hub (which it reads and publishes through) and the HTTP layer
//! (which serves it); the figures come from [`crate::ops`].

pub mod auth;
pub mod feed;
pub mod nodes;

pub use auth::{ADMIN_TOKEN_TTL, AdminAuth, AdminAuthError};
pub use feed::{ADMIN_TOPIC, AdminNumbers, AdminSnapshot, LatencyBucket, TopicCount};
pub use nodes::NodeList;
