//! Pusher webhooks received by a real HTTP server in the test (axum on a free
//! port), which checks every post's `X-Pusher-Key` and `X-Pusher-Signature` (hex
//! HMAC-SHA256 of the body with the app secret) and records the events: occupied
//! and vacated on one node and across two nodes on a real `redis-server`, retries
//! after 500s, batching. The subscribers are `/ws` clients of the channels' topics
//! (one hub: every transport counts).

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::redis::RedisServer;
use common::topics::{sub, ws};
use common::{Running, start};
use pushwire::broker::{RedisBroker, RedisConfig};
use pushwire::interop::pusher::{PusherApp, PusherApps};
use pushwire::ops::Metrics;
use pushwire::topic::HistoryConfig;
use pushwire::{App, Hub, HubConfig};
use ring::hmac;
use serde_json::{Value, json};
use tokio::sync::Notify;

const KEY: &str = "hook-key";
const SECRET: &str = "hook-secret";

/// One post as the receiver saw it.
#[derive(Debug, Clone)]
struct Post {
    /// `X-Pusher-Key` was the app key and the signature matched the body.
    signed: bool,
    content_type: String,
    body: Value,
}

/// What the receiver does and saw.
#[derive(Default)]
struct Receiver {
    posts: Mutex<Vec<Post>>,
    /// Answer 500 to this many posts first.
    fail_first: Mutex<usize>,
    /// Hold the answer to the first post until notified.
    hold_first: Option<Arc<Notify>>,
    /// Set when the first post arrived.
    first_arrived: Notify,
}

