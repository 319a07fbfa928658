//! The errors a server can meet before or while serving.

use std::path::PathBuf;

/// Why a server could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening socket could not be bound (port in use, no permission, bad address).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address as given.
        addr: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A page file could not be read.
    #[error("cannot read page {}: {source}", path.display())]
    Page {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A static folder does not exist, is not a folder, or cannot be listed.
    #[error("cannot serve static folder {}: {source}", path.display())]
    StaticDir {
        /// The folder as given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The broker could not be set up (a malformed Redis URL).
    #[error("cannot use the broker: {0}")]
    Broker(#[from] crate::broker::BrokerError),
    /// A setting is invalid (found while building the app).
    #[error("invalid setting: {0}")]
    Config(String),
    /// The TLS certificate or key cannot be used (see [`TlsError`](crate::TlsError)).
    #[error(transparent)]
    Tls(#[from] crate::certs::TlsError),
    /// The token settings cannot be used (an unreadable or malformed key file).
    #[error("tokens: {0}")]
    Auth(#[from] crate::auth::AuthConfigError),
    /// Serving failed after start.
    #[error("server failed: {0}")]
    Serve(#[source] std::io::Error),
}
