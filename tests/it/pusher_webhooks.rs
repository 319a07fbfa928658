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
/// How long the tests wait to see that nothing more comes: longer than the
/// second a node waits before it tells that a channel has no subscriber left.
const QUIET: Duration = Duration::from_millis(1500);
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

    /// Every event received, whole, in order.
    fn raw_events(&self) -> Vec<Value> {
        self.posts()
            .iter()
            .flat_map(|post| post.body["events"].as_array().cloned().unwrap_or_default())
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

/// App `42` (its channels are topics `42:…`, client events on) with a webhook to
/// `url`.
fn apps(url: &str) -> PusherApps {
    let app = PusherApp::parse(&format!(
        "42:{KEY}:{SECRET}?client-events=true&webhook={url}"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    PusherApps::new(vec![app]).unwrap_or_else(|e| panic!("{e}"))
}

fn hub_config() -> HubConfig {
    apps("http://127.0.0.1:9/unused").hub_config(HubConfig::default())
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
        more_after(&rx, 1, QUIET).await,
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
    assert_eq!(more_after(&rx, 2, QUIET).await, vec![]);
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
    sub(&mut on_a, "42:room", None).await;
    assert_eq!(
        rx.wait_events(1).await,
        vec![event("channel_occupied", "room")]
    );
    let (mut on_b, _) = ws(&b).await;
    sub(&mut on_b, "42:room", None).await;
    let (mut also_b, _) = ws(&b).await;
    sub(&mut also_b, "42:room", None).await;
    assert_eq!(
        more_after(&rx, 1, QUIET).await,
        vec![],
        "already occupied by node a"
    );
    drop(on_a);
    drop(on_b);
    assert_eq!(
        more_after(&rx, 1, QUIET).await,
        vec![],
        "node b still has a subscriber"
    );
    drop(also_b);
    assert_eq!(
        rx.wait_events(2).await,
        vec![
            event("channel_occupied", "room"),
            event("channel_vacated", "room")
        ]
    );
    assert_eq!(more_after(&rx, 2, QUIET).await, vec![]);
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
        more_after(&rx, 4, QUIET).await,
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
    tokio::time::sleep(QUIET).await;
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

/// A receiver over TLS with `cert`; answers its URL.
async fn tls_receiver(
    receiver: Arc<Receiver>,
    cert: &common::tls::Cert,
) -> (String, tokio::task::JoinHandle<()>) {
    use rustls_pki_types::PrivateKeyDer;
    use rustls_pki_types::pem::PemObject as _;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .unwrap_or_else(|e| panic!("key: {e}"));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap_or_else(|e| panic!("{e}"))
    .with_no_client_auth()
    .with_single_cert(vec![cert.der.clone()], key)
    .unwrap_or_else(|e| panic!("{e}"));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    let router = Router::new()
        .route("/hooks", post(receive))
        .with_state(receiver);
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (format!("https://127.0.0.1:{}/hooks", addr.port()), task)
}

#[tokio::test]
async fn an_https_webhook_is_posted_over_tls_to_a_trusted_receiver() {
    let cert = common::tls::make_cert_for(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let roots = dir.path().join("roots.pem");
    std::fs::write(&roots, &cert.cert_pem).unwrap_or_else(|e| panic!("{e}"));
    let rx = Arc::new(Receiver::default());
    let (url, _receiver) = tls_receiver(Arc::clone(&rx), &cert).await;
    // The built binary, trusting the receiver's certificate as its only root
    // (rustls-native-certs reads SSL_CERT_FILE).
    let mut command = common::binary::pushwire();
    command.env("SSL_CERT_FILE", &roots).args([
        "serve",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--pusher-app",
        &format!("42:{KEY}:{SECRET}?webhook={url}"),
    ]);
    let (_node, line) = common::binary::spawn_with_first_line(&mut command);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::trim)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let mut client = common::connect(&format!("ws://{addr}/ws")).await;
    let hello = common::topics::next_json(&mut client).await;
    assert!(hello.get("hello").is_some(), "{hello}");
    sub(&mut client, "42:secure", None).await;
    assert_eq!(
        rx.wait_events(1).await,
        vec![event("channel_occupied", "secure")]
    );
    assert!(rx.posts().iter().all(|p| p.signed));

    // A node that does not trust the certificate posts nothing.
    let mut untrusting = common::binary::pushwire();
    untrusting.env_remove("SSL_CERT_FILE").args([
        "serve",
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--pusher-app",
        &format!("42:{KEY}:{SECRET}?webhook={url}"),
    ]);
    let (_other, line) = common::binary::spawn_with_first_line(&mut untrusting);
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .map(str::trim)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let mut client = common::connect(&format!("ws://{addr}/ws")).await;
    common::topics::next_json(&mut client).await;
    sub(&mut client, "42:insecure", None).await;
    assert_eq!(more_after(&rx, 1, QUIET).await, vec![]);
}

/// A Pusher protocol client of app 42 past `connection_established`: its socket
/// and socket id.
async fn pusher_client(server: &Running) -> (common::Client, String) {
    let mut ws = common::connect(&server.ws_url(&format!(
        "/app/{KEY}?protocol=7&client=js&version=8.6.0&flash=false"
    )))
    .await;
    let hello = common::topics::next_json(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value = serde_json::from_str(hello["data"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let socket_id = data["socket_id"].as_str().unwrap_or_default().to_owned();
    (ws, socket_id)
}

/// Joins presence channel `channel` as `user` and reads the success.
async fn join(ws: &mut common::Client, socket_id: &str, channel: &str, user: &str) {
    use futures_util::SinkExt as _;
    let data = json!({"user_id": user, "user_info": {}}).to_string();
    let auth = format!(
        "{KEY}:{}",
        pushwire::interop::pusher::signature::sign(
            SECRET,
            &format!("{socket_id}:{channel}:{data}")
        )
    );
    let subscribe = json!({"event": "pusher:subscribe",
        "data": {"channel": channel, "auth": auth, "channel_data": data}});
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        subscribe.to_string(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..10 {
        let message = common::topics::next_json(ws).await;
        if message["event"] == "pusher_internal:subscription_succeeded" {
            return;
        }
    }
    panic!("{user} did not join {channel}");
}

#[tokio::test]
async fn pusher_clients_cause_member_and_client_event_webhooks() {
    use futures_util::SinkExt as _;
    let rx = Arc::new(Receiver::default());
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let server = server(Hub::new(hub_config()), &url).await;
    let room = "presence-room";
    let (mut ann, ann_id) = pusher_client(&server).await;
    join(&mut ann, &ann_id, room, "ann").await;
    let (mut bob, bob_id) = pusher_client(&server).await;
    join(&mut bob, &bob_id, room, "bob").await;
    let wave = json!({"event": "client-wave", "channel": room, "data": {"hi": 1}});
    ann.send(tokio_tungstenite::tungstenite::Message::text(
        wave.to_string(),
    ))
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    rx.wait_events(4).await;
    drop(bob);
    rx.wait_events(5).await;
    drop(ann);
    let events = rx.wait_events(7).await;
    assert_eq!(events.len(), 7, "{events:?}");
    let all = rx.raw_events();
    let position = |wanted: &Value| {
        all.iter()
            .position(|e| e == wanted)
            .unwrap_or_else(|| panic!("no {wanted} in {all:#?}"))
    };
    let occupied = position(&json!({"name": "channel_occupied", "channel": room}));
    let ann_added = position(&json!({"name": "member_added", "channel": room, "user_id": "ann"}));
    let bob_added = position(&json!({"name": "member_added", "channel": room, "user_id": "bob"}));
    let waved = position(
        &json!({"name": "client_event", "channel": room, "event": "client-wave",
        "data": "{\"hi\":1}", "socket_id": ann_id, "user_id": "ann"}),
    );
    let bob_removed =
        position(&json!({"name": "member_removed", "channel": room, "user_id": "bob"}));
    let ann_removed =
        position(&json!({"name": "member_removed", "channel": room, "user_id": "ann"}));
    let vacated = position(&json!({"name": "channel_vacated", "channel": room}));
    assert!(ann_added < bob_added && bob_added < waved, "{all:#?}");
    assert!(waved < bob_removed && bob_removed < ann_removed, "{all:#?}");
    assert!(occupied < vacated && ann_removed < vacated, "{all:#?}");
    assert_eq!(more_after(&rx, 7, QUIET).await, vec![]);
    assert!(rx.posts().iter().all(|p| p.signed));
    server.stop().await;
}

#[tokio::test]
async fn a_user_on_two_nodes_is_added_once_and_removed_after_their_last_socket() {
    let redis = RedisServer::start();
    let rx = Arc::new(Receiver::default());
    let (url, _receiver) = receiver(Arc::clone(&rx)).await;
    let node = || {
        let broker = RedisBroker::new(HistoryConfig::default(), RedisConfig::new(redis.url()))
            .unwrap_or_else(|e| panic!("{e}"));
        Hub::with_broker(hub_config(), Arc::new(broker))
    };
    let (a, b) = (server(node(), &url).await, server(node(), &url).await);
    let room = "presence-both";
    let (mut on_a, a_id) = pusher_client(&a).await;
    join(&mut on_a, &a_id, room, "ann").await;
    rx.wait_events(2).await;
    let (mut on_b, b_id) = pusher_client(&b).await;
    join(&mut on_b, &b_id, room, "ann").await;
    // (Node a hears of ann's socket on node b through Redis.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(on_a);
    let mut events = more_after(&rx, 0, QUIET).await;
    events.sort();
    assert_eq!(
        events,
        vec![event("channel_occupied", room), event("member_added", room)],
        "ann is still there on node b"
    );
    drop(on_b);
    let events = rx.wait_events(4).await;
    assert_eq!(
        events[2..]
            .iter()
            .filter(|e| e.0 == "member_removed")
            .count(),
        1,
        "{events:?}"
    );
    assert_eq!(
        more_after(&rx, 4, QUIET).await,
        vec![],
        "once each: {:?}",
        rx.raw_events()
    );
    let mut events = rx.events();
    events.sort();
    assert_eq!(
        events,
        vec![
            event("channel_occupied", room),
            event("channel_vacated", room),
            event("member_added", room),
            event("member_removed", room)
        ]
    );
    a.stop().await;
    b.stop().await;
}
