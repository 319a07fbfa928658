//! `/healthz` (the process serves) and `/readyz` (it can reach its broker), for
//! load balancers and orchestrators.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};

use crate::hub::Hub;

/// `GET /healthz`: 200 `ok` while the server runs.
pub(crate) async fn healthz() -> Response {
    answer(true)
}

/// `GET /readyz`: 200 `ok` when the hub's broker is reachable (always, without
/// topics), 503 otherwise.
pub(crate) async fn readyz(State(hub): State<Option<Hub>>) -> Response {
    match hub {
        Some(hub) => answer(hub.ready().await),
        None => answer(true),
    }
}

/// 200 `ok`, or 503 `broker unavailable`; never cached.
fn answer(ok: bool) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    if ok {
        (StatusCode::OK, headers, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            headers,
            "broker unavailable\n",
        )
            .into_response()
    }
}
