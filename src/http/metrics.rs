//! `GET /metrics`: the node's [`Metrics`] in the Prometheus text format, guarded
//! like the publish API; and the layer that counts refused requests.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, header};

use super::error::HttpError;
use super::publish::key_or_loopback;
use crate::ops::{Metrics, Rejection};

/// Who may read `/metrics` ([`App::metrics`](crate::App::metrics)).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MetricsAccess {
    /// As the publish API: `Authorization: Bearer <API key>` when an API key is
    /// configured, else loopback clients only.
    #[default]
    LikePublish,
    /// `Authorization: Bearer <key>` with a key of its own (Prometheus'
    /// `authorization: {credentials: …}`).
    Key(String),
    /// Anyone who can reach the port (keep it behind a firewall).
    Public,
}

/// The `/metrics` route's state.
pub(crate) struct MetricsRoute {
    pub(crate) metrics: Arc<Metrics>,
    /// The key to show; `None`: loopback only. Unused when `public`.
    pub(crate) key: Option<Arc<str>>,
    pub(crate) public: bool,
}

impl MetricsRoute {
    /// The route for `access`, with the publish API's key `api_key`.
    pub(crate) fn new(
        metrics: Arc<Metrics>,
        access: &MetricsAccess,
        api_key: Option<&Arc<str>>,
    ) -> Self {
        let (key, public) = match access {
            MetricsAccess::LikePublish => (api_key.cloned(), false),
            MetricsAccess::Key(key) => (Some(Arc::from(key.as_str())), false),
            MetricsAccess::Public => (None, true),
        };
        Self {
            metrics,
            key,
            public,
        }
    }
}

/// `GET /metrics`.
pub(crate) async fn serve(
    State(route): State<Arc<MetricsRoute>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    if !route.public {
        key_or_loopback(route.key.as_deref(), peer, &headers, "reading metrics")?;
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(Metrics::CONTENT_TYPE),
        )],
        route.metrics.encode(),
    )
        .into_response())
}

/// Counts every error answer of the routes it wraps as a refused request, by its
/// status.
pub(crate) async fn count_rejections(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        metrics.rejected(Rejection::of_status(status.as_u16()));
    }
    response
}
