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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
