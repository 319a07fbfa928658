//! Permissions hold for as long as a subscription lives (docs/protocol.md,
//! "Authentication"): a subscription token that expires without a fresh one ends
//! its subscription with an `unsub` push (401), a fresh one in time keeps it and
//! its position, and a connection-token refresh with narrower permissions ends
//! exactly the subscriptions it no longer allows (403). The same over SSE and
//! long-poll. Real sockets, a real clock: tokens here live a second or two (the
//! server allows no clock skew), and the tests wait for them to expire.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::sse;
use common::tokens::{SECRET, authed, grants, hs256};
use common::topics::*;
use common::{Client, Running, STEP, start};
use pushwire::auth::{AuthConfig, Claims, TokenVerifier, now};
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};

/// A connection token for `user`, valid `ttl` seconds, granting `topics`.
fn connection(user: &str, ttl: u64, topics: &[(&str, &[&str])]) -> String {
    hs256(&Claims {
        sub: Some(user.to_owned()),
        exp: now() + ttl,
        topics: grants(topics),
        ..Claims::default()
    })
}

/// A subscription token: `user` may subscribe to `topic` for `ttl` seconds (it
/// ends at the start of the second `now() + ttl`: less than `ttl` from now, more
/// than `ttl - 1`).
fn subscription(user: &str, topic: &str, ttl: u64) -> String {
    subscription_until(user, topic, now() + ttl)
}

/// A subscription token with `exp: at`.
fn subscription_until(user: &str, topic: &str, at: u64) -> String {
    hs256(&Claims {
        sub: Some(user.to_owned()),
        exp: at,
        topic: Some(topic.to_owned()),
        ..Claims::default()
    })
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
    let verifier = TokenVerifier::from_config(&config)
        .expect("usable auth config")
        .expect("a key is configured");
    let hub = Hub::new(HubConfig::default());
    let server = start(App::new().topics(hub.clone()).auth(verifier)).await;
    (server, hub)
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
    let token = subscription("ann", "room:1", 2);
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
        json!({"op": "sub", "id": 1, "topic": "room:3", "token": subscription("cy", "room:3", 3)}),
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

/// `GET path` (a long-poll): the status and the JSON body.
async fn poll(server: &Running, path: &str) -> (u16, Value) {
    let response = tokio::time::timeout(STEP, reqwest::get(server.url(path)))
        .await
        .expect("poll timed out")
        .expect("poll failed");
    let status = response.status().as_u16();
    let body = tokio::time::timeout(STEP, response.json::<Value>())
        .await
        .expect("poll body timed out")
        .expect("poll body is JSON");
    (status, body)
}

/// An SSE stream being read.
struct Sse {
    response: reqwest::Response,
    text: String,
}

impl Sse {
    async fn open(server: &Running, path: &str, last_event_id: Option<&str>) -> Self {
        Self {
            response: sse::get(&server.url(path), last_event_id).await,
            text: String::new(),
        }
    }

    /// Reads until the text read so far holds `needle` (failing after [`STEP`]);
    /// `false` if the stream ended first.
    async fn until(&mut self, needle: &str) -> bool {
        self.until_read(|text| text.contains(needle), needle).await
    }

    /// Reads until a message of `topic` at `offset` has come.
    async fn until_message(&mut self, topic: &str, offset: u64) -> bool {
        let wanted = json!({"topic": topic, "offset": offset});
        self.until_read(
            |text| {
                Self::blocks(text, None)
                    .any(|m| m["topic"] == wanted["topic"] && m["offset"] == wanted["offset"])
            },
            &wanted.to_string(),
        )
        .await
    }

    async fn until_read(&mut self, done: impl Fn(&str) -> bool, what: &str) -> bool {
        let deadline = tokio::time::Instant::now() + STEP;
        while !done(&self.text) {
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no {what} in time; read: {}", self.text))
                .expect("stream failed");
            match chunk {
                Some(bytes) => self.text.push_str(&String::from_utf8_lossy(&bytes)),
                None => return false,
            }
        }
        true
    }

    /// The `data:` of each complete event of `text` named `event` (`None`: the
    /// unnamed events, messages).
    fn blocks<'a>(text: &'a str, event: Option<&'a str>) -> impl Iterator<Item = Value> + 'a {
        let complete = text.rfind("\n\n").map_or("", |end| &text[..end]);
        complete
            .split("\n\n")
            .filter(move |block| {
                let name = block.lines().find_map(|l| l.strip_prefix("event: "));
                name == event
            })
            .filter_map(|block| block.lines().find_map(|l| l.strip_prefix("data: ")))
            .map(|data| serde_json::from_str(data).expect("event data is JSON"))
    }

    /// The `data:` of each event named `event` read so far.
    fn events(&self, event: &str) -> Vec<Value> {
        Self::blocks(&self.text, Some(event)).collect()
    }

    /// The `data:` of each message (unnamed event) read so far.
    fn messages(&self) -> Vec<Value> {
        Self::blocks(&self.text, None).collect()
    }

    /// The last `id:` read so far.
    fn last_id(&self) -> String {
        self.text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("id: "))
            .unwrap_or_default()
            .to_owned()
    }
}

