//! [`App`]: the builder that puts pages, static files and WebSocket routes on one
//! server, and [`Server`]: the bound, running result.

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http::{HeaderValue, header};
use tokio::net::{TcpListener, ToSocketAddrs};
use tower_http::compression::CompressionLayer;
use tower_http::set_header::SetResponseHeaderLayer;

use super::assets::CLIENT_SCRIPTS;
use super::cors::Cors;
use super::limits::{ConnectionLimits, Gate};
use super::metrics::{MetricsAccess, MetricsRoute};
use super::origin::Origins;
use super::runtime::Runtime;
use super::serve::{HTTP2_IDLE_TIMEOUT, HttpLimits};
use super::server::Server;
use super::state::TopicsState;
use super::static_files::{self, Asset, MemoryFile, Mounted, StaticFiles, not_found};
use super::tls::{Tls, TlsConfig};
use super::upgrade::{self, Handler, MetricsSlot, SocketRoute};
use super::{admin, drain, health, mercure, metrics, origin, poll, presence, publish, pusher, sse};
use crate::admin::feed::publish_snapshots;
use crate::admin::nodes::{HEARTBEAT_TTL, heartbeat};
use crate::admin::{AdminAuth, NodeList};
use crate::auth::TokenVerifier;
use crate::broker::NodeInfo;
use crate::clock::unix_millis;
use crate::error::Error;
use crate::hub::{Hub, OCCUPANCY_FLUSH_EVERY, OCCUPANCY_GRACE};
use crate::interop::mercure::{Mercure, MercureConfig};
use crate::interop::pusher::{Pusher, PusherApps};
use crate::ops::{Metrics, Transport};
use crate::protocol::session::SessionConfig;
use crate::ws::{self, Socket};

/// Bytes a `/ws` request may add around its data (op, id, topic, …).
const ENVELOPE: usize = 4096;

/// Builds a pushwire server: HTML pages, static files and WebSocket routes.
///
/// Builder methods never fail; problems found while building (an unreadable page or
/// folder) are reported by [`App::bind`], before anything listens.
///
/// ```no_run
/// use pushwire::{App, Socket};
///
/// async fn hello(socket: Socket) {
///     let _ = socket.send("hello").await;
/// }
///
/// # async fn run() -> Result<(), pushwire::Error> {
/// App::new()
///     .page("/", "web/index.html")
///     .static_dir("/static", "web/static")
///     .socket("/socket", hello)
///     .bind("127.0.0.1:8888")
///     .await?
///     .run()
///     .await
/// # }
/// ```
pub struct App {
    files: Router,
    sockets: Router,
    errors: Vec<Error>,
    ws_config: Arc<ws::Config>,
    runtime: Runtime,
    shutdown_timeout: Duration,
    drain_delay: Duration,
    limits: HttpLimits,
    http2_idle_timeout: Duration,
    hub: Option<Hub>,
    session: SessionConfig,
    api_key: Option<Arc<str>>,
    origins: Origins,
    connection_limits: ConnectionLimits,
    csp: Option<HeaderValue>,
    tls: Option<TlsConfig>,
    auth: Option<Arc<TokenVerifier>>,
    admin: Option<Arc<AdminAuth>>,
    /// Who may read `/metrics`; `None`: metrics off.
    metrics: Option<MetricsAccess>,
    /// The metrics of the socket routes, filled by `bind` when metrics are on.
    metrics_slot: MetricsSlot,
    /// Pusher apps served on the hub, if any.
    pusher: Option<PusherApps>,
    /// The Mercure hub served on the hub, if any.
    mercure: Option<MercureConfig>,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("ws_config", &self.ws_config)
            .finish_non_exhaustive()
    }
}

impl App {
    /// An app with no routes; every path answers 404.
    pub fn new() -> Self {
        Self {
            files: Router::new(),
            sockets: Router::new(),
            errors: Vec::new(),
            ws_config: Arc::new(ws::Config::default()),
            runtime: Runtime::default(),
            shutdown_timeout: Duration::from_secs(10),
            drain_delay: Duration::ZERO,
            limits: HttpLimits::default(),
            http2_idle_timeout: HTTP2_IDLE_TIMEOUT,
            hub: None,
            session: SessionConfig::default(),
            api_key: None,
            origins: Origins::default(),
            connection_limits: ConnectionLimits::default(),
            csp: None,
            tls: None,
            auth: None,
            admin: None,
            metrics: None,
            metrics_slot: MetricsSlot::default(),
            pusher: None,
            mercure: None,
        }
    }

