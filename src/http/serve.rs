//! The accept loop: one hyper HTTP/1.1 connection per TCP connection, with the
//! limits a server on the open internet needs (time to send the request head, its
//! size) and graceful shutdown. With TLS, each connection first completes its
//! handshake (within the same time limit), then speaks HTTP/2 or HTTP/1.1, as
//! ALPN chose. An HTTP/2 connection with no request in flight for the HTTP/2 idle
//! timeout is closed (GOAWAY); a connection the limits refuse still gets an answer
//! (503 or 429), over TLS after the handshake.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tower::ServiceExt as _;

use super::error::HttpError;
use super::limits::{Gate, Refusal, Ticket};
use super::runtime::Runtime;
use super::stall::WriteTimeout;
use super::tls::Tls;

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

/// How long an HTTP/2 connection may go with no request in flight before it is
/// closed, by default.
pub const HTTP2_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The most refused TLS connections answered at once (each costs a handshake);
/// past it a refused connection is closed without an answer.
const REFUSALS_IN_FLIGHT: usize = 64;

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
/// `tls` is set; a connection that `gate` refuses gets the refusal instead. Over
/// TLS, an HTTP/2 connection without a request in flight for `http2_idle_timeout`
/// is closed.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    http2_idle_timeout: Duration,
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
        Some(tls) => {
            let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
            http2
                .timer(TokioTimer::new())
                .max_header_list_size(u32::try_from(limits.max_header_size).unwrap_or(u32::MAX));
            let tls_http = TlsHttp {
                http1: http,
                http2,
                handshake_timeout: limits.header_timeout,
                write_timeout: limits.write_timeout,
                http2_idle_timeout,
            };
            tls_loop(listener, router, Arc::new(tls_http), runtime, tls, gate).await;
        }
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
                let (status, message) = refusal.answer();
                tracing::debug!(%peer, status = status.number(), "{message}");
                let connection =
                    http.serve_connection(TokioIo::new(tcp), refusal_service(refusal, false));
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

/// The HTTP side of a TLS listener.
struct TlsHttp {
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
    handshake_timeout: Duration,
    /// How long a write may make no progress ([`HttpLimits::write_timeout`]).
    write_timeout: Duration,
    http2_idle_timeout: Duration,
}

/// TLS: the handshake (bounded by the header timeout), then HTTP/2 when ALPN chose
/// `h2`, HTTP/1.1 (with upgrades, the same limits) otherwise.
async fn tls_loop(
    listener: TcpListener,
    router: Router,
    http: Arc<TlsHttp>,
    runtime: Runtime,
    tls: Tls,
    gate: Option<Arc<Gate>>,
) {
    let refusals = Arc::new(Semaphore::new(REFUSALS_IN_FLIGHT));
    while let Some((tcp, peer)) = accept(&listener, &runtime).await {
        let ticket = match admit(gate.as_ref(), peer) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                let (status, message) = refusal.answer();
                tracing::debug!(%peer, status = status.number(), "{message}");
                // Answering costs a handshake: a bounded number at once, so that
                // a flood of refused connections cannot cost more than that.
                match Arc::clone(&refusals).try_acquire_owned() {
                    Ok(permit) => {
                        let (tls, http) = (tls.clone(), Arc::clone(&http));
                        let shutdown = runtime.shutdown.clone();
                        runtime.tracker.spawn(async move {
                            let _permit = permit;
                            tokio::select! {
                                () = refuse_tls(tcp, peer, refusal, &tls, &http) => {}
                                () = shutdown.cancelled() => {}
                            }
                        });
                    }
                    Err(_) => tracing::debug!(
                        %peer,
                        "{REFUSALS_IN_FLIGHT} refusals already being answered; closed without one"
                    ),
                }
                continue;
            }
        };
        let acceptor = tls.acceptor.clone();
        let http = Arc::clone(&http);
        let service = service(&router, peer, ticket);
        let shutdown = runtime.shutdown.clone();
        // Under TLS: a client that stops reading cannot hold its connection.
        let tcp = WriteTimeout::new(tcp, http.write_timeout);
        runtime.tracker.spawn(async move {
            let handshake = tokio::select! {
                handshake = handshake(&acceptor, tcp, peer, http.handshake_timeout) => handshake,
                () = shutdown.cancelled() => return,
            };
            let Some(stream) = handshake else { return };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(stream);
            let result = if h2 {
                let (activity, in_flight) = watch::channel(0usize);
                let service = InFlight {
                    inner: service,
                    activity: Arc::new(activity),
                };
                let connection = http.http2.serve_connection(io, service);
                tokio::pin!(connection);
                tokio::select! {
                    result = connection.as_mut() => result,
                    () = shutdown.cancelled() => {
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                    () = idle(in_flight, http.http2_idle_timeout) => {
                        tracing::debug!(
                            %peer,
                            "HTTP/2 connection idle for {:?}; closing",
                            http.http2_idle_timeout
                        );
                        connection.as_mut().graceful_shutdown();
                        connection.await
                    }
                }
            } else {
                until_shutdown!(
                    http.http1.serve_connection(io, service).with_upgrades(),
                    shutdown
                )
            };
            if let Err(err) = result {
                log_connection_error(peer, &err);
            }
        });
    }
}

