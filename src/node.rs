//! One pushwire node as the `pushwire` binary runs it, assembled from a
//! [`ServeConfig`]: the hub on the configured broker (in-process or Redis), the
//! topic routes with their tokens and API key, TLS, the limits, and the bundled
//! pages (the counter demo and the chat page).

use std::sync::Arc;

use crate::auth::TokenVerifier;
use crate::broker::RedisBroker;
use crate::config::ServeConfig;
use crate::demo;
use crate::error::Error;
use crate::http::{App, Asset, BUNDLED_PAGES_CSP};
use crate::hub::Hub;
use crate::interop::pusher::PusherApps;

/// The chat page, served at `/chat`: a tiny chat room on topic `chat:lobby`, built
/// on the browser client `/pushwire.js`.
pub const CHAT: Asset = Asset {
    path: "chat.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/chat.html"),
};

/// The chat page's script and style sheet, served below `/static/`.
pub const CHAT_ASSETS: &[Asset] = &[
    Asset {
        path: "chat.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/static/chat.js"),
    },
    Asset {
        path: "chat.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/static/chat.css"),
    },
];

/// The hub `config` asks for: on the in-process broker, or on Redis when
/// [`ServeConfig::broker`] is set (then it must be called inside a Tokio runtime).
/// Pusher apps add their namespaces to the hub's presence and guard their private
/// channels' topics ([`PusherApps::hub_config`]); a Mercure hub adds its journal
/// and guards it ([`MercureConfig::hub_config`](crate::interop::mercure::MercureConfig::hub_config)).
pub fn hub(config: &ServeConfig) -> Result<Hub, Error> {
    let apps =
        PusherApps::new(config.pusher.clone()).map_err(|err| Error::Config(err.to_string()))?;
    let mut hub_config = apps.hub_config(config.hub.clone());
    if let Some(mercure) = &config.mercure {
        hub_config = mercure.hub_config(hub_config);
    }
    Ok(match &config.broker {
        None => Hub::new(hub_config),
        Some(redis) => {
            let broker = RedisBroker::new(hub_config.history.clone(), redis.clone())?;
            Hub::with_broker(hub_config, Arc::new(broker))
        }
    })
}

/// The node's app: the counter page at `/`, the chat page at `/chat`, their assets
/// below `/static/` (embedded, or the configured folder), the counter at `/socket`,
/// and topics (`/ws`, `/sse`, `/poll`, `/api/publish`) on the hub of [`hub`],
/// with the Pusher apps and the Mercure hub the settings name;
/// over TLS when [`ServeConfig::tls`] is set. With a token key configured, topics
/// require tokens (see [`crate::auth`]). Fails on a malformed broker URL or an
/// unusable key file (TLS files are read when the app is bound).
pub fn app(config: &ServeConfig) -> Result<App, Error> {
    let period = config.interval;
    let mut app = App::new()
        .content_security_policy(BUNDLED_PAGES_CSP)
        .embedded_page("/", &demo::INDEX)
        .embedded_page("/chat", &CHAT)
        .allowed_origins(config.origins.clone())
        .connection_limits(config.connection_limits.clone())
        .http_limits(config.http_limits.clone())
        .http2_idle_timeout(config.http2_idle_timeout)
        .session_config(config.session)
        .drain_delay(config.drain_delay)
        .shutdown_timeout(config.shutdown_timeout)
        .topics(hub(config)?);
    if let Some(key) = &config.api_key {
        app = app.api_key(key.clone());
    }
    if let Some(password) = &config.admin_password {
        app = app.admin_password(password);
    }
    if !config.pusher.is_empty() {
        let apps =
            PusherApps::new(config.pusher.clone()).map_err(|err| Error::Config(err.to_string()))?;
        app = app.pusher(apps);
    }
    if let Some(mercure) = &config.mercure {
        app = app.mercure(mercure.clone());
    }
    if let Some(access) = &config.metrics {
        app = app.metrics(access.clone());
    }
    if let Some(tls) = &config.tls {
        app = app.tls(tls.clone());
    }
    if let Some(verifier) = TokenVerifier::from_config(&config.auth)? {
        app = app.auth(verifier);
    }
    let app = match &config.static_dir {
        Some(dir) => app.static_dir("/static", dir),
        None => {
            let assets: Vec<Asset> = demo::ASSETS.iter().chain(CHAT_ASSETS).copied().collect();
            app.static_assets("/static", &assets)
        }
    };
    Ok(app.socket("/socket", move |socket| demo::count(socket, period)))
}
