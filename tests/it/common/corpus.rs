//! The harness of the bad-input corpus (`hostile` and `hostile_more`): the demo
//! server, a subscriber that must lose nothing while hostile clients do their
//! worst, and the check that a normal client is still served afterwards.

use std::net::SocketAddr;

use pushwire::config::ServeConfig;
use serde_json::{Value, json};

use super::topics::{next_json, send, send_text};
use super::{Client, Running, STEP, connect, raw_get, start};

/// The demo server (pages, counter, topics) with `config`, on a free port.
pub async fn start_with(config: ServeConfig) -> Running {
    start(demo(config)).await
}

/// The demo app with `config`, for a free port.
pub fn demo(config: ServeConfig) -> pushwire::App {
    let config = ServeConfig { port: 0, ..config };
    pushwire::node::app(&config).expect("demo app")
}

/// A subscriber that reads everything (in a task of its own, so that it answers
/// the server's pings as a browser does), and checks at the end that it got
/// exactly the messages published, in order.
pub struct Watcher {
    pushes: tokio::sync::mpsc::UnboundedReceiver<Value>,
    topic: String,
}

impl Watcher {
    /// Subscribes to `topic` on the server at `addr`.
    pub async fn new(addr: SocketAddr, topic: &str) -> Self {
        let mut client = ws_client(addr).await;
        send(&mut client, json!({"op":"sub","id":1,"topic":topic})).await;
        let reply = next_json(&mut client).await;
        assert!(reply["ok"].is_object(), "subscribe: {reply}");
        let (tx, pushes) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            use futures_util::StreamExt;
            while let Some(Ok(message)) = client.next().await {
                if let Ok(text) = message.to_text()
                    && let Ok(push) = serde_json::from_str::<Value>(text)
                    && tx.send(push).is_err()
                {
                    return;
                }
            }
        });
        Self {
            pushes,
            topic: topic.to_owned(),
        }
    }

    /// Waits until it has seen `n` messages: they must be `0..n`, in order.
    pub async fn expect_all(mut self, n: u64) {
        for expected in 0..n {
            let push = tokio::time::timeout(STEP, self.pushes.recv())
                .await
                .expect("the watcher waited in vain")
                .expect("the watcher's connection ended");
            assert_eq!(push["topic"], self.topic.as_str(), "{push}");
            assert_eq!(
                push["data"],
                json!({ "n": expected }),
                "watcher lost a message"
            );
        }
    }
}

/// A `/ws` client past its hello.
pub async fn ws_client(addr: SocketAddr) -> Client {
    let mut client = connect(&format!("ws://{addr}/ws")).await;
    let hello = next_json(&mut client).await;
    assert!(hello["hello"].is_object(), "{hello}");
    client
}

/// Publishes `{"n": n}` on `topic` through the HTTP API.
pub async fn publish(addr: SocketAddr, topic: &str, n: u64) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/api/publish/{topic}"))
        .json(&json!({ "n": n }))
        .timeout(STEP)
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status(), 200, "publish {n}");
}

/// Publishes `body` `count` times on `topic` through the HTTP API, each answered
/// 200; with `news_every: Some(k)`, after every `k`-th of them (the first
/// included) also `{"n": i}` on `news`, the watchers' topic, `i` counting from 0.
pub async fn flood(addr: SocketAddr, topic: &str, body: &str, count: u64, news_every: Option<u64>) {
    let client = reqwest::Client::new();
    for n in 0..count {
        let response = client
            .post(format!("http://{addr}/api/publish/{topic}"))
            .body(body.to_owned())
            .timeout(STEP)
            .send()
            .await
            .expect("publish");
        assert_eq!(response.status(), 200);
        if let Some(every) = news_every
            && n % every == 0
        {
            publish(addr, "news", n / every).await;
        }
    }
}

/// A normal client can still connect, subscribe, publish and receive, and `/`
/// still answers.
pub async fn a_normal_client_is_served(addr: SocketAddr) {
    let mut client = ws_client(addr).await;
    send(&mut client, json!({"op":"sub","id":"a","topic":"after"})).await;
    assert!(next_json(&mut client).await["ok"].is_object());
    send(
        &mut client,
        json!({"op":"pub","id":"b","topic":"after","data":"still here"}),
    )
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(next_json(&mut client).await);
    }
    assert!(
        got.iter().any(|m| m["data"] == "still here"),
        "the message came back: {got:?}"
    );
    let (status, body) = raw_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(body.contains("id=\"data\""));
}

/// Sends `text` over `/ws` and answers the error reply's code (panics if the
/// answer is not an error reply).
pub async fn error_code(client: &mut Client, text: &str) -> u64 {
    send_text(client, text).await;
    let reply = next_json(client).await;
    reply["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("{text:.80}: expected an error, got {reply}"))
}
