//! The counter demo, the app pushwire grew from: a page that shows a number, and a
//! socket that gives every connection its own counter, 1, 2, 3, … one per interval.

use std::sync::Arc;
use std::time::Duration;

use crate::auth::TokenVerifier;
use crate::broker::RedisBroker;
use crate::config::ServeConfig;
use crate::error::Error;
use crate::http::{App, Asset, BUNDLED_PAGES_CSP};
use crate::hub::Hub;
use crate::ticker::ticker;
use crate::ws::Socket;

/// The counter page, served at `/`.
pub const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/index.html"),
};

/// The chat page, served at `/chat`: a tiny chat room on topic `chat:lobby`, built
/// on the browser client `/pushwire.js`.
pub const CHAT: Asset = Asset {
    path: "chat.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/chat.html"),
};

/// The page's scripts and styles, served below `/static/` unless a folder replaces them.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "counter.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/static/counter.js"),
    },
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
    Asset {
        path: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../web/static/style.css"),
    },
];

/// Sends `socket` its own counter: "1" one `period` after it opened, "2" after two,
/// and so on, on a grid that does not drift. Returns when the connection closes.
pub async fn count(socket: Socket, period: Duration) {
    let mut ticks = ticker(period);
    for n in 1u64.. {
        tokio::select! {
            _ = ticks.tick() => {}
            () = socket.closed() => return,
        }
        if socket.send(n.to_string()).await.is_err() {
            return;
        }
    }
}

/// The hub `config` asks for: on the in-process broker, or on Redis when
/// [`ServeConfig::broker`] is set (then it must be called inside a Tokio runtime).
pub fn hub(config: &ServeConfig) -> Result<Hub, Error> {
    Ok(match &config.broker {
        None => Hub::new(config.hub.clone()),
        Some(redis) => {
            let broker = RedisBroker::new(config.hub.history.clone(), redis.clone())?;
            Hub::with_broker(config.hub.clone(), Arc::new(broker))
        }
    })
}

/// The demo app: the counter page at `/`, the chat page at `/chat`, their assets
/// below `/static/` (embedded, or the configured folder), the counter at `/socket`,
/// and topics (`/ws`, `/sse`, `/poll`, `/api/publish`) on the hub of [`hub`];
/// over TLS when [`ServeConfig::tls`] is set. With a token key configured, topics
/// require tokens (see [`crate::auth`]). Fails on a malformed broker URL or an
/// unusable key file (TLS files are read when the app is bound).
pub fn app(config: &ServeConfig) -> Result<App, Error> {
    let period = config.interval;
    let mut app = App::new()
        .content_security_policy(BUNDLED_PAGES_CSP)
        .embedded_page("/", &INDEX)
        .embedded_page("/chat", &CHAT)
        .allowed_origins(config.origins.clone())
        .connection_limits(config.connection_limits.clone())
        .http_limits(config.http_limits.clone())
        .http2_idle_timeout(config.http2_idle_timeout)
        .topics(hub(config)?);
    if let Some(key) = &config.api_key {
        app = app.api_key(key.clone());
    }
    if let Some(tls) = &config.tls {
        app = app.tls(tls.clone());
    }
    if let Some(verifier) = TokenVerifier::from_config(&config.auth)? {
        app = app.auth(verifier);
    }
    let app = match &config.static_dir {
        Some(dir) => app.static_dir("/static", dir),
        None => app.static_assets("/static", ASSETS),
    };
    Ok(app.socket("/socket", move |socket| count(socket, period)))
}
