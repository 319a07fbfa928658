//! The HTTP side of topics over real sockets: Server-Sent Events (`/sse`),
//! long-polling (`/poll`) and the publish API, each read with reqwest.

use crate::common;

use std::time::Duration;

use common::sse::Sse;
use common::topics::*;
use common::{Running, STEP, raw_http};
use pushwire::topic::HistoryConfig;
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};

/// The `/sse?{query}` URL of `server`.
fn sse_url(server: &Running, query: &str) -> String {
    server.url(&format!("/sse?{query}"))
}

async fn poll(server: &Running, query: &str) -> (u16, Value) {
    let response = tokio::time::timeout(
        Duration::from_secs(70),
        reqwest::get(server.url(&format!("/poll?{query}"))),
    )
    .await
    .expect("poll timed out")
    .expect("poll failed");
    let status = response.status().as_u16();
    let value = response.json().await.expect("poll answers JSON");
    (status, value)
}

fn enc(text: &str) -> String {
    text.replace('@', "%40")
        .replace(':', "%3A")
        .replace(',', "%2C")
}

#[tokio::test]
async fn sse_sends_positions_first_then_messages_with_ids_for_every_topic() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    publish(&hub, "b", json!("before")).await;
    let mut sse = Sse::open(&sse_url(&server, "topic=a&topic=b"), None).await;
    let (first, subscribed) = sse.json().await;
    assert_eq!(first.event.as_deref(), Some("subscribed"));
    let subs = subscribed["subs"].as_array().expect("subs").clone();
    assert_eq!(subs.len(), 2);
    assert_eq!(subs[0]["offset"], 0);
    assert_eq!(subs[1]["offset"], 1);
    let (ea, eb) = (
        subs[0]["epoch"].as_str().unwrap_or(""),
        subs[1]["epoch"].as_str().unwrap_or(""),
    );
    assert_eq!(first.id, Some(format!("a@{ea}:0,b@{eb}:1")));

    publish(&hub, "a", json!({"x": 1})).await;
    publish(&hub, "b", json!("two")).await;
    let (e1, m1) = sse.json().await;
    assert_eq!(e1.event, None);
    assert_eq!(
        m1,
        json!({"topic": "a", "epoch": ea, "offset": 1, "data": {"x": 1}})
    );
    assert_eq!(e1.id, Some(format!("a@{ea}:1,b@{eb}:1")));
    let (e2, m2) = sse.json().await;
    assert_eq!(m2["data"], "two");
    assert_eq!(e2.id, Some(format!("a@{ea}:1,b@{eb}:2")));
    server.stop().await;
}

#[tokio::test]
async fn sse_reconnect_with_last_event_id_recovers_the_gap() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let mut sse = Sse::open(&sse_url(&server, "topic=news"), None).await;
    sse.next().await;
    for n in 1..=3 {
        publish(&hub, "news", json!(n)).await;
    }
    let mut last_id = String::new();
    for n in 1..=3 {
        let (event, push) = sse.json().await;
        assert_eq!(push["offset"], n);
        last_id = event.id.expect("id");
    }
    drop(sse);
    for n in 4..=6 {
        publish(&hub, "news", json!(n)).await;
    }
    // An outdated `since` in the URL loses to the browser's Last-Event-ID.
    let mut sse = Sse::open(
        &sse_url(&server, "topic=news&since=news%40Old1%3A0"),
        Some(&last_id),
    )
    .await;
    let (_, subscribed) = sse.json().await;
    assert_eq!(subscribed["subs"][0]["recovered"], true, "{subscribed}");
    publish(&hub, "news", json!(7)).await;
    let mut got = Vec::new();
    for _ in 4..=7 {
        got.push(sse.json().await.1["offset"].as_u64().unwrap_or(0));
    }
    assert_eq!(got, vec![4, 5, 6, 7]);
    server.stop().await;
}

