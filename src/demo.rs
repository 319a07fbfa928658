//! The counter demo, the app pushwire grew from: a page that shows a number, and a
//! socket that gives every connection its own counter, 1, 2, 3, … one per interval.

use std::time::Duration;

use crate::config::ServeConfig;
use crate::http::{App, Asset};
use crate::ticker::ticker;
use crate::ws::Socket;

/// The counter page, served at `/`.
pub const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/index.html"),
};

/// The page's scripts and styles, served below `/static/` unless a folder replaces them.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "counter.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../web/static/counter.js"),
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

/// The demo app: the page at `/`, its assets below `/static/` (embedded, or the
/// configured folder), and the counter at `/socket`.
pub fn app(config: &ServeConfig) -> App {
    let period = config.interval;
    let app = App::new().embedded_page("/", &INDEX);
    let app = match &config.static_dir {
        Some(dir) => app.static_dir("/static", dir),
        None => app.static_assets("/static", ASSETS),
    };
    app.socket("/socket", move |socket| count(socket, period))
}
