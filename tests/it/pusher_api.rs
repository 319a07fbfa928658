//! The Pusher HTTP API (`/apps/{app_id}/…`) over real sockets: requests signed by
//! the small signer below (written from Pusher's HTTP API reference, not from the
//! server's code), every refusal's status and message, and that no refused
//! request reaches a subscriber; a good publish reaches `/ws` subscribers of the
//! mapped topic as the envelope; channel queries; user termination; refusals
//! counted in `/metrics`.

use crate::common;
use std::time::{SystemTime, UNIX_EPOCH};

use md5::{Digest as _, Md5};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pushwire::interop::pusher::{PusherApp, PusherApps};
use pushwire::topic::Member;
use pushwire::{App, Data, Hub, HubConfig, MetricsAccess, Topic};
use ring::hmac;
use serde_json::{Value, json};

use crate::common::topics::{next_json, sub};
use crate::common::{Client, Running, STEP, start};

const ID: &str = "app1";
const KEY: &str = "app1-key";
const SECRET: &str = "app1-secret";

/// Characters left as they are in a query value; the rest are %-encoded.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A server with the apps `app1` (enabled) and `off` (disabled), metrics public.
async fn server() -> (Running, Hub) {
    let app = PusherApp::new(ID, KEY, SECRET).expect("app");
    let mut off = PusherApp::new("off", "off-key", "off-secret").expect("app");
    off.enabled = false;
    let apps = PusherApps::new(vec![app, off]).expect("apps");
    let hub = Hub::new(apps.hub_config(HubConfig::default()));
    // pushwire's own clients need tokens (the observers of private channels).
    let verifier = pushwire::auth::TokenVerifier::from_config(&pushwire::auth::AuthConfig {
        secret: Some(common::tokens::SECRET.into()),
        ..pushwire::auth::AuthConfig::default()
    })
    .expect("auth config")
    .expect("a key");
    let app = App::new()
        .topics(hub.clone())
        .auth(verifier)
        .pusher(apps)
        .metrics(MetricsAccess::Public);
    (start(app).await, hub)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One API request, signed (or mis-signed) as the test says.
struct Req {
    method: &'static str,
    path: String,
    params: Vec<(String, String)>,
    body: String,
    key: &'static str,
    secret: &'static str,
    timestamp: u64,
    /// Replaces the body's MD5 in the query (signed as given).
    body_md5: Option<String>,
    /// Replaces the signature.
    signature: Option<String>,
    /// Auth parameters to leave out.
    drop: Vec<&'static str>,
}

impl Req {
    fn post(path: &str, body: Value) -> Self {
        Self::new("POST", path, body.to_string())
    }

    fn get(path: &str) -> Self {
        Self::new("GET", path, String::new())
    }

    fn new(method: &'static str, path: &str, body: String) -> Self {
        Self {
            method,
            path: path.to_owned(),
            params: Vec::new(),
            body,
            key: KEY,
            secret: SECRET,
            timestamp: now(),
            body_md5: None,
            signature: None,
            drop: Vec::new(),
        }
    }

    fn param(mut self, key: &str, value: &str) -> Self {
        self.params.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The query string: the parameters and the auth ones, sorted by key, signed
    /// over `METHOD\nPATH\nk=v&…` (values not escaped there), the signature last.
    fn query(&self) -> String {
        let mut params = self.params.clone();
        params.push(("auth_key".into(), self.key.into()));
        params.push(("auth_timestamp".into(), self.timestamp.to_string()));
        params.push(("auth_version".into(), "1.0".into()));
        if !self.body.is_empty() || self.body_md5.is_some() {
            let md5 = self
                .body_md5
                .clone()
                .unwrap_or_else(|| hex(&Md5::digest(self.body.as_bytes())));
            params.push(("body_md5".into(), md5));
        }
        params.retain(|(k, _)| !self.drop.contains(&k.as_str()));
        params.sort();
        let to_sign: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = format!("{}\n{}\n{}", self.method, self.path, to_sign.join("&"));
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.as_bytes());
        let signature = self
            .signature
            .clone()
            .unwrap_or_else(|| hex(hmac::sign(&key, text.as_bytes()).as_ref()));
        let mut query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, VALUE)))
            .collect();
        if !self.drop.contains(&"auth_signature") {
            query.push(format!("auth_signature={signature}"));
        }
        query.join("&")
    }

    /// Sends it: the status and the body's text.
    async fn send(&self, server: &Running) -> (u16, String) {
        let url = format!("{}?{}", server.url(&self.path), self.query());
        let client = reqwest::Client::new();
        let request = match self.method {
            "GET" => client.get(url),
            _ => client
                .post(url)
                .header("content-type", "application/json")
                .body(self.body.clone()),
        };
        let response = tokio::time::timeout(STEP, request.send())
            .await
            .expect("request timed out")
            .expect("request failed");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, text)
    }

    /// Sends it and expects 200 with a JSON body.
    async fn ok(&self, server: &Running) -> Value {
        let (status, text) = self.send(server).await;
        assert_eq!(status, 200, "{} {}: {text}", self.method, self.path);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    }
}

