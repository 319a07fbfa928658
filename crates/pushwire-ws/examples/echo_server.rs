//! An echo server on pushwire-ws alone: every message comes back as it was sent.
//! It is the server Autobahn|Testsuite's fuzzing client checks (`scripts/autobahn`),
//! and a handy peer for trying clients by hand. Any path is accepted.
//!
//!     cargo run --release -p pushwire-ws --example echo_server -- --port 9001

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pushwire_ws::{Config, Registry, Socket, server};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::EnvFilter;

/// How long a client may take to send its opening handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the registry visits every connection for keepalive.
const KEEPALIVE_SWEEP: Duration = Duration::from_secs(1);
/// How long Ctrl-C waits for open connections to finish their close handshake.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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
async fn main() -> std::io::Result<()> {
    // Logs to standard error, at `info` unless `RUST_LOG` says otherwise.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let mut config = Config {
        // The conformance suite sends messages of up to 16 MiB.
        max_message_size: 64 << 20,
        ..Config::default()
    };
    config.deflate.enabled = !args.no_deflate;
    let config = Arc::new(config);

    let listener = TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("echo server at ws://{}/", listener.local_addr()?);
    let registry = Arc::new(Registry::default());
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::spawn(Arc::clone(&registry).sweep_until(KEEPALIVE_SWEEP, stop.clone()));
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                // Out of file descriptors, or a connection reset before it was
                // accepted: the listener itself is fine.
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        connections.spawn(serve(tcp, Arc::clone(&config), Arc::clone(&registry)));
    }
    // Ctrl-C: every connection is closed with 1001, then we wait (bounded) for
    // their close handshakes.
    stop.cancel();
    registry.shutdown();
    connections.close();
    let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, connections.wait()).await;
    Ok(())
}

/// One connection: the handshake, then the echo beside the frame layer.
async fn serve(tcp: TcpStream, config: Arc<Config>, registry: Arc<Registry>) {
    // Small echoes go out at once rather than waiting for Nagle's algorithm.
    let _ = tcp.set_nodelay(true);
    let (socket, frames) =
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, server::accept(tcp, config)).await {
            Ok(Ok(opened)) => opened,
            Ok(Err(err)) => return tracing::debug!(error = %err, "no WebSocket"),
            Err(_) => return tracing::debug!("the handshake timed out"),
        };
    registry.add(&socket);
    let (outcome, ()) = tokio::join!(frames, echo(socket));
    tracing::debug!(code = %outcome.code, reason = %outcome.reason, "closed");
}

/// Sends every message back as it came.
async fn echo(mut socket: Socket) {
    while let Some(message) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}
