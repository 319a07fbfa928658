//! The integration tests, as one binary (one compile and one link instead of one
//! per file): a module per area, each starting real servers, clients, example
//! programs or the built `pushwire` binary on loopback ports from bind 0, and
//! `common` with the helpers they share.
//!
//! One other binary stays on its own for a reason: `tests/reload_off_runtime.rs`
//! sends SIGHUP to its own process, which only a process whose every
//! SIGHUP-listening server belongs to that one test may do. (`tests/ws_layer.rs`,
//! `tests/ws_protocol.rs` and `tests/fuzz_regressions.rs` test the frame layer and
//! move to the `pushwire-ws` crate's tests.)

mod common;

// What the HTTP server adds around a WebSocket upgrade; the protocol fuzz replay.
mod fuzz_regressions;
mod ws_http;

// The counter demo, pages and static files, the examples.
mod counter;
mod example_counter;
mod example_mercure;
mod example_pusher;
mod example_topics;
mod http;

// Topics over /ws, SSE and long-poll, and the Rust client.
mod client;
mod topics_http;
mod topics_ws;

// Tokens and permissions; the admin page's credential.
mod admin;
mod auth;
mod permissions;

// Many nodes on a real Redis.
mod cluster;
mod drain;
mod journal;
mod occupancy;
mod presence_transports;
mod pusher_webhooks;

// Pusher Channels: the client protocol.
mod pusher_protocol;

// Mercure: active subscriptions (their events and their API).
mod mercure_subscriptions;

// The bad-input corpus and the limits.
mod hostile;
mod hostile_more;
mod ipv6_limits;

// Logs of the binary.
mod logs;

// CORS: pages on other origins.
mod cors;

// Pusher Channels: the HTTP API.
mod pusher_api;

// Mercure: subscribers and publishers.
mod mercure_publish;
mod mercure_subscribe;

// TLS.
mod readme_tokens;
mod tls;

// Metrics: the exposition, a real Prometheus, the Grafana dashboard.
mod metrics;

// The binary: serve, pub, sub, token, bench.
mod bench;
mod cli;
mod cli_pubsub;
mod config_check;
