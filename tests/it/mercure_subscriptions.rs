//! Mercure active subscriptions (`MercureConfig::subscriptions`) over real
//! sockets: a subscriber's subscriptions are announced as private `mercure`
//! events to subscribers granted their topics, listed by the subscriptions API
//! (tokens checked as RFC 6750 says), and ended (`active: false`, gone from the
//! list) when its stream closes; with two nodes on a real `redis-server`, a
//! subscriber of one node is listed and announced on the other. Tokens are
//! minted with `jsonwebtoken`, streams read with reqwest.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::mercure::{Stream, encode, subscribe_url};
use common::redis::{READY, RedisServer};
use common::{Running, STEP};
use pushwire::broker::{Broker, RedisBroker, RedisConfig};
use pushwire::interop::mercure::{Issuer, KeySpec, MercureConfig};
use pushwire::topic::HistoryConfig;
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.test/";
const SECRET: &str = "a-subscriptions-test-secret-32-bytes!";
const DETAIL: &str = "https://mercure.rocks/authorization-detail";
/// The configured audience (so tokens do not depend on the port).
const AUDIENCE: &str = "https://hub.test/.well-known/mercure";
const API: &str = "/.well-known/mercure/subscriptions";

fn config(subscriptions: bool) -> MercureConfig {
    MercureConfig {
        issuers: vec![Issuer {
            iss: ISSUER.into(),
            key: KeySpec::Hs256(SECRET.into()),
        }],
        audience: Some(AUDIENCE.into()),
        subscriptions,
        ..MercureConfig::default()
    }
}

async fn start_on(hub: Hub, config: MercureConfig) -> Running {
    common::start(App::new().topics(hub).mercure(config)).await
}

async fn start(subscriptions: bool) -> Running {
    let config = config(subscriptions);
    let hub = Hub::new(config.hub_config(HubConfig::default()));
    start_on(hub, config).await
}

fn unix(plus: u64) -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + plus
}

/// A 1.0 access token of `sub` granting `subscribe` on `topics` (`(match,
/// match_type)`), with `payload` on that grant.
fn token(sub: &str, topics: &[(&str, &str)], payload: Option<Value>) -> String {
    // Installs the JWT library's crypto provider (pushwire's own signing does).
    let _ = pushwire::auth::sign(
        &pushwire::auth::Claims::default(),
        &pushwire::auth::SigningKey::Secret(SECRET.into()),
        None,
    );
    let mut detail = json!({
        "type": DETAIL,
        "actions": ["subscribe"],
        "topics": topics
            .iter()
            .map(|(m, kind)| json!({"match": m, "match_type": kind}))
            .collect::<Vec<_>>(),
    });
    if let Some(payload) = payload {
        detail["payload"] = payload;
    }
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "exp": unix(3600),
        "authorization_details": [detail],
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A token that may read every subscription (and every private update).
fn admin() -> String {
    token("admin", &[("*", "exact")], None)
}

/// Subscribes on `server` with `query` (name, value) pairs and `token`.
async fn open(server: &Running, query: &[(&str, &str)], token: &str) -> Stream {
    let bearer = format!("Bearer {token}");
    Stream::open(&subscribe_url(server, query), &[("authorization", &bearer)]).await
}

/// The next event of `stream`, checked to be a subscription event: its id and
/// document.
async fn subscription(stream: &mut Stream) -> (String, Value) {
    let event = stream.next().await;
    assert_eq!(event.event.as_deref(), Some("mercure"), "{event:?}");
    let document = serde_json::from_str(&event.data).expect("JSON document");
    (event.id.expect("an id"), document)
}

/// The next subscription event of `subscriber` on `stream` (those of others
/// skipped).
async fn subscription_of(stream: &mut Stream, subscriber: &str) -> (String, Value) {
    let deadline = Instant::now() + STEP;
    loop {
        let (id, document) = subscription(stream).await;
        if document["subscriber"] == subscriber {
            return (id, document);
        }
        assert!(Instant::now() < deadline, "no event of {subscriber}");
    }
}

/// `GET` an API path with `token`: status, `Content-Type`, `WWW-Authenticate`
/// and body (JSON when it is).
async fn api(server: &Running, path: &str, token: Option<&str>) -> (u16, String, String, Value) {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("API timed out")
        .expect("API failed");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (content_type, challenge) = (header("content-type"), header("www-authenticate"));
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, content_type, challenge, body)
}