fn events_path() -> String {
    format!("/apps/{ID}/events")
}

/// A `/ws` client subscribed to `topic`.
/// A `/ws` subscriber of `topic`, with a token that grants every topic (those of
/// private and presence channels are guarded: they need one).
async fn subscriber(server: &Running, topic: &str) -> Client {
    subscriber_as(server, topic, "observer").await
}

/// [`subscriber`] whose token's user is `user` (a member on presence topics).
async fn subscriber_as(server: &Running, topic: &str, user: &str) -> Client {
    let exp = now() + 3600;
    let token = common::tokens::hs256(&pushwire::auth::Claims {
        sub: Some(user.into()),
        exp,
        topics: common::tokens::grants(&[("*", &["sub"])]),
        ..pushwire::auth::Claims::default()
    });
    let mut client = common::tokens::authed(server, &token).await;
    sub(&mut client, topic, None).await;
    client
}

/// The next push's data, presence events (the namespace tracks presence) skipped.
async fn next_data(client: &mut Client) -> Value {
    for _ in 0..100 {
        let push = next_json(client).await;
        if push.get("join").is_some() || push.get("leave").is_some() {
            continue;
        }
        assert!(push["offset"].is_u64(), "expected a message, got {push}");
        return push["data"].clone();
    }
    panic!("only presence events")
}

#[tokio::test]
async fn a_signed_event_reaches_ws_subscribers_of_each_channel_as_its_envelope() {
    let (server, _hub) = server().await;
    let mut orders = subscriber(&server, "app1:orders").await;
    let mut at = subscriber(&server, "app1:presence-a/40b").await;
    let body = json!({
        "name": "order-paid",
        "channels": ["orders", "presence-a@b"],
        "data": "{\"id\":7}",
        "socket_id": "123.456",
    });
    let reply = Req::post(&events_path(), body).ok(&server).await;
    assert_eq!(reply, json!({}));
    let want = json!({"event": "order-paid", "data": "{\"id\":7}", "exclude": "123.456"});
    assert_eq!(next_data(&mut orders).await, want);
    assert_eq!(next_data(&mut at).await, want);

    // One channel as `channel`; info asked for.
    let body = json!({"name": "e", "channel": "orders", "data": "x", "info": "subscription_count"});
    let reply = Req::post(&events_path(), body).ok(&server).await;
    assert_eq!(
        reply,
        json!({"channels": {"orders": {"subscription_count": 1}}})
    );
    assert_eq!(
        next_data(&mut orders).await,
        json!({"event": "e", "data": "x"})
    );

    // A batch: each event on its channel, in order.
    let body = json!({"batch": [
        {"name": "one", "channel": "orders", "data": "1"},
        {"name": "two", "channel": "presence-a@b", "data": "2", "socket_id": "1.2"},
        {"name": "three", "channel": "orders", "data": "3"},
    ]});
    let path = format!("/apps/{ID}/batch_events");
    assert_eq!(Req::post(&path, body).ok(&server).await, json!({}));
    assert_eq!(next_data(&mut orders).await["event"], "one");
    assert_eq!(next_data(&mut orders).await["event"], "three");
    assert_eq!(
        next_data(&mut at).await,
        json!({"event": "two", "data": "2", "exclude": "1.2"})
    );
    drop((orders, at));
    server.stop().await;
}

