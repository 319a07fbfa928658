//! The Pusher client protocol (version 7) at `/app/{key}` over real sockets, with
//! tokio-tungstenite speaking it as pusher-js does: every refusal code, auth,
//! presence across connections, client events, and the one hub shared with
//! `/ws` (a Pusher client event reaches a `/ws` subscriber, a `/ws` publish
//! reaches a Pusher subscriber as `message`).

use crate::common;

use common::topics::{next_json, send, ws};
use common::{Client, Running, STEP, connect, next_close, start};
use futures_util::SinkExt as _;
use pushwire::interop::pusher::signature::sign;
use pushwire::interop::pusher::{Channel, Envelope, PusherApp, PusherApps};
use pushwire::{App, Hub, HubConfig, Topic};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

const KEY: &str = "app-key";
const SECRET: &str = "app-secret";

/// A server with three apps: `1` (client events on, 2 connections at most, 2
/// presence members, client events 3/s), `2` (disabled), `3` (pings after 1 s).
async fn server() -> (Running, Hub) {
    serve(None).await
}

/// [`server`] checking tokens of pushwire's own protocol with `verifier`.
async fn serve(verifier: Option<pushwire::auth::TokenVerifier>) -> (Running, Hub) {
    let apps = [
        format!(
            "1:{KEY}:{SECRET}?client-events=true&max-connections=20&max-presence-members=2&max-client-events-per-second=3"
        ),
        "2:off-key:s?enabled=false".to_owned(),
        "3:quick-key:s?activity-timeout=1".to_owned(),
        "4:one-key:s?max-connections=1".to_owned(),
    ];
    let apps: Vec<PusherApp> = apps
        .iter()
        .map(|line| PusherApp::parse(line).expect("app"))
        .collect();
    let apps = PusherApps::new(apps).expect("apps");
    let hub = Hub::new(apps.hub_config(HubConfig::default()));
    let mut app = App::new().topics(hub.clone()).pusher(apps);
    if let Some(verifier) = verifier {
        app = app.auth(verifier);
    }
    (start(app).await, hub)
}

/// A Pusher connection past `connection_established`.
struct Conn {
    ws: Client,
    socket_id: String,
}

async fn open(server: &Running, key: &str) -> Conn {
    let mut ws = connect(&server.ws_url(&format!(
        "/app/{key}?protocol=7&client=js&version=8.6.0&flash=false"
    )))
    .await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    let data: Value =
        serde_json::from_str(hello["data"].as_str().expect("data is a string")).expect("data JSON");
    assert!(data["activity_timeout"].as_u64().is_some(), "{data}");
    Conn {
        ws,
        socket_id: data["socket_id"].as_str().expect("socket_id").to_owned(),
    }
}

impl Conn {
    async fn send(&mut self, event: Value) {
        tokio::time::timeout(STEP, self.ws.send(WsMessage::text(event.to_string())))
            .await
            .expect("send timed out")
            .expect("send failed");
    }

    async fn next(&mut self) -> Value {
        next_json(&mut self.ws).await
    }

    /// Reads until an event named `event` (failing after [`STEP`] per message).
    async fn until(&mut self, event: &str) -> Value {
        for _ in 0..50 {
            let message = self.next().await;
            if message["event"] == event {
                return message;
            }
        }
        panic!("no {event}");
    }

    fn auth(&self, channel: &str, channel_data: Option<&str>) -> String {
        let text = match channel_data {
            Some(data) => format!("{}:{channel}:{data}", self.socket_id),
            None => format!("{}:{channel}", self.socket_id),
        };
        format!("{KEY}:{}", sign(SECRET, &text))
    }

    async fn subscribe(&mut self, channel: &str) -> Value {
        let auth = self.auth(channel, None);
        self.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth}}))
            .await;
        self.next().await
    }

    async fn join(&mut self, channel: &str, user: &str) -> Value {
        let data = json!({"user_id": user, "user_info": {"name": user}}).to_string();
        let auth = self.auth(channel, Some(&data));
        self.send(json!({"event": "pusher:subscribe", "data": {"channel": channel, "auth": auth, "channel_data": data}}))
            .await;
        self.next().await
    }

    /// Whether nothing but pings arrive for a short while (a ping round trip
    /// proves the server handled everything sent before).
    async fn quiet(&mut self) {
        self.send(json!({"event": "pusher:ping", "data": {}})).await;
        let next = self.next().await;
        assert_eq!(next["event"], "pusher:pong", "expected nothing, got {next}");
    }
}

