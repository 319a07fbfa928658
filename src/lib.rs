//! pushwire: a real-time push server and library.
//!
//! A server has to push data to browsers the moment it has it, without the browser
//! asking. pushwire accepts WebSocket connections, gives each one to your handler as
//! a [`Socket`], and serves the pages and files around them.
//!
//! The app pushwire grew from gives every browser its own counter, one number a
//! second. With pushwire it is this (`examples/counter.rs` is the full program):
//!
//! ```
//! use std::time::Duration;
//! use pushwire::{App, Socket, ticker};
//!
//! async fn counter(socket: Socket) {
//!     let mut ticks = ticker(Duration::from_millis(20));
//!     for n in 1u64.. {
//!         ticks.tick().await;
//!         if socket.send(n.to_string()).await.is_err() {
//!             return; // the browser went away
//!         }
//!     }
//! }
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = App::new()
//!     .socket("/socket", counter)
//!     .bind("127.0.0.1:0")
//!     .await?;
//! let addr = server.local_addr();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.run_until(async { let _ = stopped.await; }));
//! # use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # let mut tcp = tokio::net::TcpStream::connect(addr).await?;
//! # tcp.write_all(b"GET /socket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
//! #     Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
//! #     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").await?;
//! # let mut seen = Vec::new();
//! # let mut buf = [0u8; 1024];
//! # // Read the 101 response and the first two frames: "1" and "2".
//! # while !seen.ends_with(&[0x81, 1, b'1', 0x81, 1, b'2']) {
//! #     let n = tcp.read(&mut buf).await?;
//! #     assert!(n > 0, "server closed early");
//! #     seen.extend_from_slice(&buf[..n]);
//! # }
//! # assert!(seen.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
//! # drop(tcp);
//! // … browsers connect to ws://{addr}/socket and count …
//! let _ = stop.send(());
//! running.await??;
//! # Ok(())
//! # }
//! ```
//!
//! The modules, bottom up (each uses only those above it in this list;
//! `docs/architecture.md` draws the picture):
//! - [`ws`]: the WebSocket protocol (frames, handshakes, the connection task): the
//!   `pushwire-ws` crate;
//! - [`topic`]: the vocabulary (topics, positions, data, members, pushes);
//!   [`ops`]: what operators read (a log line per connection open and close);
//! - [`broker`]: what every node must agree on (offsets, history, presence), in
//!   process or on Redis; [`hub`]: topics and fan-out to this node's subscribers;
//! - [`auth`]: tokens and permissions; [`protocol`]: our wire format and the
//!   `/ws` session as a state machine;
//! - [`interop`]: the protocols people already use (Pusher Channels) as adapters
//!   onto the hub;
//! - [`admin`]: the admin page's credential, its data (a snapshot a second on the
//!   system topic `$sys/admin`) and the heartbeat that lists the nodes of a cluster;
//! - [`App`] (the `http` module): pages, static files, sockets, SSE, long-poll and
//!   the publish API on one HTTP server (hyper and axum underneath);
//! - [`demo`]: the counter app; [`node`]: the server the `pushwire` binary runs,
//!   assembled from a [`config::ServeConfig`]; [`topic_client`]: the Rust client of
//!   the topic protocol (what `pushwire pub` and `pushwire sub` use).
//!
//! The binary's command line is not part of the library: with
//! `default-features = false` a library user compiles neither clap nor the load
//! generator.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod broker;
pub mod certs;
mod clock;
pub mod config;
pub mod demo;
mod error;
mod http;
pub mod hub;
pub mod interop;
pub mod logging;
pub mod node;
pub mod ops;
pub mod protocol;
mod rate;
mod session;
mod sync;
mod ticker;
pub mod topic;
pub mod topic_client;

pub use certs::TlsError;
pub use error::Error;
pub use http::{
    App, Asset, BUNDLED_PAGES_CSP, ConnectionLimits, HTTP2_IDLE_TIMEOUT, HttpLimits, InvalidOrigin,
    MetricsAccess, Origins, Refused, Server, TlsConfig, TlsReloader,
};
pub use hub::{Hub, HubConfig};
/// The WebSocket layer: the `pushwire-ws` crate.
pub use pushwire_ws as ws;
pub use ticker::ticker;
pub use topic::{Data, Topic};
pub use ws::{CloseCode, Message, Socket};