/// Every malformed or badly signed request: its status and the start of its
/// message; none reaches the subscriber (the next push it gets is the good event
/// sent after them all); each is counted in `/metrics`.
#[tokio::test]
async fn refused_requests_get_pushers_status_and_message_and_reach_no_one() {
    let (server, _hub) = server().await;
    let mut orders = subscriber(&server, "app1:orders").await;
    let event = |data: Value| json!({"name": "e", "channels": ["orders"], "data": data});
    let good = || Req::post(&events_path(), event(json!("bad")));
    let mut cases: Vec<(Req, u16, &str)> = Vec::new();

    let mut r = good();
    r.signature = Some("0".repeat(64));
    cases.push((r, 401, "Invalid signature"));
    let mut r = good();
    r.secret = "not-the-secret";
    cases.push((r, 401, "Invalid signature"));
    let mut r = good();
    r.timestamp = now() - 601;
    cases.push((r, 401, "Timestamp expired"));
    let mut r = good();
    r.timestamp = now() + 700;
    cases.push((r, 401, "Timestamp expired"));
    let mut r = good();
    r.body_md5 = Some(hex(&Md5::digest(b"another body")));
    cases.push((r, 401, "Invalid body_md5"));
    let mut r = good();
    r.drop = vec!["body_md5"];
    cases.push((r, 401, "Missing parameter: body_md5"));
    let mut r = good();
    r.drop = vec!["auth_signature"];
    cases.push((r, 401, "Missing parameter: auth_signature"));
    let mut r = good();
    r.drop = vec!["auth_timestamp"];
    cases.push((r, 401, "Missing parameter: auth_timestamp"));
    let mut r = good();
    r.key = "off-key";
    cases.push((r, 401, "Unknown auth_key"));

    let mut r = Req::post("/apps/nope/events", event(json!("x")));
    r.key = "nope";
    cases.push((r, 404, "Unknown app"));
    let mut r = Req::post("/apps/off/events", event(json!("x")));
    (r.key, r.secret) = ("off-key", "off-secret");
    cases.push((r, 403, "App disabled"));

    let mut r = good();
    r.body = String::from("{\"name\": \"e\", ");
    cases.push((r, 400, "Invalid JSON body"));
    let r = Req::post(&events_path(), json!({"channels": ["orders"], "data": "x"}));
    cases.push((r, 400, "Missing parameter: name"));
    let r = Req::post(&events_path(), json!({"name": "e", "channels": ["orders"]}));
    cases.push((r, 400, "Missing parameter: data"));
    let r = Req::post(&events_path(), json!({"name": "e", "data": "x"}));
    cases.push((r, 400, "Missing parameter: channels"));
    let many: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": many, "data": "x"}),
    );
    cases.push((r, 400, "Too many channels"));
    let r = Req::post(&events_path(), event(json!("x".repeat(10 * 1024 + 1))));
    cases.push((r, 413, "Event data too large"));
    let mut r = good();
    r.body = format!("{{\"pad\":\"{}\"}}", "x".repeat(400 * 1024));
    cases.push((r, 413, "Request body too large"));
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": ["orders"], "data": "x", "socket_id": "1.2.3"}),
    );
    cases.push((r, 400, "Invalid socket_id"));
    // A bad channel name among good ones: the good ones get nothing either.
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": ["orders", "or ders"], "data": "x"}),
    );
    cases.push((r, 400, "Invalid channel name"));
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": ["x".repeat(165)], "data": "x"}),
    );
    cases.push((r, 400, "Invalid channel name"));
    let r = Req::post(
        &events_path(),
        json!({"name": "e".repeat(201), "channels": ["orders"], "data": "x"}),
    );
    cases.push((r, 400, "Event name too long"));
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": ["orders", "private-encrypted-x"], "data": "x"}),
    );
    cases.push((r, 400, "An event on an encrypted channel"));
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let mut r = good();
    r.body = format!("{{\"name\":\"e\",\"channels\":[\"orders\"],\"data\":{deep}}}");
    cases.push((r, 400, "Invalid data"));
    let r = Req::post(
        &events_path(),
        json!({"name": "e", "channels": ["orders"], "data": "x", "info": "colour"}),
    );
    cases.push((r, 400, "Unknown info attribute"));

    let batch_path = format!("/apps/{ID}/batch_events");
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"name": "e", "channel": "orders", "data": i.to_string()}))
        .collect();
    let r = Req::post(&batch_path, json!({ "batch": eleven }));
    cases.push((r, 400, "Batch too large"));
    let r = Req::post(
        &batch_path,
        json!({"batch": [
            {"name": "e", "channel": "orders", "data": "fine"},
            {"name": "e", "channel": "or ders", "data": "x"},
        ]}),
    );
    cases.push((r, 400, "Batch event 1: Invalid channel name"));
    let r = Req::post(&batch_path, json!({"batch": [{"name": "e", "data": "x"}]}));
    cases.push((r, 400, "Batch event 0: missing parameter: channel"));
    let r = Req::post(&batch_path, json!({"events": []}));
    cases.push((r, 400, "Missing parameter: batch"));

    let refused = cases.len();
    let mut unauthorized = 0;
    for (request, status, message) in &cases {
        let (got, text) = request.send(&server).await;
        assert_eq!(
            (got, text.starts_with(message)),
            (*status, true),
            "{} {} wanted {status} {message:?}, got {got} {text:?}",
            request.method,
            request.path
        );
        if *status == 401 {
            unauthorized += 1;
        }
    }

    let body = json!({"name": "after", "channels": ["orders"], "data": "good"});
    Req::post(&events_path(), body).ok(&server).await;
    assert_eq!(
        next_data(&mut orders).await,
        json!({"event": "after", "data": "good"}),
        "a refused request reached the subscriber"
    );

    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("/metrics")
        .text()
        .await
        .expect("/metrics body");
    let count = |reason: &str| {
        let series = format!("pushwire_rejected_requests_total{{reason=\"{reason}\"}} ");
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(count("unauthorized"), f64::from(unauthorized));
    let all: f64 = [
        "bad_request",
        "unauthorized",
        "forbidden",
        "too_large",
        "other",
    ]
    .into_iter()
    .map(count)
    .sum();
    assert_eq!(all, refused as f64, "{metrics}");
    drop(orders);
    server.stop().await;
}

