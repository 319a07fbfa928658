//! Why a client connection could not be opened.

use http::StatusCode;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a usable `ws://` or `wss://` URL.
    #[error("invalid WebSocket URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TCP connection failed.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Host and port.
        addr: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The TLS handshake of a `wss://` connection failed: the server's certificate
    /// is not trusted or not valid for the host, or the two sides could not agree.
    #[error("TLS handshake with {host} failed: {failure}")]
    Tls {
        /// Host and port.
        host: String,
        /// What went wrong.
        failure: TlsFailure,
    },
    /// The TLS client could not be set up (an extra root certificate that cannot be
    /// parsed, the system's roots unreadable).
    #[error("cannot set up TLS: {0}")]
    TlsSetup(String),
    /// Connecting or the handshake took longer than allowed.
    #[error("timed out connecting to {0}")]
    Timeout(String),
    /// The HTTP exchange failed.
    #[error("HTTP error during the handshake: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered, but not with `101 Switching Protocols`.
    #[error("the server refused the WebSocket upgrade with {0}")]
    Refused(StatusCode),
    /// The server's 101 answer breaks RFC 6455 or RFC 7692.
    #[error("invalid handshake response: {0}")]
    Handshake(String),
}

/// Why a TLS handshake failed, in the words a person fixing it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsFailure {
    /// No trusted authority issued the server's certificate: it is self-signed, or
    /// signed by an authority that is neither among the system's roots nor in
    /// [`ClientConfig::extra_roots`](super::ClientConfig::extra_roots). A trusted certificate of the same name but
    /// another key (an older self-signed certificate of the same server, say) is
    /// no help either: its signature does not match. A self-signed certificate
    /// marked as an authority (`CA:TRUE`) that is not itself among the extra roots
    /// is reported so too.
    #[error(
        "the server's certificate is not trusted (no trusted authority issued it; \
         a self-signed certificate must be trusted explicitly)"
    )]
    Untrusted,
    /// The certificate is trusted but names other hosts.
    #[error("the server's certificate is not valid for {name}{}", presented_names(.presented))]
    WrongName {
        /// The host the client connected to.
        name: String,
        /// The names the certificate holds: DNS names and IP addresses as such,
        /// other kinds in rustls's notation (empty when rustls did not say).
        presented: Vec<String>,
    },
    /// Any other problem with the server's certificate (expired, not yet valid,
    /// revoked, malformed …), in rustls's words.
    #[error("the server's certificate cannot be used: {0}")]
    BadCertificate(String),
    /// Anything else: no protocol version or cipher suite in common, an alert from
    /// the server, a connection closed during the handshake.
    #[error("{0}")]
    Other(String),
}

fn presented_names(presented: &[String]) -> String {
    if presented.is_empty() {
        String::new()
    } else {
        format!(" (it is for {})", presented.join(", "))
    }
}
