//! The admin page's routes: `GET /admin` (the page, its script and style sheet
//! below `/admin/`), and `POST /admin/token`, which trades the admin password (or
//! a still valid admin token) for a short-lived admin token. With that token in
//! `?admin=` a `/ws` connection may subscribe to the system topic `$sys/admin`
//! (see `upgrade::topics`). Only mounted when the app has an admin password.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header};
use serde::Deserialize;

use super::error::HttpError;
use super::query::{bearer, query_pairs};
use super::static_files::Asset;
use crate::admin::{ADMIN_TOPIC, AdminAuth, AdminAuthError};
use crate::clock::ticks;
use crate::rate::TokenBucket;
use crate::sync::lock;
use crate::topic::ErrorCode;

/// The admin page, served at `/admin`.
pub(crate) const ADMIN_PAGE: Asset = Asset {
    path: "admin.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../../web/admin.html"),
};

/// The admin page's script and style sheet, served below `/admin/`.
pub(crate) const ADMIN_ASSETS: &[Asset] = &[
    Asset {
        path: "admin.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/static/admin.js"),
    },
    Asset {
        path: "admin.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/static/admin.css"),
    },
];

/// The largest login body read.
const MAX_LOGIN_BODY: usize = 4096;

/// The most `POST /admin/token` requests a node answers per second, all clients
/// together (a page renews its token every 2 minutes); more get 429, so that a
/// password cannot be guessed quickly.
pub(crate) const MAX_LOGINS_PER_SECOND: u32 = 5;

/// What `POST /admin/token` needs.
struct TokenRoute {
    auth: Arc<AdminAuth>,
    attempts: Mutex<TokenBucket>,
}

/// `POST /admin/token`.
pub(crate) fn token_route(auth: Arc<AdminAuth>) -> Router {
    let route = TokenRoute {
        auth,
        attempts: Mutex::new(TokenBucket::full()),
    };
    Router::new()
        .route("/admin/token", post(token))
        .with_state(Arc::new(route))
}

#[derive(Deserialize)]
struct Login {
    password: Option<String>,
}

/// Answers `{"token", "expires", "topic"}` for the right password (JSON body
/// `{"password": …}`) or a valid admin token (`Authorization: Bearer …`); 401
/// otherwise, 429 beyond [`MAX_LOGINS_PER_SECOND`]. The credential is never
/// logged.
async fn token(
    State(route): State<Arc<TokenRoute>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, HttpError> {
    if !lock(&route.attempts).try_take(MAX_LOGINS_PER_SECOND, ticks()) {
        tracing::warn!(%peer, "admin page: too many logins; refused unchecked");
        return Err(HttpError::new(
            ErrorCode::TooMany,
            format!(
                "at most {MAX_LOGINS_PER_SECOND} admin logins per second; try again in a second"
            ),
        ));
    }
    let auth = &route.auth;
    let checked = match bearer(&headers) {
        Some(token) => auth.verify(token),
        None if body.len() > MAX_LOGIN_BODY => Err(AdminAuthError::WrongPassword),
        None => {
            let password = serde_json::from_slice::<Login>(&body)
                .ok()
                .and_then(|login| login.password)
                .unwrap_or_default();
            auth.check_password(&password)
        }
    };
    if let Err(err) = checked {
        tracing::warn!(%peer, "admin page: login refused: {err}");
        return Err(HttpError::unauthorized(err.to_string()));
    }
    let (token, expires) = auth.issue();
    let body = serde_json::json!({ "token": token, "expires": expires, "topic": ADMIN_TOPIC });
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response())
}

/// What a `/ws` request's `?admin=` asks: nothing (no parameter), or the right
/// to subscribe to system topics, granted (`Ok(true)`) or refused with a 401.
pub(crate) fn check_ws(
    auth: Option<&AdminAuth>,
    query: Option<&str>,
    peer: SocketAddr,
) -> Result<bool, HttpError> {
    let Some((_, token)) = query
        .map(query_pairs)
        .unwrap_or_default()
        .into_iter()
        .find(|(key, _)| key == "admin")
    else {
        return Ok(false);
    };
    let Some(auth) = auth else {
        return Err(HttpError::unauthorized(
            "the admin page is off on this server (no admin password)",
        ));
    };
    match auth.verify(&token) {
        Ok(()) => Ok(true),
        Err(err) => {
            tracing::warn!(%peer, "admin page: /ws refused: {err}");
            Err(HttpError::unauthorized(err.to_string()))
        }
    }
}
