//! Every transport is a presence member: an SSE stream and a long-poll client
//! appear in a `/ws` client's `presence` query and their join and leave events
//! reach it, exactly as a `/ws` member's do, on one node and across two nodes
//! sharing a real `redis-server`. Each client is an independent implementation
//! (reqwest for SSE and polls, tokio-tungstenite for `/ws`) over real sockets.

use crate::common;

use std::time::{Duration, Instant};

use common::redis::{Node, RedisServer, nodes};
use common::sse::Sse;
use common::tokens::chat_token;
use common::topics::{next_json_within, start_topics_with};
use common::{Client, Running, STEP, connect};
use futures_util::SinkExt as _;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pushwire::HubConfig;
use pushwire::protocol::session::SessionConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// The longest a join or leave may take to arrive (generous: a loaded machine,
/// a lapse, a Redis round trip).
const EVENT: Duration = Duration::from_secs(30);

/// The presence topic every test uses.
const ROOM: &str = "chat:room";

/// A `/ws` client subscribed to [`ROOM`] that remembers every presence event it read.
struct Watcher {
    ws: Client,
    id: String,
    events: Vec<Value>,
}

impl Watcher {
    /// Connects to `url`, authenticates with `token` if given, and subscribes.
    async fn start(url: &str, token: Option<&str>) -> Self {
        let mut ws = connect(url).await;
        let hello = next_json_within(&mut ws, STEP).await.expect("hello");
        let mut watcher = Self {
            ws,
            id: hello["hello"]["client"].as_str().expect("id").to_owned(),
            events: Vec::new(),
        };
        if let Some(token) = token {
            let reply = watcher
                .request(json!({"op": "auth", "id": "auth", "token": token}))
                .await;
            assert!(reply["ok"].is_object(), "auth: {reply}");
        }
        let reply = watcher
            .request(json!({"op": "sub", "id": "sub", "topic": ROOM}))
            .await;
        assert!(reply["ok"].is_object(), "sub: {reply}");
        let id = watcher.id.clone();
        watcher.joined(&id).await;
        watcher
    }

    /// Sends a request and answers its reply (recording presence events met on
    /// the way).
    async fn request(&mut self, request: Value) -> Value {
        let id = request["id"].clone();
        tokio::time::timeout(STEP, self.ws.send(WsMessage::text(request.to_string())))
            .await
            .expect("send timed out")
            .expect("send failed");
        self.next_matching(|m| m["id"] == id)
            .await
            .unwrap_or_else(|| panic!("no reply to {id}"))
    }

    /// Reads until a message for which `wanted` holds, within [`EVENT`].
    async fn next_matching(&mut self, wanted: impl Fn(&Value) -> bool) -> Option<Value> {
        let deadline = Instant::now() + EVENT;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let value = next_json_within(&mut self.ws, left).await?;
            if value["join"].is_object() || value["leave"].is_object() {
                self.events.push(value.clone());
            }
            if wanted(&value) {
                return Some(value);
            }
        }
    }

    /// The member objects of [`ROOM`], from a `presence` query.
    async fn members(&mut self) -> Vec<Value> {
        let reply = self
            .request(json!({"op": "presence", "id": "presence", "topic": ROOM}))
            .await;
        reply["ok"]["members"]
            .as_array()
            .unwrap_or_else(|| panic!("no members in {reply}"))
            .clone()
    }

    /// The join of `client`, its member object.
    async fn joined(&mut self, client: &str) -> Value {
        self.next_matching(|e| e["join"]["client"] == client)
            .await
            .unwrap_or_else(|| panic!("no join of {client} within {EVENT:?}"))["join"]
            .clone()
    }

    /// The leave of `client`, its member object.
    async fn left(&mut self, client: &str) -> Value {
        self.next_matching(|e| e["leave"]["client"] == client)
            .await
            .unwrap_or_else(|| panic!("no leave of {client} within {EVENT:?}"))["leave"]
            .clone()
    }

    /// How many joins and leaves of `client` it has read so far.
    fn count(&self, client: &str) -> (usize, usize) {
        let of = |kind: &str| {
            self.events
                .iter()
                .filter(|e| e[kind]["client"] == client)
                .count()
        };
        (of("join"), of("leave"))
    }
}

/// Opens `url` (a full `/sse?…` URL) and answers the stream and the client id of
/// its `subscribed` event.
async fn open_sse(url: &str) -> (Sse, String) {
    let mut sse = Sse::open(url, None).await;
    let (event, data) = sse.json().await;
    assert_eq!(event.event.as_deref(), Some("subscribed"), "{data}");
    let client = data["client"]
        .as_str()
        .unwrap_or_else(|| panic!("no client id in {data}"))
        .to_owned();
    (sse, client)
}

