//! Helpers shared by the frame layer's integration tests: a server on a free
//! loopback port built from `pushwire_ws::server::accept` alone (an accept loop,
//! one handler per socket, a `Registry` sweeping for keepalive), an independent
//! client (tokio-tungstenite), and raw frames where a client library would not
//! send what a test needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pushwire_ws::{Config, Registry, Socket, server};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest any single step of a test may wait.
pub const STEP: Duration = Duration::from_secs(10);

/// How often the registry visits every connection for keepalive (as pushwire's
/// server does).
const KEEPALIVE_SWEEP: Duration = Duration::from_secs(1);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server running in this process until stopped or dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Closes every connection with 1001 and waits (bounded) until each has
    /// finished its close handshake and its handler has returned.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server did not stop within 20 s")
                .expect("server task panicked");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Serves WebSocket connections on a free loopback port with `config`, any path:
/// each accepted TCP stream goes through `server::accept`, its socket is added to
/// the registry and handed to `handler`, and the frame layer runs beside it.
pub async fn start<H, F>(config: Config, handler: H) -> Running
where
    H: Fn(Socket) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a free port");
    let addr = listener.local_addr().expect("local address");
    let config = Arc::new(config);
    let handler = Arc::new(handler);
    let registry = Arc::new(Registry::default());
    let stop = CancellationToken::new();
    let sweeper = tokio::spawn(Arc::clone(&registry).sweep_until(KEEPALIVE_SWEEP, stop.clone()));
    let stopped = stop.clone();
    let task = tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let tcp = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
                () = stopped.cancelled() => break,
            };
            let _ = tcp.set_nodelay(true);
            let (config, handler, registry) = (
                Arc::clone(&config),
                Arc::clone(&handler),
                Arc::clone(&registry),
            );
            connections.spawn(async move {
                let Ok((socket, frames)) = server::accept(tcp, config).await else {
                    return;
                };
                registry.add(&socket);
                let ((), _outcome) = tokio::join!(handler(socket), frames);
            });
        }
        registry.shutdown();
        connections.close();
        connections.wait().await;
        let _ = sweeper.await;
    });
    Running {
        addr,
        stop,
        task: Some(task),
    }
}

/// Connects a WebSocket client, failing the test after [`STEP`].
pub async fn connect(url: &str) -> Client {
    let (client, response) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake timed out")
        .expect("handshake failed");
    assert_eq!(response.status(), 101);
    client
}

/// The next frame of any kind, pings included, failing the test after [`STEP`].
pub async fn next_frame(client: &mut Client) -> WsMessage {
    tokio::time::timeout(STEP, client.next())
        .await
        .expect("no message within the time limit")
        .expect("stream ended")
        .expect("protocol error")
}

/// The next message other than a ping, failing the test after [`STEP`].
///
/// The server's keepalive pings come at a random moment of their interval, so any
/// test may see one; the client library answers them by itself, as a browser does.
pub async fn next(client: &mut Client) -> WsMessage {
    loop {
        match next_frame(client).await {
            WsMessage::Ping(_) => continue,
            other => return other,
        }
    }
}

#[path = "raw.rs"]
mod raw;
pub use raw::*;
