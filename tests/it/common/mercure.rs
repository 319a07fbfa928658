//! Mercure for the tests: a server with a Mercure hub, access tokens minted with
//! `jsonwebtoken` (RFC 9068 headers, `authorization_details` grants), and a
//! subscriber's stream read event by event with multi-line data and `retry:`.

use pushwire::hub::HubConfig;
use pushwire::interop::mercure::{Issuer, KeySpec, MercureConfig};
use pushwire::{App, Hub};
use serde_json::{Value, json};

use super::{Running, STEP, start};

/// The issuer the tests' hubs trust.
pub const ISSUER: &str = "https://auth.test/";

/// Its HS256 secret.
pub const SECRET: &str = "a-mercure-test-secret-of-32-bytes!!";

/// The detail type of Mercure grants.
pub const DETAIL: &str = "https://mercure.rocks/authorization-detail";

/// A hub's settings that trust [`ISSUER`], with anonymous subscribers when
/// `anonymous`.
pub fn config(anonymous: bool) -> MercureConfig {
    MercureConfig {
        issuers: vec![Issuer {
            iss: ISSUER.into(),
            key: KeySpec::Hs256(SECRET.into()),
        }],
        anonymous,
        ..MercureConfig::default()
    }
}

/// A server with topics and the Mercure hub `config`; answers the hub too.
pub async fn start_hub(config: MercureConfig, hub: HubConfig) -> (Running, Hub) {
    let hub = Hub::new(config.hub_config(hub));
    let app = App::new().topics(hub.clone()).mercure(config);
    (start(app).await, hub)
}

/// Seconds since the epoch, `plus` from now.
pub fn unix(plus: i64) -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    i64::try_from(now).expect("seconds fit") + plus
}

/// One grant: `actions` on `topics` (`(match, match_type)` pairs).
pub fn detail(actions: &[&str], topics: &[(&str, &str)]) -> Value {
    json!({
        "type": DETAIL,
        "actions": actions,
        "topics": topics
            .iter()
            .map(|(m, kind)| json!({"match": m, "match_type": kind}))
            .collect::<Vec<_>>(),
    })
}

/// A Mercure 1.0 access token for the hub at `audience`, expiring `exp_in`
/// seconds from now, granting `details`; signed with `secret` by `iss`.
pub fn token_with(
    iss: &str,
    secret: &str,
    audience: &str,
    exp_in: i64,
    details: &[Value],
) -> String {
    // The library's crypto provider is installed by pushwire's own signing.
    let _ = pushwire::auth::sign(
        &pushwire::auth::Claims::default(),
        &pushwire::auth::SigningKey::Secret(secret.into()),
        None,
    );
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let claims = json!({
        "iss": iss,
        "aud": audience,
        "sub": "tester",
        "exp": unix(exp_in),
        "authorization_details": details,
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

/// A token of [`ISSUER`] for `server`'s hub, valid an hour.
pub fn token(server: &Running, details: &[Value]) -> String {
    token_with(ISSUER, SECRET, &hub_url(server), 3600, details)
}

/// The hub's URL on `server` (its audience when none is configured).
pub fn hub_url(server: &Running) -> String {
    server.url("/.well-known/mercure")
}

/// `POST`s an update (`fields` as a form) with `token`: status and body.
pub async fn publish(
    server: &Running,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> (u16, String) {
    let body: String = fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut request = reqwest::Client::new()
        .post(hub_url(server))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("publish timed out")
        .expect("publish failed");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

/// `text` percent-encoded for a form or a query.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A subscription URL on `server` with `query` pairs.
pub fn subscribe_url(server: &Running, query: &[(&str, &str)]) -> String {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    format!("{}?{}", hub_url(server), query.join("&"))
}

/// One event of a subscriber's stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Event {
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<String>,
    /// The data lines joined with `\n`, as `EventSource` does.
    pub data: String,
}

/// A subscriber's open stream.
pub struct Stream {
    pub response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// `GET url` with `headers`: the stream, checked to be a 200 event stream.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Self {
        let response = get(url, headers).await;
        assert_eq!(response.status(), 200, "{url}");
        assert_eq!(
            response.headers()["content-type"].to_str().ok(),
            Some("text/event-stream")
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The `Mercure-Last-Event-ID` response header.
    pub fn last_event_id(&self) -> Option<String> {
        self.response
            .headers()
            .get("mercure-last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The next block (event or comment) as its raw lines, `None` at the end of
    /// the stream; fails the test after [`STEP`].
    pub async fn next_block(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                return Some(self.buffer.drain(..end + 2).collect());
            }
            let chunk = tokio::time::timeout(STEP, self.response.chunk())
                .await
                .expect("nothing within the time limit")
                .expect("the stream failed")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("UTF-8"));
        }
    }

    /// The next event (comments skipped); fails at the end of the stream.
    pub async fn next(&mut self) -> Event {
        loop {
            let block = self.next_block().await.expect("the stream ended");
            let mut event = Event::default();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    event.id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("event: ") {
                    event.event = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("retry: ") {
                    event.retry = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                }
            }
            if !data.is_empty() {
                event.data = data.join("\n");
                return event;
            }
        }
    }
}

/// `GET url` with `headers`, the body not read.
pub async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    tokio::time::timeout(STEP, request.send())
        .await
        .expect("request timed out")
        .expect("request failed")
}

/// A refusal's status and `WWW-Authenticate` header.
pub async fn refusal(url: &str, headers: &[(&str, &str)]) -> (u16, Option<String>) {
    let response = get(url, headers).await;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (response.status().as_u16(), challenge)
}