#[tokio::test]
async fn sse_says_when_it_cannot_recover() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let mut sse = Sse::open(&sse_url(&server, "topic=news&since=news%40Gone1%3A5"), None).await;
    let (_, subscribed) = sse.json().await;
    assert_eq!(subscribed["subs"][0]["recovered"], false);
    server.stop().await;
}

#[tokio::test]
async fn sse_and_poll_refuse_bad_requests_with_json_errors() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let many: String = (0..101).map(|i| format!("topic=t{i}&")).collect();
    for path in ["/sse", "/poll"] {
        for (query, code) in [
            ("", 400),
            ("topic=a%20b", 422),
            ("topic=a&topic=a", 400),
            ("topic=a&since=garbage", 400),
            (many.as_str(), 400),
        ] {
            let response = reqwest::get(server.url(&format!("{path}?{query}")))
                .await
                .expect("request");
            assert_eq!(response.status().as_u16(), code, "{path}?{query}");
            let body: Value = response.json().await.expect("JSON error");
            assert_eq!(body["error"]["code"], code);
        }
    }
    let response = reqwest::Client::new()
        .get(server.url("/sse?topic=a"))
        .header("last-event-id", "nonsense")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 400);
    let (status, body) = poll(&server, "topic=a&since=a%40E%3A1&timeout=61000").await;
    assert_eq!((status, body["error"]["code"].as_u64()), (400, Some(400)));
    server.stop().await;
}

#[tokio::test]
async fn first_poll_answers_positions_at_once() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    publish(&hub, "a", json!(1)).await;
    let started = std::time::Instant::now();
    let (status, body) = poll(&server, "topic=a&topic=b").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(body["messages"], json!([]));
    let ea = body["subs"][0]["epoch"].as_str().unwrap_or("").to_owned();
    let eb = body["subs"][1]["epoch"].as_str().unwrap_or("").to_owned();
    assert_eq!(body["since"], format!("a@{ea}:1,b@{eb}:0"));
    server.stop().await;
}

