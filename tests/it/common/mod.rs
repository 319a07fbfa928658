//! Helpers shared by the integration tests, each written once: here, start a
//! server on a free loopback port, connect independent clients
//! (tokio-tungstenite), and speak raw HTTP and WebSocket frames where a client
//! library would normalise the request away; in the modules, the rest by subject:
//! the built binary (`binary`), the bad-input corpus (`corpus`), Redis and nodes
//! (`redis`), Server-Sent Events (`sse`), certificates and a TLS client (`tls`),
//! tokens (`tokens`), and the topic protocol (`topics`).
//!
//! Every helper is used by some test: the binary has no `allow(dead_code)`.

pub mod binary;
pub mod corpus;
pub mod redis;
pub mod sse;
pub mod tls;
pub mod tokens;
pub mod topics;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
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
pub async fn next_frame<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> WsMessage {
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

/// Opens a WebSocket by hand over TCP (for sending frames no client library would)
/// and returns the stream positioned after the 101 response.
pub async fn raw_ws(addr: SocketAddr, path: &str) -> TcpStream {
    raw_ws_with(addr, path, "").await.0
}

/// [`raw_ws`] with `extra` header lines (each ending in `\r\n`) in the request;
/// also returns the response head.
pub async fn raw_ws_with(addr: SocketAddr, path: &str, extra: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    );
    tcp.write_all(request.as_bytes())
        .await
        .expect("write handshake");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        let n = tokio::time::timeout(STEP, tcp.read(&mut byte))
            .await
            .expect("handshake response timed out")
            .expect("read handshake response");
        assert_eq!(n, 1, "connection closed during the handshake: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 101 "), "not upgraded: {head}");
    (tcp, head)
}

/// Encodes one masked client frame with the given first byte and payload.
pub fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let key = [0x11, 0x22, 0x33, 0x44];
    let mut frame = vec![first_byte];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xFFFF => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// Writes one masked client frame with the given first byte and payload.
pub async fn write_frame(tcp: &mut TcpStream, first_byte: u8, payload: &[u8]) {
    tcp.write_all(&masked_frame(first_byte, payload))
        .await
        .expect("write frame");
}

/// Reads one server frame (unmasked, payload under 64 KiB): `(first byte, payload)`.
pub async fn read_frame(tcp: &mut TcpStream) -> (u8, Vec<u8>) {
    let read = async {
        let mut head = [0u8; 2];
        tcp.read_exact(&mut head).await?;
        assert_eq!(head[1] & 0x80, 0, "server frames must not be masked");
        let len = match head[1] & 0x7F {
            126 => {
                let mut ext = [0u8; 2];
                tcp.read_exact(&mut ext).await?;
                usize::from(u16::from_be_bytes(ext))
            }
            127 => panic!("unexpectedly large frame"),
            len => usize::from(len),
        };
        let mut payload = vec![0u8; len];
        tcp.read_exact(&mut payload).await?;
        Ok::<_, std::io::Error>((head[0], payload))
    };
    tokio::time::timeout(STEP, read)
        .await
        .expect("frame timed out")
        .expect("read frame")
}

/// Reads frames until a close frame and returns its code and reason; data frames
/// before it are skipped.
pub async fn read_close(tcp: &mut TcpStream) -> (u16, String) {
    for _ in 0..10_000 {
        let (first, payload) = read_frame(tcp).await;
        if first & 0x0F == 0x8 {
            assert_eq!(first, 0x88, "close frame must be final with no RSV bits");
            if payload.is_empty() {
                return (1005, String::new());
            }
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
        }
    }
    panic!("no close frame within 10,000 frames");
}

/// Whether the server has closed the TCP connection (EOF) within [`STEP`],
/// discarding anything it still sends.
pub async fn closed_by_server(tcp: &mut TcpStream) -> bool {
    let mut sink = [0u8; 1024];
    let drained = async {
        loop {
            match tcp.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(STEP, drained).await.unwrap_or(false)
}

/// Starts `examples/<name>` (built by `cargo test` next to the test binaries) with
/// the argument `0` (a free port), from the repository root, and returns it with
/// the first line it printed (failing the test after [`STEP`]).
pub async fn start_example(name: &str) -> (binary::Process, String) {
    start_example_with(name, &["0"]).await
}

/// [`start_example`] with these arguments.
pub async fn start_example_with(name: &str, args: &[&str]) -> (binary::Process, String) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
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
    let mut child = Command::new(path)
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
