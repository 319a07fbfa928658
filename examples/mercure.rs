//! A Mercure hub on pushwire: browsers subscribe with their own `EventSource` at
//! `/.well-known/mercure`, backends publish with a form POST to the same URL, and
//! tokens come from one trusted issuer that signs them with an HS256 secret. The
//! program mints two tokens, subscribes to every book (a URL Pattern), publishes
//! an update about book 1, and prints the Server-Sent Event it received. The
//! topic `https://example.com/books/1` is the pushwire topic
//! `mercure:https://example.com/books/1`, so `/ws`, SSE, long-poll and Pusher
//! clients can subscribe to it too.
//!
//!     cargo run --example mercure             # port 8892
//!     cargo run --example mercure -- 0        # a free port

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use pushwire::interop::mercure::{Issuer, KeySpec, MercureConfig};
use pushwire::{App, Hub, HubConfig};

/// The issuer the hub trusts, and the secret its tokens are signed with.
const ISSUER: &str = "https://example.com/auth";
const SECRET: &str = "!ChangeThisMercureHubJWTSecretKey!";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    pushwire::logging::init();
    let port = std::env::args().nth(1).unwrap_or_else(|| "8892".into());

    let config = MercureConfig {
        issuers: vec![Issuer {
            iss: ISSUER.into(),
            key: KeySpec::Hs256(SECRET.into()),
        }],
        ..MercureConfig::default()
    };
    // The hub copies every message of a `mercure:` topic into the journal that
    // Mercure subscribers read (and resume from with Last-Event-ID).
    let hub = Hub::new(config.hub_config(HubConfig::default()));
    let server = App::new()
        .topics(hub)
        .mercure(config)
        .bind(format!("127.0.0.1:{port}"))
        .await?;
    // A token's audience is the hub's URL, as the requests below name it.
    let url = format!("http://{}/.well-known/mercure", server.local_addr());
    println!("Mercure hub at {url}");
    let serving = tokio::spawn(server.run());

    // A subscriber of every book, as a browser's EventSource would be.
    let client = reqwest::Client::new();
    let books = "https://example.com/books/:id";
    let reader = mint(&url, "subscribe", books, "urlpattern")?;
    let mut stream = client
        .get(format!("{url}?match_urlpattern={}", encode(books)))
        .bearer_auth(reader)
        .send()
        .await?
        .error_for_status()?;

    // A backend publishes an update about book 1; the hub answers its id.
    let writer = mint(&url, "publish", "*", "exact")?;
    let form = format!(
        "topic={}&data={}",
        encode("https://example.com/books/1"),
        encode(r#"{"title":"Dune","stock":3}"#)
    );
    let id = client
        .post(&url)
        .bearer_auth(writer)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    println!("published {id}");

    // The subscriber's stream: events end with a blank line; lines starting
    // with ':' are heartbeats.
    let mut text = String::new();
    let event = loop {
        let Some(chunk) = stream.chunk().await? else {
            return Err("the stream ended".into());
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(event) = text
            .split("\n\n")
            .find(|event| event.lines().any(|line| line.starts_with("data:")))
        {
            break event.to_owned();
        }
    };
    println!("received\n{event}\n");
    drop(stream);

    Ok(serving.await??)
}

/// An access token (RFC 9068, HS256) of [`ISSUER`] for the hub `audience`,
/// valid for an hour, granting `action` (publish or subscribe) on the topics
/// `topic` matches.
fn mint(
    audience: &str,
    action: &str,
    topic: &str,
    match_type: &str,
) -> Result<String, Box<dyn std::error::Error>> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = serde_json::json!({"alg": "HS256", "typ": "at+jwt"});
    let claims = serde_json::json!({
        "iss": ISSUER,
        "aud": audience,
        "sub": "example",
        "iat": now,
        "exp": now + 3600,
        "authorization_details": [{
            "type": "https://mercure.rocks/authorization-detail",
            "actions": [action],
            "topics": [{"match": topic, "match_type": match_type}],
        }],
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = ring::hmac::sign(&key, signed.as_bytes());
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// `text` percent-encoded for a URL's query or a form.
fn encode(text: &str) -> String {
    utf8_percent_encode(text, NON_ALPHANUMERIC).to_string()
}
