//! Several pushwire nodes (the built binary) sharing topics through a real
//! `redis-server`, and what happens when Redis or a node fails: every test starts
//! its own Redis and nodes on free loopback ports and kills them when it ends.

use crate::common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::{Node, READY, RedisServer, nodes, status, wait_status};
use common::tokens::chat_token;
use common::topics::next_json_within;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

type Ws = common::Client;

/// `POST /api/publish/{topic}` with JSON `data`: the status and the parsed body, or
/// `None` when the node did not answer within 10 s.
async fn publish(
    http: &reqwest::Client,
    node: &Node,
    topic: &str,
    data: &Value,
) -> Option<(u16, Value)> {
    let sent = tokio::time::timeout(
        Duration::from_secs(10),
        http.post(node.url(&format!("/api/publish/{topic}")))
            .header("content-type", "application/json")
            .body(data.to_string())
            .send(),
    )
    .await
    .ok()?
    .ok()?;
    let status = sent.status().as_u16();
    let body = tokio::time::timeout(Duration::from_secs(10), sent.text())
        .await
        .ok()?
        .ok()?;
    Some((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

/// Connects to `/ws` and reads the hello; `None` on any failure within 5 s.
async fn connect(url: &str) -> Option<Ws> {
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .ok()?
    .ok()?;
    let hello = next_json_within(&mut ws, Duration::from_secs(5)).await?;
    hello.get("hello")?;
    Some(ws)
}

/// Reads until a message for which `wanted` holds, within `limit` in all; other
/// messages (presence events of members re-announced by a late refresh, on a
/// loaded machine) are skipped.
async fn next_matching(
    ws: &mut Ws,
    limit: Duration,
    wanted: impl Fn(&Value) -> bool,
) -> Option<Value> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let value = next_json_within(ws, left).await?;
        if wanted(&value) {
            return Some(value);
        }
    }
}

async fn send(ws: &mut Ws, request: Value) -> Option<()> {
    tokio::time::timeout(
        Duration::from_secs(5),
        ws.send(WsMessage::text(request.to_string())),
    )
    .await
    .ok()?
    .ok()
}

/// What a reader saw, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// A `sub` reply: `recovered` (with `since`) and the position.
    Sub {
        recovered: Option<bool>,
        epoch: String,
        offset: u64,
    },
    /// A message.
    Message {
        epoch: String,
        offset: u64,
        data: Value,
    },
}

/// A subscriber that reconnects (to the next node in its list) whenever its
/// connection ends, resuming after the last message it saw, until it has seen the
/// target position or its deadline passes.
struct Reader {
    seen: Arc<Mutex<Vec<Seen>>>,
    /// (epoch, offset) of the last message: the reader stops there.
    target: Arc<Mutex<Option<(String, u64)>>>,
    task: tokio::task::JoinHandle<()>,
    /// Set once the first subscription is live.
    subscribed: Arc<AtomicBool>,
}

impl Reader {
    fn start(urls: Vec<String>, topic: &'static str, deadline: Duration) -> Self {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let target = Arc::new(Mutex::new(None));
        let subscribed = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(read_loop(
            urls,
            topic,
            Arc::clone(&seen),
            Arc::clone(&target),
            Arc::clone(&subscribed),
            Instant::now() + deadline,
        ));
        Self {
            seen,
            target,
            task,
            subscribed,
        }
    }

