//! `examples/pusher.rs` runs: a Pusher client connects to its app, subscribes to
//! the channel `clock`, and gets the backend's pushwire publishes as the event
//! `message`.

use crate::common;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The next text frame as JSON (pings and pongs skipped), failing after a step.
async fn next_event(client: &mut common::Client) -> Value {
    loop {
        let frame = tokio::time::timeout(common::STEP, client.next())
            .await
            .expect("no frame in time")
            .expect("connection ended")
            .expect("frame");
        if let WsMessage::Text(text) = frame {
            return serde_json::from_str(text.as_str()).expect("a JSON event");
        }
    }
}

#[tokio::test]
async fn the_pusher_example_pushes_its_clock_to_a_pusher_client() {
    let (_example, line) = common::start_example("pusher").await;
    let url = line
        .trim()
        .strip_prefix("pusher-js at ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let mut client = common::connect(&format!("{url}?protocol=7&client=test&version=1")).await;
    let established = next_event(&mut client).await;
    assert_eq!(established["event"], "pusher:connection_established");
    let data: Value = serde_json::from_str(established["data"].as_str().expect("data string"))
        .expect("data is JSON text");
    assert!(data["socket_id"].is_string(), "{data}");

    let subscribe = json!({"event": "pusher:subscribe", "data": {"channel": "clock"}});
    client
        .send(WsMessage::text(subscribe.to_string()))
        .await
        .expect("send");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let event = next_event(&mut client).await;
        if event["event"] == "message" {
            assert_eq!(event["channel"], "clock");
            let published: Value =
                serde_json::from_str(event["data"].as_str().expect("data string"))
                    .expect("the published JSON");
            assert!(
                published.as_str().is_some_and(|d| d.starts_with("up ")),
                "{event}"
            );
            return;
        }
        seen.push(event);
    }
    panic!("no clock event arrived: {seen:?}");
}