#[tokio::test]
async fn over_sse_an_expired_subscription_token_ends_its_topic_with_an_unsub_event() {
    let (server, hub) = start_strict().await;
    let token = connection("fay", 60, &[("open", &["sub"])]);
    let held = subscription("fay", "room:5", 2);
    let mut stream = Sse::open(
        &server,
        &format!("/sse?topic=room:5&topic=open&token={token}&sub_token={held}"),
        None,
    )
    .await;
    assert!(stream.until("event: subscribed").await);
    let subs = &stream.events("subscribed")[0]["subs"];
    assert!(subs[0]["expires"].is_u64(), "held by a token: {subs}");
    assert!(
        subs[1].get("expires").is_none(),
        "the connection allows it: {subs}"
    );
    publish(&hub, "room:5", json!("before")).await;
    assert!(stream.until("\"before\"").await);
    assert!(stream.until("event: unsub").await, "the stream goes on");
    assert_eq!(
        stream.events("unsub"),
        vec![unsub_push("room:5", 401, "subscription token expired")]
    );
    publish(&hub, "room:5", json!("after")).await;
    publish(&hub, "open", json!("still open")).await;
    assert!(stream.until("still open").await);
    let topics: Vec<Value> = stream
        .messages()
        .iter()
        .map(|m| m["topic"].clone())
        .collect();
    assert_eq!(topics, vec![json!("room:5"), json!("open")]);
    assert!(
        !stream.last_id().contains("room:5"),
        "an ended topic leaves the positions: {}",
        stream.last_id()
    );
    drop(stream);
    server.stop().await;
}