/// The subscription id of `matcher` (of `match_type`) by `subscriber`.
fn id(match_type: &str, matcher: &str, subscriber: &str) -> String {
    format!(
        "{API}/{match_type}/{}/{}",
        encode(matcher),
        encode(subscriber)
    )
}

const BOOK: &str = "https://example.com/books/1";
const BOOKS: &str = "https://example.com/books/:id";

/// The documents `alice`'s stream (match BOOK, match_urlpattern BOOKS) makes.
fn alice_documents(active: bool) -> Vec<Value> {
    vec![
        json!({
            "id": id("exact", BOOK, "alice"),
            "type": "Subscription",
            "match_type": "exact",
            "match": BOOK,
            "subscriber": "alice",
            "active": active,
            "payload": {"name": "Alice"},
        }),
        json!({
            "id": id("urlpattern", BOOKS, "alice"),
            "type": "Subscription",
            "match_type": "urlpattern",
            "match": BOOKS,
            "subscriber": "alice",
            "active": active,
            "payload": {"name": "Alice"},
        }),
    ]
}

async fn alice(server: &Running) -> Stream {
    let token = token(
        "alice",
        &[(BOOKS, "urlpattern")],
        Some(json!({"name": "Alice"})),
    );
    open(
        server,
        &[("match", BOOK), ("match_urlpattern", BOOKS)],
        &token,
    )
    .await
}