/// A long-poll client: one key for all its polls, and its positions.
struct Poller {
    base: String,
    key: &'static str,
    token: Option<String>,
    since: Option<String>,
}

impl Poller {
    fn new(base: String, key: &'static str, token: Option<String>) -> Self {
        Self {
            base,
            key,
            token,
            since: None,
        }
    }

    /// One poll of [`ROOM`] waiting at most `timeout_ms`; answers the body.
    async fn poll(&mut self, timeout_ms: u64) -> Value {
        let mut query = vec![
            ("topic", String::from(ROOM)),
            ("client", String::from(self.key)),
            ("timeout", timeout_ms.to_string()),
        ];
        if let Some(since) = &self.since {
            query.push(("since", since.clone()));
        }
        if let Some(token) = &self.token {
            query.push(("token", token.clone()));
        }
        let query: Vec<String> = query
            .iter()
            .map(|(key, value)| format!("{key}={}", utf8_percent_encode(value, NON_ALPHANUMERIC)))
            .collect();
        let request = reqwest::get(format!("{}/poll?{}", self.base, query.join("&")));
        let response = tokio::time::timeout(Duration::from_secs(70), request)
            .await
            .expect("poll timed out")
            .expect("poll failed");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("poll answers JSON");
        self.since = body["since"].as_str().map(str::to_owned);
        body
    }

    /// Polls (each waiting up to 400 ms) until more than `span` has passed: long
    /// enough that a member whose presence hung on single polls would have left.
    /// Answers the member id every answer gave.
    async fn keep_polling(&mut self, span: Duration) -> String {
        let start = Instant::now();
        let mut id = None;
        for _ in 0..1000 {
            let body = self.poll(400).await;
            let this = body["client"].as_str().expect("client").to_owned();
            assert_eq!(*id.get_or_insert_with(|| this.clone()), this, "a stable id");
            if start.elapsed() > span {
                break;
            }
        }
        id.expect("polled")
    }
}

fn presence_config() -> HubConfig {
    HubConfig {
        presence: vec![String::from("chat")],
        ..HubConfig::default()
    }
}

/// A server whose `chat` topics track presence, and whose poll clients stay
/// present `poll_lapse` after their last poll.
async fn start_presence(poll_lapse: Duration) -> (Running, pushwire::Hub) {
    let session = SessionConfig {
        poll_lapse,
        ..SessionConfig::default()
    };
    start_topics_with(presence_config(), session).await
}

#[tokio::test]
async fn an_sse_stream_is_a_member_while_it_runs() {
    let (server, _hub) = start_presence(Duration::from_secs(15)).await;
    let mut watcher = Watcher::start(&server.ws_url("/ws"), None).await;
    let (sse, client) = open_sse(&server.url(&format!("/sse?topic={ROOM}"))).await;
    assert_ne!(client, watcher.id);

    // The join and the member list show it exactly as a /ws member.
    assert_eq!(watcher.joined(&client).await, json!({"client": client}));
    let mut members = watcher.members().await;
    members.sort_by_key(|m| m["client"].as_str().map(str::to_owned));
    let mut expected = vec![json!({"client": client}), json!({"client": watcher.id})];
    expected.sort_by_key(|m| m["client"].as_str().map(str::to_owned));
    assert_eq!(members, expected);

    // The client goes away: it leaves, once.
    drop(sse);
    assert_eq!(watcher.left(&client).await, json!({"client": client}));
    assert_eq!(watcher.members().await, vec![json!({"client": watcher.id})]);
    assert_eq!(watcher.count(&client), (1, 1));
    server.stop_with(&mut [&mut watcher.ws]).await;
}

#[tokio::test]
async fn a_poll_client_is_a_member_while_it_polls_and_leaves_once_after_the_lapse() {
    let lapse = Duration::from_secs(3);
    let (server, _hub) = start_presence(lapse).await;
    let mut watcher = Watcher::start(&server.ws_url("/ws"), None).await;
    let mut poller = Poller::new(server.url(""), "poller-key-0001", None);
    let first = poller.poll(0).await;
    let client = first["client"].as_str().expect("client id").to_owned();
    assert_eq!(watcher.joined(&client).await, json!({"client": client}));

    // Polling for longer than the lapse: no leave, no second join.
    assert_eq!(poller.keep_polling(lapse + lapse / 2).await, client);
    let members = watcher.members().await;
    assert!(
        members.contains(&json!({"client": client})),
        "still present: {members:?}"
    );
    assert_eq!(watcher.count(&client), (1, 0), "{:?}", watcher.events);

    // It stops polling: it leaves after the lapse, once.
    let stopped = Instant::now();
    assert_eq!(watcher.left(&client).await, json!({"client": client}));
    assert!(stopped.elapsed() >= lapse - Duration::from_millis(500));
    assert_eq!(watcher.members().await, vec![json!({"client": watcher.id})]);
    assert_eq!(watcher.count(&client), (1, 1));
    server.stop().await;
}

