//! The accept loop: one hyper HTTP/1.1 connection per TCP connection, with the
//! limits a server on the open internet needs (time to send the request head, its
//! size) and graceful shutdown. With TLS, each connection first completes its
//! handshake (within the same time limit), then speaks HTTP/2 or HTTP/1.1, as
//! ALPN chose.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

use super::app::Runtime;
use super::limits::{Gate, Refusal, Ticket};
use super::stall::WriteTimeout;
use super::tls::Tls;
use crate::transport::HttpError;

/// Drives a hyper connection to its end; when `shutdown` fires first, asks it to
/// finish what it is doing and close (HTTP/1 and HTTP/2 connections have the same
/// methods but no trait in common, hence a macro).
macro_rules! until_shutdown {
    ($connection:expr, $shutdown:expr) => {{
        let connection = $connection;
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => result,
            () = $shutdown.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        }
    }};
}

/// Limits on the HTTP side of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a complete request head (for WebSocket: the whole
    /// handshake). Slow or silent clients are disconnected after it. With TLS the
    /// TLS handshake must complete within this time too (before the head's own).
    pub header_timeout: Duration,
    /// Largest request head accepted, in bytes (at least 8192: smaller values count
    /// as 8192); larger ones are refused (431).
    pub max_header_size: usize,
    /// How long a write to a client may make no progress before the connection is
    /// dropped: a client that stops reading an answer, an SSE stream or a file does
    /// not hold its connection for ever. (WebSockets have their own, in
    /// [`ws::Config`](crate::ws::Config).)
    pub write_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_header_size: 16 * 1024,
            write_timeout: Duration::from_secs(30),
        }
    }
}

/// Accepts connections until shutdown, serving each with `router`, over TLS when
/// `tls` is set; a connection that `gate` refuses gets the refusal instead.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    runtime: Runtime,
    tls: Option<Tls>,
    gate: Option<Arc<Gate>>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(100);
    match tls {
        None => plain_loop(listener, router, http, limits, runtime, gate).await,
        Some(tls) => tls_loop(listener, router, http, limits, runtime, tls, gate).await,
    }
}

/// Plain TCP: hyper's HTTP/1.1 on the socket (behind only the write timeout), so
/// that the WebSocket layer gets the `TcpStream` itself back after an upgrade.
async fn plain_loop(
    listener: TcpListener,
    router: Router,
    http: hyper::server::conn::http1::Builder,
    limits: HttpLimits,
    runtime: Runtime,
    gate: Option<Arc<Gate>>,
) {
    while let Some((tcp, peer)) = accept(&listener, &runtime).await {
        let ticket = match admit(gate.as_ref(), peer) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                refuse(&http, tcp, peer, refusal, &runtime);
                continue;
            }
        };
        let connection = http
            .serve_connection(
                TokioIo::new(WriteTimeout::new(tcp, limits.write_timeout)),
                service(&router, peer, ticket),
            )
            .with_upgrades();
        let shutdown = runtime.shutdown.clone();
        runtime.tracker.spawn(async move {
            let result = until_shutdown!(connection, shutdown);
            if let Err(err) = result {
                log_connection_error(peer, &err);
            }
        });
    }
}

/// TLS: the handshake (bounded by the header timeout), then HTTP/2 when ALPN chose
/// `h2`, HTTP/1.1 (with upgrades, the same limits) otherwise.
async fn tls_loop(
    listener: TcpListener,
    router: Router,
    http1: hyper::server::conn::http1::Builder,
    limits: HttpLimits,
    runtime: Runtime,
    tls: Tls,
    gate: Option<Arc<Gate>>,
) {
    let http1 = Arc::new(http1);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
    let http2 = Arc::new(http2);
    while let Some((tcp, peer)) = accept(&listener, &runtime).await {
        // Over TLS a refused connection is closed before the handshake: answering
        // would cost the handshake the limit is there to save.
        let ticket = match admit(gate.as_ref(), peer) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                tracing::debug!(%peer, "{}", refusal.answer().1);
                continue;
            }
        };
        let acceptor = tls.acceptor.clone();
        let (http1, http2) = (Arc::clone(&http1), Arc::clone(&http2));
        let service = service(&router, peer, ticket);
        let shutdown = runtime.shutdown.clone();
        let timeout = limits.header_timeout;
        let tcp = WriteTimeout::new(tcp, limits.write_timeout);
        runtime.tracker.spawn(async move {
            let handshake = tokio::select! {
                handshake = tokio::time::timeout(timeout, acceptor.accept(tcp)) => handshake,
                () = shutdown.cancelled() => return,
            };
            let stream = match handshake {
                Ok(Ok(stream)) => stream,
                Ok(Err(err)) => {
                    tracing::debug!(%peer, error = %err, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake not completed in time; disconnected");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(stream);
            let result = if h2 {
                until_shutdown!(http2.serve_connection(io, service), shutdown)
            } else {
                until_shutdown!(
                    http1.serve_connection(io, service).with_upgrades(),
                    shutdown
                )
            };
            if let Err(err) = result {
                log_connection_error(peer, &err);
            }
        });
    }
}

/// The next connection, with `TCP_NODELAY` set, or `None` on shutdown.
async fn accept(listener: &TcpListener, runtime: &Runtime) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let (tcp, peer) = tokio::select! {
            () = runtime.shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        return Some((tcp, peer));
    }
}

/// A place under the connection limits for a connection from `peer`: `Ok(None)`
/// when no limit is on.
fn admit(gate: Option<&Arc<Gate>>, peer: SocketAddr) -> Result<Option<Arc<Ticket>>, Refusal> {
    match gate {
        None => Ok(None),
        Some(gate) => gate.admit(peer.ip()).map(|ticket| Some(Arc::new(ticket))),
    }
}

/// Answers every request on a refused connection with the refusal, then closes it.
fn refuse(
    http: &hyper::server::conn::http1::Builder,
    tcp: TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    runtime: &Runtime,
) {
    let (status, message) = refusal.answer();
    tracing::debug!(%peer, status, "{message}");
    let service = hyper::service::service_fn(move |_request| {
        let mut response =
            axum::response::IntoResponse::into_response(HttpError::new(status, message.clone()));
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        std::future::ready(Ok::<_, std::convert::Infallible>(response))
    });
    let connection = http.serve_connection(TokioIo::new(tcp), service);
    let shutdown = runtime.shutdown.clone();
    runtime.tracker.spawn(async move {
        tokio::select! {
            result = connection => {
                if let Err(err) = result {
                    log_connection_error(peer, &err);
                }
            }
            () = shutdown.cancelled() => {}
        }
    });
}

/// `router` as a hyper service for one connection from `peer` (which handlers
/// read as `ConnectInfo`), holding the connection's `ticket` under the limits (a
/// WebSocket takes it along after the upgrade).
fn service(
    router: &Router,
    peer: SocketAddr,
    ticket: Option<Arc<Ticket>>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    let service =
        router
            .clone()
            .map_request(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                if let Some(ticket) = &ticket {
                    request.extensions_mut().insert(Arc::clone(ticket));
                }
                request
            });
    TowerToHyperService::new(service)
}

fn log_connection_error(peer: SocketAddr, err: &hyper::Error) {
    if err.is_timeout() {
        tracing::debug!(%peer, "request head not received in time; disconnected");
    } else {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}