fn data_of(message: &Value) -> Value {
    serde_json::from_str(message["data"].as_str().expect("data is a string")).expect("data JSON")
}

async fn refused(server: &Running, path: &str) -> (Value, u16) {
    let mut ws = connect(&server.ws_url(path)).await;
    let error = next_json(&mut ws).await;
    assert_eq!(error["event"], "pusher:error", "{error}");
    let close = next_close(&mut ws).await.expect("a close frame");
    let code = u16::from(close.code);
    assert_eq!(error["data"]["code"], code, "{error}");
    (error, code)
}

#[tokio::test]
async fn connections_are_refused_with_pushers_codes() {
    let (server, _hub) = server().await;
    let query = "?protocol=7&client=js&version=8.6.0";
    assert_eq!(refused(&server, &format!("/app/nope{query}")).await.1, 4001);
    assert_eq!(refused(&server, "/app/app-key?client=js").await.1, 4008);
    assert_eq!(refused(&server, "/app/app-key?protocol=x").await.1, 4006);
    assert_eq!(refused(&server, "/app/app-key?protocol=4").await.1, 4007);
    assert_eq!(refused(&server, "/app/app-key?protocol=8").await.1, 4007);
    assert_eq!(
        refused(&server, &format!("/app/off-key{query}")).await.1,
        4003
    );
    let first = open(&server, "one-key").await;
    assert_eq!(
        refused(&server, &format!("/app/one-key{query}")).await.1,
        4004
    );
    drop(first);
    server.stop().await;
}

