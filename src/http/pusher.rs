//! Mounts Pusher Channels on the app (`App::pusher`): the client protocol at
//! `/app/{key}` (a WebSocket per client, counted as transport `pusher`) and the HTTP
//! API at `/apps/{app_id}/…`. The protocol itself is `crate::interop::pusher`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::response::Response;
use futures_util::FutureExt as _;

use super::runtime::Runtime;
use super::upgrade::{Handler, MetricsSlot, SocketRoute, upgrade};
use crate::interop::pusher::{Pusher, api, socket};
use crate::ops::Transport;
use crate::ws;

/// What `/app/{key}` needs.
#[derive(Clone)]
struct Connect {
    pusher: Pusher,
    ws_config: Arc<ws::Config>,
    runtime: Runtime,
    metrics: MetricsSlot,
}

/// The routes of Pusher Channels on `pusher`: its connections use `ws_config`, are
/// kept in the runtime's Pusher registry (told to reconnect at shutdown) and
/// counted in `metrics`.
pub(crate) fn routes(
    pusher: Pusher,
    ws_config: Arc<ws::Config>,
    runtime: Runtime,
    metrics: MetricsSlot,
) -> Router {
    let connect = Connect {
        pusher: pusher.clone(),
        ws_config,
        runtime,
        metrics,
    };
    Router::new()
        .route("/app/{key}", axum::routing::any(connect_handler))
        .with_state(connect)
        .merge(api::router(pusher))
}

/// `GET /app/{key}`: a Pusher client. The key is checked after the upgrade, as
/// Pusher does: an unknown one is told with `pusher:error` 4001.
async fn connect_handler(
    State(connect): State<Connect>,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Connect {
        pusher,
        ws_config,
        runtime,
        metrics,
    } = connect;
    let protocol = query.as_deref().and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("protocol="))
            .map(|value| {
                percent_encoding::percent_decode_str(value)
                    .decode_utf8_lossy()
                    .into_owned()
            })
    });
    let handler: Handler = Arc::new(move |socket| {
        socket::run(socket, pusher.clone(), key.clone(), protocol.clone()).boxed()
    });
    let runtime = Runtime {
        registry: Arc::clone(&runtime.pusher),
        ..runtime
    };
    let route =
        SocketRoute::new(handler, ws_config, runtime).with_metrics(metrics, Transport::Pusher);
    upgrade(Arc::new(route), peer, request).await
}
