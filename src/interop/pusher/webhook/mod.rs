//! Pusher webhooks: what happened on an app's channels, posted to the app's
//! webhook URLs the way Pusher posts it, so that a backend's existing handler (and
//! every `pusher` SDK's `webhook()` check) accepts it unchanged.
//!
//! - [`Pusher::notify`](super::Pusher::notify) queues a [`Notice`](super::Notice)
//!   in the outbox of every webhook of the app that wants its kind (see
//!   [`Webhook::events`](super::Webhook::events)), without waiting; an outbox holds
//!   at most [`QUEUE_LIMIT`] notices, and a full one drops its oldest (counted in
//!   `pushwire_pusher_webhook_events_total{outcome="dropped"}`).
//! - One sender task per webhook (started with the server, stopped at shutdown)
//!   waits [`BATCH_WINDOW`] after a notice for more, then posts up to
//!   [`BATCH_LIMIT`] of them as one body `{"time_ms": …, "events": [{"name":
//!   "channel_occupied", "channel": "…"}, …]}` with `Content-Type:
//!   application/json`, `X-Pusher-Key` (the app key) and `X-Pusher-Signature` (hex
//!   HMAC-SHA256 of the body with the app secret).
//! - Any answer but 2xx, a connection error or no answer within
//!   [`POST_TIMEOUT`] is retried with exponential backoff (100 ms doubling, at
//!   most [`ATTEMPTS`] attempts), then the batch is given up and logged.
//! - `channel_occupied` / `channel_vacated` come from the hub's occupancy
//!   transitions (decided once across nodes, reported by the node that made
//!   them); `member_added`, `member_removed` and `client_event` from the
//!   connections that see them.
//!
//! `http://` URLs are posted to through a pool of kept connections; `https://`
//! URLs on a connection per post, the receiver's certificate checked against the
//! operating system's roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` choose others).
//!
//! Files: `payload.rs` writes the body, `outbox.rs` is the bounded queue,
//! `outboxes.rs` maps apps to their queues, `post.rs` makes one signed request
//! (`tls.rs` for `https://`), `sender.rs` batches and retries.

pub(crate) mod outbox;
pub(crate) mod outboxes;
pub(crate) mod payload;
pub(crate) mod post;
pub(crate) mod sender;
pub(crate) mod tls;

use std::time::Duration;

/// The most notices one webhook's outbox holds; a full one drops the oldest.
pub const QUEUE_LIMIT: usize = 10_000;
/// How long a sender waits after a notice for more to post with it.
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// The most events in one post.
pub const BATCH_LIMIT: usize = 100;
/// The most attempts at one post.
pub const ATTEMPTS: u32 = 6;
/// The wait before the first retry; it doubles with every retry, up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest wait between two attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one post may take.
pub const POST_TIMEOUT: Duration = Duration::from_secs(5);
