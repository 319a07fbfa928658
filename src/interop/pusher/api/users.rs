//! User termination: `POST /apps/{app_id}/users/{user_id}/terminate_connections`
//! closes every connection signed in as the user, on every node, by publishing
//! [`Envelope::terminate`] (the event `pusher_internal:terminate`, which the
//! connections act on and never deliver) on the user's own channel
//! `#server-to-user-{user_id}`, which each signed-in connection is subscribed to.
//! Answers `{}`.
//!
//! (Sending events to a user is not a route of its own: the SDKs' `sendToUser`
//! publishes to `#server-to-user-{user_id}` through `POST /events`.)

use axum::extract::{Path, Request, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::error::ApiError;
use super::{Call, call, json};
use crate::interop::pusher::channel::Channel;
use crate::interop::pusher::context::Pusher;
use crate::interop::pusher::event::Envelope;

/// `POST /apps/{app_id}/users/{user_id}/terminate_connections`.
pub(crate) async fn terminate(
    State(pusher): State<Pusher>,
    Path((app_id, user_id)): Path<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, Some(&app_id), request).await?;
    terminate_user(&pusher, &call, &user_id).await
}

/// `POST /users/{user_id}/terminate_connections`, the app found by the request's
/// `auth_key`: the path the PyPI `pusher` 3.3.4 SDK's
/// `terminate_user_connections` requests (it leaves out `/apps/{app_id}`).
pub(crate) async fn terminate_by_key(
    State(pusher): State<Pusher>,
    Path(user_id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let call = call(&pusher, None, request).await?;
    terminate_user(&pusher, &call, &user_id).await
}

async fn terminate_user(pusher: &Pusher, call: &Call, user_id: &str) -> Result<Response, ApiError> {
    let channel = Channel::for_user(user_id)
        .ok()
        .filter(|channel| !user_id.is_empty() && call.app.fits(channel))
        .ok_or_else(|| ApiError::bad_request(format!("Invalid user id {user_id:?}")))?;
    let topic = call.app.topic(&channel);
    let terminate = Envelope::terminate().to_data().map_err(|err| {
        ApiError::with(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Could not terminate the user's connections: {err}"),
        )
    })?;
    pusher
        .hub()
        .publish(&topic, terminate)
        .await
        .map_err(|err| {
            ApiError::with(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Could not terminate the user's connections: {err}"),
            )
        })?;
    Ok(json(&json!({})))
}
