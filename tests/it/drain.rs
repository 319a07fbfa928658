//! Graceful drain (`docs/operations.md`, "Drain and rolling restarts"): on SIGTERM
//! the `pushwire` binary answers 503 on `/readyz` for `--drain-delay` while it
//! serves as before, then tells every client to reconnect (1012 on `/ws` after the
//! messages queued before it, a `retry:` line on SSE, `Retry-After` on a waiting
//! long-poll) and exits within `--shutdown-timeout`.
//!
//! The drain delay in these tests is an hour, ended by a second SIGTERM: what
//! happens during the delay is checked without racing a timer.

use crate::common;

use std::time::Duration;

use common::STEP;
use common::redis::{Node, status, wait_status};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// `pushwire serve` on a free port with the in-process broker and `extra` flags.
fn serve(extra: &[&str]) -> Node {
    let mut args: Vec<String> = ["serve", "--port", "0"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    Node::start_args(&args)
}

/// A `/ws` client of `node` past its hello, subscribed to `topic`.
async fn subscriber(node: &Node, topic: &str) -> common::Client {
    let mut client = common::connect(&node.ws_url()).await;
    let hello = common::topics::next_json(&mut client).await;
    assert!(hello["hello"].is_object(), "{hello}");
    common::topics::sub(&mut client, topic, None).await;
    client
}

/// `POST /api/publish` of `entries` (a batch); the answer's status.
async fn publish_batch(node: &Node, entries: &Value) -> u16 {
    let response = tokio::time::timeout(
        STEP,
        reqwest::Client::new()
            .post(node.url("/api/publish"))
            .header("content-type", "application/json")
            .body(entries.to_string())
            .send(),
    )
    .await
    .expect("publish timed out")
    .expect("publish failed");
    response.status().as_u16()
}

/// Reads the messages of `client` up to its close frame: their offsets, and the
/// close code and reason.
async fn offsets_until_close(client: &mut common::Client) -> (Vec<u64>, Option<(u16, String)>) {
    let mut offsets = Vec::new();
    loop {
        match common::next(client).await {
            WsMessage::Text(text) => {
                let push: Value = serde_json::from_str(text.as_str()).expect("JSON");
                offsets.push(push["offset"].as_u64().expect("a message"));
            }
            WsMessage::Close(frame) => {
                let close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                return (offsets, close);
            }
            other => panic!("expected a message or a close, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn readyz_answers_503_while_draining_and_everything_else_is_served() {
    let mut node = serve(&["--drain-delay", "1h"]);
    let mut early = subscriber(&node, "news").await;

    node.terminate();
    wait_status(&node, "/readyz", 503, STEP).await;
    let readyz = reqwest::get(node.url("/readyz")).await.expect("readyz");
    assert_eq!(readyz.text().await.expect("body"), "draining\n");
    assert_eq!(status(&node, "/healthz").await, Some(200));

    // Served as before: a publish reaches the subscriber of before, and a new
    // client connects and subscribes.
    let mut late = subscriber(&node, "news").await;
    assert_eq!(
        publish_batch(&node, &json!([{"topic": "news", "data": "during"}])).await,
        200
    );
    for client in [&mut early, &mut late] {
        let push = common::topics::next_json(client).await;
        assert_eq!(
            (push["offset"].as_u64(), &push["data"]),
            (Some(1), &json!("during"))
        );
    }
    common::sse::get(&node.url("/sse?topic=news"), None).await;

    // The second signal ends the delay: clients are told to reconnect.
    node.terminate();
    for client in [&mut early, &mut late] {
        let (offsets, close) = offsets_until_close(client).await;
        assert_eq!(offsets, Vec::<u64>::new());
        assert_eq!(close, Some((1012, "service restart".to_owned())));
    }
    let exit = node.wait_exit(STEP).await.expect("exit after the drain");
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn a_ws_client_gets_every_message_queued_before_its_1012() {
    let mut node = serve(&["--drain-delay", "0s"]);
    let mut client = subscriber(&node, "burst").await;
    // Published while the client reads nothing: they wait in its queue (or in
    // the sockets' buffers) when the signal comes.
    let batch: Vec<Value> = (1..=500)
        .map(|n| json!({"topic": "burst", "data": n}))
        .collect();
    assert_eq!(publish_batch(&node, &Value::Array(batch)).await, 200);
    node.terminate();

    let (offsets, close) = offsets_until_close(&mut client).await;
    assert_eq!(offsets, (1..=500).collect::<Vec<u64>>());
    assert_eq!(close, Some((1012, "service restart".to_owned())));
    let exit = node.wait_exit(STEP).await.expect("exit");
    assert!(exit.success(), "{exit}");
}

#[tokio::test]
async fn sse_streams_end_with_a_retry_hint_and_waiting_polls_answer_with_retry_after() {
    let mut node = serve(&["--drain-delay", "1h"]);
    // The topic's position, so that the next poll waits.
    let first: Value = reqwest::get(node.url("/poll?topic=news&timeout=0"))
        .await
        .expect("poll")
        .json()
        .await
        .expect("JSON");
    let since = first["since"].as_str().expect("since").to_owned();
    let mut sse = common::sse::get(&node.url("/sse?topic=news"), None).await;
    let opening = tokio::time::timeout(STEP, sse.chunk())
        .await
        .expect("the stream's first chunk")
        .expect("read")
        .expect("a chunk");
    assert!(String::from_utf8_lossy(&opening).contains("event: subscribed"));
    let poll_url = node.url(&format!("/poll?topic=news&since={since}&timeout=60000"));
    let poll = tokio::spawn(async move { reqwest::get(poll_url).await });

    node.terminate();
    wait_status(&node, "/readyz", 503, STEP).await;
    // Draining: the poll still waits, for a message or its timeout.
    assert!(!poll.is_finished(), "a poll answered while the node drains");

    node.terminate();
    let answer = tokio::time::timeout(STEP, poll)
        .await
        .expect("the waiting poll is answered at once")
        .expect("task")
        .expect("poll");
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["messages"], json!([]));
    assert_eq!(body["since"], since.as_str());

    // The stream's end: a `retry:` of at most a second, then a clean end.
    let mut rest = String::new();
    loop {
        let chunk = tokio::time::timeout(STEP, sse.chunk())
            .await
            .expect("the stream ends")
            .expect("the stream ends cleanly, not with an error");
        match chunk {
            Some(chunk) => rest.push_str(&String::from_utf8_lossy(&chunk)),
            None => break,
        }
    }
    let retry: u64 = rest
        .lines()
        .find_map(|line| line.strip_prefix("retry: "))
        .unwrap_or_else(|| panic!("no retry line in {rest:?}"))
        .parse()
        .expect("a number of milliseconds");
    assert!(retry <= 1000, "{rest:?}");
    let exit = node.wait_exit(STEP).await.expect("exit");
    assert!(exit.success(), "{exit}");
}

/// A `/ws` client of `node` subscribed to a topic on which megabytes are then
/// published, which it never reads: the server's writes to it make no progress
/// (until its write timeout, 30 s).
async fn stuck_client(node: &Node) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let tcp = socket.connect(node.addr).await.expect("connect");
    let (mut stuck, _) = tokio_tungstenite::client_async(node.ws_url(), tcp)
        .await
        .expect("handshake");
    let _hello = stuck.next().await;
    stuck
        .send(WsMessage::text(
            json!({"op": "sub", "id": 1, "topic": "big"}).to_string(),
        ))
        .await
        .expect("sub");
    let _reply = stuck.next().await;
    let data = "x".repeat(60_000);
    for _ in 0..10 {
        let batch: Vec<Value> = (0..15)
            .map(|_| json!({"topic": "big", "data": data}))
            .collect();
        assert_eq!(publish_batch(node, &Value::Array(batch)).await, 200);
    }
    stuck
}

#[tokio::test]
async fn the_process_exits_after_the_shutdown_timeout_even_with_a_stuck_client() {
    let mut node = serve(&["--drain-delay", "0s", "--shutdown-timeout", "1s"]);
    let stuck = stuck_client(&node).await;
    node.terminate();
    let exit = node
        .wait_exit(STEP)
        .await
        .expect("exit within the shutdown timeout, not the 30 s write timeout");
    assert!(exit.success(), "{exit}");
    drop(stuck);
}

/// A signal while the node waits for its connections to close ends the wait.
#[tokio::test]
async fn a_second_signal_ends_the_wait_for_connections() {
    let mut node = serve(&["--drain-delay", "0s", "--shutdown-timeout", "1h"]);
    let stuck = stuck_client(&node).await;
    node.terminate();
    // Closing: it no longer accepts connections, and waits for the stuck one.
    let deadline = std::time::Instant::now() + STEP;
    while status(&node, "/healthz").await.is_some() {
        assert!(std::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.terminate();
    let exit = node
        .wait_exit(STEP)
        .await
        .expect("exit at the second signal, not after the hour or the 30 s write timeout");
    assert!(exit.success(), "{exit}");
    drop(stuck);
}

/// `pushwire serve` on `redis` with the rolling-restart settings, on `port` (0: a
/// free one).
fn cluster_node(redis: &common::redis::RedisServer, port: u16) -> Node {
    let port = port.to_string();
    let args: Vec<String> = [
        "serve",
        "--port",
        &port,
        "--broker",
        &redis.url(),
        "--broker-timeout",
        "10s",
        // History covers every reconnect of the run.
        "--history-size",
        "100000",
        "--history-ttl",
        "10m",
        "--drain-delay",
        "1s",
        "--shutdown-timeout",
        "10s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    Node::start_args(&args)
}

/// Three nodes on one Redis, restarted one at a time with SIGTERM while
/// `pushwire bench soak --exact` publishes a numbered sequence on each topic and
/// subscribers over `/ws`, SSE and long-poll, spread over the nodes (each
/// connection to a node that answers 200 on `/readyz`, as a load balancer would
/// send it), reconnect when told to and resubscribe from their positions. The soak
/// judges every message: each subscriber must end with every message of its
/// topics, in order, each once.
#[tokio::test]
async fn a_rolling_restart_of_three_nodes_under_load_loses_and_repeats_nothing() {
    let redis = common::redis::RedisServer::start();
    let mut nodes: Vec<Node> = (0..3).map(|_| cluster_node(&redis, 0)).collect();
    for node in &nodes {
        wait_status(node, "/readyz", 200, common::redis::READY).await;
    }
    let urls = nodes
        .iter()
        .map(|node| node.url(""))
        .collect::<Vec<_>>()
        .join(",");
    let soak = common::binary::pushwire_async()
        .args(["bench", "soak", "--exact", "--url", &urls])
        .args(["--duration", "25s", "--connections", "30", "--topics", "3"])
        .args(["--topics-per-subscriber", "2", "--rate", "30"])
        // Sessions end only when a node asks its clients to reconnect.
        .args(["--min-lifetime", "10m", "--max-lifetime", "10m"])
        .args(["--max-pause", "300ms", "--poll-timeout", "5s"])
        .args(["--final-timeout", "60s", "--sample", "5s"])
        .spawn()
        .expect("start pushwire bench soak");

    // The subscribers subscribe, then the publishers start; then each node in
    // turn drains, exits and starts again on its port.
    tokio::time::sleep(Duration::from_secs(4)).await;
    for node in &mut nodes {
        let port = node.addr.port();
        node.terminate();
        let exit = node
            .wait_exit(STEP + STEP)
            .await
            .expect("the node exits after its drain");
        assert!(exit.success(), "{exit}");
        *node = cluster_node(&redis, port);
        wait_status(node, "/readyz", 200, common::redis::READY).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let output = tokio::time::timeout(Duration::from_secs(180), soak.wait_with_output())
        .await
        .expect("the soak ends")
        .expect("soak output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report = format!("{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "{report}");
    assert!(stdout.contains("soak: PASS"), "{report}");
    // Every transport was told to reconnect by a draining node, at least once.
    let told = stdout
        .lines()
        .find_map(|line| line.strip_prefix("told to reconnect by a node shutting down: "))
        .unwrap_or_else(|| panic!("no reconnect counts in {report}"));
    for transport in ["ws", "sse", "poll"] {
        let count: u64 = told
            .split([',', ';'])
            .find_map(|part| part.trim().strip_prefix(&format!("{transport} ")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {transport} count in {told:?}"));
        assert!(
            count > 0,
            "no {transport} subscriber was told to reconnect: {report}"
        );
    }
    assert!(stdout.contains(" 0 not recovered"), "{report}");
}

/// `POST /api/publish/{topic}` of `n` as JSON on `node`; the epoch it got.
async fn publish_number(node: &Node, topic: &str, n: u64) -> String {
    let response = tokio::time::timeout(
        STEP,
        reqwest::Client::new()
            .post(node.url(&format!("/api/publish/{topic}")))
            .header("content-type", "application/json")
            .body(n.to_string())
            .send(),
    )
    .await
    .expect("publish timed out")
    .expect("publish failed");
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["offset"], n, "{answer}");
    answer["epoch"].as_str().expect("epoch").to_owned()
}

/// `pushwire sub` follows a node that restarts: told 1012, it reconnects (once the
/// node is back on its port) and resumes from the last message it printed.
#[tokio::test]
async fn pushwire_sub_reconnects_after_1012_and_resumes_where_it_was() {
    use tokio::io::AsyncBufReadExt as _;

    let redis = common::redis::RedisServer::start();
    let mut node = cluster_node(&redis, 0);
    let other = cluster_node(&redis, 0);
    for node in [&node, &other] {
        wait_status(node, "/readyz", 200, common::redis::READY).await;
    }
    let mut epoch = String::new();
    for n in 1..=3 {
        epoch = publish_number(&other, "restarts", n).await;
    }
    let since = format!("restarts@{epoch}:0");
    let mut sub = common::binary::pushwire_async()
        .args([
            "sub", "restarts", "--json", "--count", "6", "--since", &since,
        ])
        .args(["--url", &node.ws_url()])
        .spawn()
        .expect("start pushwire sub");
    let mut lines = tokio::io::BufReader::new(sub.stdout.take().expect("stdout")).lines();
    let mut offsets = Vec::new();
    while offsets.len() < 3 {
        let line = tokio::time::timeout(STEP, lines.next_line())
            .await
            .expect("a line within the time limit")
            .expect("read")
            .expect("a line");
        let message: Value = serde_json::from_str(&line).expect("JSON");
        offsets.push(message["offset"].as_u64().expect("offset"));
    }

    let port = node.addr.port();
    node.terminate();
    let exit = node.wait_exit(STEP).await.expect("the node exits");
    assert!(exit.success(), "{exit}");
    for n in 4..=6 {
        publish_number(&other, "restarts", n).await;
    }
    node = cluster_node(&redis, port);
    wait_status(&node, "/readyz", 200, common::redis::READY).await;

    while let Some(line) = tokio::time::timeout(STEP, lines.next_line())
        .await
        .expect("a line within the time limit")
        .expect("read")
    {
        let message: Value = serde_json::from_str(&line).expect("JSON");
        offsets.push(message["offset"].as_u64().expect("offset"));
    }
    assert_eq!(offsets, vec![1, 2, 3, 4, 5, 6]);
    let output = tokio::time::timeout(STEP, sub.wait_with_output())
        .await
        .expect("sub exits after --count")
        .expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("the server restarts (1012); reconnecting"),
        "{stderr}"
    );
    drop(node);
}

/// While draining, HTTP/1.1 answers close their connection, so that the next
/// request goes (through the balancer) to a node that is still ready.
#[tokio::test]
async fn http_answers_close_their_connection_while_the_node_drains() {
    let mut node = serve(&["--drain-delay", "1h"]);
    let connection = |response: &reqwest::Response| {
        response
            .headers()
            .get("connection")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let before = reqwest::get(node.url("/healthz")).await.expect("healthz");
    assert_eq!(connection(&before), None);
    node.terminate();
    wait_status(&node, "/readyz", 503, STEP).await;
    for path in ["/healthz", "/poll?topic=news&timeout=0", "/"] {
        let during = reqwest::get(node.url(path)).await.expect(path);
        assert_eq!(during.status(), 200, "{path}");
        assert_eq!(connection(&during).as_deref(), Some("close"), "{path}");
    }
    node.terminate();
    let exit = node.wait_exit(STEP).await.expect("exit");
    assert!(exit.success(), "{exit}");
}
