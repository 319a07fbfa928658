//! The HTTP surface: the [`App`] builder, pages and static files, TLS, and the
//! upgrade into WebSocket connections. hyper parses HTTP and axum routes it; nothing here
//! parses HTTP by hand.

mod app;
mod limits;
mod origin;
mod publish;
mod serve;
mod stall;
mod static_files;
mod tls;
mod upgrade;

pub use app::{App, BUNDLED_PAGES_CSP, Server};
pub use limits::ConnectionLimits;
pub use origin::{InvalidOrigin, Origins, Refused};
pub use serve::{HTTP2_IDLE_TIMEOUT, HttpLimits};
pub use static_files::Asset;
pub use tls::{TlsConfig, TlsReloader};
