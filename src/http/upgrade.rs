//! The HTTP side of a WebSocket endpoint: check the upgrade request, answer 101, and
//! hand the upgraded connection to the frame layer and the application's handler.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::{self, BoxFuture};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::limits::Ticket;
use super::query::query_token;
use super::runtime::Runtime;
use super::stall::WriteTimeout;
use super::state::TopicsState;
use crate::ops::conn_log::{ConnCounts, ConnLog};
use crate::ops::{ConnectionGuard, Metrics, Transport};
use crate::protocol::session::SessionConfig;
use crate::ws::server::{self, Accept};
use crate::ws::{self, Socket, Stream};

/// An application's socket handler, boxed so routes can hold any closure.
pub(crate) type Handler = Arc<dyn Fn(Socket) -> BoxFuture<'static, ()> + Send + Sync>;

/// The metrics of an app's socket routes: filled by `App::bind` when metrics are
/// on (the routes are made before it knows).
pub(crate) type MetricsSlot = Arc<OnceLock<Arc<Metrics>>>;

/// Everything one WebSocket route needs to accept connections.
pub(crate) struct SocketRoute {
    pub(crate) handler: Handler,
    pub(crate) config: Arc<ws::Config>,
    pub(crate) runtime: Runtime,
    /// Where its connections and closes are counted.
    pub(crate) metrics: MetricsSlot,
    /// Which transport its connections are, in the metrics and the log.
    pub(crate) transport: Transport,
}

impl SocketRoute {
    pub(crate) fn new(handler: Handler, config: Arc<ws::Config>, runtime: Runtime) -> Self {
        Self {
            handler,
            config,
            runtime,
            metrics: MetricsSlot::default(),
            transport: Transport::Socket,
        }
    }

    /// Counts this route's connections as `transport` in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: MetricsSlot, transport: Transport) -> Self {
        self.metrics = metrics;
        self.transport = transport;
        self
    }
}

/// `GET /ws`: a topic session (our protocol, `docs/protocol.md`) on each
/// connection. `?token=` authenticates at once (the `auth` request is the main way:
/// URLs end up in logs).
pub(crate) async fn topics(
    State(state): State<TopicsState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let TopicsState {
        hub,
        auth,
        ws_config,
        runtime,
        mut session,
        admin,
        ..
    } = state;
    // `?admin=<admin token>`: the admin page's connection, which may subscribe to
    // system topics; a wrong or expired token is a 401.
    match super::admin::check_ws(admin.as_deref(), request.uri().query(), peer) {
        Ok(false) => {}
        Ok(true) => {
            session = Arc::new(SessionConfig {
                system_topics: true,
                ..*session
            });
        }
        Err(err) => return err.into_response(),
    }
    let token = auth
        .as_ref()
        .and_then(|_| query_token(request.uri().query()));
    let metrics = MetricsSlot::default();
    if let Some(hub_metrics) = hub.metrics() {
        let _ = metrics.set(Arc::clone(hub_metrics));
    }
    let handler: Handler = Arc::new(move |socket| {
        let (hub, auth, token) = (hub.clone(), auth.clone(), token.clone());
        crate::session::run(socket, hub, auth, token, Arc::clone(&session)).boxed()
    });
    // Topic sessions have a registry of their own: a draining server tells them
    // 1012 "service restart", so that they come back and resume.
    let runtime = Runtime {
        registry: Arc::clone(&runtime.topics),
        ..runtime
    };
    let route = SocketRoute::new(handler, ws_config, runtime).with_metrics(metrics, Transport::Ws);
    upgrade(Arc::new(route), peer, request).await
}

/// The handler of an application's socket route ([`App::socket`](crate::App::socket)).
pub(crate) async fn socket(
    State(route): State<Arc<SocketRoute>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    upgrade(route, peer, request).await
}

/// Answers an upgrade request on a socket route.
pub(crate) async fn upgrade(
    route: Arc<SocketRoute>,
    peer: SocketAddr,
    mut request: Request,
) -> Response {
    let accept = match Accept::check(
        request.method(),
        request.version(),
        request.headers(),
        &route.config,
    ) {
        Ok(accept) => accept,
        Err(err) => return server::refusal::<Body>(&err).into_response(),
    };
    let response = accept.response::<Body>();
    // The connection's place under the connection limits, kept while it lives.
    let ticket = request.extensions().get::<Arc<Ticket>>().cloned();
    let on_upgrade = hyper::upgrade::on(&mut request);
    let tracker = route.runtime.tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            // The connection gets a task of its own, holding only what it needs for
            // its whole life (this one holds the request's leftovers).
            Ok(upgraded) => {
                let connection = connection(upgraded, peer, &route, accept, ticket);
                route.runtime.tracker.spawn(connection);
            }
            Err(err) => tracing::debug!(%peer, error = %err, "upgrade did not complete"),
        }
    });
    response.into_response()
}

/// Opens the connection: the application's handler and the frame layer, joined in
/// one future (one task per connection), which logs how the connection ended.
fn connection(
    upgraded: hyper::upgrade::Upgraded,
    peer: SocketAddr,
    route: &SocketRoute,
    accept: Accept,
    ticket: Option<Arc<Ticket>>,
) -> impl Future<Output = ()> + Send + 'static {
    // With the plain TCP stream in hand the frame layer waits for readability itself
    // and holds no read buffer while the connection is idle.
    let (stream, prefix) = match upgraded.downcast::<TokioIo<WriteTimeout<TcpStream>>>() {
        // The frame layer has its own write timeout.
        Ok(parts) => (
            Stream::Tcp(parts.io.into_inner().into_inner()),
            parts.read_buf,
        ),
        Err(upgraded) => Stream::from_upgraded(upgraded),
    };
    let (socket, frames) = accept.open(stream, prefix, peer, Arc::clone(&route.config));
    let log = ConnLog::open(socket.id(), route.transport, Some(peer));
    route.runtime.registry.add(&socket);
    let counted = ConnectionGuard::open(route.metrics.get(), route.transport);
    let handler = (route.handler)(socket);
    // Combinators, not an async block: an async block would keep a second copy of
    // the frame layer's future (captured, then moved into the join).
    future::join(frames, handler).map(move |(outcome, ())| {
        drop(ticket);
        if let Some(metrics) = counted.metrics() {
            metrics.closed(outcome.code.0);
        }
        drop(counted);
        let counts = ConnCounts {
            messages_in: outcome.messages_received,
            messages_out: outcome.messages_sent,
            bytes_in: outcome.bytes_received,
            bytes_out: outcome.bytes_sent,
        };
        log.closed(outcome.code.0, &outcome.reason, &counts);
    })
}