#[tokio::test]
async fn over_sse_a_reconnect_resumes_what_its_new_tokens_allow_and_ends_the_rest_with_unsub_events()
 {
    let (server, hub) = start_strict().await;
    let wide = connection("gus", 60, &[("news", &["sub"]), ("chat:b", &["sub"])]);
    let first6 = subscription("gus", "room:6", 60);
    let first7 = subscription("gus", "room:7", 60);
    // Positions for every topic, from a first stream.
    let mut first = Sse::open(
        &server,
        &format!("/sse?topic=news&topic=chat:b&topic=room:6&topic=room:7&token={wide}&sub_token={first6}&sub_token={first7}"),
        None,
    )
    .await;
    assert!(first.until("event: subscribed").await);
    for topic in ["news", "chat:b", "room:6", "room:7"] {
        publish(&hub, topic, json!(1)).await;
    }
    assert!(first.until_message("room:7", 1).await);
    let last = first.last_id();
    drop(first);
    // Published while away.
    for topic in ["news", "chat:b", "room:6", "room:7"] {
        publish(&hub, topic, json!(2)).await;
    }
    // Back with a narrower connection token (no chat:b), an expired token for
    // room:6 and a fresh one for room:7.
    let narrow = connection("gus", 60, &[("news", &["sub"])]);
    let expired = subscription_until("gus", "room:6", now() - 5);
    let fresh = subscription("gus", "room:7", 60);
    let mut back = Sse::open(
        &server,
        &format!("/sse?topic=news&topic=chat:b&topic=room:6&topic=room:7&token={narrow}&sub_token={expired}&sub_token={fresh}"),
        Some(&last),
    )
    .await;
    assert!(back.until_message("room:7", 2).await);
    let mut unsubs = back.events("unsub");
    unsubs.sort_by_key(|u| u["topic"].as_str().unwrap_or_default().to_owned());
    assert_eq!(
        unsubs,
        vec![
            unsub_push("chat:b", 403, "permission withdrawn"),
            unsub_push("room:6", 401, "subscription token expired"),
        ]
    );
    let subs = &back.events("subscribed")[0]["subs"];
    assert_eq!(subs.as_array().map(Vec::len), Some(2), "{subs}");
    let resumed: Vec<(Value, Value)> = back
        .messages()
        .iter()
        .map(|m| (m["topic"].clone(), m["offset"].clone()))
        .collect();
    assert_eq!(
        resumed,
        vec![(json!("news"), json!(2)), (json!("room:7"), json!(2))],
        "the missed messages of what is still allowed, no more"
    );
    // More subscription tokens than a request may name topics: refused at once.
    let many = vec![format!("sub_token={fresh}"); 101].join("&");
    let (status, body) = poll(
        &server,
        &format!("/poll?topic=news&token={narrow}&{many}&timeout=0"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Without a position, a topic not allowed refuses the request as before.
    let (status, _) = poll(
        &server,
        &format!("/poll?topic=news&topic=chat:b&token={narrow}&timeout=0"),
    )
    .await;
    assert_eq!(status, 403);
    drop(back);
    server.stop().await;
}

#[tokio::test]
async fn over_long_poll_an_ended_permission_is_an_unsub_entry_among_the_messages() {
    let (server, hub) = start_strict().await;
    let wide = connection("hal", 60, &[("news", &["sub"]), ("chat:b", &["sub"])]);
    let held = subscription("hal", "room:8", 2);
    let (status, body) = poll(
        &server,
        &format!(
            "/poll?topic=news&topic=chat:b&topic=room:8&token={wide}&sub_token={held}&timeout=0"
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["subs"][2]["expires"].is_u64(), "{body}");
    let since = body["since"].as_str().expect("since").to_owned();
    // A poll that waits ends when room:8's token does, with an unsub entry.
    let (status, body) = poll(
        &server,
        &format!("/poll?topic=news&topic=chat:b&topic=room:8&token={wide}&sub_token={held}&since={since}&timeout=20000"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["messages"],
        json!([unsub_push("room:8", 401, "subscription token expired")]),
        "{body}"
    );
    let since = body["since"].as_str().expect("since").to_owned();
    assert!(!since.contains("room:8"), "{since}");
    // With a narrower connection token, chat:b ends; news goes on from its position.
    publish(&hub, "news", json!("n")).await;
    publish(&hub, "chat:b", json!("c")).await;
    let narrow = connection("hal", 60, &[("news", &["sub"])]);
    let (status, body) = poll(
        &server,
        &format!("/poll?topic=news&topic=chat:b&token={narrow}&since={since}&timeout=20000"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["messages"][1],
        unsub_push("chat:b", 403, "permission withdrawn"),
        "{body}"
    );
    assert_eq!(body["messages"][0]["topic"], "news", "{body}");
    assert_eq!(body["messages"].as_array().map(Vec::len), Some(2), "{body}");
    drop(hub);
    server.stop().await;
}