    /// Serves the HTML file at `file` on `path`. The file is read once, when the app
    /// is built; an unreadable file makes [`App::bind`] fail.
    pub fn page(mut self, path: &str, file: impl AsRef<Path>) -> Self {
        let file = file.as_ref();
        match std::fs::read(file) {
            Ok(body) => {
                let html = HeaderValue::from_static("text/html; charset=utf-8");
                let file = MemoryFile::new(html, Bytes::from(body)).with_csp(self.csp.clone());
                self.files = add_page(self.files, path, file);
            }
            Err(source) => self.errors.push(Error::Page {
                path: file.to_path_buf(),
                source,
            }),
        }
        self
    }

    /// Serves an asset compiled into the binary on `path`.
    pub fn embedded_page(mut self, path: &str, asset: &Asset) -> Self {
        let file = MemoryFile::from_asset(asset).with_csp(self.csp.clone());
        self.files = add_page(self.files, path, file);
        self
    }

    /// Serves the files of folder `dir` below `mount` (`"/static"`): content types,
    /// `Last-Modified` and `304`, gzip or brotli when the client asks. Paths that try
    /// to leave the folder answer 404. A folder that cannot be listed makes
    /// [`App::bind`] fail.
    pub fn static_dir(mut self, mount: &str, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        match StaticFiles::dir(&dir) {
            Ok(files) => self.files = add_static(self.files, mount, files),
            Err(source) => self.errors.push(Error::StaticDir { path: dir, source }),
        }
        self
    }

    /// Serves assets compiled into the binary below `mount`, with `ETag` and `304`.
    pub fn static_assets(mut self, mount: &str, assets: &[Asset]) -> Self {
        self.files = add_static(self.files, mount, StaticFiles::embedded(assets));
        self
    }

