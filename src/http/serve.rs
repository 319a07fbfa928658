//! The accept loop: one hyper HTTP/1.1 connection per TCP connection, with the
//! limits a server on the open internet needs (time to send the request head, its
//! size) and graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use super::app::Runtime;
use super::limits::{Gate, Refusal};
use crate::transport::HttpError;

/// Limits on the HTTP side of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a complete request head (for WebSocket: the whole
    /// handshake). Slow or silent clients are disconnected after it.
    pub header_timeout: Duration,
    /// Largest request head accepted, in bytes (at least 8192: smaller values count
    /// as 8192); larger ones are refused (431).
    pub max_header_size: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            max_header_size: 16 * 1024,
        }
    }
}

/// Accepts connections until shutdown, serving each with `router`, or, when `gate`
/// refuses it, with the refusal.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    gate: Option<Arc<Gate>>,
    runtime: Runtime,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_size.max(8192))
        .max_headers(100);
    loop {
        let (tcp, peer) = tokio::select! {
            () = runtime.shutdown.cancelled() => return,
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
        let ticket = match gate.as_ref().map(|gate| gate.admit(peer.ip())) {
            None => None,
            Some(Ok(ticket)) => Some(Arc::new(ticket)),
            Some(Err(refusal)) => {
                refuse(&http, tcp, peer, refusal, &runtime);
                continue;
            }
        };
        // The ticket rides along in every request (a WebSocket keeps it after the
        // upgrade) and in this service, which lives as long as the connection.
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
        let connection = http
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .with_upgrades();
        let shutdown = runtime.shutdown.clone();
        runtime.tracker.spawn(async move {
            tokio::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = result {
                log_connection_error(peer, &err);
            }
        });
    }
}

/// Answers every request on a refused connection with the refusal, then closes it.
fn refuse(
    http: &hyper::server::conn::http1::Builder,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    refusal: Refusal,
    runtime: &Runtime,
) {
    let (status, message) = refusal.answer();
    tracing::debug!(%peer, status, "{message}");
    let service = hyper::service::service_fn(move |_request| {
        let mut response =
            axum::response::IntoResponse::into_response(HttpError::new(status, message.clone()));
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
        if status == 503 || status == 429 {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static("1"),
            );
        }
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

fn log_connection_error(peer: SocketAddr, err: &hyper::Error) {
    if err.is_timeout() {
        tracing::debug!(%peer, "request head not received in time; disconnected");
    } else {
        tracing::debug!(%peer, error = %err, "HTTP connection ended with an error");
    }
}