#[tokio::test]
async fn pings_are_answered_and_bad_messages_get_errors_without_a_close() {
    let (server, _hub) = server().await;
    let mut conn = open(&server, KEY).await;
    conn.send(json!({"event": "pusher:ping", "data": {}})).await;
    assert_eq!(
        conn.next().await,
        json!({"event": "pusher:pong", "data": {}})
    );
    conn.ws
        .send(WsMessage::text("not json"))
        .await
        .expect("send");
    let error = conn.next().await;
    assert_eq!(error["event"], "pusher:error");
    assert!(error["data"]["code"].is_null(), "{error}");
    conn.send(json!({"event": "pusher:what"})).await;
    assert_eq!(conn.next().await["event"], "pusher:error");
    conn.send(json!({"event": "pusher:subscribe", "data": 5}))
        .await;
    assert_eq!(conn.next().await["event"], "pusher:error");
    conn.ws
        .send(WsMessage::binary(vec![1, 2]))
        .await
        .expect("send");
    assert_eq!(conn.next().await["event"], "pusher:error");
    conn.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_quiet_client_is_pinged_and_closed_with_4201_without_a_pong() {
    let (server, _hub) = server().await;
    let mut conn = open(&server, "quick-key").await;
    assert_eq!(
        conn.next().await,
        json!({"event": "pusher:ping", "data": {}})
    );
    let close = next_close(&mut conn.ws).await.expect("close");
    assert_eq!(u16::from(close.code), 4201);
    // One that answers stays.
    let mut conn = open(&server, "quick-key").await;
    for _ in 0..2 {
        assert_eq!(conn.next().await["event"], "pusher:ping");
        conn.send(json!({"event": "pusher:pong", "data": {}})).await;
    }
    conn.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn public_channels_get_ws_publishes_as_message_and_envelopes_as_their_event() {
    let (server, hub) = server().await;
    let mut conn = open(&server, KEY).await;
    let ok = conn.subscribe("news").await;
    assert_eq!(
        ok,
        json!({"event": "pusher_internal:subscription_succeeded", "channel": "news", "data": "{}"})
    );
    // A /ws client publishes to the channel's topic.
    let (mut client, _) = ws(&server).await;
    send(
        &mut client,
        json!({"op": "pub", "id": 1, "topic": "1:news", "data": {"price": 2}}),
    )
    .await;
    let message = conn.next().await;
    assert_eq!(
        message,
        json!({"event": "message", "channel": "news", "data": "{\"price\":2}"})
    );
    // An envelope (what the HTTP API publishes), one excluding this socket first.
    let topic = Topic::new("1:news").expect("topic");
    let mut excluded = Envelope::with_text("skip", "x");
    excluded.exclude = Some(conn.socket_id.clone());
    hub.publish(&topic, excluded.to_data().expect("an envelope"))
        .await
        .expect("publish");
    hub.publish(
        &topic,
        Envelope::with_text("order-paid", "{\"id\":7}")
            .to_data()
            .expect("an envelope"),
    )
    .await
    .expect("publish");
    assert_eq!(
        conn.next().await,
        json!({"event": "order-paid", "channel": "news", "data": "{\"id\":7}"})
    );
    // Unsubscribed: nothing more.
    conn.send(json!({"event": "pusher:unsubscribe", "data": {"channel": "news"}}))
        .await;
    conn.quiet().await;
    hub.publish(
        &topic,
        Envelope::with_text("late", "x")
            .to_data()
            .expect("an envelope"),
    )
    .await
    .expect("publish");
    conn.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn private_channels_need_the_right_signature() {
    let (server, _hub) = server().await;
    let mut conn = open(&server, KEY).await;
    for channel in ["private-a", "private-encrypted-a"] {
        let ok = conn.subscribe(channel).await;
        assert_eq!(
            ok["event"], "pusher_internal:subscription_succeeded",
            "{ok}"
        );
    }
    // Signed for another socket, signed for another channel, no auth.
    let wrong = format!("{KEY}:{}", sign(SECRET, "1.1:private-b"));
    let other = conn.auth("private-c", None);
    for data in [
        json!({"channel": "private-b", "auth": wrong}),
        json!({"channel": "private-b", "auth": other}),
        json!({"channel": "private-b"}),
        json!({"channel": "presence-b", "auth": conn.auth("presence-b", None)}),
    ] {
        conn.send(json!({"event": "pusher:subscribe", "data": data}))
            .await;
        let error = conn.next().await;
        assert_eq!(error["event"], "pusher:subscription_error", "{error}");
        assert_eq!(error["data"]["type"], "AuthError", "{error}");
        assert_eq!(error["data"]["status"], 401, "{error}");
    }
    // Bad and overlong names.
    for name in ["a b".to_owned(), "x".repeat(165)] {
        conn.send(json!({"event": "pusher:subscribe", "data": {"channel": name}}))
            .await;
        let error = conn.next().await;
        assert_eq!(error["event"], "pusher:subscription_error", "{error}");
        assert_eq!(error["data"]["type"], "InvalidChannel", "{error}");
    }
    conn.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn presence_lists_users_once_and_tells_of_first_joins_and_last_leaves() {
    let (server, _hub) = server().await;
    let room = "presence-room";
    let mut ann = open(&server, KEY).await;
    let ok = ann.join(room, "ann").await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    assert_eq!(
        data_of(&ok),
        json!({"presence": {"ids": ["ann"], "hash": {"ann": {"name": "ann"}}, "count": 1}})
    );
    let mut bob = open(&server, KEY).await;
    let ok = bob.join(room, "bob").await;
    let presence = &data_of(&ok)["presence"];
    assert_eq!(presence["count"], 2, "{ok}");
    assert_eq!(presence["ids"], json!(["ann", "bob"]));
    let added = ann.next().await;
    assert_eq!(added["event"], "pusher_internal:member_added");
    assert_eq!(added["channel"], room);
    assert_eq!(
        data_of(&added),
        json!({"user_id": "bob", "user_info": {"name": "bob"}})
    );
    // Bob again on a second socket: one member, no event.
    let mut bob2 = open(&server, KEY).await;
    let ok = bob2.join(room, "bob").await;
    assert_eq!(data_of(&ok)["presence"]["count"], 2, "{ok}");
    ann.quiet().await;
    // The channel is full (two members): a third user is refused.
    let mut cat = open(&server, KEY).await;
    let full = cat.join(room, "cat").await;
    assert_eq!(full["event"], "pusher:subscription_error", "{full}");
    assert_eq!(full["data"]["type"], "LimitReached", "{full}");
    // Bob's first socket leaves: bob is still there.
    bob.send(json!({"event": "pusher:unsubscribe", "data": {"channel": room}}))
        .await;
    bob.quiet().await;
    ann.quiet().await;
    // The last one leaves (by disconnecting): removed.
    drop(bob2);
    let removed = ann.until("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed), json!({"user_id": "bob"}));
    server.stop().await;
}

#[tokio::test]
async fn client_events_reach_others_and_ws_but_never_the_sender() {
    use pushwire::auth::{AuthConfig, Claims, TokenVerifier};
    let verifier = TokenVerifier::from_config(&AuthConfig {
        secret: Some(common::tokens::SECRET.into()),
        ..AuthConfig::default()
    })
    .expect("auth config")
    .expect("a key");
    let (server, _hub) = serve(Some(verifier)).await;
    let room = "presence-chat";
    let mut ann = open(&server, KEY).await;
    let mut bob = open(&server, KEY).await;
    ann.join(room, "ann").await;
    bob.join(room, "bob").await;
    ann.until("pusher_internal:member_added").await;
    // A presence channel's topic is guarded: a /ws client needs a token that
    // grants it.
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let token = common::tokens::hs256(&Claims {
        sub: Some("observer".into()),
        exp,
        topics: common::tokens::grants(&[("1:*", &["sub"])]),
        ..Claims::default()
    });
    let mut client = common::tokens::authed(&server, &token).await;
    send(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "1:presence-chat"}),
    )
    .await;
    assert!(next_json(&mut client).await["ok"].is_object());
    // The observer's token has a user: it is a member (announced to both).
    ann.until("pusher_internal:member_added").await;
    bob.until("pusher_internal:member_added").await;
    ann.send(json!({"event": "client-typing", "channel": room, "data": {"on": true}}))
        .await;
    let got = bob.next().await;
    assert_eq!(
        got,
        json!({"event": "client-typing", "channel": room, "data": {"on": true}, "user_id": "ann"})
    );
    // The /ws subscriber gets the envelope (after presence events, if any).
    let mut envelope = Value::Null;
    for _ in 0..10 {
        let push = next_json(&mut client).await;
        if push.get("data").is_some() {
            envelope = push["data"].clone();
            break;
        }
    }
    assert_eq!(envelope["event"], "client-typing", "{envelope}");
    assert_eq!(envelope["user_id"], "ann");
    assert_eq!(envelope["exclude"], ann.socket_id.as_str());
    ann.quiet().await;
    // Refused: not subscribed, public, over the rate.
    ann.send(json!({"event": "client-x", "channel": "private-other", "data": {}}))
        .await;
    assert_eq!(ann.next().await["event"], "pusher:error");
    ann.subscribe("news").await;
    ann.send(json!({"event": "client-x", "channel": "news", "data": {}}))
        .await;
    assert_eq!(ann.next().await["event"], "pusher:error");
    let mut codes = Vec::new();
    for _ in 0..6 {
        ann.send(json!({"event": "client-burst", "channel": room, "data": {}}))
            .await;
    }
    ann.send(json!({"event": "pusher:ping", "data": {}})).await;
    loop {
        let message = ann.next().await;
        if message["event"] == "pusher:pong" {
            break;
        }
        codes.push(message["data"]["code"].clone());
    }
    assert!(codes.contains(&json!(4301)), "{codes:?}");
    server.stop().await;
}

#[tokio::test]
async fn signin_subscribes_the_user_channel_and_terminate_closes_with_4009() {
    let (server, hub) = server().await;
    let mut conn = open(&server, KEY).await;
    let user_data = json!({"id": "ann", "name": "Ann"}).to_string();
    let bad = format!("{KEY}:{}", sign("wrong", "x"));
    conn.send(json!({"event": "pusher:signin", "data": {"auth": bad, "user_data": user_data}}))
        .await;
    let error = conn.next().await;
    assert_eq!(error["event"], "pusher:error");
    assert_eq!(error["data"]["code"], 4009);
    let auth = format!(
        "{KEY}:{}",
        sign(SECRET, &format!("{}::user::{user_data}", conn.socket_id))
    );
    conn.send(json!({"event": "pusher:signin", "data": {"auth": auth, "user_data": user_data}}))
        .await;
    let ok = conn.next().await;
    assert_eq!(ok["event"], "pusher:signin_success");
    assert_eq!(ok["data"]["user_data"], user_data);
    // pusher-js subscribes to the user channel itself.
    conn.send(json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-ann", "auth": ""}}))
        .await;
    assert_eq!(
        conn.next().await["event"],
        "pusher_internal:subscription_succeeded"
    );
    conn.send(json!({"event": "pusher:subscribe", "data": {"channel": "#server-to-user-bob"}}))
        .await;
    assert_eq!(conn.next().await["event"], "pusher:subscription_error");
    let channel = Channel::for_user("ann").expect("channel");
    let topic = Topic::new(&format!("1:{}", channel.escaped())).expect("topic");
    hub.publish(
        &topic,
        Envelope::with_text("note", "hi")
            .to_data()
            .expect("an envelope"),
    )
    .await
    .expect("publish");
    assert_eq!(
        conn.next().await,
        json!({"event": "note", "channel": "#server-to-user-ann", "data": "hi"})
    );
    hub.publish(
        &topic,
        Envelope::terminate().to_data().expect("an envelope"),
    )
    .await
    .expect("publish");
    let error = conn.next().await;
    assert_eq!(error["data"]["code"], 4009, "{error}");
    let close = next_close(&mut conn.ws).await.expect("close");
    assert_eq!(u16::from(close.code), 4009);
    server.stop().await;
}

#[tokio::test]
async fn a_ws_member_with_a_user_is_a_pusher_member() {
    use common::tokens::{authed, chat_token};
    use pushwire::auth::{AuthConfig, TokenVerifier};
    const TOKEN_SECRET: &str = "token-secret";
    let verifier = TokenVerifier::from_config(&AuthConfig {
        secret: Some(TOKEN_SECRET.into()),
        ..AuthConfig::default()
    })
    .expect("auth config")
    .expect("a key");
    let app = PusherApp::parse(&format!("5:{KEY}:{SECRET}?namespace=chat")).expect("app");
    let apps = PusherApps::new(vec![app]).expect("apps");
    let hub = Hub::new(apps.hub_config(HubConfig::default()));
    let server = start(App::new().topics(hub).auth(verifier).pusher(apps)).await;
    let mut early = authed(&server, &chat_token(TOKEN_SECRET, "wes")).await;
    send(
        &mut early,
        json!({"op": "sub", "id": 1, "topic": "chat:presence-lobby"}),
    )
    .await;
    assert!(next_json(&mut early).await["ok"].is_object());
    let mut ann = open(&server, KEY).await;
    let ok = ann.join("presence-lobby", "ann").await;
    assert_eq!(
        data_of(&ok)["presence"]["ids"],
        json!(["ann", "wes"]),
        "{ok}"
    );
    let mut late = authed(&server, &chat_token(TOKEN_SECRET, "liz")).await;
    send(
        &mut late,
        json!({"op": "sub", "id": 1, "topic": "chat:presence-lobby"}),
    )
    .await;
    let added = ann.until("pusher_internal:member_added").await;
    assert_eq!(data_of(&added)["user_id"], "liz");
    drop(late);
    let removed = ann.until("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed), json!({"user_id": "liz"}));
    server.stop().await;
}

/// A node on `redis` serving app `1` (client events on).
async fn redis_node(redis: &common::redis::RedisServer) -> (Running, Hub) {
    use pushwire::broker::{RedisBroker, RedisConfig};
    let app = PusherApp::parse(&format!("1:{KEY}:{SECRET}?client-events=true")).expect("app");
    let apps = PusherApps::new(vec![app]).expect("apps");
    let config = apps.hub_config(HubConfig::default());
    let broker =
        RedisBroker::new(config.history.clone(), RedisConfig::new(redis.url())).expect("broker");
    let hub = Hub::with_broker(config, std::sync::Arc::new(broker));
    for _ in 0..200 {
        if hub.ready().await {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(hub.ready().await, "the broker never became ready");
    let server = start(App::new().topics(hub.clone()).pusher(apps)).await;
    (server, hub)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_client_events_cross_nodes_sharing_redis() {
    let redis = common::redis::RedisServer::start();
    let (a, _) = redis_node(&redis).await;
    let (b, _) = redis_node(&redis).await;
    let room = "presence-far";
    let mut ann = open(&a, KEY).await;
    ann.join(room, "ann").await;
    let mut bob = open(&b, KEY).await;
    let ok = bob.join(room, "bob").await;
    assert_eq!(
        data_of(&ok)["presence"]["ids"],
        json!(["ann", "bob"]),
        "{ok}"
    );
    let added = ann.until("pusher_internal:member_added").await;
    assert_eq!(data_of(&added)["user_id"], "bob");
    // Bob's second socket, on the first node: still one member.
    let mut bob2 = open(&a, KEY).await;
    let ok = bob2.join(room, "bob").await;
    assert_eq!(data_of(&ok)["presence"]["count"], 2, "{ok}");
    bob.send(json!({"event": "client-wave", "channel": room, "data": {"hi": 1}}))
        .await;
    let wave = ann.until("client-wave").await;
    assert_eq!(wave["user_id"], "bob");
    assert_eq!(bob2.until("client-wave").await["data"], json!({"hi": 1}));
    bob.quiet().await;
    drop(bob);
    bob2.quiet().await;
    drop(bob2);
    let removed = ann.until("pusher_internal:member_removed").await;
    assert_eq!(data_of(&removed), json!({"user_id": "bob"}));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_pusher_client_that_does_not_read_is_closed_as_a_slow_consumer() {
    let (server, hub) = server().await;
    let mut stalled = open(&server, KEY).await;
    stalled.subscribe("flood").await;
    let topic = Topic::new("1:flood").expect("topic");
    let data = Envelope::with_text("big", &"f".repeat(4096))
        .to_data()
        .expect("an envelope");
    // 16 MB: more than the socket buffers and the outbound queue hold.
    for _ in 0..4000 {
        hub.publish(&topic, data.clone()).await.expect("publish");
    }
    let close = tokio::time::timeout(STEP * 3, next_close(&mut stalled.ws))
        .await
        .expect("closed in time")
        .expect("a close frame");
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (4100, "slow consumer")
    );
    // Others are served.
    let mut fresh = open(&server, KEY).await;
    fresh.quiet().await;
    server.stop().await;
}

#[tokio::test]
async fn a_draining_server_tells_pusher_clients_to_reconnect_with_4200() {
    let (server, _hub) = server().await;
    let mut conn = open(&server, KEY).await;
    conn.subscribe("news").await;
    let stopping = tokio::spawn(server.stop());
    let close = next_close(&mut conn.ws).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4200);
    drop(conn);
    stopping.await.expect("stopped");
}

#[tokio::test]
async fn private_channel_topics_need_a_token_on_pushwires_own_transports() {
    let (server, _hub) = server().await;
    let (mut client, _) = ws(&server).await;
    for topic in [
        "1:private-a",
        "1:private-encrypted-a",
        "1:presence-a",
        "1:/23server-to-user-7",
    ] {
        for op in ["sub", "pub"] {
            let reply = common::topics::request(
                &mut client,
                json!({"op": op, "id": 1, "topic": topic, "data": 1}),
            )
            .await;
            assert_eq!(reply["error"]["code"], 403, "{op} {topic}: {reply}");
        }
    }
    common::topics::sub(&mut client, "1:news", None).await;
    let http = reqwest::Client::new();
    for path in ["/sse?topic=1:private-a", "/poll?topic=1:presence-a"] {
        let response = tokio::time::timeout(STEP, http.get(server.url(path)).send())
            .await
            .expect("in time")
            .expect("answered");
        assert_eq!(response.status(), 403, "{path}");
    }
    // The backend's publish API (its key, or loopback) may publish to them: the
    // signed Pusher subscriber gets it.
    let mut pusher = open(&server, KEY).await;
    let ok = pusher.subscribe("private-a").await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let (status, _) = common::topics::publish_http(&server, "1:private-a", "{\"n\":1}").await;
    assert_eq!(status, 200);
    let event = pusher.until("message").await;
    assert_eq!(event["channel"], "private-a");
    server.stop_with(&mut [&mut client, &mut pusher.ws]).await;
}