const SECRET: &str = "presence-transports-secret";

/// Two nodes on `redis`, requiring tokens signed with [`SECRET`].
async fn two_nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Node> {
    let mut flags = vec!["--token-secret", SECRET, "--presence", "chat"];
    flags.extend_from_slice(extra);
    nodes(redis, 2, &flags).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_stream_on_another_node_is_a_member_with_its_tokens_user() {
    let redis = RedisServer::start();
    let nodes = two_nodes(&redis, &[]).await;
    let token = chat_token(SECRET, "watcher");
    let mut watcher = Watcher::start(&nodes[0].ws_url(), Some(&token)).await;
    let sse_token = chat_token(SECRET, "sam");
    let (sse, client) =
        open_sse(&nodes[1].url(&format!("/sse?topic={ROOM}&token={sse_token}"))).await;

    let member = json!({"client": client, "user": "sam"});
    assert_eq!(watcher.joined(&client).await, member);
    let members = watcher.members().await;
    assert!(members.contains(&member), "{members:?}");
    assert!(
        members.contains(&json!({"client": watcher.id, "user": "watcher"})),
        "{members:?}"
    );

    drop(sse);
    assert_eq!(watcher.left(&client).await, member);
    let members = watcher.members().await;
    assert!(!members.contains(&member), "{members:?}");
    assert_eq!(watcher.count(&client), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_client_on_another_node_is_a_member_until_its_polls_lapse() {
    let redis = RedisServer::start();
    let nodes = two_nodes(&redis, &["--poll-lapse", "3s"]).await;
    let token = chat_token(SECRET, "watcher");
    let mut watcher = Watcher::start(&nodes[0].ws_url(), Some(&token)).await;
    let mut poller = Poller::new(
        nodes[1].url(""),
        "remote-poller-01",
        Some(chat_token(SECRET, "pat")),
    );
    let first = poller.poll(0).await;
    let client = first["client"].as_str().expect("client id").to_owned();
    let member = json!({"client": client, "user": "pat"});
    assert_eq!(watcher.joined(&client).await, member);

    assert_eq!(
        poller.keep_polling(Duration::from_millis(4500)).await,
        client
    );
    let members = watcher.members().await;
    assert!(members.contains(&member), "still present: {members:?}");
    assert_eq!(watcher.count(&client), (1, 0), "{:?}", watcher.events);

    assert_eq!(watcher.left(&client).await, member);
    let members = watcher.members().await;
    assert!(!members.contains(&member), "{members:?}");
    assert_eq!(watcher.count(&client), (1, 1));
}

/// The member ids on [`ROOM`], read from the hub in this process.
async fn hub_members(hub: &pushwire::Hub) -> Vec<String> {
    let topic = pushwire::Topic::new(ROOM).expect("topic");
    hub.members(&topic)
        .await
        .expect("members")
        .into_iter()
        .map(|m| m.client.to_string())
        .collect()
}

/// Waits (bounded) until the hub's members of [`ROOM`] are `count`.
async fn wait_members(hub: &pushwire::Hub, count: usize) -> Vec<String> {
    let deadline = Instant::now() + EVENT;
    loop {
        let members = hub_members(hub).await;
        if members.len() == count || Instant::now() > deadline {
            return members;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn shutdown_makes_sse_and_poll_members_leave() {
    let (server, hub) = start_presence(Duration::from_secs(600)).await;
    let (sse, sse_client) = open_sse(&server.url(&format!("/sse?topic={ROOM}"))).await;
    let mut poller = Poller::new(server.url(""), "shutdown-poller", None);
    let poll_client = poller.poll(0).await["client"]
        .as_str()
        .expect("client id")
        .to_owned();
    let mut members = wait_members(&hub, 2).await;
    members.sort();
    let mut expected = vec![sse_client, poll_client];
    expected.sort();
    assert_eq!(members, expected);
    // The poll's lapse (10 minutes) is far off: only the shutdown ends it.
    server.stop().await;
    assert_eq!(wait_members(&hub, 0).await, Vec::<String>::new());
    drop(sse);
}

#[tokio::test]
async fn an_sse_stream_whose_token_expires_leaves() {
    use pushwire::auth::{AuthConfig, Claims, SigningKey, TokenVerifier, now, sign};
    let config = AuthConfig {
        secret: Some(SECRET.into()),
        leeway: Duration::ZERO,
        ..AuthConfig::default()
    };
    let verifier = TokenVerifier::from_config(&config)
        .expect("usable auth config")
        .expect("a key is configured");
    let hub = pushwire::Hub::new(presence_config());
    let server = common::start(pushwire::App::new().topics(hub).auth(verifier)).await;
    let mut watcher =
        Watcher::start(&server.ws_url("/ws"), Some(&chat_token(SECRET, "watcher"))).await;
    let short = Claims {
        sub: Some(String::from("eve")),
        exp: now() + 2,
        topics: Some(
            [(String::from("chat:*"), vec![String::from("sub")])]
                .into_iter()
                .collect(),
        ),
        ..Claims::default()
    };
    let token = sign(&short, &SigningKey::Secret(SECRET.into()), None).expect("sign");
    let (sse, client) = open_sse(&server.url(&format!("/sse?topic={ROOM}&token={token}"))).await;
    let member = json!({"client": client, "user": "eve"});
    assert_eq!(watcher.joined(&client).await, member);
    // The client keeps the stream open; its token's expiry ends it, and it leaves.
    assert_eq!(watcher.left(&client).await, member);
    assert_eq!(watcher.count(&client), (1, 1));
    drop(sse);
    server.stop_with(&mut [&mut watcher.ws]).await;
}

#[tokio::test]
async fn a_poll_with_a_bad_client_key_is_refused_with_400() {
    let (server, hub) = start_presence(Duration::from_secs(15)).await;
    for key in ["short", "has%20space1", &"k".repeat(65)] {
        let url = server.url(&format!("/poll?topic={ROOM}&timeout=0&client={key}"));
        let response = tokio::time::timeout(STEP, reqwest::get(url))
            .await
            .expect("poll timed out")
            .expect("poll failed");
        assert_eq!(response.status(), 400, "{key}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body["error"]["code"], 400, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("invalid client")),
            "{body}"
        );
    }
    assert!(hub_members(&hub).await.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn sse_and_poll_members_show_the_info_they_give() {
    let (server, _hub) = start_presence(Duration::from_secs(15)).await;
    let mut watcher = Watcher::start(&server.ws_url("/ws"), None).await;
    let info = |json: Value| utf8_percent_encode(&json.to_string(), NON_ALPHANUMERIC).to_string();

    let sse_info = info(json!({ROOM: {"name": "sse"}}));
    let url = server.url(&format!("/sse?topic={ROOM}&info={sse_info}"));
    let (_sse, sse_client) = open_sse(&url).await;
    assert_eq!(
        watcher.joined(&sse_client).await,
        json!({"client": sse_client, "info": {"name": "sse"}})
    );

    let poll = |info: &str| {
        let url = server.url(&format!(
            "/poll?topic={ROOM}&timeout=0&client=info-poller-1&info={info}"
        ));
        async move {
            let response = tokio::time::timeout(STEP, reqwest::get(url))
                .await
                .expect("poll timed out")
                .expect("poll failed");
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.expect("JSON"))
        }
    };
    let (status, body) = poll(&info(json!({ROOM: "first"}))).await;
    assert_eq!(status, 200, "{body}");
    let poll_client = body["client"].as_str().expect("client").to_owned();
    let first = json!({"client": poll_client, "info": "first"});
    assert_eq!(watcher.joined(&poll_client).await, first);
    // A new info: the member leaves and joins again with it, as a /ws client that
    // subscribes anew.
    let (status, _) = poll(&info(json!({ROOM: "second"}))).await;
    assert_eq!(status, 200);
    assert_eq!(watcher.left(&poll_client).await, first);
    let second = json!({"client": poll_client, "info": "second"});
    assert_eq!(watcher.joined(&poll_client).await, second);
    let members = watcher.members().await;
    assert!(members.contains(&second), "{members:?}");
    assert!(
        members.contains(&json!({"client": sse_client, "info": {"name": "sse"}})),
        "{members:?}"
    );

    // Refused: info over 1 KiB (413), not an object or naming another topic (400).
    let big = info(json!({ROOM: "x".repeat(1100)}));
    assert_eq!(poll(&big).await.0, 413);
    assert_eq!(poll(&info(json!(["a"]))).await.0, 400);
    assert_eq!(poll(&info(json!({"chat:other": 1}))).await.0, 400);
    let url = server.url(&format!("/sse?topic={ROOM}&info={big}"));
    let response = tokio::time::timeout(STEP, reqwest::get(url))
        .await
        .expect("SSE timed out")
        .expect("SSE failed");
    assert_eq!(response.status(), 413);
    server.stop_with(&mut [&mut watcher.ws]).await;
}
