//! How a client connects: limits, compression, time allowed, trusted certificates.

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::conn::Config;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The connection's limits and compression (offered when enabled).
    pub ws: Config,
    /// Time allowed for TCP connect plus handshake (TLS included).
    pub connect_timeout: Duration,
    /// Certificates trusted for `wss://` besides the operating system's roots: a
    /// self-signed server certificate, or a private authority's (for example read from
    /// a PEM file with `rustls_pki_types::CertificateDer::pem_file_iter`).
    pub extra_roots: Vec<CertificateDer<'static>>,
    /// A whole rustls configuration for `wss://`, used instead of the system's roots
    /// and [`extra_roots`](Self::extra_roots) (for example to trust exactly one
    /// authority, or to present a client certificate). Its ALPN protocols are
    /// replaced by `http/1.1`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ws: Config::default(),
            connect_timeout: Duration::from_secs(10),
            extra_roots: Vec::new(),
            tls: None,
        }
    }
}
