//! The counter demo, the app pushwire grew from: a page that shows a number, and a
//! socket that gives every connection its own counter, 1, 2, 3, … one per interval.
//! The node the `pushwire` binary runs serves it beside the topics (see
//! [`crate::node`]).

use std::time::Duration;

use crate::http::Asset;
use crate::ticker::ticker;
use crate::ws::Socket;

/// The counter page, served at `/`.
pub const INDEX: Asset = Asset {
    path: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../web/index.html"),
};

/// The counter page's script and the pages' shared style sheet, served below
/// `/static/`.
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
