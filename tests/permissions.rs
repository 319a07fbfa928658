//! Permissions hold for as long as a subscription lives (docs/protocol.md,
//! "Authentication"): a subscription token that expires without a fresh one ends
//! its subscription with an `unsub` push (401), a fresh one in time keeps it and
//! its position, and a connection-token refresh with narrower permissions ends
//! exactly the subscriptions it no longer allows (403). The same over SSE and
//! long-poll. Real sockets, a real clock: tokens here live a second or two (the
//! server allows no clock skew), and the tests wait for them to expire.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::topics::*;
use common::{Client, Running, STEP, start};
use pushwire::auth::{AuthConfig, Claims, SigningKey, Verifier, now, sign};
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

/// A connection token for `user`, valid `ttl` seconds, granting `topics`.
fn connection(user: &str, ttl: u64, topics: &[(&str, &[&str])]) -> String {
    let topics: BTreeMap<String, Vec<String>> = topics
        .iter()
        .map(|(p, perms)| {
            (
                (*p).to_owned(),
                perms.iter().map(|s| (*s).to_owned()).collect(),
            )
        })
        .collect();
    sign_claims(&Claims {
        sub: Some(user.to_owned()),
        exp: now() + ttl,
        topics: Some(topics),
        ..Claims::default()
    })
}

/// A subscription token: `user` may subscribe to `topic` for `ttl` seconds.
fn subscription(user: &str, topic: &str, ttl: u64) -> String {
    sign_claims(&Claims {
        sub: Some(user.to_owned()),
        exp: now() + ttl,
        topic: Some(topic.to_owned()),
        ..Claims::default()
    })
}

fn sign_claims(claims: &Claims) -> String {
    sign(claims, &SigningKey::Secret(SECRET.into()), None).expect("sign")
}

/// A server requiring HS256 tokens, with no clock skew allowed, and the public
/// topics `public:*`.
async fn start_strict() -> (Running, Hub) {
    let config = AuthConfig {
        secret: Some(SECRET.into()),
        leeway: Duration::ZERO,
        public_topics: vec![String::from("public:*")],
        ..AuthConfig::default()
    };
    let verifier = Verifier::from_config(&config)
        .expect("usable auth config")
        .expect("a key is configured");
    let hub = Hub::new(HubConfig::default());
    let server = start(App::new().topics(hub.clone()).auth(verifier)).await;
    (server, hub)
}

/// A `/ws` client authenticated with `token`.
async fn authed(server: &Running, token: &str) -> Client {
    let (mut client, _) = ws(server).await;
    let reply = request(
        &mut client,
        json!({"op": "auth", "id": "auth", "token": token}),
    )
    .await;
    assert!(reply["ok"].is_object(), "auth failed: {reply}");
    client
}

