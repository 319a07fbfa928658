//! The HTTP side of a WebSocket endpoint: check the upgrade request, answer 101, and
//! hand the upgraded connection to the frame layer and the application's handler.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt as _;
use futures_util::future::{self, BoxFuture};
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::app::Runtime;
use super::limits::Ticket;
use super::stall::WriteTimeout;
use crate::ws::deflate;
use crate::ws::handshake::{self, HandshakeError};
use crate::ws::{self, ConnId, Encoder, Role, Socket, Stream};

/// An application's socket handler, boxed so routes can hold any closure.
pub(crate) type Handler = Arc<dyn Fn(Socket) -> BoxFuture<'static, ()> + Send + Sync>;

/// Everything one WebSocket route needs to accept connections.
pub(crate) struct SocketRoute {
    pub(crate) handler: Handler,
    pub(crate) config: Arc<ws::Config>,
    pub(crate) runtime: Runtime,
    /// `config.subprotocols`, shared by every socket that picks one.
    pub(crate) subprotocols: Vec<Arc<str>>,
}

impl SocketRoute {
    pub(crate) fn new(handler: Handler, config: Arc<ws::Config>, runtime: Runtime) -> Self {
        let subprotocols = config
            .subprotocols
            .iter()
            .map(|p| Arc::from(p.as_str()))
            .collect();
        Self {
            handler,
            config,
            runtime,
            subprotocols,
        }
    }
}

/// Answers an upgrade request on a socket route.
pub(crate) async fn upgrade(
    route: Arc<SocketRoute>,
    peer: SocketAddr,
    mut request: Request,
) -> Response {
    let accept =
        match handshake::check_request(request.method(), request.version(), request.headers()) {
            Ok(accept) => accept,
            Err(err) => return refuse(&err),
        };
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response();
    };
    let deflate = if route.config.deflate.enabled {
        let offers = request
            .headers()
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
        level: route.config.deflate.level,
        min_size: route.config.deflate.min_size,
    };
    let protocol = handshake::select_subprotocol(request.headers(), &route.config.subprotocols)
        .and_then(|chosen| route.subprotocols.iter().find(|p| &***p == chosen).cloned());
    let protocol_header = protocol
        .as_deref()
        .and_then(|p| HeaderValue::from_str(p).ok());
    let extensions_header = extensions.clone();
    // The connection's place under the connection limits, kept while it lives.
    let ticket = request.extensions().get::<Arc<Ticket>>().cloned();
    let on_upgrade = hyper::upgrade::on(&mut request);
    let tracker = route.runtime.tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            // The connection gets a task of its own, holding only what it needs for
            // its whole life (this one holds the request's leftovers).
            Ok(upgraded) => {
                let connection = connection(
                    upgraded, peer, &route, encoder, extensions, protocol, ticket,
                );
                route.runtime.tracker.spawn(connection);
            }
            Err(err) => tracing::debug!(%peer, error = %err, "upgrade did not complete"),
        }
    });
    let mut response = (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response();
    if let Some(value) = extensions_header.and_then(|v| HeaderValue::from_str(&v).ok()) {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_EXTENSIONS, value);
    }
    if let Some(value) = protocol_header {
        response
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    response
}

/// The answer to a request that is not a valid WebSocket handshake: 426 with the
/// version we speak for a version mismatch (RFC 6455 §4.4), 400 otherwise.
fn refuse(err: &HandshakeError) -> Response {
    let body = format!("{err}\n");
    match err {
        HandshakeError::Version => (
            StatusCode::UPGRADE_REQUIRED,
            [(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static(handshake::VERSION),
            )],
            body,
        )
            .into_response(),
        HandshakeError::Method(_) => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, HeaderValue::from_static("GET"))],
            body,
        )
            .into_response(),
        _ => (StatusCode::BAD_REQUEST, body).into_response(),
    }
}

/// Opens the connection: the application's handler and the frame layer, joined in
/// one future (one task per connection), which logs how the connection ended.
fn connection(
    upgraded: hyper::upgrade::Upgraded,
    peer: SocketAddr,
    route: &SocketRoute,
    encoder: Encoder,
    extensions: Option<Cow<'static, str>>,
    protocol: Option<Arc<str>>,
    ticket: Option<Arc<Ticket>>,
) -> impl Future<Output = ()> + Send + 'static {
    let id = ConnId::next();
    let shared = route.config.shared();
    tracing::info!("Opened: {id} {peer}");
    let socket = Socket::new(id, peer, Arc::clone(&shared), encoder, extensions, protocol);
    let handler = (route.handler)(socket);
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
    route.runtime.registry.add(&shared);
    let frames = ws::drive(stream, prefix, Arc::clone(&route.config), encoder, shared);
    // Combinators, not an async block: an async block would keep a second copy of
    // the frame layer's future (captured, then moved into the join).
    future::join(frames, handler).map(move |(outcome, ())| {
        drop(ticket);
        tracing::info!(
            "Closed: {id} {} {:?} after {} messages",
            outcome.code,
            outcome.reason,
            outcome.messages_sent
        );
    })
}
