//! The Pusher HTTP API at `/apps/{app_id}/…`: publishing events, channel queries
//! and user termination, each request signed with the app's secret.

use axum::Router;

use super::context::Pusher;

/// The API's routes, for the server to mount.
pub(crate) fn router(pusher: Pusher) -> Router {
    let _ = pusher;
    Router::new()
}