    /// Accepts WebSocket connections on `path` and runs `handler` for each, with its
    /// own [`Socket`]. A plain HTTP request on `path` gets 400 with an explanation.
    pub fn socket<F, Fut>(mut self, path: &str, handler: F) -> Self
    where
        F: Fn(Socket) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |socket| handler(socket).boxed());
        let route = Arc::new(
            SocketRoute::new(handler, Arc::clone(&self.ws_config), self.runtime.clone())
                .with_metrics(Arc::clone(&self.metrics_slot), Transport::Socket),
        );
        let routes = Router::new()
            .route(path, axum::routing::any(upgrade::socket))
            .with_state(route);
        self.sockets = self.sockets.merge(routes);
        self
    }

    /// Serves topics from `hub`: the WebSocket protocol at `/ws`, Server-Sent Events
    /// at `/sse`, long-polling at `/poll`, the publish API at `/api/publish` and
    /// `/api/publish/{topic}`, and the browser client at `/pushwire.js` (ES module:
    /// `/pushwire.mjs`, types: `/pushwire.d.ts`). See `docs/protocol.md`.
    ///
    /// The `/ws` connections use the WebSocket limits set with [`App::ws_config`]
    /// (before or after this call), with the largest message raised to fit the
    /// hub's largest data.
    pub fn topics(mut self, hub: Hub) -> Self {
        self.hub = Some(hub);
        self
    }

    /// Speaks Pusher Channels for `apps` on the hub of [`App::topics`] (which
    /// it needs): pusher-js and Laravel Echo connect to `/app/{key}`, the `pusher`
    /// server SDKs publish and query at `/apps/{app_id}/…`. A channel `c` of an app
    /// is the topic `{namespace}:c`, so its events reach `/ws`, SSE and long-poll
    /// subscribers of that topic, and the reverse (`docs/interop.md`). The hub
    /// must track presence in each app's namespace.
    pub fn pusher(mut self, apps: PusherApps) -> Self {
        self.pusher = Some(apps);
        self
    }

    /// Serves a Mercure hub (`config`) on the hub of [`App::topics`] (which it
    /// needs): subscribers' `EventSource` streams (`GET`) and publishers' forms
    /// (`POST`) at `/.well-known/mercure`. A Mercure topic is the topic
    /// `{namespace}:{IRI percent-encoded}`, so its updates reach `/ws`, SSE,
    /// long-poll and Pusher subscribers of that topic, and the reverse
    /// (`docs/interop.md`). The hub's settings must come from
    /// [`MercureConfig::hub_config`] (its journal); keys that cannot be read make
    /// [`App::bind`] fail.
    pub fn mercure(mut self, config: MercureConfig) -> Self {
        self.mercure = Some(config);
        self
    }

    /// Sets the rules each client of the topics follows: subscriptions per
    /// connection, requests per second, whether WebSocket clients may publish, how
    /// long a long-poll client stays present (see [`SessionConfig`]; defaults
    /// otherwise).
    pub fn session_config(mut self, config: SessionConfig) -> Self {
        self.session = config;
        self
    }

    /// Requires `Authorization: Bearer <key>` on the publish API. Without a key the
    /// API accepts requests from loopback addresses only.
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(Arc::from(key.into()));
        self
    }

    /// Requires tokens on the topic routes, checked by `verifier` (see
    /// [`crate::auth`]): `auth` on `/ws`, `?token=` or `Authorization: Bearer` on
    /// `/sse` and `/poll`; the publish API accepts them besides its API key.
    pub fn auth(mut self, verifier: TokenVerifier) -> Self {
        self.auth = Some(Arc::new(verifier));
        self
    }

    /// Serves the admin page at `/admin`, for whoever knows `password`: live
    /// connections, topics, message rates, latency, the nodes sharing the broker
    /// and the last errors (see `docs/operations.md`, "Admin page"). Needs
    /// [`App::topics`]; an empty password makes [`App::bind`] fail. Off unless
    /// called.
    pub fn admin_password(mut self, password: &str) -> Self {
        if password.is_empty() {
            self.errors.push(Error::Config(String::from(
                "the admin password cannot be empty",
            )));
        } else {
            self.admin = Some(Arc::new(AdminAuth::new(password)));
        }
        self
    }

    /// Counts what the server does (connections by transport, subscriptions,
    /// messages, bytes, latencies, closes, refusals, broker calls: see
    /// `docs/operations.md`) and serves it at `GET /metrics` in the Prometheus text
    /// format, to the readers `access` allows. Off unless called; off, recording
    /// costs nothing. The hub's share is reached with
    /// [`Hub::metrics`](crate::Hub::metrics).
    pub fn metrics(mut self, access: MetricsAccess) -> Self {
        self.metrics = Some(access);
        self
    }

    /// Sets the WebSocket limits for the socket routes added after this call.
    pub fn ws_config(mut self, config: ws::Config) -> Self {
        self.ws_config = Arc::new(config);
        self
    }

    /// How long shutdown waits for open connections to finish their close handshake
    /// (default 10 s).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// How long the server drains before it shuts down (default none): from the
    /// stop signal on, `/readyz` answers 503 for this long while everything else is
    /// served as before, so that a load balancer that checks it stops sending new
    /// clients; then clients are told to reconnect (see [`Server::run_until`]).
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// Sets the limits on request heads (size, time to send; see [`HttpLimits`]).
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how long an HTTP/2 connection (over TLS) may go with no request in
    /// flight before the server closes it with a GOAWAY (default
    /// [`HTTP2_IDLE_TIMEOUT`], 60 s). A request is in flight from its head until
    /// its response has been sent, so an open SSE stream keeps its connection.
    /// HTTP/1.1 connections are not affected.
    pub fn http2_idle_timeout(mut self, timeout: Duration) -> Self {
        self.http2_idle_timeout = timeout;
        self
    }

    /// Sets which web pages may open WebSockets, SSE streams and long-polls and call
    /// the publish API (the `Origin` check; default: pages from the same host only,
    /// and any client that sends no `Origin`). The same policy answers pages on
    /// other origins with CORS headers on `/sse`, `/poll` and the publish API
    /// (`docs/security.md`). See [`Origins`].
    pub fn allowed_origins(mut self, origins: Origins) -> Self {
        self.origins = origins;
        self
    }

    /// Sets the limits on connections per node and per IP address (all off by
    /// default; see [`ConnectionLimits`]).
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connection_limits = limits;
        self
    }

    /// Sends this `Content-Security-Policy` with the pages added after this call
    /// ([`App::page`], [`App::embedded_page`]); the demo's pages use
    /// [`BUNDLED_PAGES_CSP`]. Static folders are left alone: their pages are yours. A
    /// value that is not a valid header makes [`App::bind`] fail.
    pub fn content_security_policy(mut self, policy: &str) -> Self {
        match HeaderValue::from_str(policy) {
            Ok(value) => self.csp = Some(value),
            Err(_) => self.errors.push(Error::Config(format!(
                "not a valid Content-Security-Policy header: {policy:?}"
            ))),
        }
        self
    }

    /// Serves https and wss instead of http and ws, with the certificate chain and
    /// key of `config` (see [`TlsConfig`]). HTTP/2 and HTTP/1.1 are offered through
    /// ALPN; WebSocket connections use HTTP/1.1. The TLS handshake must complete
    /// within the header timeout of [`HttpLimits`].
    ///
    /// The files are read by [`App::bind`], which fails with [`Error::Tls`] when
    /// they cannot be used; [`Server::run`] reads them again on SIGHUP (see
    /// [`Server::tls_reloader`]).
    pub fn tls(mut self, config: TlsConfig) -> Self {
        self.tls = Some(config);
        self
    }

    /// Adds any axum route, for what the other builders do not cover.
    pub fn route(mut self, path: &str, method_router: MethodRouter) -> Self {
        self.files = self.files.route(path, method_router);
        self
    }

    /// Reports the first problem found while building, or binds the listening socket.
    pub async fn bind(mut self, addr: impl ToSocketAddrs + fmt::Display) -> Result<Server, Error> {
        if let Some(err) = std::mem::take(&mut self.errors).into_iter().next() {
            return Err(err);
        }
        let tls = self.tls.take().map(Tls::new).transpose()?;
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(Error::Serve)?;
        // The admin page shows the metrics' figures: it counts them even when
        // `/metrics` is off.
        let counting = self.metrics.is_some() || self.admin.is_some();
        let metrics = counting.then(|| {
            let mut metrics = Arc::new(Metrics::new());
            if let Some(hub) = &self.hub {
                hub.attach_metrics(Arc::clone(&metrics));
                // A hub already served by another app keeps its first metrics.
                metrics = hub.metrics().cloned().unwrap_or(metrics);
            }
            let _ = self.metrics_slot.set(Arc::clone(&metrics));
            metrics
        });
        let ready_hub = self.hub.clone();
        if self.admin.is_some() && self.hub.is_none() {
            return Err(Error::Config(String::from(
                "the admin page shows topics: it needs App::topics",
            )));
        }
        let (mut files, sockets) = match self.hub.clone() {
            Some(hub) => self.mount_topics(hub),
            None => (self.files, self.sockets),
        };
        // Background tasks (the node heartbeat, occupancy, Pusher webhooks, the
        // admin page's feed) stop when the server shuts down or is dropped.
        let background = self.runtime.shutdown.child_token();
        let sockets = match (&self.pusher, &self.hub) {
            (None, _) => sockets,
            (Some(_), None) => {
                return Err(Error::Config(String::from(
                    "Pusher channels are topics: App::pusher needs App::topics",
                )));
            }
            (Some(apps), Some(hub)) => {
                let pusher = Pusher::new(apps.clone(), hub.clone())
                    .map_err(|err| Error::Config(err.to_string()))?;
                pusher.start(&background);
                sockets.merge(pusher::routes(
                    pusher,
                    Arc::clone(&self.ws_config),
                    self.runtime.clone(),
                    Arc::clone(&self.metrics_slot),
                ))
            }
        };
        let sockets = match (self.mercure.take(), &self.hub) {
            (None, _) => sockets,
            (Some(_), None) => {
                return Err(Error::Config(String::from(
                    "Mercure topics are topics: App::mercure needs App::topics",
                )));
            }
            (Some(config), Some(hub)) => {
                let hub = Mercure::new(config, hub.clone())
                    .map_err(|err| Error::Config(err.to_string()))?;
                sockets.merge(mercure::routes(
                    hub,
                    self.runtime.shutdown.clone(),
                    tls.is_some(),
                    &Cors::new(&self.origins),
                ))
            }
        };
        // The node heartbeat and the occupancy task (always, with topics) and the
        // admin page's feed.
        if let Some(hub) = &self.hub {
            let me = NodeInfo {
                id: hub.node_id().to_string(),
                addr: local_addr.to_string(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                started: unix_millis(),
                seen: 0,
            };
            let nodes = NodeList::default();
            tokio::spawn(heartbeat(
                hub.clone(),
                me.clone(),
                nodes.clone(),
                background.clone(),
            ));
            // Occupancy: this node's subscriber counts to the broker, the
            // transitions it decides to the listeners (Pusher's webhooks).
            tokio::spawn(hub.clone().run_occupancy(
                OCCUPANCY_FLUSH_EVERY,
                HEARTBEAT_TTL,
                OCCUPANCY_GRACE,
                background.clone(),
            ));
            if let Some(auth) = &self.admin {
                files = files.merge(admin::token_route(Arc::clone(auth)));
                let csp = self
                    .csp
                    .clone()
                    .or_else(|| Some(HeaderValue::from_static(BUNDLED_PAGES_CSP)));
                let page = MemoryFile::from_asset(&admin::ADMIN_PAGE).with_csp(csp);
                files = add_page(files, "/admin", page);
                files = add_static(files, "/admin", StaticFiles::embedded(admin::ADMIN_ASSETS));
                tokio::spawn(publish_snapshots(
                    hub.clone(),
                    me,
                    nodes,
                    metrics.clone(),
                    background.clone(),
                ));
            }
        }
        // The Origin check covers every socket route, SSE, long-poll and the publish
        // API; health checks and pages need none.
        let sockets = if self.origins.allows_any() || !sockets.has_routes() {
            sockets
        } else {
            let origins = Arc::new(self.origins.clone());
            sockets.route_layer(axum::middleware::from_fn_with_state(
                origins,
                origin::check_origin,
            ))
        };
        // Every error answer of those routes is a refused request.
        let sockets = match &metrics {
            Some(metrics) if sockets.has_routes() => {
                sockets.route_layer(axum::middleware::from_fn_with_state(
                    Arc::clone(metrics),
                    metrics::count_rejections,
                ))
            }
            _ => sockets,
        };
        let health = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .with_state(health::Readiness {
                hub: ready_hub,
                draining: self.runtime.draining.clone(),
            });
        let sockets = sockets.merge(health);
        let sockets = match (&metrics, &self.metrics) {
            (Some(metrics), Some(access)) => {
                let route = MetricsRoute::new(Arc::clone(metrics), access, self.api_key.as_ref());
                sockets.merge(
                    Router::new()
                        .route("/metrics", get(metrics::serve))
                        .with_state(Arc::new(route)),
                )
            }
            _ => sockets,
        };
        let router = files
            .layer(CompressionLayer::new())
            .merge(sockets)
            .fallback(|| async { not_found() })
            .layer(axum::middleware::from_fn_with_state(
                self.runtime.draining.clone(),
                drain::close_while_draining,
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ));
        let gate = self
            .connection_limits
            .any()
            .then(|| Arc::new(Gate::new(self.connection_limits.clone()).with_metrics(metrics)));
        Ok(Server {
            listener,
            local_addr,
            router,
            runtime: self.runtime,
            shutdown_timeout: self.shutdown_timeout,
            drain_delay: self.drain_delay,
            limits: self.limits,
            http2_idle_timeout: self.http2_idle_timeout,
            gate,
            tls,
            _background: background.drop_guard(),
        })
    }
}

