//! Helpers for the topic tests: a server with a hub, JSON over an independent
//! WebSocket client (tokio-tungstenite), the publish API over reqwest.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use pushwire::broker::Broker;
use pushwire::protocol::session::SessionConfig;
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{Client, Running, STEP, connect, next_text, start};

/// A server with topics on `hub` (and nothing else), on a free port.
pub async fn start_hub(hub: Hub) -> Running {
    start(App::new().topics(hub)).await
}

/// A server with topics and `config`; also answers the hub, for in-process publishing.
pub async fn start_topics(config: HubConfig) -> (Running, Hub) {
    let hub = Hub::new(config);
    (start_hub(hub.clone()).await, hub)
}

/// A server with topics, `config`, and the session rules `session`.
pub async fn start_topics_with(config: HubConfig, session: SessionConfig) -> (Running, Hub) {
    let hub = Hub::new(config);
    let app = App::new().topics(hub.clone()).session_config(session);
    (start(app).await, hub)
}

/// A server on a hub with `broker`.
pub async fn start_with_broker(config: HubConfig, broker: Arc<dyn Broker>) -> (Running, Hub) {
    let hub = Hub::with_broker(config, broker);
    (start_hub(hub.clone()).await, hub)
}

/// A `/ws` client past its hello; answers the client id too.
pub async fn ws(server: &Running) -> (Client, String) {
    let mut client = connect(&server.ws_url("/ws")).await;
    let hello = next_json(&mut client).await;
    let id = hello["hello"]["client"]
        .as_str()
        .unwrap_or_else(|| panic!("no client id in {hello}"))
        .to_owned();
    assert_eq!(hello["hello"]["version"], 1);
    (client, id)
}

/// Sends one JSON request.
pub async fn send(client: &mut Client, request: Value) {
    tokio::time::timeout(STEP, client.send(WsMessage::text(request.to_string())))
        .await
        .expect("send timed out")
        .expect("send failed");
}

/// Sends raw text.
pub async fn send_text(client: &mut Client, text: &str) {
    tokio::time::timeout(STEP, client.send(WsMessage::text(text)))
        .await
        .expect("send timed out")
        .expect("send failed");
}

/// The next message, parsed as JSON.
pub async fn next_json<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut WebSocketStream<S>,
) -> Value {
    let text = next_text(client).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The next text message as JSON (pings and pongs skipped), within `limit` in
/// all; `None` on close, error or timeout.
pub async fn next_json_within(client: &mut Client, limit: Duration) -> Option<Value> {
    use futures_util::StreamExt as _;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, client.next()).await.ok()?? {
            Ok(WsMessage::Text(text)) => return serde_json::from_str(&text).ok(),
            Ok(WsMessage::Ping(_) | WsMessage::Pong(_)) => continue,
            _ => return None,
        }
    }
}

/// Sends a request and returns the next message, which must be its reply.
pub async fn request(client: &mut Client, request: Value) -> Value {
    let id = request["id"].clone();
    send(client, request).await;
    let reply = next_json(client).await;
    assert_eq!(reply["id"], id, "expected the reply to {id}, got {reply}");
    reply
}

/// Subscribes and returns the `ok` of the reply (failing on an error reply).
pub async fn sub(client: &mut Client, topic: &str, since: Option<Value>) -> Value {
    let mut req = json!({"op": "sub", "id": topic, "topic": topic});
    if let Some(since) = since {
        req["since"] = since;
    }
    let reply = request(client, req).await;
    assert!(reply["ok"].is_object(), "sub failed: {reply}");
    reply["ok"].clone()
}

/// The next `n` messages on the client, each checked to be a push (no reply, no
/// presence event).
pub async fn pushes(client: &mut Client, n: usize) -> Vec<Value> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let push = next_json(client).await;
        assert!(push["offset"].is_u64(), "expected a message, got {push}");
        out.push(push);
    }
    out
}

/// The offsets of `pushes`.
pub fn offsets(pushes: &[Value]) -> Vec<u64> {
    pushes.iter().filter_map(|p| p["offset"].as_u64()).collect()
}

/// Publishes through the hub (in-process) and returns the offset.
pub async fn publish(hub: &Hub, topic: &str, data: Value) -> u64 {
    let topic = pushwire::Topic::new(topic).expect("valid topic");
    let data = pushwire::Data::json(data.to_string()).expect("valid JSON");
    hub.publish(&topic, data).await.expect("publish").offset
}

/// `POST /api/publish/{topic}` with a JSON body; answers the status and body.
pub async fn publish_http(server: &Running, topic: &str, body: &str) -> (u16, Value) {
    let response = tokio::time::timeout(
        STEP,
        reqwest::Client::new()
            .post(server.url(&format!("/api/publish/{topic}")))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send(),
    )
    .await
    .expect("publish timed out")
    .expect("publish failed");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A `/ws` that says hello, answers one `sub`, then closes the connection with
/// 1008 "slow consumer", as the hub does with a subscriber that falls behind.
pub async fn evictor(mut socket: pushwire::Socket) {
    let _ = socket
        .send(r#"{"hello":{"client":"ev-1","version":1}}"#)
        .await;
    if let Some(request) = socket.recv().await {
        let request: Value =
            serde_json::from_str(request.as_text().unwrap_or("{}")).unwrap_or_default();
        let reply = format!(
            r#"{{"id":{},"ok":{{"topic":"news","epoch":"E1","offset":0}}}}"#,
            request["id"]
        );
        let _ = socket.send(reply).await;
    }
    socket.close(pushwire::CloseCode::POLICY, "slow consumer");
}
