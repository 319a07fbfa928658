//! The original Tornado counter demo, written with pushwire: a page at `/`, its
//! scripts under `/static/`, and a WebSocket at `/socket` that gives every browser
//! its own counter, one number a second. Run it from the repository root:
//!
//!     cargo run --example counter            # then open http://127.0.0.1:8888/
//!     cargo run --example counter -- 9000    # on another port (0 picks a free one)

use std::time::Duration;

use pushwire::{App, Socket, ticker};

/// One browser's counter: "1" a second after it connects, then "2", "3", …
async fn counter(socket: Socket) {
    let mut ticks = ticker(Duration::from_secs(1));
    for n in 1u64.. {
        ticks.tick().await;
        if socket.send(n.to_string()).await.is_err() {
            return; // closed: the browser went away
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), pushwire::Error> {
    pushwire::logging::init(); // logs "Opened: …" and "Closed: …"
    let port = std::env::args().nth(1).unwrap_or_else(|| "8888".into());
    let server = App::new()
        .page("/", "web/index.html")
        .static_dir("/static", "web/static")
        .socket("/socket", counter)
        .bind(format!("127.0.0.1:{port}"))
        .await?;
    println!("counter demo at http://{}/", server.local_addr());
    server.run().await
}