#[tokio::test]
async fn channel_queries_answer_occupancy_counts_and_users() {
    let (server, hub) = server().await;
    let mut clients = Vec::new();
    for topic in ["app1:orders", "app1:orders", "off:orders"] {
        clients.push(subscriber(&server, topic).await);
    }
    // A /ws subscriber with a user is a member of a presence topic: u2, who joins
    // below on a Pusher socket too, and is counted once.
    clients.push(subscriber_as(&server, "app1:presence-room", "u2").await);
    let room = Topic::new("app1:presence-room").expect("topic");
    let member = |client: &str, user: Option<&str>| Member {
        client: client.into(),
        user: user.map(Into::into),
        info: Some(Data::json("{\"name\":\"A\"}").expect("json")),
    };
    // u1 twice (two sockets), u2 once, and a member without a user.
    let _m1 = hub.join(&room, member("s1", Some("u1"))).expect("presence");
    let _m2 = hub.join(&room, member("s2", Some("u1"))).expect("presence");
    let _m3 = hub.join(&room, member("s3", Some("u2"))).expect("presence");
    let _m4 = hub.join(&room, member("s4", None)).expect("presence");

    let list = format!("/apps/{ID}/channels");
    assert_eq!(
        Req::get(&list).ok(&server).await,
        json!({"channels": {"orders": {}, "presence-room": {}}})
    );
    let presence = Req::get(&list)
        .param("filter_by_prefix", "presence-")
        .param("info", "user_count")
        .ok(&server)
        .await;
    assert_eq!(
        presence,
        json!({"channels": {"presence-room": {"user_count": 2}}})
    );
    let (status, text) = Req::get(&list)
        .param("info", "user_count")
        .send(&server)
        .await;
    assert_eq!(status, 400, "{text}");

    let one = |name: &str| format!("/apps/{ID}/channels/{name}");
    assert_eq!(
        Req::get(&one("orders"))
            .param("info", "subscription_count")
            .ok(&server)
            .await,
        json!({"occupied": true, "subscription_count": 2})
    );
    assert_eq!(
        Req::get(&one("empty")).ok(&server).await,
        json!({"occupied": false})
    );
    assert_eq!(
        Req::get(&one("presence-room"))
            .param("info", "user_count,subscription_count")
            .ok(&server)
            .await,
        json!({"occupied": true, "user_count": 2, "subscription_count": 1})
    );
    let (status, text) = Req::get(&one("orders"))
        .param("info", "user_count")
        .send(&server)
        .await;
    assert_eq!(
        (status, text.as_str()),
        (400, "info=user_count is only for presence channels\n")
    );

    let users = Req::get(&format!("{}/users", one("presence-room")))
        .ok(&server)
        .await;
    assert_eq!(users, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));
    let (status, _) = Req::get(&format!("{}/users", one("orders")))
        .send(&server)
        .await;
    assert_eq!(status, 400);
    let (status, _) = Req::get(&format!("{}/users", one("bad channel")))
        .send(&server)
        .await;
    assert_eq!(status, 400);
    drop(clients);
    server.stop().await;
}

