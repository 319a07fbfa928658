//! `/metrics`: what a scripted workload over real sockets (WebSocket, SSE,
//! long-poll, the publish API) leaves in the exposition, checked by `promtool`
//! and scraped by a real Prometheus; who may read it; and the Grafana dashboard's
//! every query run against that Prometheus.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use pushwire::auth::{AuthConfig, Claims, TokenVerifier};
use pushwire::config::ServeConfig;
use pushwire::{App, Hub, HubConfig, MetricsAccess, Socket};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;

use crate::common::prometheus::{Prometheus, promtool};
use crate::common::redis::Node;
use crate::common::sse::Sse;
use crate::common::tokens::{SECRET, grants, hs256};
use crate::common::topics::{next_json, publish, publish_http, pushes, request, sub, ws};
use crate::common::{Client, Running, STEP, connect, start};

/// `GET /metrics` with `Authorization: Bearer <key>` when given: status and body.
async fn scrape_with(url: &str, key: Option<&str>) -> (u16, String, String) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("/metrics timed out")
        .expect("/metrics failed");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, content_type, response.text().await.expect("body"))
}

/// The exposition of `server`, read from loopback.
async fn scrape(server: &Running) -> String {
    let (status, _, text) = scrape_with(&server.url("/metrics"), None).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of `series` (`name` or `name{labels}`, as exposed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Waits (bounded) until `series` of `server` is `want`.
async fn wait_sample(server: &Running, series: &str, want: f64) {
    let deadline = Instant::now() + STEP;
    let mut last = None;
    while Instant::now() < deadline {
        last = sample(&scrape(server).await, series);
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{series} is {last:?}, not {want}");
}

/// Asserts every `(series, value)` of `want` in `text`.
fn assert_samples(text: &str, want: &[(&str, f64)]) {
    let wrong: Vec<String> = want
        .iter()
        .filter(|(series, value)| sample(text, series) != Some(*value))
        .map(|(series, value)| format!("{series}: {:?}, not {value}", sample(text, series)))
        .collect();
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
}

/// `promtool check metrics` on `text`: it must accept it without a complaint.
fn promtool_accepts(text: &str) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A socket route that waits for the peer to close.
async fn wait_for_close(mut socket: Socket) {
    while socket.recv().await.is_some() {}
}

/// A first long-poll of `topic`: answers at once with the position to wait from.
async fn poll_position(base: &str, topic: &str) -> String {
    let body: Value = reqwest::get(format!("{base}/poll?topic={topic}"))
        .await
        .expect("poll")
        .json()
        .await
        .expect("poll JSON");
    body["since"].as_str().expect("since").to_owned()
}

/// Subscribes with `since` and answers whether the reply says `recovered`.
async fn resubscribe(client: &mut Client, topic: &str, epoch: &Value, offset: u64) -> Value {
    let reply = request(
        client,
        json!({"op": "sub", "id": 9, "topic": topic, "since": {"epoch": epoch, "offset": offset}}),
    )
    .await;
    reply["ok"]["recovered"].clone()
}

/// Closes `client` with 1000 and reads until the server's close.
async fn close_normally(mut client: Client) {
    client
        .send(WsMessage::Close(Some(CloseFrame {
            code: WsCloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .expect("send close");
    while let Ok(Some(Ok(_))) = tokio::time::timeout(STEP, client.next()).await {}
}

#[tokio::test]
async fn a_workload_over_every_transport_shows_in_the_metrics_and_promtool_accepts_them() {
    let hub = Hub::new(HubConfig {
        max_data_size: 1000,
        ..HubConfig::default()
    });
    let app = App::new()
        .topics(hub.clone())
        .socket("/socket", wait_for_close)
        .metrics(MetricsAccess::LikePublish);
    let server = start(app).await;
    let base = server.url("");

    // Before anything: every series is there, at 0.
    let text = scrape(&server).await;
    assert_samples(
        &text,
        &[
            ("pushwire_connections{transport=\"ws\"}", 0.0),
            ("pushwire_messages_published_total", 0.0),
            ("pushwire_publish_latency_seconds_count", 0.0),
        ],
    );
    promtool_accepts(&text);

    let socket = connect(&server.ws_url("/socket")).await;
    let (mut a, _) = ws(&server).await;
    sub(&mut a, "news", None).await;
    // Refused inside the connection: a bad topic name.
    let refused = request(&mut a, json!({"op": "sub", "id": 5, "topic": "bad topic"})).await;
    assert_eq!(refused["error"]["code"], 422, "{refused}");
    let mut sse = Sse::open(&server.url("/sse?topic=news"), None).await;
    let (subscribed, _) = sse.json().await;
    assert_eq!(subscribed.event.as_deref(), Some("subscribed"));

    for n in 1..=3 {
        let (status, reply) = publish_http(&server, "news", &format!("{{\"n\":{n}}}")).await;
        assert_eq!(status, 200, "{reply}");
    }
    let got = pushes(&mut a, 3).await;
    let epoch = got[0]["epoch"].clone();
    for _ in 0..3 {
        sse.json().await;
    }

    // Refused: a bad topic name (422) and data over the limit (413).
    assert_eq!(publish_http(&server, "bad%20topic", "1").await.0, 422);
    let big = format!("\"{}\"", "x".repeat(2000));
    assert_eq!(publish_http(&server, "news", &big).await.0, 413);

    // A waiting long-poll is an open connection until a message answers it.
    let since = poll_position(&base, "quiet").await;
    let waiting = tokio::spawn({
        let url = format!("{base}/poll?topic=quiet&since={since}");
        async move { reqwest::get(url).await?.json::<Value>().await }
    });
    // Waiting once its subscription counts (beside a's and the stream's): a message
    // published from then on reaches it, if need be when it goes live.
    wait_sample(&server, "pushwire_subscriptions", 3.0).await;
    wait_sample(&server, "pushwire_connections{transport=\"poll\"}", 1.0).await;
    let (status, _) = publish_http(&server, "quiet", "\"wake\"").await;
    assert_eq!(status, 200);
    let answer = tokio::time::timeout(STEP, waiting)
        .await
        .expect("the poll did not answer")
        .expect("task")
        .expect("poll");
    assert_eq!(answer["messages"][0]["data"], "wake");

    // Resubscribes: one recovers, one (another epoch) cannot.
    let (mut b, _) = ws(&server).await;
    assert_eq!(resubscribe(&mut b, "news", &epoch, 1).await, json!(true));
    let (mut c, _) = ws(&server).await;
    assert_eq!(
        resubscribe(&mut c, "news", &json!("anotherEpoch"), 1).await,
        json!(false)
    );

    close_normally(a).await;
    wait_sample(
        &server,
        "pushwire_websocket_closes_total{code=\"1000\"}",
        1.0,
    )
    .await;
    wait_sample(&server, "pushwire_connections{transport=\"poll\"}", 0.0).await;

    let text = scrape(&server).await;
    let news = 7.0; // {"n":1}
    let wake = 6.0; // "wake"
    assert_samples(
        &text,
        &[
            ("pushwire_connections{transport=\"ws\"}", 2.0),
            ("pushwire_connections{transport=\"socket\"}", 1.0),
            ("pushwire_connections{transport=\"sse\"}", 1.0),
            ("pushwire_connections{transport=\"poll\"}", 0.0),
            // b, c and the SSE stream on news; the poll's ended with it.
            ("pushwire_subscriptions", 3.0),
            ("pushwire_topics", 1.0),
            ("pushwire_messages_published_total", 4.0),
            // 3 to a and to the stream, 1 to the poll.
            ("pushwire_messages_delivered_total", 7.0),
            ("pushwire_published_bytes_total", 3.0 * news + wake),
            ("pushwire_delivered_bytes_total", 6.0 * news + wake),
            // One observation per message, however many subscribers.
            ("pushwire_publish_latency_seconds_count", 4.0),
            ("pushwire_publish_latency_seconds_bucket{le=\"+Inf\"}", 4.0),
            // The bad topic name over /ws and over the publish API.
            (
                "pushwire_rejected_requests_total{reason=\"bad_request\"}",
                2.0,
            ),
            (
                "pushwire_rejected_requests_total{reason=\"too_large\"}",
                1.0,
            ),
            (
                "pushwire_rejected_requests_total{reason=\"unauthorized\"}",
                0.0,
            ),
            // b, and the poll that waited from a position; not c.
            ("pushwire_recoveries_total{recovered=\"true\"}", 2.0),
            ("pushwire_recoveries_total{recovered=\"false\"}", 1.0),
            ("pushwire_websocket_closes_total{code=\"1000\"}", 1.0),
            ("pushwire_websocket_closes_total{code=\"1008\"}", 0.0),
            // 4 publishes; recoveries for a, the stream, two polls, b, c.
            ("pushwire_broker_round_trip_seconds_count", 10.0),
            ("pushwire_broker_errors_total", 0.0),
            ("pushwire_slow_consumer_closes_total", 0.0),
            ("pushwire_token_expiries_total", 0.0),
        ],
    );
    promtool_accepts(&text);

    // The snapshot the admin page reads says the same.
    let snapshot = hub
        .metrics()
        .expect("the app gave the hub metrics")
        .snapshot();
    assert_eq!(snapshot.connections.ws, 2);
    assert_eq!(snapshot.connections.socket, 1);
    assert_eq!(snapshot.delivered, 7);
    assert_eq!(snapshot.latency.count, 4);
    assert_eq!(snapshot.recovered, 2);

    drop((socket, b, c, sse));
    server.stop().await;
}

#[tokio::test]
async fn a_slow_consumer_is_counted_once_and_closed_with_1008() {
    let hub = Hub::new(HubConfig {
        max_data_size: 100_000,
        ..HubConfig::default()
    });
    let server = start(
        App::new()
            .topics(hub.clone())
            .metrics(MetricsAccess::LikePublish),
    )
    .await;
    let (mut slow, _) = ws(&server).await;
    sub(&mut slow, "firehose", None).await;
    let topic = pushwire::Topic::new("firehose").expect("topic");
    // The client reads nothing: its socket buffers and its queue fill up.
    let payload = "x".repeat(60_000);
    let mut published = 0;
    while hub.subscriber_count(&topic) == 1 {
        assert!(published < 5000, "never dropped as a slow consumer");
        publish(&hub, "firehose", json!(payload)).await;
        published += 1;
    }
    let close = loop {
        match tokio::time::timeout(STEP, slow.next()).await {
            Ok(Some(Ok(WsMessage::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => continue,
            other => panic!("expected messages then a close, got {other:?}"),
        }
    };
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1008));
    // Answers the close frame (the client library only queued its answer).
    let _ = tokio::time::timeout(STEP, futures_util::SinkExt::flush(&mut slow)).await;
    wait_sample(
        &server,
        "pushwire_websocket_closes_total{code=\"1008\"}",
        1.0,
    )
    .await;
    let text = scrape(&server).await;
    assert_samples(
        &text,
        &[
            ("pushwire_slow_consumer_closes_total", 1.0),
            ("pushwire_messages_published_total", f64::from(published)),
            ("pushwire_subscriptions", 0.0),
            ("pushwire_topics", 0.0),
        ],
    );
    let delivered = sample(&text, "pushwire_messages_delivered_total").expect("delivered");
    assert!(
        delivered < f64::from(published),
        "{delivered} of {published}"
    );
    server.stop_with(&mut [&mut slow]).await;
}

#[tokio::test]
async fn token_expiries_and_refused_tokens_are_counted() {
    let verifier = TokenVerifier::from_config(&AuthConfig {
        secret: Some(SECRET.to_owned()),
        leeway: Duration::ZERO,
        ..AuthConfig::default()
    })
    .expect("verifier")
    .expect("a key");
    let server = start(
        App::new()
            .topics(Hub::default())
            .auth(verifier)
            .metrics(MetricsAccess::LikePublish),
    )
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let token = hs256(&Claims {
        sub: Some("ann".to_owned()),
        exp: now + 2,
        topics: grants(&[("news", &["sub"])]),
        ..Claims::default()
    });
    // A stream whose token expires ends there.
    let mut stream = reqwest::get(server.url(&format!("/sse?topic=news&token={token}")))
        .await
        .expect("SSE");
    assert_eq!(stream.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its token");
    // A token that is not one: 401.
    let refused = reqwest::get(server.url("/sse?topic=news&token=not.a.token"))
        .await
        .expect("SSE");
    assert_eq!(refused.status(), 401);
    let text = scrape(&server).await;
    assert_samples(
        &text,
        &[
            ("pushwire_token_expiries_total", 1.0),
            (
                "pushwire_rejected_requests_total{reason=\"unauthorized\"}",
                1.0,
            ),
            ("pushwire_connections{transport=\"sse\"}", 0.0),
        ],
    );
    server.stop().await;
}

#[tokio::test]
async fn each_app_reports_only_its_own_numbers() {
    let metered = |hub: Hub| App::new().topics(hub).metrics(MetricsAccess::LikePublish);
    let one = start(metered(Hub::default())).await;
    let two = start(metered(Hub::default())).await;
    assert_eq!(publish_http(&one, "news", "1").await.0, 200);
    assert_samples(
        &scrape(&one).await,
        &[("pushwire_messages_published_total", 1.0)],
    );
    assert_samples(
        &scrape(&two).await,
        &[("pushwire_messages_published_total", 0.0)],
    );
    // Without App::metrics there is no /metrics (and nothing is counted).
    let plain = start(App::new().topics(Hub::default())).await;
    let (status, _, _) = scrape_with(&plain.url("/metrics"), None).await;
    assert_eq!(status, 404);
    one.stop().await;
    two.stop().await;
    plain.stop().await;
}

#[tokio::test]
async fn metrics_are_for_loopback_or_the_key_holder() {
    // No key: loopback clients read them.
    let node = Node::start_args(&args(&[]));
    let (status, content_type, text) = scrape_with(&node.url("/metrics"), None).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert!(text.contains("# TYPE pushwire_connections gauge"), "{text}");
    drop(node);

    // The publish API's key: required, compared exactly.
    let node = Node::start_args(&args(&["--api-key", "pub-key"]));
    let url = node.url("/metrics");
    assert_eq!(scrape_with(&url, None).await.0, 401);
    assert_eq!(scrape_with(&url, Some("pub-ke")).await.0, 401);
    assert_eq!(scrape_with(&url, Some("pub-key")).await.0, 200);
    drop(node);

    // A key of its own: the publish API's no longer opens them.
    let node = Node::start_args(&args(&["--api-key", "pub-key", "--metrics-key", "m-key"]));
    let url = node.url("/metrics");
    assert_eq!(scrape_with(&url, Some("pub-key")).await.0, 401);
    assert_eq!(scrape_with(&url, Some("m-key")).await.0, 200);
    drop(node);

    // Public: anyone; off: no route.
    let node = Node::start_args(&args(&["--api-key", "pub-key", "--metrics", "public"]));
    assert_eq!(scrape_with(&node.url("/metrics"), None).await.0, 200);
    drop(node);
    let node = Node::start_args(&args(&["--metrics", "off"]));
    assert_eq!(scrape_with(&node.url("/metrics"), None).await.0, 404);
}

/// `pushwire serve` on a free port with `extra` flags.
fn args(extra: &[&str]) -> Vec<String> {
    ["serve", "--port", "0"]
        .iter()
        .chain(extra)
        .map(|s| (*s).to_owned())
        .collect()
}

/// The scripted workload of the Prometheus tests, against a node with API key
/// `key`: two `/ws` subscribers and an SSE stream on `news`,
/// five publishes there, a long-poll answered by one publish on `quiet`, a bad
/// topic name, a publish without the key, a resubscribe that recovers and one
/// that cannot, and a `/ws` client that closes with 1000. Answers what it holds
/// open.
async fn workload(node: &Running, key: &str) -> (Vec<Client>, Sse) {
    let base = node.url("");
    let publish = |topic: &str, body: String, key: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(format!("{base}/api/publish/{topic}"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        async move {
            let response = tokio::time::timeout(STEP, request.send())
                .await
                .expect("publish timed out")
                .expect("publish");
            response.status().as_u16()
        }
    };
    let hello = |client: Client| async move {
        let mut client = client;
        let hello = next_json(&mut client).await;
        assert!(hello["hello"].is_object(), "{hello}");
        client
    };
    let mut a = hello(connect(&node.ws_url("/ws")).await).await;
    let mut b = hello(connect(&node.ws_url("/ws")).await).await;
    sub(&mut a, "news", None).await;
    sub(&mut b, "news", None).await;
    let mut sse = Sse::open(&format!("{base}/sse?topic=news"), None).await;
    sse.json().await;
    for n in 1..=5 {
        assert_eq!(
            publish("news", format!("{{\"n\":{n}}}"), Some(key)).await,
            200
        );
    }
    let got = pushes(&mut a, 5).await;
    pushes(&mut b, 5).await;
    let epoch = got[0]["epoch"].clone();

    let since = poll_position(&base, "quiet").await;
    let waiting = tokio::spawn({
        let url = format!("{base}/poll?topic=quiet&since={since}");
        async move { reqwest::get(url).await?.json::<Value>().await }
    });
    // The poll is waiting once its subscription counts (a, b, the stream, it).
    let deadline = Instant::now() + STEP;
    loop {
        let (_, _, text) = scrape_with(&node.url("/metrics"), Some(key)).await;
        if sample(&text, "pushwire_subscriptions") == Some(4.0) {
            break;
        }
        assert!(Instant::now() < deadline, "the poll never waited:\n{text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        publish("quiet", "\"wake\"".to_owned(), Some(key)).await,
        200
    );
    let answer = tokio::time::timeout(STEP, waiting)
        .await
        .expect("poll answered")
        .expect("task")
        .expect("poll");
    assert_eq!(answer["messages"][0]["data"], "wake");

    assert_eq!(publish("bad%20topic", "1".to_owned(), Some(key)).await, 422);
    assert_eq!(publish("news", "1".to_owned(), None).await, 401);

    let mut c = hello(connect(&node.ws_url("/ws")).await).await;
    assert_eq!(resubscribe(&mut c, "news", &epoch, 2).await, json!(true));
    let mut d = hello(connect(&node.ws_url("/ws")).await).await;
    assert_eq!(
        resubscribe(&mut d, "news", &json!("anotherEpoch"), 2).await,
        json!(false)
    );
    close_normally(a).await;
    (vec![b, c, d], sse)
}

/// The node `pushwire serve` runs (`node::app`), in this process, on a free port,
/// with API key `key` and metrics as the command line's default.
async fn start_node(key: &str) -> Running {
    let config = ServeConfig {
        port: 0,
        api_key: Some(key.to_owned()),
        ..ServeConfig::default()
    };
    start(pushwire::node::app(&config).expect("the node's app")).await
}

#[tokio::test]
async fn a_real_prometheus_scrapes_what_the_workload_did() {
    let node = start_node("scrape-key").await;
    let prometheus = Prometheus::start(node.addr, Some("scrape-key")).await;
    let held = workload(&node, "scrape-key").await;
    prometheus.wait_for("up{job=\"pushwire\"}", 1.0).await;
    let news = 7.0; // {"n":1}
    let wake = 6.0; // "wake"
    for (expr, want) in [
        ("pushwire_connections{transport=\"ws\"}", 3.0),
        ("pushwire_connections{transport=\"sse\"}", 1.0),
        ("pushwire_connections{transport=\"poll\"}", 0.0),
        ("pushwire_subscriptions", 4.0),
        ("pushwire_topics", 1.0),
        ("pushwire_messages_published_total", 6.0),
        // 5 to a, b and the stream; 1 to the poll.
        ("pushwire_messages_delivered_total", 16.0),
        ("pushwire_published_bytes_total", 5.0 * news + wake),
        ("pushwire_delivered_bytes_total", 15.0 * news + wake),
        ("pushwire_publish_latency_seconds_count", 6.0),
        (
            "pushwire_rejected_requests_total{reason=\"bad_request\"}",
            1.0,
        ),
        (
            "pushwire_rejected_requests_total{reason=\"unauthorized\"}",
            1.0,
        ),
        // c, and the poll that waited from a position; not d.
        ("pushwire_recoveries_total{recovered=\"true\"}", 2.0),
        ("pushwire_recoveries_total{recovered=\"false\"}", 1.0),
        ("pushwire_websocket_closes_total{code=\"1000\"}", 1.0),
        // 6 publishes; recoveries for a, b, the stream, two polls, c, d.
        ("pushwire_broker_round_trip_seconds_count", 13.0),
        ("pushwire_broker_errors_total", 0.0),
        ("pushwire_slow_consumer_closes_total", 0.0),
        ("pushwire_token_expiries_total", 0.0),
    ] {
        prometheus.wait_for(expr, want).await;
    }
    // The histograms answer quantiles.
    let p99 = prometheus
        .scalar("histogram_quantile(0.99, sum by (le) (pushwire_publish_latency_seconds_bucket))")
        .await
        .expect("a latency quantile");
    assert!(p99 > 0.0 && p99 <= 5.0, "p99 {p99}");
    drop(held);
    node.stop().await;
}

/// Every metric name a PromQL expression mentions.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("pushwire_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// Every PromQL expression of the dashboard's panels (`targets[].expr`), with the
/// panel's title; Grafana's variables replaced by what Grafana would send.
fn dashboard_queries() -> Vec<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/pushwire.json");
    let text = std::fs::read_to_string(path).expect("read deploy/grafana/pushwire.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    let mut panels: Vec<&Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        // Rows hold panels of their own.
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} has a target without expr", panel["title"]));
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "15s")
                .replace("$instance", ".+")
                .replace("${instance}", ".+");
            queries.push((panel["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    queries
}

#[tokio::test]
async fn every_dashboard_query_parses_and_names_only_exported_metrics() {
    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "only {} queries", queries.len());
    let node = start_node("scrape-key").await;
    let prometheus = Prometheus::start(node.addr, Some("scrape-key")).await;
    let held = workload(&node, "scrape-key").await;
    prometheus.wait_for("up{job=\"pushwire\"}", 1.0).await;
    // What the server really exports: every sample name of its exposition.
    let (_, _, text) = scrape_with(&node.url("/metrics"), Some("scrape-key")).await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    let mut problems = Vec::new();
    let mut mentioned = BTreeSet::new();
    for (title, expr) in &queries {
        let names = metric_names(expr);
        if names.is_empty() {
            problems.push(format!("{title}: {expr}: names no pushwire metric"));
        }
        for name in names.difference(&exported) {
            problems.push(format!("{title}: {expr}: {name} is not exported"));
        }
        mentioned.extend(names);
        if let Err(err) = prometheus.query(expr).await {
            problems.push(format!("{title}: {err}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // And the dashboard shows every metric family the server exports.
    let families: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .map(str::to_owned)
        .collect();
    let unshown: Vec<&String> = families
        .iter()
        .filter(|family| {
            !mentioned
                .iter()
                .any(|name| name.starts_with(family.as_str()))
        })
        .collect();
    assert!(unshown.is_empty(), "no panel shows {unshown:?}");
    drop(held);
    node.stop().await;
}

#[tokio::test]
async fn broker_round_trips_and_errors_are_counted_on_a_real_redis() {
    let redis = crate::common::redis::RedisServer::start();
    let config = ServeConfig {
        port: 0,
        broker: Some(pushwire::broker::RedisConfig {
            command_timeout: Duration::from_millis(300),
            ..pushwire::broker::RedisConfig::new(redis.url())
        }),
        ..ServeConfig::default()
    };
    let server = start(pushwire::node::app(&config).expect("the node's app")).await;
    let ready = reqwest::Client::new();
    let deadline = Instant::now() + STEP;
    while ready
        .get(server.url("/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "never ready on Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(publish_http(&server, "news", "1").await.0, 200);
    // Redis stops answering: the next publish times out (503).
    redis.pause();
    let (status, reply) = publish_http(&server, "news", "2").await;
    redis.resume();
    assert_eq!(status, 503, "{reply}");
    let text = scrape(&server).await;
    assert_samples(
        &text,
        &[
            ("pushwire_messages_published_total", 1.0),
            ("pushwire_broker_round_trip_seconds_count", 2.0),
            ("pushwire_broker_errors_total", 1.0),
            (
                "pushwire_rejected_requests_total{reason=\"unavailable\"}",
                1.0,
            ),
        ],
    );
    // The failed call waited for its timeout: at least 0.3 s in the histogram.
    let sum = sample(&text, "pushwire_broker_round_trip_seconds_sum").expect("sum");
    assert!(sum >= 0.3, "{sum}");
    server.stop().await;
}