#[tokio::test]
async fn subscriptions_are_announced_listed_and_ended() {
    let server = start(true).await;
    // An observer of every subscription, with a token that grants them.
    let mut observer = open(
        &server,
        &[("match_urlpattern", &format!("{API}/*"))],
        &admin(),
    )
    .await;
    // A subscriber of the same topics whose token grants none of them: the
    // private events skip it; its first event is a public marker.
    let marker = "https://example.com/marker";
    let nobody = token("nobody", &[("https://example.com/other", "exact")], None);
    let mut ungranted = open(
        &server,
        &[("match_urlpattern", &format!("{API}/*")), ("match", marker)],
        &nobody,
    )
    .await;

    let stream = alice(&server).await;
    let mut announced = Vec::new();
    for _ in 0..2 {
        announced.push(subscription_of(&mut observer, "alice").await);
    }
    let documents: Vec<Value> = announced.iter().map(|(_, d)| d.clone()).collect();
    assert_eq!(documents, alice_documents(true));
    assert_ne!(announced[0].0, announced[1].0, "each event has its own id");

    // The list: every subscription, and the id of the newest update.
    let (status, content_type, _, list) = api(&server, API, Some(&admin())).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "application/json"),
        "{list}"
    );
    let observer_id = |s: &Value| s["subscriber"] != "alice";
    let alices: Vec<Value> = list["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter(|s| !observer_id(s))
        .cloned()
        .collect();
    assert_eq!(alices, alice_documents(true), "{list}");
    assert_eq!(list["id"], API);
    assert_eq!(list["type"], "Subscriptions");
    assert_eq!(list["lastEventID"], announced[1].0.as_str(), "{list}");
    // The observer and the ungranted subscriber are listed too, as themselves.
    let subscribers: Vec<&str> = list["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter_map(|s| s["subscriber"].as_str())
        .collect();
    assert!(
        subscribers.contains(&"admin") && subscribers.contains(&"nobody"),
        "{list}"
    );

    // Narrower paths.
    let (status, _, _, exact) = api(&server, &format!("{API}/exact"), Some(&admin())).await;
    assert_eq!(status, 200);
    let exact: Vec<Value> = exact["subscriptions"]
        .as_array()
        .expect("subscriptions")
        .iter()
        .filter(|s| s["subscriber"] != "nobody")
        .cloned()
        .collect();
    assert_eq!(
        exact,
        vec![alice_documents(true)[0].clone()],
        "only exact matchers"
    );
    let (status, _, _, by_match) = api(
        &server,
        &format!("{API}/urlpattern/{}", encode(BOOKS)),
        Some(&admin()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(by_match["subscriptions"], json!([alice_documents(true)[1]]));
    let one = id("exact", BOOK, "alice");
    let (status, content_type, _, document) = api(&server, &one, Some(&admin())).await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    assert_eq!(document, alice_documents(true)[0]);
    let (status, _, _, _) = api(&server, &id("exact", BOOK, "bob"), Some(&admin())).await;
    assert_eq!(status, 404);

    // The ungranted subscriber saw none of it.
    let (status, _) = publish_public(&server, marker).await;
    assert_eq!(status, 200);
    let first = ungranted.next().await;
    assert_eq!(
        (first.event.as_deref(), first.data.as_str()),
        (None, "m"),
        "{first:?}"
    );

    // The stream ends: both subscriptions are announced inactive and leave the list.
    drop(stream);
    let ended: Vec<Value> = [
        subscription_of(&mut observer, "alice").await,
        subscription_of(&mut observer, "alice").await,
    ]
    .into_iter()
    .map(|(_, d)| d)
    .collect();
    assert_eq!(ended, alice_documents(false));
    let deadline = Instant::now() + STEP;
    loop {
        let (_, _, _, list) = api(&server, API, Some(&admin())).await;
        let left = list["subscriptions"]
            .as_array()
            .expect("subscriptions")
            .iter()
            .any(|s| s["subscriber"] == "alice");
        if !left {
            break;
        }
        assert!(Instant::now() < deadline, "alice is still listed: {list}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

/// Publishes a public update with data `m` on `topic` (a token granting publish).
async fn publish_public(server: &Running, topic: &str) -> (u16, String) {
    let _ = pushwire::auth::sign(
        &pushwire::auth::Claims::default(),
        &pushwire::auth::SigningKey::Secret(SECRET.into()),
        None,
    );
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "exp": unix(3600),
        "authorization_details": [{"type": DETAIL, "actions": ["publish"], "topics": [{"match": "*"}]}],
    });
    let token = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    let response = tokio::time::timeout(
        STEP,
        reqwest::Client::new()
            .post(server.url("/.well-known/mercure"))
            .bearer_auth(token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("topic={}&data=m", encode(topic)))
            .send(),
    )
    .await
    .expect("publish timed out")
    .expect("publish failed");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn the_api_wants_a_token_granting_the_path_and_is_off_by_default() {
    let server = start(true).await;
    let (status, _, challenge, _) = api(&server, API, None).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    let (status, _, challenge, _) = api(&server, API, Some("not.a.token")).await;
    assert_eq!(status, 401);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    // A token that grants one subscription's path, not the whole list.
    let path = id("exact", BOOK, "alice");
    let narrow = token("reader", &[(&path, "exact")], None);
    let (status, _, challenge, _) = api(&server, API, Some(&narrow)).await;
    assert_eq!(status, 403);
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    let (status, _, _, _) = api(&server, &path, Some(&narrow)).await;
    assert_eq!(status, 404, "granted, and no such subscription yet");
    let stream = alice(&server).await;
    let deadline = Instant::now() + STEP;
    loop {
        let (status, _, _, document) = api(&server, &path, Some(&narrow)).await;
        if status == 200 {
            assert_eq!(document, alice_documents(true)[0]);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never listed: {status} {document}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(stream);
    server.stop().await;

    let off = start(false).await;
    let (status, _, _, _) = api(&off, API, Some(&admin())).await;
    assert_eq!(
        status, 404,
        "active subscriptions are off unless configured"
    );
    off.stop().await;
}

/// A node with active subscriptions on `redis`.
async fn redis_node(redis: &RedisServer) -> Running {
    let config = config(true);
    let broker =
        RedisBroker::new(HistoryConfig::default(), RedisConfig::new(redis.url())).expect("broker");
    let deadline = Instant::now() + READY;
    while !broker.ready().await {
        assert!(Instant::now() < deadline, "the broker never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let hub = Hub::with_broker(config.hub_config(HubConfig::default()), Arc::new(broker));
    start_on(hub, config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_one_node_is_announced_and_listed_on_another() {
    let redis = RedisServer::start();
    let one = redis_node(&redis).await;
    let two = redis_node(&redis).await;
    let mut observer = open(&two, &[("match_urlpattern", &format!("{API}/*"))], &admin()).await;
    let stream = alice(&one).await;
    let documents: Vec<Value> = [
        subscription_of(&mut observer, "alice").await,
        subscription_of(&mut observer, "alice").await,
    ]
    .into_iter()
    .map(|(_, d)| d)
    .collect();
    assert_eq!(documents, alice_documents(true));
    let deadline = Instant::now() + STEP;
    loop {
        let (status, _, _, list) = api(&two, &format!("{API}/exact"), Some(&admin())).await;
        assert_eq!(status, 200, "{list}");
        if list["subscriptions"] == json!([alice_documents(true)[0]]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node two never listed alice: {list}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stream);
    let ended: Vec<Value> = [
        subscription_of(&mut observer, "alice").await,
        subscription_of(&mut observer, "alice").await,
    ]
    .into_iter()
    .map(|(_, d)| d)
    .collect();
    assert_eq!(ended, alice_documents(false));
    one.stop().await;
    two.stop().await;
}