#[tokio::test]
async fn terminating_a_user_publishes_on_their_own_channel() {
    let (server, _hub) = server().await;
    let mut own = subscriber(&server, "app1:/23server-to-user-u7").await;
    let path = format!("/apps/{ID}/users/u7/terminate_connections");
    assert_eq!(Req::post(&path, json!({})).ok(&server).await, json!({}));
    let terminate = next_data(&mut own).await;
    assert_eq!(
        terminate["event"], "pusher_internal:terminate",
        "{terminate}"
    );
    // The path the PyPI SDK uses (no /apps/{app_id}): the app by its key.
    let path = "/users/u7/terminate_connections";
    assert_eq!(Req::post(path, json!({})).ok(&server).await, json!({}));
    assert_eq!(next_data(&mut own).await, terminate);
    let mut r = Req::post(path, json!({}));
    r.key = "unknown-key";
    assert_eq!(r.send(&server).await.0, 404);
    // sendToUser: an event on the user's channel through /events.
    let body = json!({"name": "hello", "channels": ["#server-to-user-u7"], "data": "hi"});
    Req::post(&events_path(), body).ok(&server).await;
    assert_eq!(
        next_data(&mut own).await,
        json!({"event": "hello", "data": "hi"})
    );
    let (status, _) = Req::post(
        &format!("/apps/{ID}/users/a b/terminate_connections"),
        json!({}),
    )
    .send(&server)
    .await;
    assert_eq!(status, 400);
    drop(own);
    server.stop().await;
}

/// A Pusher protocol client (as pusher-js speaks it) past
/// `connection_established`: the socket and its id.
async fn pusher_client(server: &Running) -> (Client, String) {
    let mut client = crate::common::connect(&server.ws_url(&format!(
        "/app/{KEY}?protocol=7&client=js&version=8.6.0&flash=false"
    )))
    .await;
    let hello = next_json(&mut client).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value =
        serde_json::from_str(hello["data"].as_str().expect("a string")).expect("JSON");
    let id = data["socket_id"].as_str().expect("socket_id").to_owned();
    (client, id)
}

