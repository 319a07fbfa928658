//! Mounts a Mercure hub on the app (`App::mercure`): `GET` (subscribers' streams,
//! counted as transport `mercure`) and `POST` (updates) on
//! `/.well-known/mercure`. The protocol itself is `crate::interop::mercure`.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::cors::Cors;
use crate::interop::mercure::context::PATH;
use crate::interop::mercure::publish::{PublishRequest, max_body, publish};
use crate::interop::mercure::subscribe::{SubscribeRequest, subscribe};
use crate::interop::mercure::subscriptions::{
    SUBSCRIPTIONS_PATH, SubscriptionsRequest, subscriptions,
};
use crate::interop::mercure::{Mercure, MercureError};

/// What the routes need.
#[derive(Clone)]
struct Hub {
    mercure: Mercure,
    /// Cancelled when the server shuts down: streams end.
    shutdown: CancellationToken,
    /// Whether the server has TLS.
    secure: bool,
}

/// The routes of the Mercure hub `mercure`; `secure` when the server has TLS.
pub(crate) fn routes(
    mercure: Mercure,
    shutdown: CancellationToken,
    secure: bool,
    cors: &Cors,
) -> Router {
    let state = Hub {
        mercure,
        shutdown,
        secure,
    };
    Router::new()
        .route(
            PATH,
            get(subscribe_handler)
                .post(publish_handler)
                .layer(cors.mercure()),
        )
        .route(
            SUBSCRIPTIONS_PATH,
            get(subscriptions_handler).layer(cors.mercure()),
        )
        .route(
            &format!("{SUBSCRIPTIONS_PATH}/{{*selector}}"),
            get(subscriptions_handler).layer(cors.mercure()),
        )
        .with_state(state)
}

/// `GET /.well-known/mercure/subscriptions[/…]`: the active subscriptions.
async fn subscriptions_handler(State(hub): State<Hub>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let request = SubscriptionsRequest {
        uri: parts.uri,
        headers: parts.headers,
        secure: hub.secure,
    };
    subscriptions(&hub.mercure, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /.well-known/mercure`.
async fn subscribe_handler(State(hub): State<Hub>, request: Request) -> Response {
    // The body of a GET is not read.
    let (parts, _body) = request.into_parts();
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let request = SubscribeRequest {
        uri: parts.uri,
        headers: parts.headers,
        peer,
        secure: hub.secure,
        shutdown: hub.shutdown.clone(),
    };
    subscribe(&hub.mercure, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `POST /.well-known/mercure`.
async fn publish_handler(State(hub): State<Hub>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let limit = max_body(hub.mercure.hub().config().max_data_size);
    let body = match axum::body::to_bytes(body, limit).await {
        Ok(body) => body,
        Err(_) => {
            return MercureError::TooLarge(format!("the body has more than {limit} bytes"))
                .into_response();
        }
    };
    let request = PublishRequest {
        uri: parts.uri,
        headers: parts.headers,
        body,
        secure: hub.secure,
    };
    publish(&hub.mercure, request)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}
