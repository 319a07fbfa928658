//! The server role's handshake: check a client's upgrade request, settle
//! compression and subprotocol, and answer `101 Switching Protocols`.
//!
//! HTTP is hyper's job (or any server built on the `http` types): this module reads
//! the request's method, version and headers, and builds the response's headers.
//! After hyper has upgraded the connection, [`Accept::open`] opens it.
//!
//! ```
//! use pushwire_ws::Config;
//! use pushwire_ws::server::Accept;
//!
//! let request = http::Request::get("/chat")
//!     .header("upgrade", "websocket")
//!     .header("connection", "Upgrade")
//!     .header("sec-websocket-version", "13")
//!     .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
//!     .body(())?;
//! let (method, version, headers) = (request.method(), request.version(), request.headers());
//! let accept = Accept::check(method, version, headers, &Config::default())?;
//! let response = accept.response::<()>();
//! assert_eq!(response.status(), 101);
//! assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::conn::{Config, Outcome, Transport};
use super::deflate;
use super::handshake::{self, HandshakeError};
use super::message::{Encoder, Role};
use super::open::{Negotiation, open_connection};
use super::socket::Socket;
use super::stream::Stream;

/// A valid upgrade request, and what the server agreed to for it.
#[derive(Debug, Clone)]
pub struct Accept {
    accept_key: HeaderValue,
    negotiation: Negotiation,
}

impl Accept {
    /// Checks a client's opening handshake (RFC 6455 §4.2.1), and agrees to
    /// permessage-deflate (when `config` enables it and the client offers it) and to
    /// the first of `config.subprotocols` the client offers.
    pub fn check(
        method: &Method,
        version: Version,
        headers: &HeaderMap,
        config: &Config,
    ) -> Result<Self, HandshakeError> {
        let key = handshake::check_request(method, version, headers)?;
        let accept_key = HeaderValue::from_str(&key).map_err(|_| HandshakeError::Key)?;
        let deflate = if config.deflate.enabled {
            let offers = headers
                .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
                .iter()
                .filter_map(|value| value.to_str().ok());
            deflate::negotiate_server(offers)
        } else {
            None
        };
        let extensions = deflate.as_ref().map(|(_, response)| response.clone());
        let encoder = Encoder {
            role: Role::Server,
            deflate: deflate.map(|(negotiated, _)| negotiated),
            level: config.deflate.level,
            min_size: config.deflate.min_size,
        };
        let protocol =
            handshake::select_subprotocol(headers, &config.subprotocols).map(Arc::<str>::from);
        Ok(Self {
            accept_key,
            negotiation: Negotiation {
                encoder,
                extensions,
                protocol,
            },
        })
    }

    /// The chosen subprotocol, if any.
    pub fn protocol(&self) -> Option<&str> {
        self.negotiation.protocol.as_deref()
    }

    /// Whether permessage-deflate was agreed.
    pub fn deflate(&self) -> bool {
        self.negotiation.encoder.deflate.is_some()
    }

    /// The `101 Switching Protocols` answer, with the accept key and the agreed
    /// extension and subprotocol. Its body is `B::default()` (empty).
    pub fn response<B: Default>(&self) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, self.accept_key.clone());
        let negotiation = &self.negotiation;
        if let Some(value) = negotiation
            .extensions
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            headers.insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
        }
        if let Some(value) = negotiation
            .protocol
            .as_deref()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
        }
        response
    }

    /// Opens the connection after the upgrade (see [`open_connection`]): `io` is the
    /// upgraded stream and `prefix` the bytes already read past the request.
    pub fn open<S: Transport + 'static>(
        self,
        io: S,
        prefix: Bytes,
        peer: SocketAddr,
        config: Arc<Config>,
    ) -> (Socket, impl Future<Output = Outcome> + Send + 'static) {
        open_connection(io, prefix, peer, config, self.negotiation)
    }
}

/// The answer to a request that is not a valid WebSocket handshake: 426 with the
/// version we speak for a version mismatch (RFC 6455 §4.4), 405 with `Allow: GET`
/// for another method, 400 otherwise; the body says what is wrong.
pub fn refusal<B: From<String>>(err: &HandshakeError) -> Response<B> {
    let mut response = Response::new(B::from(format!("{err}\n")));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    *response.status_mut() = match err {
        HandshakeError::Version => {
            headers.insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(handshake::VERSION),
            );
            StatusCode::UPGRADE_REQUIRED
        }
        HandshakeError::Method(_) => {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
            StatusCode::METHOD_NOT_ALLOWED
        }
        _ => StatusCode::BAD_REQUEST,
    };
    response
}

/// Why [`accept`] could not open a connection.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// The request was not a valid WebSocket handshake; it was refused with the
    /// status [`refusal`] gives.
    #[error("refused the handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// HTTP failed: the peer closed the connection, or sent something that is not
    /// HTTP/1.1.
    #[error("HTTP error during the handshake: {0}")]
    Http(#[from] hyper::Error),
    /// The peer's address could not be read.
    #[error("cannot read the peer's address: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the opening handshake on a fresh TCP connection (hyper reads the HTTP/1.1
/// request) and opens the WebSocket: the simplest way to run a server on this
/// crate alone, one `accept` per accepted TCP stream. A request that is not a valid
/// handshake gets its [`refusal`] and the connection is closed.
///
/// The caller runs the returned future (the frame layer) and bounds the handshake's
/// time if it wants to (`tokio::time::timeout`). A server behind a router (axum,
/// hyper with several routes) uses [`Accept`] in its handler instead.
pub async fn accept(
    tcp: TcpStream,
    config: Arc<Config>,
) -> Result<(Socket, impl Future<Output = Outcome> + Send + 'static), AcceptError> {
    let peer = tcp.peer_addr()?;
    let (settled, outcome) = oneshot::channel::<Result<(Accept, OnUpgrade), HandshakeError>>();
    let settled = std::sync::Mutex::new(Some(settled));
    let checks = Arc::clone(&config);
    let service = service_fn(move |mut request: http::Request<Incoming>| {
        let answer = Accept::check(
            request.method(),
            request.version(),
            request.headers(),
            &checks,
        );
        let response = match &answer {
            Ok(accept) => accept.response::<Full<Bytes>>(),
            Err(err) => {
                // Not a WebSocket: hyper closes the connection after this answer.
                let mut response = refusal::<Full<Bytes>>(err);
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
                response
            }
        };
        let answer = answer.map(|accept| (accept, hyper::upgrade::on(&mut request)));
        let sender = crate::sync::lock(&settled).take();
        if let Some(sender) = sender {
            let _ = sender.send(answer);
        }
        std::future::ready(Ok::<_, std::convert::Infallible>(response))
    });
    // Keep-alive stays on: turned off, hyper would add `close` to the 101's
    // `Connection: Upgrade`, which some clients refuse. The connection future ends
    // after the 101 anyway, and a refusal says `Connection: close`.
    http1::Builder::new()
        .serve_connection(TokioIo::new(tcp), service)
        .with_upgrades()
        .await?;
    // The connection future ends once the 101 (or the refusal) is written.
    let (accept, on_upgrade) = match outcome.await {
        Ok(answer) => answer?,
        // No request came: the peer closed before sending one.
        Err(_) => return Err(AcceptError::Io(std::io::ErrorKind::UnexpectedEof.into())),
    };
    let upgraded = on_upgrade.await?;
    let (stream, prefix) = Stream::from_upgraded(upgraded);
    Ok(accept.open(stream, prefix, peer, config))
}
