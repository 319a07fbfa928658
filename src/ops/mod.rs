//! Operations: what the people who run a node watch. [`Metrics`] counts what the
//! node does (connections, messages, bytes, latencies, closes, refusals) for
//! Prometheus at `/metrics` and, through [`Metrics::snapshot`], for the admin page;
//! [`errors`] keeps the latest warn and error log events for the admin page;
//! [`conn_log`] writes one log line per connection opened and closed. See
//! `docs/operations.md`.
//!
//! This module sits beside the bottom of the library: it imports nothing of
//! pushwire, so the hub, the transports and the HTTP routes may all record into it.

pub mod conn_log;
pub mod errors;
mod families;
mod labels;
mod metrics;
mod snapshot;

pub use errors::{ErrorEvent, ErrorLayer, recent_errors};
pub use labels::{CloseLabel, Rejection, Transport};
pub use metrics::{ConnectionGuard, LATENCY_BUCKETS, Metrics, WebhookOutcome};
pub use snapshot::{ConnectionCounts, HistogramSnapshot, MetricsSnapshot};
