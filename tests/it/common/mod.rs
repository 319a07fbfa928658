//! Helpers shared by the integration tests, each written once: here, start a
//! server on a free loopback port, connect independent clients
//! (tokio-tungstenite), and speak raw HTTP and WebSocket frames where a client
//! library would normalise the request away; in the modules, the rest by subject:
//! the built binary (`binary`), the bad-input corpus (`corpus`), Redis and nodes
//! (`redis`), Mercure hubs, tokens and streams (`mercure`), Server-Sent Events (`sse`), certificates and a TLS client (`tls`),
//! tokens (`tokens`), and the topic protocol (`topics`).
//!
//! Every helper is used by some test: the binary has no `allow(dead_code)`.

pub mod binary;
#[path = "../../../crates/pushwire-ws/tests/common/raw.rs"]
mod raw;
pub use raw::*;
pub mod corpus;
pub mod mercure;
pub mod prometheus;
pub mod redis;
pub mod sse;
pub mod tls;
pub mod tokens;
pub mod topics;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pushwire::App;
use pushwire::config::ServeConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The longest any single step of a test may wait.
pub const STEP: Duration = Duration::from_secs(10);

pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server running in this process until stopped or dropped.
pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), pushwire::Error>>>,
}

impl Running {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Asks the server to shut down gracefully and waits (bounded) until it has.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server did not stop within 20 s")
                .expect("server task panicked");
            result.expect("server returned an error");
        }
    }
}

impl Running {
    /// [`stop`](Self::stop)s the server while `clients` read on and answer its close
    /// frame, as a browser's socket would. A client the test holds but no longer
    /// reads cannot answer it: the server would wait its close timeout (5 s) for
    /// each such client before it can finish.
    pub async fn stop_with(self, clients: &mut [&mut dyn AnswersClose]) {
        let answers = futures_util::future::join_all(clients.iter_mut().map(|c| c.answer_close()));
        tokio::join!(self.stop(), answers);
    }
}

/// A WebSocket client that can read on until the server ends the connection,
/// answering its close frame (see [`Running::stop_with`]). Best effort, bounded
/// by [`STEP`]: what comes before the close frame is skipped.
pub trait AnswersClose {
    fn answer_close(&mut self) -> std::pin::Pin<Box<dyn Future<Output = ()> + '_>>;
}

impl AnswersClose for Client {
    fn answer_close(&mut self) -> std::pin::Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            let _ = tokio::time::timeout(STEP, async {
                // The client library queues its answer to a close frame and sends it
                // at the next read, which also sees the server end the connection.
                while let Some(Ok(_)) = self.next().await {}
            })
            .await;
        })
    }
}

/// A raw WebSocket connection ([`raw_ws`]): answers the close frame with an empty one.
impl AnswersClose for TcpStream {
    fn answer_close(&mut self) -> std::pin::Pin<Box<dyn Future<Output = ()> + '_>> {
        Box::pin(async move {
            let _ = tokio::time::timeout(STEP, async {
                loop {
                    let mut head = [0u8; 2];
                    if self.read_exact(&mut head).await.is_err() {
                        return;
                    }
                    let len = match head[1] & 0x7F {
                        126 => {
                            let mut ext = [0u8; 2];
                            if self.read_exact(&mut ext).await.is_err() {
                                return;
                            }
                            u64::from(u16::from_be_bytes(ext))
                        }
                        127 => {
                            let mut ext = [0u8; 8];
                            if self.read_exact(&mut ext).await.is_err() {
                                return;
                            }
                            u64::from_be_bytes(ext)
                        }
                        n => u64::from(n),
                    };
                    let mut payload = (&mut *self).take(len);
                    if tokio::io::copy(&mut payload, &mut tokio::io::sink())
                        .await
                        .is_err()
                    {
                        return;
                    }
                    if head[0] & 0x0F == 0x8 {
                        let _ = self.write_all(&masked_frame(0x88, b"")).await;
                        let _ = tokio::io::copy(self, &mut tokio::io::sink()).await;
                        return;
                    }
                }
            })
            .await;
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Binds `app` to a free loopback port and runs it in the background.
pub async fn start(app: App) -> Running {
    let server = app.bind("127.0.0.1:0").await.expect("bind a free port");
    let addr = server.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));
    Running {
        addr,
        stop: Some(stop),
        task: Some(task),
    }
}

/// The counter demo with `interval`, on a free port.
pub async fn start_demo(interval: Duration) -> Running {
    let config = ServeConfig {
        port: 0,
        interval,
        ..ServeConfig::default()
    };
    start(pushwire::node::app(&config).expect("demo app")).await
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
///
/// A close frame is answered before it is returned, as a browser does: the client
/// library only queues its answer, and sends it at the next read or write, which a
/// test that has seen the close rarely makes (the server would wait its close
/// timeout for it).
pub async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> WsMessage {
    let frame = tokio::time::timeout(STEP, client.next())
        .await
        .expect("no message within the time limit")
        .expect("stream ended")
        .expect("protocol error");
    if let WsMessage::Close(_) = frame {
        // Best effort: the server may have closed the connection already.
        let _ = tokio::time::timeout(STEP, client.flush()).await;
    }
    frame
}

/// The next message other than a ping, failing the test after [`STEP`].
///
/// The server's keepalive pings come at a random moment of their interval, so any
/// test may see one; the client library answers them by itself, as a browser does.
pub async fn next<S: AsyncRead + AsyncWrite + Unpin>(client: &mut WebSocketStream<S>) -> WsMessage {
    loop {
        match next_frame(client).await {
            WsMessage::Ping(_) => continue,
            other => return other,
        }
    }
}

/// The next text message, skipping only pings: anything else fails the test.
pub async fn next_text<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> String {
    match next(client).await {
        WsMessage::Text(text) => text.to_string(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// Skips text messages until the close frame, and returns it.
pub async fn next_close(
    client: &mut Client,
) -> Option<tokio_tungstenite::tungstenite::protocol::CloseFrame> {
    loop {
        match next(client).await {
            WsMessage::Text(_) => continue,
            WsMessage::Close(frame) => return frame,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Sends `request` as is over a fresh TCP connection and returns the whole response
/// (the request should say `Connection: close`).
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut response))
        .await
        .expect("response timed out")
        .expect("read response");
    String::from_utf8_lossy(&response).into_owned()
}

/// A `GET path` over raw TCP; returns the status code and the body.
pub async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Starts `examples/<name>` (built by `cargo test` next to the test binaries) with
/// the argument `0` (a free port), from the repository root, and returns it with
/// the first line it printed (failing the test after [`STEP`]).
pub async fn start_example(name: &str) -> (binary::Process, String) {
    start_example_with(name, &["0"]).await
}

/// Where the example `name` was built (next to the test binary's profile), failing
/// the test when it is missing.
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let path = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps")
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --example {name}`",
        path.display()
    );
    path
}

/// [`start_example`] with these arguments.
pub async fn start_example_with(name: &str, args: &[&str]) -> (binary::Process, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new(example_path(name))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start the {name} example: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let example = binary::Process(child);
    let line = tokio::time::timeout(
        STEP,
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("the example printed no URL")
    .expect("reader")
    .expect("read stdout");
    (example, line)
}
