//! What a draining server changes in its answers: from the stop signal on (see
//! `Server::run_until`), every HTTP/1.1 answer but an upgrade carries
//! `Connection: close`, so that a client (or a load balancer's pool) sends its next
//! request on a new connection, which the balancer gives to a node that is still
//! ready, rather than on this one, which is about to close it. HTTP/2 connections
//! are left alone (the header is not allowed there; their streams end at shutdown).

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderValue, StatusCode, Version, header};
use tokio_util::sync::CancellationToken;

/// The middleware: `draining` is the runtime's drain signal.
pub(crate) async fn close_while_draining(
    State(draining): State<CancellationToken>,
    request: Request,
    next: Next,
) -> Response {
    let http1 = request.version() == Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && draining.is_cancelled() && response.status() != StatusCode::SWITCHING_PROTOCOLS {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
