//! The HTTP side of a WebSocket endpoint: check the upgrade request, answer 101, and
//! hand the upgraded connection to the frame layer and the application's handler.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{HeaderValue, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::app::Runtime;
use crate::ws::handshake::{self, HandshakeError};
use crate::ws::{self, Channels, ConnId, Socket};

/// An application's socket handler, boxed so routes can hold any closure.
pub(crate) type Handler = Arc<dyn Fn(Socket) -> BoxFuture<'static, ()> + Send + Sync>;

/// Everything one WebSocket route needs to accept connections.
pub(crate) struct SocketRoute {
    pub(crate) handler: Handler,
    pub(crate) config: Arc<ws::Config>,
    pub(crate) runtime: Runtime,
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
    let on_upgrade = hyper::upgrade::on(&mut request);
    let tracker = route.runtime.tracker.clone();
    tracker.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => run_connection(upgraded, peer, &route).await,
            Err(err) => tracing::debug!(%peer, error = %err, "upgrade did not complete"),
        }
    });
    (
        StatusCode::SWITCHING_PROTOCOLS,
        [
            (header::UPGRADE, HeaderValue::from_static("websocket")),
            (header::CONNECTION, HeaderValue::from_static("Upgrade")),
            (header::SEC_WEBSOCKET_ACCEPT, accept),
        ],
    )
        .into_response()
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

async fn run_connection(upgraded: hyper::upgrade::Upgraded, peer: SocketAddr, route: &SocketRoute) {
    let id = ConnId::next();
    let config = &route.config;
    let (out_tx, out_rx) = mpsc::channel(config.queue_capacity.max(1));
    let (in_tx, in_rx) = mpsc::channel(config.inbound_capacity.max(1));
    tracing::info!("Opened: {id} {peer}");
    route
        .runtime
        .tracker
        .spawn((route.handler)(Socket::new(id, peer, out_tx, in_rx)));
    let channels = Channels {
        outgoing: out_rx,
        incoming: in_tx,
    };
    let shutdown = route.runtime.shutdown.clone();
    // With the plain TCP stream in hand the frame layer reads and writes the socket
    // directly instead of through hyper's upgrade wrapper.
    let outcome = match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => {
            ws::drive(
                parts.io.into_inner(),
                parts.read_buf,
                config,
                channels,
                shutdown,
            )
            .await
        }
        Err(upgraded) => {
            ws::drive(
                TokioIo::new(upgraded),
                Bytes::new(),
                config,
                channels,
                shutdown,
            )
            .await
        }
    };
    tracing::info!(
        "Closed: {id} {} {:?} after {} messages",
        outcome.code,
        outcome.reason,
        outcome.messages_sent
    );
}