/// The TLS handshake on `tcp`, bounded by `timeout`; `None` (logged) when it fails
/// or takes too long.
async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: S,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<S>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake not completed in time; disconnected");
            None
        }
    }
}

/// Answers a connection the limits refused, over TLS: the handshake, then the
/// refusal to its first request (HTTP/1.1 with `Connection: close`; HTTP/2 with a
/// GOAWAY after the answer), all within the handshake timeout twice over.
async fn refuse_tls(tcp: TcpStream, peer: SocketAddr, refusal: Refusal, tls: &Tls, http: &TlsHttp) {
    let answer = async {
        let Some(stream) = handshake(&tls.acceptor, tcp, peer, http.handshake_timeout).await else {
            return;
        };
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let result = if h2 {
            let answered = Arc::new(Notify::new());
            let service = refusal_service_notifying(refusal, Arc::clone(&answered));
            let connection = http.http2.serve_connection(io, service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => result,
                () = answered.notified() => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            }
        } else {
            http.http1
                .serve_connection(io, refusal_service(refusal, false))
                .await
        };
        if let Err(err) = result {
            log_connection_error(peer, &err);
        }
    };
    if tokio::time::timeout(http.handshake_timeout * 2, answer)
        .await
        .is_err()
    {
        tracing::debug!(%peer, "refused connection not done in time; closed");
    }
}

/// Resolves once no request has been in flight for `timeout` (the count in
/// `in_flight` at 0 all that time).
async fn idle(mut in_flight: watch::Receiver<usize>, timeout: Duration) {
    loop {
        let busy = *in_flight.borrow_and_update() > 0;
        if busy {
            if in_flight.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(timeout) => {
                if *in_flight.borrow() == 0 {
                    return;
                }
            }
            changed = in_flight.changed() => {
                if changed.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// A hyper service that counts its requests in flight: from the call until the
/// response body is done (or dropped, when the client resets the stream).
struct InFlight<S> {
    inner: S,
    activity: Arc<watch::Sender<usize>>,
}

/// One request in flight; dropping it ends it.
struct InFlightGuard(Arc<watch::Sender<usize>>);

impl InFlightGuard {
    fn new(activity: &Arc<watch::Sender<usize>>) -> Self {
        activity.send_modify(|n| *n += 1);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl<S> hyper::service::Service<hyper::Request<hyper::body::Incoming>> for InFlight<S>
where
    S: hyper::service::Service<
            hyper::Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        >,
{
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Pin<
        Box<dyn Future<Output = Result<axum::response::Response, std::convert::Infallible>> + Send>,
    >;

    fn call(&self, request: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let guard = InFlightGuard::new(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                axum::body::Body::new(GuardedBody {
                    body,
                    _guard: guard,
                })
            }))
        })
    }
}

/// A response body that holds its request's [`InFlightGuard`] until it is done.
struct GuardedBody {
    body: axum::body::Body,
    _guard: InFlightGuard,
}

impl hyper::body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
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
        Some(gate) => gate
            .admit(peer.ip())
            .map(|ticket| Some(Arc::new(ticket)))
            .inspect_err(|refusal| gate.count(*refusal)),
    }
}

/// A service that answers every request with `refusal` (and `Retry-After: 1`;
/// over HTTP/1.1 also `Connection: close`, so the connection ends after it).
fn refusal_service(
    refusal: Refusal,
    h2: bool,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    hyper::service::service_fn(move |_request| {
        std::future::ready(Ok::<_, std::convert::Infallible>(refusal_response(
            refusal, h2,
        )))
    })
}

/// [`refusal_service`] over HTTP/2, waking `answered` at each answer.
fn refusal_service_notifying(
    refusal: Refusal,
    answered: Arc<Notify>,
) -> impl hyper::service::Service<
    hyper::Request<hyper::body::Incoming>,
    Response = axum::response::Response,
    Error = std::convert::Infallible,
    Future: Send + 'static,
> + Send
+ 'static {
    hyper::service::service_fn(move |_request| {
        answered.notify_one();
        std::future::ready(Ok::<_, std::convert::Infallible>(refusal_response(
            refusal, true,
        )))
    })
}

fn refusal_response(refusal: Refusal, h2: bool) -> axum::response::Response {
    let (status, message) = refusal.answer();
    let mut response = axum::response::IntoResponse::into_response(HttpError::new(status, message));
    let headers = response.headers_mut();
    if !h2 {
        // A connection-specific header, which HTTP/2 forbids (GOAWAY ends it there).
        headers.insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    headers.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from_static("1"),
    );
    response
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
