//! The counter demo over real sockets, with tokio-tungstenite as the independent
//! client: each connection counts on its own, on time, and closes properly.

use crate::common;

use std::time::Duration;

use common::{connect, next, next_text, start_demo};
use futures_util::SinkExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test]
async fn counter_sends_consecutive_numbers_one_per_interval() {
    let interval = Duration::from_millis(50);
    let server = start_demo(interval).await;
    let before_open = Instant::now();
    let mut client = connect(&server.ws_url("/socket")).await;
    for n in 1..=20u32 {
        assert_eq!(next_text(&mut client).await, n.to_string());
        // Message n is due at open + n × interval; it never comes early.
        assert!(
            before_open.elapsed() >= interval * n,
            "message {n} came after {:?}, before its time",
            before_open.elapsed()
        );
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn every_connection_starts_its_own_counter_at_one() {
    let server = start_demo(Duration::from_millis(30)).await;
    let mut first = connect(&server.ws_url("/socket")).await;
    for n in 1..=3 {
        assert_eq!(next_text(&mut first).await, n.to_string());
    }
    let mut second = connect(&server.ws_url("/socket")).await;
    assert_eq!(next_text(&mut second).await, "1");
    assert_eq!(next_text(&mut second).await, "2");
    // The first keeps its own count, unaffected by the second.
    let n: u32 = next_text(&mut first).await.parse().expect("a number");
    assert!(n >= 4, "first connection went back to {n}");
    drop((first, second));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_clients_each_get_a_gapless_sequence() {
    let server = start_demo(Duration::from_millis(100)).await;
    let url = server.ws_url("/socket");
    let clients: Vec<_> = (0..1000)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let mut client = connect(&url).await;
                let mut seen = Vec::new();
                for _ in 0..5 {
                    seen.push(next_text(&mut client).await);
                }
                client.close(None).await.expect("close");
                seen
            })
        })
        .collect();
    for client in clients {
        let seen = client.await.expect("client task");
        assert_eq!(seen, ["1", "2", "3", "4", "5"]);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_close_gets_the_close_handshake_and_then_tcp_close() {
    let server = start_demo(Duration::from_millis(20)).await;
    let mut client = connect(&server.ws_url("/socket")).await;
    assert_eq!(next_text(&mut client).await, "1");
    client
        .send(WsMessage::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("send close");
    // Counter messages already in flight may come first; then the echo of our code.
    let reply = common::next_close(&mut client).await;
    assert_eq!(reply.map(|f| f.code), Some(CloseCode::Normal));
    // After the handshake the server closes the connection.
    let end = tokio::time::timeout(common::STEP, futures_util::StreamExt::next(&mut client))
        .await
        .expect("server did not close the TCP connection");
    assert!(end.is_none() || end.is_some_and(|r| r.is_err()));
    server.stop().await;
}

#[tokio::test]
async fn a_ping_is_answered_with_a_pong_of_the_same_payload() {
    let server = start_demo(Duration::from_secs(3600)).await;
    let mut client = connect(&server.ws_url("/socket")).await;
    client
        .send(WsMessage::Ping(b"are you there?".to_vec().into()))
        .await
        .expect("send ping");
    match next(&mut client).await {
        WsMessage::Pong(payload) => assert_eq!(&payload[..], b"are you there?"),
        other => panic!("expected a pong, got {other:?}"),
    }
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_going_away() {
    let server = start_demo(Duration::from_millis(20)).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = connect(&server.ws_url("/socket")).await;
        assert_eq!(next_text(&mut client).await, "1");
        clients.push(client);
    }
    let stopping = tokio::spawn(server.stop());
    for mut client in clients {
        let frame = common::next_close(&mut client).await.expect("a close code");
        assert_eq!(frame.code, CloseCode::Away);
        assert_eq!(frame.reason.as_str(), "server shutting down");
        // Reading on sends our close reply; then the server ends the connection.
        let end = tokio::time::timeout(common::STEP, futures_util::StreamExt::next(&mut client))
            .await
            .expect("server did not close the TCP connection");
        assert!(end.is_none() || end.is_some_and(|r| r.is_err()));
    }
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .expect("shutdown finished")
        .expect("shutdown task");
}
