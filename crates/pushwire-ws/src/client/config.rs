//! How a client connects: limits, compression, time allowed, trusted certificates,
//! the local address, and who keeps the connection alive.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::conn::Config;
use crate::registry::Registry;

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
    /// The local address to connect from (`None`: the operating system picks one).
    /// A client that opens tens of thousands of connections to one server spreads
    /// them over several loopback addresses (127.0.0.1, 127.0.0.2, …): each source
    /// address has its own range of ephemeral ports.
    pub local_addr: Option<IpAddr>,
    /// Keep the connection alive from this shared [`Registry`] instead of a timer of
    /// its own: the connection is [added](Registry::add) to it, and its pings and
    /// idle timeout are checked whenever the registry is swept, so the caller must
    /// run [`Registry::sweep_until`] (or call [`Registry::sweep`] once a second)
    /// for as long as its connections live. `None` (the default): each connection
    /// runs a one-second timer beside its task, which costs a wake-up per
    /// connection per second; a registry costs a weak pointer, for clients that
    /// hold many connections at once.
    pub registry: Option<Arc<Registry>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            ws: Config::default(),
            connect_timeout: Duration::from_secs(10),
            extra_roots: Vec::new(),
            tls: None,
            local_addr: None,
            registry: None,
        }
    }
}
