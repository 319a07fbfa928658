//! What pushwire's HTTP server adds around a WebSocket upgrade, beyond the frame
//! layer (whose own tests are in `crates/pushwire-ws/tests/`): the HTTP limits
//! that bound a handshake.

use crate::common;

use std::time::Duration;

use common::{closed_by_server, start};
use pushwire::{App, HttpLimits, Socket};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn echo(mut socket: Socket) {
    while let Some(message) = socket.recv().await {
        if socket.send(message).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_the_handshake_is_dropped_after_the_timeout() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    };
    let server = start(App::new().http_limits(limits).socket("/echo", echo)).await;
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .expect("partial request");
    let started = tokio::time::Instant::now();
    assert!(
        closed_by_server(&mut tcp).await,
        "the server kept a half-sent handshake open"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    server.stop().await;
}