    async fn wait_subscribed(&self) {
        let deadline = Instant::now() + READY;
        while !self.subscribed.load(Ordering::Relaxed) {
            assert!(Instant::now() < deadline, "a reader could not subscribe");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Tells the reader where the stream ends and waits for it to get there.
    async fn finish(self, epoch: &str, offset: u64) -> Vec<Seen> {
        *self.target.lock().expect("lock") = Some((epoch.to_owned(), offset));
        let _ = self.task.await;
        self.seen.lock().expect("lock").clone()
    }
}

async fn read_loop(
    urls: Vec<String>,
    topic: &'static str,
    seen: Arc<Mutex<Vec<Seen>>>,
    target: Arc<Mutex<Option<(String, u64)>>>,
    subscribed: Arc<AtomicBool>,
    deadline: Instant,
) {
    let mut last: Option<(String, u64)> = None;
    let mut next_url = 0;
    let done = |last: &Option<(String, u64)>| {
        let target = target.lock().expect("lock").clone();
        target.is_some() && target == *last
    };
    'connect: for _ in 0..1000 {
        if Instant::now() > deadline || done(&last) {
            return;
        }
        let url = &urls[next_url % urls.len()];
        let Some(mut ws) = connect(url).await else {
            next_url += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut request = json!({"op": "sub", "id": "s", "topic": topic});
        if let Some((epoch, offset)) = &last {
            request["since"] = json!({"epoch": epoch, "offset": offset});
        }
        if send(&mut ws, request).await.is_none() {
            next_url += 1;
            continue;
        }
        let Some(reply) = next_json_within(&mut ws, Duration::from_secs(5)).await else {
            next_url += 1;
            continue;
        };
        let Some(ok) = reply.get("ok") else {
            // 503 while Redis is away: try again a little later.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let recovered = ok["recovered"].as_bool();
        let position = (
            ok["epoch"].as_str().unwrap_or_default().to_owned(),
            ok["offset"].as_u64().unwrap_or_default(),
        );
        seen.lock().expect("lock").push(Seen::Sub {
            recovered,
            epoch: position.0.clone(),
            offset: position.1,
        });
        if recovered != Some(true) {
            last = Some(position);
        }
        subscribed.store(true, Ordering::Relaxed);
        loop {
            if Instant::now() > deadline || done(&last) {
                return;
            }
            match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Err(_) => continue,
                Ok(Some(Ok(WsMessage::Text(text)))) => {
                    let Ok(push) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    let (Some(epoch), Some(offset)) =
                        (push["epoch"].as_str(), push["offset"].as_u64())
                    else {
                        continue; // presence
                    };
                    last = Some((epoch.to_owned(), offset));
                    seen.lock().expect("lock").push(Seen::Message {
                        epoch: epoch.to_owned(),
                        offset,
                        data: push["data"].clone(),
                    });
                }
                Ok(Some(Ok(_))) => continue,
                Ok(_) => {
                    next_url += 1;
                    continue 'connect;
                }
            }
        }
    }
}

/// Checks that `seen` has no silent gap and no duplicate: every message is the one
/// right after the previous one (same epoch, offset + 1), except right after a
/// `recovered: false` reply, which sets the new starting point. Answers how many
/// `recovered: false` replies came after the first subscription.
fn check_no_silent_gap(name: &str, seen: &[Seen]) -> usize {
    let mut at: Option<(String, u64)> = None;
    let mut told = 0;
    for (i, item) in seen.iter().enumerate() {
        match item {
            Seen::Sub {
                recovered,
                epoch,
                offset,
            } => {
                if *recovered != Some(true) {
                    if recovered.is_some() {
                        told += 1;
                    }
                    at = Some((epoch.clone(), *offset));
                }
            }
            Seen::Message { epoch, offset, .. } => {
                let expected = at.as_ref().map(|(e, o)| (e.clone(), o + 1));
                assert_eq!(
                    Some((epoch.clone(), *offset)),
                    expected,
                    "{name}: item {i} is not the next message (a silent gap or a duplicate); around it: {:?}",
                    &seen[i.saturating_sub(3)..(i + 2).min(seen.len())]
                );
                at = Some((epoch.clone(), *offset));
            }
        }
    }
    told
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_ten_thousand_messages_round_robin_to_every_subscriber_once_in_order() {
    const TOTAL: u64 = 10_000;
    let redis = RedisServer::start();
    let nodes = nodes(&redis, 3, &[]).await;
    // Three subscribers on each node.
    let mut subscribers = Vec::new();
    for node in &nodes {
        for _ in 0..3 {
            let mut ws = connect(&node.ws_url()).await.expect("connect");
            send(&mut ws, json!({"op": "sub", "id": 1, "topic": "fan"})).await;
            let reply = next_json_within(&mut ws, Duration::from_secs(5))
                .await
                .expect("reply");
            assert_eq!(reply["ok"]["offset"], 0, "{reply}");
            subscribers.push(ws);
        }
    }
    let readers: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, mut ws)| {
            tokio::spawn(async move {
                let mut offsets = Vec::with_capacity(TOTAL as usize);
                let mut per_publisher = [0u64; 3];
                while (offsets.len() as u64) < TOTAL {
                    let push = next_json_within(&mut ws, Duration::from_secs(30))
                        .await
                        .unwrap_or_else(|| {
                            panic!("subscriber {i}: stream ended after {}", offsets.len())
                        });
                    let offset = push["offset"]
                        .as_u64()
                        .unwrap_or_else(|| panic!("not a message: {push}"));
                    offsets.push(offset);
                    // Each publisher's messages arrive in the order it published them.
                    let p = push["data"]["p"].as_u64().expect("p") as usize;
                    let n = push["data"]["n"].as_u64().expect("n");
                    assert_eq!(
                        n,
                        per_publisher[p] + 1,
                        "subscriber {i}: publisher {p} out of order"
                    );
                    per_publisher[p] = n;
                }
                assert_eq!(offsets, (1..=TOTAL).collect::<Vec<_>>(), "subscriber {i}");
                // Nothing more: no duplicate after the last one.
                assert!(
                    next_json_within(&mut ws, Duration::from_millis(500))
                        .await
                        .is_none(),
                    "subscriber {i}: a message after the last"
                );
            })
        })
        .collect();
    // Three publishers, one per node, each publishing a third of the messages.
    let nodes = Arc::new(nodes);
    let counter = Arc::new(AtomicU64::new(0));
    let publishers: Vec<_> = (0..3)
        .map(|p| {
            let nodes = Arc::clone(&nodes);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut n = 0;
                while counter.fetch_add(1, Ordering::Relaxed) < TOTAL {
                    n += 1;
                    let (code, body) = publish(&http, &nodes[p], "fan", &json!({"p": p, "n": n}))
                        .await
                        .expect("publish answered");
                    assert_eq!(code, 200, "{body}");
                }
            })
        })
        .collect();
    for publisher in publishers {
        tokio::time::timeout(Duration::from_secs(300), publisher)
            .await
            .expect("publishing 10,000 messages took over 5 min")
            .expect("publisher");
    }
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(120), reader)
            .await
            .expect("a subscriber did not get every message within 2 min")
            .expect("reader");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_and_restarted_empty_nodes_stay_up_and_clients_are_told_recovered_false() {
    let mut redis = RedisServer::start();
    let nodes = nodes(&redis, 2, &["--broker-timeout", "300ms"]).await;
    let urls = |first: usize| vec![nodes[first].ws_url(), nodes[1 - first].ws_url()];
    let readers: Vec<Reader> = (0..4)
        .map(|i| Reader::start(urls(i % 2), "live", Duration::from_secs(90)))
        .collect();
    for reader in &readers {
        reader.wait_subscribed().await;
    }
    // A plain subscriber, to see how the node tells it that messages were lost.
    let mut plain = connect(&nodes[0].ws_url()).await.expect("connect");
    send(&mut plain, json!({"op": "sub", "id": 1, "topic": "live"})).await;
    assert!(
        next_json_within(&mut plain, Duration::from_secs(5))
            .await
            .expect("reply")["ok"]
            .is_object()
    );
    // Publish through both nodes, one message every 5 ms, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let refused = Arc::new(AtomicU64::new(0));
    let node_urls: Vec<String> = nodes.iter().map(|n| n.url("")).collect();
    let publisher = tokio::spawn({
        let (stop, acked, refused) = (Arc::clone(&stop), Arc::clone(&acked), Arc::clone(&refused));
        async move {
            let http = reqwest::Client::new();
            for n in 0u64..100_000 {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let url = format!("{}/api/publish/live", node_urls[(n % 2) as usize]);
                let answer = tokio::time::timeout(
                    Duration::from_secs(5),
                    http.post(url)
                        .header("content-type", "application/json")
                        .body(n.to_string())
                        .send(),
                )
                .await
                .expect("a publish hung for 5 s: never a silent wait")
                .expect("the node answers");
                let code = answer.status().as_u16();
                let body: Value = answer.json().await.expect("JSON body");
                match code {
                    200 => acked.lock().expect("lock").push((
                        body["epoch"].as_str().expect("epoch").to_owned(),
                        body["offset"].as_u64().expect("offset"),
                    )),
                    503 => {
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("publish answered {other}: {body}"),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });
    let wait_acked = |n: usize| {
        let acked = Arc::clone(&acked);
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while acked.lock().expect("lock").len() < n {
                assert!(
                    Instant::now() < deadline,
                    "fewer than {n} publishes acknowledged in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    wait_acked(100).await;
    let before_kill: Vec<usize> = readers
        .iter()
        .map(|r| r.seen.lock().expect("lock").len())
        .collect();

    redis.kill();
    let killed = Instant::now();
    for node in &nodes {
        wait_status(node, "/readyz", 503, Duration::from_secs(5)).await;
        assert_eq!(
            status(node, "/healthz").await,
            Some(200),
            "the node stays up"
        );
        // Local clients are still served: a new connection gets its hello.
        assert!(
            connect(&node.ws_url()).await.is_some(),
            "a node without Redis still greets clients"
        );
    }
    let sleep = Duration::from_secs(5).saturating_sub(killed.elapsed());
    tokio::time::sleep(sleep).await;
    let refused_while_down = refused.load(Ordering::Relaxed);
    assert!(
        refused_while_down > 0,
        "publishes while Redis was away were refused (503), not dropped"
    );
    redis.restart();
    for node in &nodes {
        wait_status(node, "/readyz", 200, READY).await;
    }
    // The plain subscriber was closed with 1011: its messages were lost.
    let close = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match plain.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("no close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("the subscriber was closed within 20 s of the restart")
    .expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 1011);
    assert_eq!(close.reason.as_str(), "messages lost: resubscribe");
    let after = acked.lock().expect("lock").len() + 100;
    wait_acked(after).await;
    stop.store(true, Ordering::Relaxed);
    publisher.await.expect("publisher");

    let (epoch, offset) = acked.lock().expect("lock").last().cloned().expect("acked");
    let first_epoch = acked.lock().expect("lock")[0].0.clone();
    assert_ne!(
        epoch, first_epoch,
        "an empty Redis gives the topic a new epoch"
    );
    for (i, reader) in readers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader.finish(&epoch, offset))
            .await
            .expect("reader");
        // Before the kill, nothing was lost: no `recovered: false` then.
        let told_before = check_no_silent_gap(&format!("reader {i}"), &seen[..before_kill[i]]);
        assert_eq!(
            told_before, 0,
            "reader {i}: recovered false before Redis was lost"
        );
        let told = check_no_silent_gap(&format!("reader {i}"), &seen);
        assert!(
            told >= 1,
            "reader {i} was never told that history was lost: {:?}",
            &seen[seen.len().saturating_sub(5)..]
        );
        assert!(
            matches!(seen.last(), Some(Seen::Message { epoch: e, offset: o, .. }) if *e == epoch && *o == offset),
            "reader {i} did not reach the last message"
        );
        // Every acknowledged message of the new epoch after its fresh start came.
        let restart_at = seen
            .iter()
            .rev()
            .find_map(|s| match s {
                Seen::Sub {
                    recovered: Some(false),
                    epoch: e,
                    offset: o,
                } if *e == epoch => Some(*o),
                _ => None,
            })
            .unwrap_or(0);
        let got: Vec<u64> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Message {
                    epoch: e,
                    offset: o,
                    ..
                } if *e == epoch => Some(*o),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            ((restart_at + 1)..=offset).collect::<Vec<_>>(),
            "reader {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_whose_pubsub_connections_drop_fill_the_gap_from_the_stream() {
    const TOTAL: u64 = 1000;
    let redis = RedisServer::start();
    let nodes = nodes(&redis, 2, &["--history-size", "10000"]).await;
    let readers: Vec<Reader> = (0..2)
        .map(|i| Reader::start(vec![nodes[i].ws_url()], "gaps", Duration::from_secs(90)))
        .collect();
    for reader in &readers {
        reader.wait_subscribed().await;
    }
    let http = reqwest::Client::new();
    let mut epoch = String::new();
    let mut kills = 0;
    for n in 1..=TOTAL {
        if n % 200 == 0 {
            // Every node's pub/sub connection drops; messages published before it
            // is back are only in the stream.
            let answer = redis.command(&["CLIENT", "KILL", "TYPE", "pubsub"]);
            assert!(answer.starts_with(':'), "CLIENT KILL answered {answer}");
            kills += answer[1..].parse::<u32>().unwrap_or(0);
        }
        let (code, body) = publish(&http, &nodes[(n % 2) as usize], "gaps", &json!(n))
            .await
            .expect("publish answered");
        assert_eq!(code, 200, "{body}");
        epoch = body["epoch"].as_str().expect("epoch").to_owned();
    }
    assert!(kills >= 8, "only {kills} pub/sub connections were dropped");
    for (i, reader) in readers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader.finish(&epoch, TOTAL))
            .await
            .expect("reader");
        assert_eq!(check_no_silent_gap(&format!("reader {i}"), &seen), 0);
        let subs = seen
            .iter()
            .filter(|s| matches!(s, Seen::Sub { .. }))
            .count();
        assert_eq!(
            subs, 1,
            "reader {i} was never disconnected: the node filled its gaps"
        );
        let data: Vec<u64> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Message { data, .. } => data.as_u64(),
                _ => None,
            })
            .collect();
        assert_eq!(data, (1..=TOTAL).collect::<Vec<_>>(), "reader {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_stream_its_clients_resume_on_another_node_without_loss() {
    const TOTAL: u64 = 1500;
    let redis = RedisServer::start();
    let mut nodes = nodes(&redis, 3, &["--history-size", "100000"]).await;
    // Two readers on node 2 (the one that dies; they move on to node 0, then 1) and
    // one on node 1.
    let readers = vec![
        Reader::start(
            vec![nodes[2].ws_url(), nodes[0].ws_url()],
            "stream",
            Duration::from_secs(90),
        ),
        Reader::start(
            vec![nodes[2].ws_url(), nodes[1].ws_url()],
            "stream",
            Duration::from_secs(90),
        ),
        Reader::start(vec![nodes[1].ws_url()], "stream", Duration::from_secs(90)),
    ];
    for reader in &readers {
        reader.wait_subscribed().await;
    }
    let http = reqwest::Client::new();
    let mut last = None;
    for n in 1..=TOTAL {
        if n == TOTAL / 3 {
            nodes[2].kill();
        }
        let (code, body) = publish(&http, &nodes[(n % 2) as usize], "stream", &json!(n))
            .await
            .expect("publish answered");
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["offset"], n);
        last = Some(body["epoch"].as_str().expect("epoch").to_owned());
    }
    let epoch = last.expect("published");
    for (i, reader) in readers.into_iter().enumerate() {
        let seen = tokio::time::timeout(Duration::from_secs(60), reader.finish(&epoch, TOTAL))
            .await
            .expect("reader");
        let told = check_no_silent_gap(&format!("reader {i}"), &seen);
        assert_eq!(told, 0, "reader {i}: everything was recoverable");
        let data: Vec<u64> = seen
            .iter()
            .filter_map(|s| match s {
                Seen::Message { data, .. } => data.as_u64(),
                _ => None,
            })
            .collect();
        assert_eq!(data, (1..=TOTAL).collect::<Vec<_>>(), "reader {i}");
        let resumed = seen
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    Seen::Sub {
                        recovered: Some(true),
                        ..
                    }
                )
            })
            .count();
        if i < 2 {
            assert!(
                resumed >= 1,
                "reader {i} of the killed node resumed on another: {seen:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_redis_does_not_block_local_work_and_bounds_waiting_publishes() {
    const MAX_PENDING: usize = 16;
    let redis = RedisServer::start();
    let nodes = nodes(
        &redis,
        1,
        &[
            "--broker-timeout",
            "2s",
            "--broker-max-pending",
            "16",
            "--interval",
            "100ms",
        ],
    )
    .await;
    let node = &nodes[0];
    let reader = Reader::start(vec![node.ws_url()], "slow", Duration::from_secs(90));
    reader.wait_subscribed().await;
    let http = reqwest::Client::new();
    let (code, _) = publish(&http, node, "slow", &json!("before"))
        .await
        .expect("answer");
    assert_eq!(code, 200);
    // The counter: local-only work.
    let (mut counter, _) = tokio_tungstenite::connect_async(format!("ws://{}/socket", node.addr))
        .await
        .expect("counter");

    redis.pause();
    let paused = Instant::now();
    // Waiting publishes are bounded: with 200 at once (sent well within the 2 s
    // timeout), all but MAX_PENDING are refused without waiting, and every one is
    // answered within the timeout.
    let started = Instant::now();
    let flood: Vec<_> = (0..200)
        .map(|n| {
            let http = http.clone();
            let url = node.url("/api/publish/slow");
            tokio::spawn(async move {
                let answer = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(json!({"n": n, "pad": "x".repeat(30_000)}).to_string())
                    .send()
                    .await
                    .expect("answer");
                (
                    answer.status().as_u16(),
                    answer.text().await.unwrap_or_default(),
                )
            })
        })
        .collect();
    let mut refused_at_once = 0;
    for one in flood {
        let (code, body) = tokio::time::timeout(Duration::from_secs(10), one)
            .await
            .expect("a publish waited over 10 s on a stopped Redis")
            .expect("task");
        assert_eq!(code, 503, "{body}");
        if body.contains("already waiting") {
            refused_at_once += 1;
        }
    }
    assert!(
        refused_at_once >= 200 - MAX_PENDING,
        "only {refused_at_once} of 200 were refused at once: waiting publishes are not bounded"
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "the flood took {:?}",
        started.elapsed()
    );
    // Local-only work goes on: the counter keeps ticking, health answers, a new
    // client is greeted; /readyz says the truth.
    // Ticks queued while the flood was read do not count: drain them first.
    while let Ok(Some(Ok(_))) =
        tokio::time::timeout(Duration::from_millis(20), counter.next()).await
    {}
    let mut last_tick = Instant::now();
    for _ in 0..10 {
        let tick = loop {
            match tokio::time::timeout(Duration::from_secs(1), counter.next()).await {
                Ok(Some(Ok(WsMessage::Ping(_)))) => continue, // keepalive
                other => break other,
            }
        };
        match tick {
            Ok(Some(Ok(WsMessage::Text(_)))) => {}
            other => panic!("the counter stalled while Redis was stopped: {other:?}"),
        }
        assert!(last_tick.elapsed() < Duration::from_secs(1));
        last_tick = Instant::now();
    }
    let asked = Instant::now();
    assert_eq!(status(node, "/healthz").await, Some(200));
    assert!(asked.elapsed() < Duration::from_secs(1));
    assert!(connect(&node.ws_url()).await.is_some());
    wait_status(node, "/readyz", 503, Duration::from_secs(10)).await;
    // A subscription that needs Redis fails within the timeout, not later; so
    // does a publish over the protocol.
    let mut ws = connect(&node.ws_url()).await.expect("connect");
    send(
        &mut ws,
        json!({"op": "pub", "id": 0, "topic": "slow", "data": 1}),
    )
    .await;
    let reply = next_json_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("reply");
    assert_eq!(reply["error"]["code"], 503, "{reply}");
    let asked = Instant::now();
    send(&mut ws, json!({"op": "sub", "id": 1, "topic": "other"})).await;
    let reply = next_json_within(&mut ws, Duration::from_secs(10))
        .await
        .expect("reply");
    assert_eq!(reply["error"]["code"], 503, "{reply}");
    assert!(
        asked.elapsed() < Duration::from_secs(6),
        "sub took {:?}",
        asked.elapsed()
    );
    assert!(paused.elapsed() < Duration::from_secs(30));

    redis.resume();
    wait_status(node, "/readyz", 200, READY).await;
    let (code, body) = publish(&http, node, "slow", &json!("after"))
        .await
        .expect("answer");
    assert_eq!(code, 200, "{body}");
    let epoch = body["epoch"].as_str().expect("epoch").to_owned();
    let offset = body["offset"].as_u64().expect("offset");
    let seen = tokio::time::timeout(Duration::from_secs(30), reader.finish(&epoch, offset))
        .await
        .expect("reader");
    // Publishes that timed out may still have run once Redis woke up; whatever
    // arrived came in order, without a gap.
    assert_eq!(check_no_silent_gap("reader", &seen), 0);
    assert!(matches!(seen.last(), Some(Seen::Message { data, .. }) if *data == json!("after")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_and_sse_resume_on_another_node_from_their_offset() {
    let redis = RedisServer::start();
    let nodes = nodes(&redis, 2, &[]).await;
    let http = reqwest::Client::new();
    let mut epoch = String::new();
    for n in 1..=5 {
        let (code, body) = publish(&http, &nodes[0], "resume", &json!(n))
            .await
            .expect("answer");
        assert_eq!(code, 200, "{body}");
        epoch = body["epoch"].as_str().expect("epoch").to_owned();
    }
    // Long-poll on the other node, from offset 2.
    let poll: Value = http
        .get(nodes[1].url(&format!(
            "/poll?topic=resume&since=resume@{epoch}:2&timeout=0"
        )))
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("JSON");
    assert_eq!(poll["subs"][0]["recovered"], true, "{poll}");
    let data: Vec<Value> = poll["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(data, vec![json!(3), json!(4), json!(5)]);
    assert_eq!(poll["since"], format!("resume@{epoch}:5"));

    // SSE on the other node with Last-Event-ID, then a live message published on
    // the first node.
    let mut sse = http
        .get(nodes[1].url("/sse?topic=resume"))
        .header("last-event-id", format!("resume@{epoch}:3"))
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.status(), 200);
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut published = false;
    while !text.contains("\"offset\":6") {
        assert!(Instant::now() < deadline, "SSE did not resume: {text}");
        if !published && text.contains("\"offset\":5") {
            let (code, _) = publish(&http, &nodes[0], "resume", &json!(6))
                .await
                .expect("answer");
            assert_eq!(code, 200);
            published = true;
        }
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_millis(500), sse.chunk()).await
        {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(text.contains("\"recovered\":true"), "{text}");
    let offsets: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("data: {\"topic\""))
        .collect();
    assert_eq!(offsets.len(), 3, "messages 4, 5, 6 once each: {text}");
    for (line, n) in offsets.iter().zip(4..) {
        assert!(line.contains(&format!("\"offset\":{n},")), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_nodes_names_each_members_token_user() {
    let redis = RedisServer::start();
    let secret = "cluster-test-secret";
    let nodes = nodes(&redis, 2, &["--token-secret", secret]).await;
    let mut clients = Vec::new();
    for (node, user) in nodes.iter().zip(["ann", "bob"]) {
        let mut ws = connect(&node.ws_url()).await.expect("connect");
        let token = chat_token(secret, user);
        send(&mut ws, json!({"op": "auth", "id": 1, "token": token})).await;
        send(
            &mut ws,
            json!({"op": "sub", "id": 2, "topic": "chat:room", "info": {"seat": user}}),
        )
        .await;
        clients.push(ws);
    }
    // On ann's node, bob's join (from the other node) names bob.
    let mut bob_joined = false;
    for _ in 0..10 {
        let Some(event) = next_json_within(&mut clients[0], Duration::from_secs(5)).await else {
            break;
        };
        if event["join"]["info"] == json!({"seat": "bob"}) {
            assert_eq!(event["join"]["user"], "bob", "{event}");
            bob_joined = true;
            break;
        }
    }
    assert!(bob_joined, "bob's join reached ann's node");
    // The member list, read from Redis, names both users.
    send(
        &mut clients[0],
        json!({"op": "presence", "id": 3, "topic": "chat:room"}),
    )
    .await;
    let mut users = Vec::new();
    for _ in 0..10 {
        let reply = next_json_within(&mut clients[0], Duration::from_secs(5))
            .await
            .expect("presence reply");
        if reply["id"] == 3 {
            users = reply["ok"]["members"]
                .as_array()
                .expect("members")
                .iter()
                .filter_map(|m| m["user"].as_str().map(str::to_owned))
                .collect();
            break;
        }
    }
    users.sort();
    assert_eq!(users, ["ann", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_crosses_nodes_and_a_killed_nodes_members_expire() {
    let redis = RedisServer::start();
    let mut nodes = nodes(&redis, 2, &["--presence-ttl", "2s"]).await;
    let mut watcher = connect(&nodes[0].ws_url()).await.expect("connect");
    send(
        &mut watcher,
        json!({"op": "sub", "id": 1, "topic": "chat:room"}),
    )
    .await;
    assert!(
        next_json_within(&mut watcher, Duration::from_secs(5))
            .await
            .expect("reply")["ok"]
            .is_object()
    );
    let mut remote = connect(&nodes[1].ws_url()).await.expect("connect");
    send(
        &mut remote,
        json!({"op": "sub", "id": 1, "topic": "chat:room", "info": {"name": "bo"}}),
    )
    .await;
    assert!(
        next_json_within(&mut remote, Duration::from_secs(5))
            .await
            .expect("reply")["ok"]
            .is_object()
    );

    // The watcher's own join, then the remote client's, delivered across nodes.
    let mut joined = None;
    for _ in 0..5 {
        let event = next_json_within(&mut watcher, Duration::from_secs(5))
            .await
            .expect("join");
        if event["join"]["info"] == json!({"name": "bo"}) {
            joined = event["join"]["client"].as_str().map(str::to_owned);
            break;
        }
    }
    let remote_id = joined.expect("the remote join reached the other node");
    send(
        &mut watcher,
        json!({"op": "presence", "id": 2, "topic": "chat:room"}),
    )
    .await;
    let members = next_matching(&mut watcher, Duration::from_secs(5), |m| m["id"] == 2)
        .await
        .expect("members");
    let clients: Vec<&str> = members["ok"]["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["client"].as_str())
        .collect();
    assert_eq!(clients.len(), 2, "{members}");
    assert!(clients.contains(&remote_id.as_str()));

    // A client on the remote node that leaves is announced on this one.
    let mut passer = connect(&nodes[1].ws_url()).await.expect("connect");
    send(
        &mut passer,
        json!({"op": "sub", "id": 1, "topic": "chat:room", "info": "passing"}),
    )
    .await;
    assert!(
        next_json_within(&mut passer, Duration::from_secs(5))
            .await
            .expect("reply")["ok"]
            .is_object()
    );
    let mut passer_id = None;
    for _ in 0..5 {
        let event = next_json_within(&mut watcher, Duration::from_secs(5))
            .await
            .expect("join");
        if event["join"]["info"] == json!("passing") {
            passer_id = event["join"]["client"].as_str().map(str::to_owned);
            break;
        }
    }
    let passer_id = passer_id.expect("the passer's join");
    send(
        &mut passer,
        json!({"op": "unsub", "id": 2, "topic": "chat:room"}),
    )
    .await;
    let event = next_matching(&mut watcher, Duration::from_secs(5), |e| {
        e["leave"]["client"] == passer_id.as_str()
    })
    .await
    .expect("the passer's leave");
    assert_eq!(event["leave"]["info"], "passing", "{event}");

    // The remote node dies: its member is gone within the TTL (2 s) plus a refresh.
    nodes[1].kill();
    let killed = Instant::now();
    next_matching(&mut watcher, Duration::from_secs(6), |e| {
        e["leave"]["client"] == remote_id.as_str()
    })
    .await
    .expect("the killed node's member leaves within 6 s");
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "leave after {:?}",
        killed.elapsed()
    );
    send(
        &mut watcher,
        json!({"op": "presence", "id": 3, "topic": "chat:room"}),
    )
    .await;
    let members = next_matching(&mut watcher, Duration::from_secs(5), |m| m["id"] == 3)
        .await
        .expect("members");
    assert_eq!(
        members["ok"]["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_starts_without_redis_and_becomes_ready_when_redis_appears() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let node = Node::start(&url, &["--broker-timeout", "300ms"]);
    wait_status(&node, "/readyz", 503, Duration::from_secs(5)).await;
    assert_eq!(status(&node, "/healthz").await, Some(200));
    let http = reqwest::Client::new();
    let (code, body) = publish(&http, &node, "t", &json!(1)).await.expect("answer");
    assert_eq!(code, 503, "{body}");
    redis.restart();
    wait_status(&node, "/readyz", 200, READY).await;
    let (code, body) = publish(&http, &node, "t", &json!(1)).await.expect("answer");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["offset"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_three_node_quick_start_works() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let block = readme
        .split("<!-- readme-example:cluster -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- /readme-example:cluster -->").next())
        .expect("the README's cluster example");
    let lines: Vec<&str> = block
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("```"))
        .collect();
    assert_eq!(lines.len(), 7, "{lines:?}");
    assert_eq!(lines[0], "cargo build --release");
    // The README's Redis is started with the flags RedisServer uses.
    assert_eq!(
        lines[1],
        "redis-server --port 6379 --save '' --appendonly no --bind 127.0.0.1 &"
    );
    let redis = RedisServer::start();
    // The three nodes, on ports of our own instead of 8001-8003.
    let mut nodes = Vec::new();
    let mut readme_ports = Vec::new();
    for line in &lines[2..5] {
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "target/release/pushwire", "{line}");
        assert_eq!(words.last(), Some(&"&"), "{line}");
        let mut args: Vec<String> = words[1..words.len() - 1]
            .iter()
            .map(|w| (*w).to_owned())
            .collect();
        let port = args.iter().position(|a| a == "--port").expect("--port") + 1;
        readme_ports.push(args[port].clone());
        args[port] = String::from("0");
        let broker = args.iter().position(|a| a == "--broker").expect("--broker") + 1;
        assert_eq!(args[broker], "redis://127.0.0.1:6379/0");
        args[broker] = redis.url();
        nodes.push(Node::start_args(&args));
    }
    for node in &nodes {
        wait_status(node, "/readyz", 200, READY).await;
    }
    let real = |text: &str| {
        let mut text = text.to_owned();
        for (port, node) in readme_ports.iter().zip(&nodes) {
            text = text.replace(&format!("127.0.0.1:{port}"), &node.addr.to_string());
        }
        text
    };
    // The subscriber on the third node.
    let words: Vec<String> = lines[5].split_whitespace().map(real).collect();
    assert_eq!(words[0], "target/release/pushwire");
    assert_eq!(words.last().map(String::as_str), Some("&"));
    let mut sub = common::binary::pushwire_async()
        .args(&words[1..words.len() - 1])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pushwire sub");
    // The publish, as curl sends it, on the first node.
    let curl = lines[6];
    let body = curl
        .split("-d '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("curl -d");
    let url = real(curl.rsplit(' ').next().expect("curl URL"));
    assert!(url.starts_with(&nodes[0].url("/api/publish/news")), "{url}");
    let http = reqwest::Client::new();
    // The subscriber may not have subscribed yet: publish until it has printed.
    let mut first = None;
    for _ in 0..20 {
        let answer = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("publish");
        assert_eq!(answer.status(), 200);
        let position: Value = answer.json().await.expect("JSON");
        first.get_or_insert(position);
        if let Ok(status) = tokio::time::timeout(Duration::from_millis(500), sub.wait()).await {
            assert!(status.expect("sub").success());
            break;
        }
    }
    let first = first.expect("published");
    assert_eq!(first["topic"], "news");
    assert_eq!(first["offset"], 1);
    let output = sub.wait_with_output().await.expect("sub output");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        r#"{"title":"hello from node 1"}"#
    );
    assert_eq!(status(&nodes[1], "/readyz").await, Some(200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_size_bounds_recovery_on_every_node() {
    let redis = RedisServer::start();
    let nodes = nodes(&redis, 2, &["--history-size", "5"]).await;
    let http = reqwest::Client::new();
    let mut epoch = String::new();
    for n in 1..=10 {
        let (code, body) = publish(&http, &nodes[0], "bounded", &json!(n))
            .await
            .expect("answer");
        assert_eq!(code, 200, "{body}");
        epoch = body["epoch"].as_str().expect("epoch").to_owned();
    }
    let poll = |since: u64| {
        let url = nodes[1].url(&format!(
            "/poll?topic=bounded&since=bounded@{epoch}:{since}&timeout=0"
        ));
        let http = http.clone();
        async move {
            http.get(url)
                .send()
                .await
                .expect("poll")
                .json::<Value>()
                .await
                .expect("JSON")
        }
    };
    // Offsets 6 to 10 are kept: resuming after 5 works, after 4 cannot.
    let kept = poll(5).await;
    assert_eq!(kept["subs"][0]["recovered"], true, "{kept}");
    let data: Vec<Value> = kept["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["data"].clone())
        .collect();
    assert_eq!(data, (6..=10).map(|n| json!(n)).collect::<Vec<_>>());
    let lost = poll(4).await;
    assert_eq!(lost["subs"][0]["recovered"], false, "{lost}");
    assert_eq!(lost["subs"][0]["offset"], 10, "{lost}");
    assert_eq!(lost["messages"], json!([]), "{lost}");
    // Another epoch cannot be resumed either.
    let other: Value = http
        .get(nodes[1].url("/poll?topic=bounded&since=bounded@Other1:3&timeout=0"))
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("JSON");
    assert_eq!(other["subs"][0]["recovered"], false, "{other}");
    assert_eq!(other["subs"][0]["epoch"], epoch.as_str());
}

/// Records the offsets a broker delivers.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl pushwire::broker::Deliver for Recorder {
    fn deliver(&self, push: Arc<pushwire::topic::Push>) {
        self.0.lock().expect("lock").extend(push.offset());
    }
    fn lost(&self, _topic: &pushwire::Topic) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_watched_again_before_its_last_unwatch_stays_subscribed() {
    use pushwire::broker::{Broker, Deliver, RedisBroker, RedisConfig};
    let redis = RedisServer::start();
    let broker = RedisBroker::new(
        pushwire::topic::HistoryConfig::default(),
        RedisConfig::new(redis.url()),
    )
    .expect("broker");
    let recorder: Arc<Recorder> = Arc::new(Recorder::default());
    let hub: Arc<dyn Deliver> = recorder.clone();
    broker.attach(Arc::downgrade(&hub));
    let topic = pushwire::Topic::new("again").expect("topic");
    let deadline = Instant::now() + READY;
    while !broker.ready().await {
        assert!(Instant::now() < deadline, "the broker never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A first subscriber comes and its recovery waits until the channel is live.
    broker.watch(&topic);
    broker.recover(&topic, None).await.expect("recover");
    // The hub may say that a new first subscriber came before the old last one left.
    broker.watch(&topic);
    broker.unwatch(&topic);
    broker.recover(&topic, None).await.expect("recover");
    let data = pushwire::Data::json("1").expect("JSON");
    let position = broker.publish(&topic, data).await.expect("publish");
    assert_eq!(position.offset, 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while recorder.0.lock().expect("lock").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the topic is still watched: its message must arrive"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*recorder.0.lock().expect("lock"), vec![1]);
    // Once the last one left, nothing more arrives.
    broker.unwatch(&topic);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let data = pushwire::Data::json("2").expect("JSON");
    broker.publish(&topic, data).await.expect("publish");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(*recorder.0.lock().expect("lock"), vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_older_than_its_ttl_is_not_recovered() {
    let redis = RedisServer::start();
    let nodes = nodes(&redis, 1, &["--history-ttl", "1s"]).await;
    let http = reqwest::Client::new();
    let (code, body) = publish(&http, &nodes[0], "aging", &json!(1))
        .await
        .expect("answer");
    assert_eq!(code, 200, "{body}");
    let epoch = body["epoch"].as_str().expect("epoch").to_owned();
    let poll = || async {
        http.get(nodes[0].url(&format!(
            "/poll?topic=aging&since=aging@{epoch}:0&timeout=0"
        )))
        .send()
        .await
        .expect("poll")
        .json::<Value>()
        .await
        .expect("JSON")
    };
    let fresh = poll().await;
    assert_eq!(fresh["subs"][0]["recovered"], true, "{fresh}");
    assert_eq!(fresh["messages"][0]["data"], 1, "{fresh}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let old = poll().await;
    assert_eq!(old["subs"][0]["recovered"], false, "{old}");
    assert_eq!(old["messages"], json!([]), "{old}");
}