/// Sends a Pusher event and answers the next message the client gets.
async fn pusher_send(client: &mut Client, message: Value) -> Value {
    crate::common::topics::send(client, message).await;
    next_json(client).await
}

/// `KEY:hex(HMAC-SHA256(secret, text))`, Pusher's channel and user auth.
fn auth(text: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    format!("{KEY}:{}", hex(hmac::sign(&key, text.as_bytes()).as_ref()))
}

/// The API and Pusher clients on one server: presence members counted as users,
/// an event reaching every subscriber but the excluded socket, a signed-in user's
/// connection closed by `terminate_connections`.
#[tokio::test]
async fn the_api_counts_reaches_and_terminates_pusher_clients() {
    let (server, _hub) = server().await;
    let mut members = Vec::new();
    for user in ["u1", "u2", "u1"] {
        let (mut client, id) = pusher_client(&server).await;
        let data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let signature = auth(&format!("{id}:presence-room:{data}"));
        let reply = pusher_send(
            &mut client,
            json!({"event": "pusher:subscribe", "data": {"channel": "presence-room", "auth": signature, "channel_data": data}}),
        )
        .await;
        assert_eq!(
            reply["event"], "pusher_internal:subscription_succeeded",
            "{reply}"
        );
        members.push(client);
    }
    let path = format!("/apps/{ID}/channels/presence-room");
    assert_eq!(
        Req::get(&path)
            .param("info", "user_count,subscription_count")
            .ok(&server)
            .await,
        json!({"occupied": true, "user_count": 2, "subscription_count": 3})
    );
    let users = Req::get(&format!("{path}/users")).ok(&server).await;
    assert_eq!(users, json!({"users": [{"id": "u1"}, {"id": "u2"}]}));

    let (mut sender, sender_id) = pusher_client(&server).await;
    let (mut other, _) = pusher_client(&server).await;
    for client in [&mut sender, &mut other] {
        let reply = pusher_send(
            client,
            json!({"event": "pusher:subscribe", "data": {"channel": "orders"}}),
        )
        .await;
        assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
    }
    let excluded =
        json!({"name": "first", "channels": ["orders"], "data": "1", "socket_id": sender_id});
    Req::post(&events_path(), excluded).ok(&server).await;
    let to_all = json!({"name": "second", "channels": ["orders"], "data": "2"});
    Req::post(&events_path(), to_all).ok(&server).await;
    assert_eq!(
        next_json(&mut other).await,
        json!({"event": "first", "channel": "orders", "data": "1"})
    );
    assert_eq!(next_json(&mut other).await["event"], "second");
    assert_eq!(
        next_json(&mut sender).await["event"],
        "second",
        "the excluded socket got the first event"
    );

    let (mut user, user_socket) = pusher_client(&server).await;
    let user_data = json!({"id": "u7"}).to_string();
    let signature = auth(&format!("{user_socket}::user::{user_data}"));
    let reply = pusher_send(
        &mut user,
        json!({"event": "pusher:signin", "data": {"auth": signature, "user_data": user_data}}),
    )
    .await;
    assert_eq!(reply["event"], "pusher:signin_success", "{reply}");
    let reply = pusher_send(
        &mut user,
        json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-u7"}}),
    )
    .await;
    assert_eq!(reply["event"], "pusher_internal:subscription_succeeded");
    let body = json!({"name": "hello", "channels": ["#server-to-user-u7"], "data": "hi"});
    Req::post(&events_path(), body).ok(&server).await;
    assert_eq!(
        next_json(&mut user).await,
        json!({"event": "hello", "channel": "#server-to-user-u7", "data": "hi"})
    );
    let path = format!("/apps/{ID}/users/u7/terminate_connections");
    Req::post(&path, json!({})).ok(&server).await;
    let error = next_json(&mut user).await;
    assert_eq!(error["event"], "pusher:error", "{error}");
    let close = crate::common::next_close(&mut user).await.expect("a close");
    assert_eq!(u16::from(close.code), 4009);
    drop((members, sender, other, user));
    server.stop().await;
}
