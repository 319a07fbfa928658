//! Per-address connection limits over IPv6, on real sockets: a server on [::1]
//! counts its IPv6 clients by /64 network (all of loopback, ::1, is one /64; that
//! two addresses of one /64 count together is shown by the unit test
//! `ipv6_addresses_count_by_their_64_network` in `src/http/limits.rs`).

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::STEP;
use pushwire::ConnectionLimits;
use pushwire::config::ServeConfig;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Sends a keep-alive `GET /healthz` on `tcp` and reads the response head's status.
async fn status_on(tcp: &mut TcpStream, addr: SocketAddr) -> u16 {
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    let mut buffer = [0u8; 1024];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let read = tokio::time::timeout(STEP, tcp.read(&mut buffer))
            .await
            .expect("response timed out")
            .expect("read");
        assert!(read > 0, "closed before a response: {response:?}");
        response.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"))
}

#[tokio::test]
async fn an_ipv6_client_is_held_to_the_per_address_limit() {
    let config = ServeConfig {
        port: 0,
        connection_limits: ConnectionLimits {
            max_connections_per_ip: 1,
            ..ConnectionLimits::default()
        },
        ..ServeConfig::default()
    };
    let server = pushwire::node::app(&config)
        .expect("demo app")
        .bind("[::1]:0")
        .await
        .expect("bind [::1] (is IPv6 loopback available?)");
    let addr = server.local_addr();
    assert!(addr.is_ipv6());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(server.run_until(async {
        let _ = stopped.await;
    }));

    // The first connection from ::1 holds the one place of its /64.
    let mut first = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(status_on(&mut first, addr).await, 200);
    // A second one from the same /64 is refused.
    let (status, body) = common::raw_get(addr, "/healthz").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too many connections from your address (at most 1)"),
        "{body}"
    );
    // The first one still works; once it closes, the place comes back.
    assert_eq!(status_on(&mut first, addr).await, 200);
    drop(first);
    let deadline = Instant::now() + STEP;
    loop {
        let (status, _) = common::raw_get(addr, "/healthz").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 429);
        assert!(Instant::now() < deadline, "the place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("server did not stop")
        .expect("server task")
        .expect("server error");
}