/// Waits until Unix second `at` has passed (a token with `exp: at` is expired).
async fn wait_past(at: u64) {
    for _ in 0..100 {
        if now() > at {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the clock did not pass {at}");
}

fn unsub_push(topic: &str, code: u64, reason: &str) -> Value {
    json!({"topic": topic, "unsub": {"code": code, "reason": reason}})
}

/// Sends `unsub` for `topic` and collects every message before its reply; answers
/// them and the reply's error code (0 for ok).
async fn messages_before_unsub(client: &mut Client, topic: &str) -> (Vec<Value>, u64) {
    send(
        client,
        json!({"op": "unsub", "id": "probe", "topic": topic}),
    )
    .await;
    let mut before = Vec::new();
    for _ in 0..1000 {
        let message = next_json(client).await;
        if message["id"] == "probe" {
            return (before, message["error"]["code"].as_u64().unwrap_or(0));
        }
        before.push(message);
    }
    panic!("no reply to unsub among 1000 messages");
}

#[tokio::test]
async fn an_expired_subscription_token_ends_the_subscription_with_an_unsub_push() {
    let (server, hub) = start_strict().await;
    let mut client = authed(&server, &connection("ann", 60, &[("open", &["sub"])])).await;
    let token = subscription("ann", "room:1", 1);
    let reply = request(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "room:1", "token": token}),
    )
    .await;
    let expires = reply["ok"]["expires"]
        .as_u64()
        .expect("the reply says when");
    assert_eq!(reply["ok"]["offset"], 0, "{reply}");
    assert_eq!(publish(&hub, "room:1", json!("before")).await, 1);
    assert_eq!(offsets(&pushes(&mut client, 1).await), vec![1]);
    // The server ends it at expiry, unasked.
    let push = next_json(&mut client).await;
    assert_eq!(
        push,
        unsub_push("room:1", 401, "subscription token expired")
    );
    assert!(now() >= expires, "ended at {} before exp {expires}", now());
    publish(&hub, "room:1", json!("after")).await;
    let (before, code) = messages_before_unsub(&mut client, "room:1").await;
    assert_eq!(before, Vec::<Value>::new(), "nothing after the end");
    assert_eq!(code, 404, "the subscription is gone");
    // Presence, granted by the token too, is gone with it.
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_token_expiring_on_a_topic_the_connection_allows_ends_nothing() {
    let (server, hub) = start_strict().await;
    let mut client = authed(&server, &connection("bo", 60, &[("room:*", &["sub"])])).await;
    let reply = request(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "room:2", "token": subscription("bo", "room:2", 1)}),
    )
    .await;
    let expires = reply["ok"]["expires"].as_u64().expect("expires");
    wait_past(expires).await;
    // Give the server's expiry time to act (it would push before the next message).
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&hub, "room:2", json!(1)).await;
    let push = next_json(&mut client).await;
    assert_eq!(push["offset"], 1, "still subscribed: {push}");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_fresh_subscription_token_in_time_keeps_the_subscription_and_its_position() {
    let (server, hub) = start_strict().await;
    let mut client = authed(&server, &connection("cy", 60, &[])).await;
    let first = request(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "room:3", "token": subscription("cy", "room:3", 1)}),
    )
    .await;
    let first_expiry = first["ok"]["expires"].as_u64().expect("expires");
    for n in 1..=3 {
        publish(&hub, "room:3", json!(n)).await;
    }
    assert_eq!(offsets(&pushes(&mut client, 3).await), vec![1, 2, 3]);
    // `sub` again with a fresh token: answered at once, nothing sent again.
    let fresh = subscription("cy", "room:3", 60);
    let reply = request(
        &mut client,
        json!({"op": "sub", "id": 2, "topic": "room:3", "token": fresh,
               "since": {"epoch": first["ok"]["epoch"], "offset": 0}}),
    )
    .await;
    let ok = &reply["ok"];
    assert_eq!(ok["topic"], "room:3", "{reply}");
    assert_eq!(ok["refreshed"], true, "{reply}");
    assert!(ok["expires"].as_u64() > Some(first_expiry), "{reply}");
    // Past the first token's expiry the subscription goes on, without a gap.
    wait_past(first_expiry).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 4..=6 {
        publish(&hub, "room:3", json!(n)).await;
    }
    assert_eq!(offsets(&pushes(&mut client, 3).await), vec![4, 5, 6]);
    // A fresh token for another user, or a bad one, changes nothing.
    let other = request(
        &mut client,
        json!({"op": "sub", "id": 3, "topic": "room:3", "token": subscription("dee", "room:3", 60)}),
    )
    .await;
    assert_eq!(other["error"]["code"], 403, "{other}");
    publish(&hub, "room:3", json!(7)).await;
    assert_eq!(offsets(&pushes(&mut client, 1).await), vec![7]);
    // Without a token, `sub` is refused (the connection token does not grant it)
    // and the subscription goes on.
    let again = request(
        &mut client,
        json!({"op": "sub", "id": 4, "topic": "room:3"}),
    )
    .await;
    assert_eq!(again["error"]["code"], 403, "{again}");
    publish(&hub, "room:3", json!(8)).await;
    assert_eq!(offsets(&pushes(&mut client, 1).await), vec![8]);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_narrower_connection_token_refresh_drops_exactly_the_topics_it_no_longer_allows() {
    let (server, hub) = start_strict().await;
    let wide: &[(&str, &[&str])] = &[
        ("news", &["sub"]),
        ("chat:*", &["sub"]),
        ("sports", &["sub"]),
    ];
    let mut client = authed(&server, &connection("eve", 60, wide)).await;
    for topic in ["news", "chat:a", "chat:b", "sports", "public:x"] {
        sub(&mut client, topic, None).await;
    }
    let reply = request(
        &mut client,
        json!({"op": "sub", "id": "room", "topic": "room:4", "token": subscription("eve", "room:4", 60)}),
    )
    .await;
    assert!(reply["ok"].is_object(), "{reply}");
    // The refresh keeps news and chat:a; chat:b and sports are withdrawn. A public
    // topic and one held by a subscription token need no connection grant.
    let narrow: &[(&str, &[&str])] = &[("news", &["sub"]), ("chat:a", &["sub", "pub"])];
    let reply = request(
        &mut client,
        json!({"op": "auth", "id": "refresh", "token": connection("eve", 60, narrow)}),
    )
    .await;
    assert_eq!(reply["ok"]["user"], "eve", "{reply}");
    let mut ended = BTreeSet::new();
    for _ in 0..2 {
        let push = next_json(&mut client).await;
        let topic = push["topic"].as_str().unwrap_or_default().to_owned();
        assert_eq!(
            push,
            unsub_push(&topic, 403, "permission withdrawn"),
            "{push}"
        );
        ended.insert(topic);
    }
    assert_eq!(
        ended,
        BTreeSet::from([String::from("chat:b"), String::from("sports")])
    );
    for topic in ["news", "chat:a", "chat:b", "sports", "public:x", "room:4"] {
        publish(&hub, topic, json!(topic)).await;
    }
    let (before, code) = messages_before_unsub(&mut client, "sports").await;
    let got: Vec<&str> = before
        .iter()
        .map(|m| m["topic"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(got, vec!["news", "chat:a", "public:x", "room:4"]);
    assert_eq!(code, 404, "sports was unsubscribed by the server");
    drop(client);
    server.stop().await;
}

/// Keeps `STEP` in use for the SSE and long-poll tests below.
const _: Duration = STEP;
