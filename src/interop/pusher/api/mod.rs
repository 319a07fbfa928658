//! The Pusher HTTP API at `/apps/{app_id}/…`: publishing events, channel queries
//! and user termination, each request signed with the app's secret.
//!
//! Every request goes through [`call`] first: the app by id (404), the body read
//! within the app's limit (413), the signing check ([`signing`], 401), the app
//! enabled (403). Only then does a handler look at the request, and a handler
//! checks everything it was given before it publishes anything: a refused request
//! never reaches a subscriber. Refusals are counted in
//! `pushwire_rejected_requests_total` by the server's rejection layer, by status.
//!
//! - [`events`]: `POST /events` and `POST /batch_events`;
//! - [`channels`]: `GET /channels`, `GET /channels/{name}`, `GET /channels/{name}/users`;
//! - [`users`]: `POST /users/{user_id}/terminate_connections`;
//! - [`occupancy`]: what the queries know about subscribers.

mod channels;
mod error;
mod events;
mod occupancy;
mod signing;
mod users;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{StatusCode, header};

pub(crate) use error::ApiError;
use signing::{Query, Signed};

use super::app::PusherApp;
use super::context::Pusher;

/// The API's routes, for the server to mount.
pub(crate) fn router(pusher: Pusher) -> Router {
    Router::new()
        .route("/apps/{app_id}/events", post(events::events))
        .route("/apps/{app_id}/batch_events", post(events::batch_events))
        .route("/apps/{app_id}/channels", get(channels::list))
        .route("/apps/{app_id}/channels/{channel_name}", get(channels::one))
        .route(
            "/apps/{app_id}/channels/{channel_name}/users",
            get(channels::users),
        )
        .route(
            "/apps/{app_id}/users/{user_id}/terminate_connections",
            post(users::terminate),
        )
        .route(
            "/users/{user_id}/terminate_connections",
            post(users::terminate_by_key),
        )
        .with_state(pusher)
}

/// A request that passed the checks every API request must pass.
pub(crate) struct Call {
    /// The app it is for.
    pub(crate) app: Arc<PusherApp>,
    /// Its parameters, the auth ones left out.
    pub(crate) query: Query,
    /// Its body.
    pub(crate) body: Bytes,
}

/// Checks `request` for the app `app_id` (by id; `None`: the app whose key is the
/// request's `auth_key`): the app exists (404), the body fits its limits (413),
/// the request is signed with its secret (401), it is enabled (403).
pub(crate) async fn call(
    pusher: &Pusher,
    app_id: Option<&str>,
    request: Request,
) -> Result<Call, ApiError> {
    let (parts, body) = request.into_parts();
    let query = parts.uri.query().unwrap_or("");
    let app = match app_id {
        Some(id) => pusher.apps().by_id(id),
        None => auth_key(query).and_then(|key| pusher.app_by_key(&key)),
    };
    let Some(app) = app.cloned() else {
        return Err(ApiError::with(StatusCode::NOT_FOUND, "Unknown app"));
    };
    let limit = body_limit(&app);
    let too_large =
        || ApiError::too_large(format!("Request body too large: at most {limit} bytes"));
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())?;
    let signed = Signed {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query,
        body: &body,
    };
    let query = signing::check(&app, &signed, unix_now())?;
    if !app.enabled {
        return Err(ApiError::with(StatusCode::FORBIDDEN, "App disabled"));
    }
    Ok(Call { app, query, body })
}

/// The largest body an API request of `app` may have: a full batch of events of
/// the largest data, JSON-escaped, with room for names and channels.
fn body_limit(app: &PusherApp) -> usize {
    let limits = &app.limits;
    let event = 2 * limits.max_event_size + limits.max_event_name + 1024;
    event * limits.max_batch_events.max(1)
        + limits.max_channels_per_event * (limits.max_channel_name + 8)
        + 16 * 1024
}

/// The `auth_key` parameter of a query string.
fn auth_key(query: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key.eq_ignore_ascii_case("auth_key")).then(|| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A 200 answer with the JSON `body`.
pub(crate) fn json(body: &serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