#[tokio::test]
async fn a_poll_with_a_new_topic_answers_at_once_with_its_position() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (_, first) = poll(&server, "topic=a").await;
    let since = first["since"].as_str().unwrap_or("").to_owned();
    publish(&hub, "a", json!(1)).await;
    publish(&hub, "b", json!(1)).await;
    // `b` has no position yet: no waiting, `a`'s missed message comes along.
    let (_, body) = poll(&server, &format!("topic=a&topic=b&since={}", enc(&since))).await;
    assert_eq!(
        offsets(body["messages"].as_array().expect("messages")),
        vec![1]
    );
    assert_eq!(body["messages"][0]["topic"], "a");
    let eb = body["subs"][1]["epoch"].as_str().unwrap_or("").to_owned();
    assert!(
        body["since"]
            .as_str()
            .is_some_and(|s| s.ends_with(&format!("b@{eb}:1"))),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn poll_waits_for_the_next_message_and_times_out_empty() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (_, first) = poll(&server, "topic=a").await;
    let since = first["since"].as_str().unwrap_or("").to_owned();

    let (_, empty) = poll(
        &server,
        &format!("topic=a&since={}&timeout=200", enc(&since)),
    )
    .await;
    assert_eq!(empty["messages"], json!([]));
    assert_eq!(empty["since"], since);

    let waiting = tokio::spawn({
        let url = server.url(&format!("/poll?topic=a&since={}", enc(&since)));
        async move { reqwest::get(url).await?.json::<Value>().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&hub, "a", json!("wake")).await;
    let body = tokio::time::timeout(STEP, waiting)
        .await
        .expect("the poll did not answer after a publish")
        .expect("task")
        .expect("poll");
    assert_eq!(body["messages"][0]["data"], "wake");
    assert!(body["since"].as_str().is_some_and(|s| s.ends_with(":1")));
    server.stop().await;
}

#[tokio::test]
async fn poll_recovers_a_gap_and_reports_what_it_cannot() {
    let (server, hub) = start_topics(HubConfig {
        history: HistoryConfig {
            size: 5,
            ttl: Duration::from_secs(300),
        },
        ..HubConfig::default()
    })
    .await;
    let (_, first) = poll(&server, "topic=a").await;
    let since = first["since"].as_str().unwrap_or("").to_owned();
    for n in 1..=4 {
        publish(&hub, "a", json!(n)).await;
    }
    let (_, body) = poll(&server, &format!("topic=a&since={}", enc(&since))).await;
    assert_eq!(body["subs"][0]["recovered"], true);
    assert_eq!(
        offsets(body["messages"].as_array().expect("messages")),
        vec![1, 2, 3, 4]
    );
    let next_since = body["since"].as_str().unwrap_or("").to_owned();
    assert!(next_since.ends_with(":4"));

    for n in 5..=20 {
        publish(&hub, "a", json!(n)).await;
    }
    let (_, body) = poll(
        &server,
        &format!("topic=a&since={}&timeout=200", enc(&next_since)),
    )
    .await;
    assert_eq!(body["subs"][0]["recovered"], false, "{body}");
    assert_eq!(body["messages"], json!([]));
    assert!(body["since"].as_str().is_some_and(|s| s.ends_with(":20")));
    server.stop().await;
}

#[tokio::test]
async fn ws_sse_and_poll_deliver_the_same_messages_in_the_same_order() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    sub(&mut client, "x", None).await;
    sub(&mut client, "y", None).await;
    let mut sse = Sse::open(&sse_url(&server, "topic=x&topic=y"), None).await;
    sse.next().await;
    let (_, first) = poll(&server, "topic=x&topic=y").await;
    let mut since = first["since"].as_str().unwrap_or("").to_owned();

    for n in 0..60u32 {
        let topic = if n.is_multiple_of(3) { "y" } else { "x" };
        publish(&hub, topic, json!({"n": n})).await;
    }
    let over_ws = pushes(&mut client, 60).await;
    let mut over_sse = Vec::new();
    for _ in 0..60 {
        over_sse.push(sse.json().await.1);
    }
    let mut over_poll = Vec::new();
    while over_poll.len() < 60 {
        let (_, body) = poll(&server, &format!("topic=x&topic=y&since={}", enc(&since))).await;
        over_poll.extend(body["messages"].as_array().cloned().unwrap_or_default());
        since = body["since"].as_str().unwrap_or("").to_owned();
    }
    // Live, all three keep the publishing order; a poll that resumes from history
    // gets each topic's messages in order, topic after topic. Order is defined per
    // topic (docs/protocol.md), so that is what must match.
    assert_eq!(over_ws, over_sse);
    let per_topic = |pushes: &[Value], topic: &str| -> Vec<Value> {
        pushes
            .iter()
            .filter(|p| p["topic"] == topic)
            .cloned()
            .collect()
    };
    for topic in ["x", "y"] {
        assert_eq!(
            per_topic(&over_ws, topic),
            per_topic(&over_poll, topic),
            "{topic}"
        );
    }
    assert_eq!(over_poll.len(), 60);
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn publish_api_answers_positions_and_takes_json_or_text() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    sub(&mut client, "chat:lobby", None).await;
    let http = reqwest::Client::new();
    let text = http
        .post(server.url("/api/publish/chat:lobby"))
        .body("plain \"text\"")
        .send()
        .await
        .expect("publish");
    assert_eq!(text.status(), 200);
    let reply: Value = text.json().await.expect("JSON");
    assert_eq!(reply["topic"], "chat:lobby");
    assert_eq!(reply["offset"], 1);
    let (status, reply) = publish_http(&server, "chat:lobby", "{\n  \"a\": [1, 2]\n}\n").await;
    assert_eq!((status, reply["offset"].as_u64()), (200, Some(2)));
    let got = pushes(&mut client, 2).await;
    assert_eq!(got[0]["data"], "plain \"text\"");
    assert_eq!(got[1]["data"], json!({"a": [1, 2]}));

    let batch = http
        .post(server.url("/api/publish"))
        .header("content-type", "application/json")
        .body(r#"[{"topic":"chat:lobby","data":3},{"topic":"other","data":"x"}]"#)
        .send()
        .await
        .expect("batch");
    assert_eq!(batch.status(), 200);
    let reply: Value = batch.json().await.expect("JSON");
    assert_eq!(reply[0]["offset"], 3);
    assert_eq!(reply[1]["topic"], "other");
    assert_eq!(pushes(&mut client, 1).await[0]["data"], 3);
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn publish_api_refuses_bad_input_with_the_documented_status() {
    let (server, hub) = start_topics(HubConfig {
        max_data_size: 100,
        ..HubConfig::default()
    })
    .await;
    let http = reqwest::Client::new();
    let post = |path: &str, content_type: &str, body: Vec<u8>| {
        http.post(server.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let big_batch = format!(
        "[{}]",
        (0..1001)
            .map(|_| r#"{"topic":"a","data":1}"#)
            .collect::<Vec<_>>()
            .join(",")
    );
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (
            "/api/publish/a",
            "application/json",
            b"{broken".to_vec(),
            400,
        ),
        ("/api/publish/a", "text/plain", vec![0xff, 0xfe], 400),
        ("/api/publish/a%20b", "text/plain", b"x".to_vec(), 422),
        ("/api/publish/a", "text/plain", vec![b'x'; 101], 413),
        ("/api/publish", "application/json", b"{}".to_vec(), 400),
        ("/api/publish", "application/json", b"[]".to_vec(), 400),
        (
            "/api/publish",
            "application/json",
            big_batch.into_bytes(),
            400,
        ),
        (
            "/api/publish",
            "application/json",
            br#"[{"topic":"a","data":1},{"topic":"b c","data":1}]"#.to_vec(),
            422,
        ),
        (
            "/api/publish",
            "application/json",
            format!(r#"[{{"topic":"a","data":"{}"}}]"#, "x".repeat(200)).into_bytes(),
            413,
        ),
        (
            "/api/publish",
            "application/json",
            vec![b' '; 2 * 1024 * 1024],
            413,
        ),
    ];
    for (path, content_type, body, status) in cases {
        let response = post(path, content_type, body).await.expect("request");
        assert_eq!(response.status().as_u16(), status, "{path}");
        let body: Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"], status);
    }
    // A refused batch published nothing at all.
    assert_eq!(hub.topic_count(), 0);
    let (_, first) = poll(&server, "topic=a").await;
    assert!(first["since"].as_str().is_some_and(|s| s.ends_with(":0")));
    server.stop().await;
}

#[tokio::test]
async fn publish_api_with_a_key_requires_it() {
    let hub = Hub::new(HubConfig::default());
    let server = common::start(App::new().topics(hub).api_key("s3cret")).await;
    let http = reqwest::Client::new();
    let url = server.url("/api/publish/a");
    let none = http.post(&url).body("x").send().await.expect("request");
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    let wrong = http
        .post(&url)
        .bearer_auth("s3cre7")
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(wrong.status(), 401);
    let right = http
        .post(&url)
        .bearer_auth("s3cret")
        .body("x")
        .send()
        .await
        .expect("request");
    assert_eq!(right.status(), 200);
    let batch = http
        .post(server.url("/api/publish"))
        .body(r#"[{"topic":"a","data":1}]"#)
        .send()
        .await
        .expect("request");
    assert_eq!(batch.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn the_browser_client_is_served() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    for (path, kind) in [
        ("/pushwire.js", "text/javascript"),
        ("/pushwire.mjs", "text/javascript"),
        ("/pushwire.d.ts", "application/typescript"),
    ] {
        let response = raw_http(
            server.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(
            response.starts_with("HTTP/1.1 200"),
            "{path}: {response:.100}"
        );
        assert!(
            response
                .to_ascii_lowercase()
                .contains(&format!("content-type: {kind}")),
            "{path}"
        );
    }
    server.stop().await;
}