impl App {
    /// The routes of [`App::topics`]: pages into `files` (compressed), streams and
    /// sockets into `sockets` (never compressed, never buffered).
    fn mount_topics(&self, hub: Hub) -> (Router, Router) {
        let mut files = self.files.clone();
        for asset in CLIENT_SCRIPTS {
            files = add_page(
                files,
                &format!("/{}", asset.path),
                MemoryFile::from_asset(asset),
            );
        }
        let mut config = (*self.ws_config).clone();
        config.max_message_size = config
            .max_message_size
            .max(hub.config().max_data_size.saturating_add(ENVELOPE));
        if self.api_key.is_none() {
            tracing::warn!(
                "publish API: no API key configured; accepting publishes from loopback addresses only"
            );
        }
        let state = TopicsState {
            poll_members: presence::poll_members(
                self.session.poll_lapse,
                self.connection_limits.max_connections,
            ),
            session: Arc::new(self.session),
            hub,
            auth: self.auth.clone(),
            api_key: self.api_key.clone(),
            shutdown: self.runtime.shutdown.clone(),
            ws_config: Arc::new(config),
            runtime: self.runtime.clone(),
            admin: self.admin.clone(),
        };
        // CORS from the Origin policy, for pages on other origins (not on /ws:
        // browsers apply none to WebSockets).
        let cors = Cors::new(&self.origins);
        let topics = Router::new()
            .route("/ws", axum::routing::any(upgrade::topics))
            .route("/sse", get(sse::handle).layer(cors.sse()))
            .route("/poll", get(poll::handle).layer(cors.poll()))
            .route("/api/publish", post(publish::batch).layer(cors.publish()))
            .route(
                "/api/publish/{*topic}",
                post(publish::single).layer(cors.publish()),
            )
            .with_state(state);
        let sockets = self.sockets.clone().merge(topics);
        (files, sockets)
    }
}

/// The `Content-Security-Policy` of the pages built into pushwire: scripts, styles
/// and connections from their own origin only, no inline code, no framing.
pub const BUNDLED_PAGES_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn add_page(router: Router, path: &str, file: MemoryFile) -> Router {
    router.merge(
        Router::new()
            .route(path, get(static_files::page))
            .with_state(Arc::new(file)),
    )
}

fn add_static(router: Router, mount: &str, files: StaticFiles) -> Router {
    let mount = mount.trim_end_matches('/');
    let mounted = Mounted {
        files,
        prefix: format!("{mount}/"),
    };
    router.merge(
        Router::new()
            .route(&format!("{mount}/{{*path}}"), get(static_files::folder))
            .with_state(Arc::new(mounted)),
    )
}
