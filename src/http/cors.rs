//! CORS: what a page on another origin may do with the publish API, `/sse` and
//! `/poll`, answered in the headers browsers read (the Fetch standard's CORS
//! protocol).
//!
//! There is one policy, the `Origin` check's ([`Origins`], `--allowed-origin`):
//! a page the check lets in is also told, in CORS headers, that it may read the
//! answer; a page the check refuses gets its `403` with no CORS header at all, so
//! the browser blocks it (and a preflight refused that way stops the request
//! before it is sent). No second list of origins exists.
//!
//! - The allowed origin is echoed exactly (`Access-Control-Allow-Origin:
//!   https://app.example.com`), never `*`, with `Vary: Origin` (and the two
//!   preflight request headers) on every answer of these routes.
//! - `Access-Control-Allow-Credentials: true` goes only to origins the policy
//!   names ([`Origins::names`]: listed, or the server's own host), never to one let
//!   in only by `--allowed-origin *`: any page may then read, but none with the
//!   user's cookies.
//! - A preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered with
//!   the one method and the request headers each route really takes
//!   ([`Cors::publish`], [`Cors::sse`], [`Cors::poll`]) and may be cached for
//!   [`PREFLIGHT_MAX_AGE`].
//! - WebSocket routes have no CORS: browsers do not apply it to WebSockets, which
//!   stay guarded by the `Origin` check alone.
//!
//! The headers are written by tower-http's `CorsLayer`: its origin and credential
//! predicates ask [`Origins`], and the `Origin` check runs in front of it, so it
//! only ever sees requests the check let in (or that carry no `Origin`, which get
//! no `Access-Control-Allow-Origin`).

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, Method, header};
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer, ExposeHeaders, MaxAge};

use super::origin::Origins;

/// How long a browser may reuse a preflight's answer (`Access-Control-Max-Age`).
pub(crate) const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// `Last-Event-ID`: sent by an `EventSource` when it reconnects.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The CORS layers of the topic routes, all answering from one [`Origins`].
#[derive(Debug, Clone)]
pub(crate) struct Cors {
    origins: Arc<Origins>,
}

impl Cors {
    /// The layers for the policy `origins`.
    pub(crate) fn new(origins: &Origins) -> Self {
        Self {
            origins: Arc::new(origins.clone()),
        }
    }

    /// `POST /api/publish[/{topic}]`: the key or token in `Authorization`, the body's
    /// `Content-Type` (`application/json` is not one a page may send without asking).
    pub(crate) fn publish(&self) -> CorsLayer {
        self.route(Method::POST, [header::AUTHORIZATION, header::CONTENT_TYPE])
    }

    /// `GET /sse`: a token in `Authorization` (from clients that can set headers;
    /// `EventSource` cannot) and the `Last-Event-ID` of a reconnect.
    pub(crate) fn sse(&self) -> CorsLayer {
        self.route(Method::GET, [header::AUTHORIZATION, LAST_EVENT_ID])
    }

    /// `/.well-known/mercure`: `GET` (a subscriber: a token in `Authorization`,
    /// the `Last-Event-ID` of a reconnect) and `POST` (an update: a form, the
    /// token in `Authorization`); `Mercure-Last-Event-ID` may be read.
    pub(crate) fn mercure(&self) -> CorsLayer {
        self.route(Method::GET, [header::AUTHORIZATION, LAST_EVENT_ID])
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::AUTHORIZATION, LAST_EVENT_ID, header::CONTENT_TYPE])
            .expose_headers(ExposeHeaders::list([
                header::RETRY_AFTER,
                HeaderName::from_static("mercure-last-event-id"),
            ]))
    }

    /// `GET /poll`: a token in `Authorization`.
    pub(crate) fn poll(&self) -> CorsLayer {
        self.route(Method::GET, [header::AUTHORIZATION])
    }

    fn route<const N: usize>(&self, method: Method, headers: [HeaderName; N]) -> CorsLayer {
        let allowed = Arc::clone(&self.origins);
        let named = Arc::clone(&self.origins);
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(move |_, request| {
                allowed.check(&request.headers, &request.uri).is_ok()
            }))
            .allow_credentials(AllowCredentials::predicate(move |_, request| {
                named.names(&request.headers, &request.uri)
            }))
            .allow_methods([method])
            .allow_headers(headers)
            // A 503 or 429 says when to come back.
            .expose_headers(ExposeHeaders::list([header::RETRY_AFTER]))
            // Only with an Origin: a request without one is no preflight.
            .max_age(MaxAge::dynamic(|_, _| PREFLIGHT_MAX_AGE))
    }
}