impl Receiver {
    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every event received, `(name, channel)`, in order.
    fn events(&self) -> Vec<(String, String)> {
        self.posts()
            .iter()
            .flat_map(|post| post.body["events"].as_array().cloned().unwrap_or_default())
            .map(|event| {
                (
                    event["name"].as_str().unwrap_or_default().to_owned(),
                    event["channel"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits (at most 10 s) until `events` holds `n` events.
    async fn wait_events(&self, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + common::STEP;
        loop {
            let events = self.events();
            if events.len() >= n || Instant::now() > deadline {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let expected = hex(hmac::sign(&key, &body).as_ref());
    let post = Post {
        signed: header("x-pusher-key") == KEY && header("x-pusher-signature") == expected,
        content_type: header("content-type"),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    let first = {
        let mut posts = receiver.posts.lock().unwrap_or_else(|e| e.into_inner());
        posts.push(post);
        posts.len() == 1
    };
    if first {
        receiver.first_arrived.notify_one();
        if let Some(hold) = &receiver.hold_first {
            hold.notified().await;
        }
    }
    let mut fail = receiver
        .fail_first
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if *fail > 0 {
        *fail -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

/// Starts a receiver; answers its URL.
async fn receiver(receiver: Arc<Receiver>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let router = Router::new()
        .route("/hooks", post(receive))
        .with_state(receiver);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/hooks"), task)
}

/// App `42` (its channels are topics `42:…`) with a webhook to `url`.
fn apps(url: &str) -> PusherApps {
    let app = PusherApp::parse(&format!("42:{KEY}:{SECRET}?webhook={url}"))
        .unwrap_or_else(|e| panic!("{e}"));
    PusherApps::new(vec![app]).unwrap_or_else(|e| panic!("{e}"))
}

fn hub_config() -> HubConfig {
    HubConfig {
        presence: vec!["42".into()],
        ..HubConfig::default()
    }
}

/// A server with topics on `hub` and app 42 posting to `url`, with metrics.
async fn server(hub: Hub, url: &str) -> Running {
    start(
        App::new()
            .topics(hub)
            .pusher(apps(url))
            .metrics(pushwire::MetricsAccess::Public),
    )
    .await
}

fn event(name: &str, channel: &str) -> (String, String) {
    (name.to_owned(), channel.to_owned())
}

/// Waits `quiet` and answers what arrived meanwhile beyond `known`.
async fn more_after(receiver: &Receiver, known: usize, quiet: Duration) -> Vec<(String, String)> {
    tokio::time::sleep(quiet).await;
    receiver.events().split_off(known)
}

fn metric(metrics: &Metrics, line_start: &str) -> Option<f64> {
    metrics
        .encode()
        .lines()
        .find_map(|line| line.strip_prefix(line_start)?.trim().parse().ok())
}

#[tokio::test]
async fn one_node_posts_occupied_and_vacated_signed_once_each() {
    let rx = Arc::new(Receiver::default());
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let hub = Hub::new(hub_config());
    let server = server(hub.clone(), &url).await;

    let (mut first, _) = ws(&server).await;
    sub(&mut first, "42:orders", None).await;
    assert_eq!(
        rx.wait_events(1).await,
        vec![event("channel_occupied", "orders")]
    );
    let (mut second, _) = ws(&server).await;
    sub(&mut second, "42:orders", None).await;
    drop(first);
    assert_eq!(
        more_after(&rx, 1, Duration::from_millis(500)).await,
        vec![],
        "one subscriber is left"
    );
    drop(second);
    assert_eq!(
        rx.wait_events(2).await,
        vec![
            event("channel_occupied", "orders"),
            event("channel_vacated", "orders")
        ]
    );
    assert_eq!(more_after(&rx, 2, Duration::from_millis(500)).await, vec![]);
    for post in rx.posts() {
        assert!(post.signed, "{post:?}");
        assert_eq!(post.content_type, "application/json");
        assert!(post.body["time_ms"].as_u64().is_some(), "{post:?}");
    }
    let metrics = hub.metrics().cloned().unwrap_or_default();
    assert_eq!(
        metric(
            &metrics,
            "pushwire_pusher_webhook_events_total{outcome=\"sent\"}"
        ),
        Some(2.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn a_channel_is_vacated_once_after_its_last_subscriber_on_both_nodes_left() {
    let redis = RedisServer::start();
    let rx = Arc::new(Receiver::default());
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let node = |_: usize| {
        let broker = RedisBroker::new(HistoryConfig::default(), RedisConfig::new(redis.url()))
            .unwrap_or_else(|e| panic!("{e}"));
        Hub::with_broker(hub_config(), Arc::new(broker))
    };
    let (a, b) = (server(node(0), &url).await, server(node(1), &url).await);

    let (mut on_a, _) = ws(&a).await;
    sub(&mut on_a, "42:presence-room", None).await;
    assert_eq!(
        rx.wait_events(1).await,
        vec![event("channel_occupied", "presence-room")]
    );
    let (mut on_b, _) = ws(&b).await;
    sub(&mut on_b, "42:presence-room", None).await;
    let (mut also_b, _) = ws(&b).await;
    sub(&mut also_b, "42:presence-room", None).await;
    assert_eq!(
        more_after(&rx, 1, Duration::from_millis(500)).await,
        vec![],
        "already occupied by node a"
    );
    drop(on_a);
    drop(on_b);
    assert_eq!(
        more_after(&rx, 1, Duration::from_millis(500)).await,
        vec![],
        "node b still has a subscriber"
    );
    drop(also_b);
    assert_eq!(
        rx.wait_events(2).await,
        vec![
            event("channel_occupied", "presence-room"),
            event("channel_vacated", "presence-room")
        ]
    );
    assert_eq!(more_after(&rx, 2, Duration::from_millis(500)).await, vec![]);
    assert!(rx.posts().iter().all(|p| p.signed));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_post_answered_500_is_retried_until_acknowledged() {
    let rx = Arc::new(Receiver {
        fail_first: Mutex::new(3),
        ..Receiver::default()
    });
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let hub = Hub::new(hub_config());
    let server = server(hub.clone(), &url).await;
    let (mut client, _) = ws(&server).await;
    sub(&mut client, "42:retry-me", None).await;
    let deadline = Instant::now() + common::STEP;
    while rx.posts().len() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let posts = rx.posts();
    assert_eq!(posts.len(), 4, "three 500s, then acknowledged: {posts:?}");
    assert!(
        posts.iter().all(|p| p.body == posts[0].body && p.signed),
        "the same signed body every time: {posts:?}"
    );
    assert_eq!(
        posts[0].body["events"],
        json!([{"name": "channel_occupied", "channel": "retry-me"}])
    );
    assert_eq!(
        more_after(&rx, 4, Duration::from_millis(500)).await,
        vec![],
        "acknowledged: not sent again"
    );
    let metrics = hub.metrics().cloned().unwrap_or_default();
    assert_eq!(
        metric(&metrics, "pushwire_pusher_webhook_retries_total"),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "pushwire_pusher_webhook_events_total{outcome=\"sent\"}"
        ),
        Some(1.0)
    );
    server.stop().await;
}

#[tokio::test]
async fn events_that_queue_up_meanwhile_are_posted_together() {
    let hold = Arc::new(Notify::new());
    let rx = Arc::new(Receiver {
        hold_first: Some(Arc::clone(&hold)),
        ..Receiver::default()
    });
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let hub = Hub::new(hub_config());
    let server = server(hub.clone(), &url).await;
    let (mut client, _) = ws(&server).await;
    sub(&mut client, "42:first", None).await;
    tokio::time::timeout(common::STEP, rx.first_arrived.notified())
        .await
        .unwrap_or_else(|_| panic!("no first post"));
    // While the first post waits for its answer, five more channels are occupied.
    // (A client each: the app's namespace tracks presence, so a client's own join
    // follows its reply.)
    let mut clients = Vec::new();
    for n in 0..5 {
        let (mut more, _) = ws(&server).await;
        sub(&mut more, &format!("42:more-{n}"), None).await;
        clients.push(more);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    hold.notify_one();
    let events = rx.wait_events(6).await;
    assert_eq!(events.len(), 6, "{events:?}");
    let posts = rx.posts();
    assert_eq!(posts[0].body["events"].as_array().map(Vec::len), Some(1));
    assert!(
        posts
            .get(1)
            .and_then(|p| p.body["events"].as_array())
            .is_some_and(|events| events.len() > 1),
        "the events queued meanwhile came together: {posts:?}"
    );
    let mut later: Vec<String> = events[1..].iter().map(|(_, c)| c.clone()).collect();
    later.sort();
    assert_eq!(
        later,
        (0..5).map(|n| format!("more-{n}")).collect::<Vec<_>>()
    );
    server.stop().await;
}
