//! `/healthz` (the process serves) and `/readyz` (it can reach its broker and is
//! not draining), for load balancers and orchestrators.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use tokio_util::sync::CancellationToken;

use crate::hub::Hub;

/// What `/readyz` looks at.
#[derive(Clone)]
pub(crate) struct Readiness {
    /// The topics, whose broker must be reachable.
    pub(crate) hub: Option<Hub>,
    /// Cancelled once the server drains (see `Server::run_until`).
    pub(crate) draining: CancellationToken,
}

/// `GET /healthz`: 200 `ok` while the server runs (draining included).
pub(crate) async fn healthz() -> Response {
    answer(Ok(()))
}

/// `GET /readyz`: 503 `draining` once the server drains; else 200 `ok` when the
/// hub's broker is reachable (always, without topics), 503 `broker unavailable`
/// otherwise.
pub(crate) async fn readyz(State(readiness): State<Readiness>) -> Response {
    if readiness.draining.is_cancelled() {
        return answer(Err("draining"));
    }
    match readiness.hub {
        Some(hub) if !hub.ready().await => answer(Err("broker unavailable")),
        _ => answer(Ok(())),
    }
}

/// 200 `ok`, or 503 with why; never cached.
fn answer(ready: Result<(), &'static str>) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    match ready {
        Ok(()) => (StatusCode::OK, headers, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, headers, format!("{why}\n")).into_response(),
    }
}
