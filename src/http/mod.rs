//! The HTTP surface: the [`App`] builder, pages and static files, TLS, and the
//! upgrade into WebSocket connections. hyper parses HTTP and axum routes it; nothing here
//! parses HTTP by hand.

mod access;
mod admin;
mod app;
mod assets;
mod cors;
mod drain;
mod error;
mod health;
mod limits;
mod mailbox;
mod mercure;
mod metrics;
mod origin;
mod poll;
mod presence;
mod publish;
mod pusher;
mod query;
mod runtime;
mod serve;
mod server;
mod sse;
mod stall;
mod state;
mod static_files;
mod tls;
mod upgrade;

pub use app::{App, BUNDLED_PAGES_CSP};
pub use limits::ConnectionLimits;
pub use metrics::MetricsAccess;
pub use origin::{InvalidOrigin, Origins, Refused};
pub use serve::{HTTP2_IDLE_TIMEOUT, HttpLimits};
pub use server::Server;
pub use static_files::Asset;
pub use tls::{TlsConfig, TlsReloader};
