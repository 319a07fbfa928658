//! An echo server on pushwire's `App`: every message comes back as it was sent. The
//! browser suite and the echo benchmark use it, and it is a handy peer for trying
//! clients by hand. (Autobahn|Testsuite checks the frame layer alone, through
//! `crates/pushwire-ws/examples/echo_server.rs`.)
//!
//!     cargo run --release --example echo -- --port 9001

use clap::Parser;
use pushwire::{App, Origins, Socket, ws};

/// WebSocket echo server on ws://127.0.0.1:PORT/ (any path).
#[derive(Parser)]
struct Args {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 9001)]
    port: u16,
    /// Turn permessage-deflate off.
    #[arg(long)]
    no_deflate: bool,
}

#[tokio::main]
async fn main() -> Result<(), pushwire::Error> {
    pushwire::logging::init();
    let args = Args::parse();
    let mut config = ws::Config {
        // The conformance suite sends messages of up to 16 MiB.
        max_message_size: 64 << 20,
        ..ws::Config::default()
    };
    config.deflate.enabled = !args.no_deflate;
    // Sends every message back as it came. (A closure returning an `async move` block
    // keeps the socket once in the connection's future; an `async fn` would hold its
    // argument twice, which every idle connection pays for.)
    let echo = |mut socket: Socket| async move {
        while let Some(message) = socket.recv().await {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    };
    let server = App::new()
        // An echo server holds nothing worth protecting and is there to be tried
        // from any page (the browser suite's page lives on another server), so it
        // lets every origin in; pushwire's own server lets in its own host only.
        .allowed_origins(Origins::any())
        .ws_config(config)
        .socket("/", echo)
        .socket("/{*path}", echo)
        .bind(format!("127.0.0.1:{}", args.port))
        .await?;
    println!("echo server at ws://{}/", server.local_addr());
    server.run().await
}
