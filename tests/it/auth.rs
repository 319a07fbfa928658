//! Tokens over real sockets (docs/protocol.md, "Authentication"): `auth` on `/ws`,
//! `?token=` and `Authorization: Bearer` on `/sse` and `/poll`, JWTs on the publish
//! API; keys of each algorithm, and every way a token can be refused.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::tokens::{SECRET, authed, grants, hs256};
use common::topics::*;
use common::{Client, Running, STEP, connect, next_close, start};
use pushwire::auth::{AuthConfig, Claims, SigningKey, TokenVerifier, now, sign};
use pushwire::{App, Hub, HubConfig};
use serde_json::{Value, json};

fn keys_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys")
}

fn rsa_private() -> Vec<u8> {
    std::fs::read(keys_dir().join("rsa-private.pem")).expect("test RSA key")
}

/// A fresh P-256 key pair: (private PKCS#8 PEM, public SPKI PEM).
fn ec_pair() -> (String, String) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key");
    (pair.serialize_pem(), pair.public_key_pem())
}

/// Claims for `user`, valid for `ttl` seconds (negative: expired that long ago).
fn claims(user: &str, ttl: i64, topics: &[(&str, &[&str])]) -> Claims {
    Claims {
        sub: Some(user.to_owned()),
        exp: now().saturating_add_signed(ttl),
        topics: grants(topics),
        ..Claims::default()
    }
}

fn secret_config() -> AuthConfig {
    AuthConfig {
        secret: Some(SECRET.into()),
        leeway: Duration::ZERO,
        ..AuthConfig::default()
    }
}

/// A topics server requiring tokens as `config` says.
async fn start_auth(config: AuthConfig, hub: HubConfig) -> Running {
    let verifier = TokenVerifier::from_config(&config)
        .expect("usable auth config")
        .expect("a key is configured");
    start(App::new().topics(Hub::new(hub)).auth(verifier)).await
}

/// Requires HS256 tokens with [`SECRET`]; presence on the `chat` namespace.
async fn start_secret() -> Running {
    let hub = HubConfig {
        presence: vec![String::from("chat")],
        ..HubConfig::default()
    };
    start_auth(secret_config(), hub).await
}

async fn auth(client: &mut Client, token: &str) -> Value {
    request(client, json!({"op": "auth", "id": "a", "token": token})).await
}

fn error(reply: &Value) -> (u64, String) {
    (
        reply["error"]["code"].as_u64().unwrap_or(0),
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// The `auth` reply for `token` on a fresh connection.
async fn try_auth(server: &Running, token: &str) -> Value {
    let (mut client, _) = ws(server).await;
    auth(&mut client, token).await
}

fn write_temp(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(&mut file, text.as_bytes()).expect("write");
    file
}

#[tokio::test]
async fn an_hs256_token_authenticates_and_the_reply_names_user_and_expiry() {
    let server = start_secret().await;
    let token = claims("alice", 60, &[("news", &["sub"])]);
    let reply = try_auth(&server, &hs256(&token)).await;
    assert_eq!(reply["ok"], json!({"user": "alice", "expires": token.exp}));
    server.stop().await;
}

#[tokio::test]
async fn an_rs256_token_verifies_with_the_rsa_public_key() {
    let config = AuthConfig {
        public_keys: vec![keys_dir().join("rsa-public.pem")],
        ..AuthConfig::default()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let token = sign(
        &claims("bob", 60, &[]),
        &SigningKey::Rsa(rsa_private()),
        None,
    )
    .expect("sign");
    assert_eq!(try_auth(&server, &token).await["ok"]["user"], "bob");
    server.stop().await;
}

#[tokio::test]
async fn an_es256_token_verifies_with_a_p256_public_key() {
    let (private, public) = ec_pair();
    let public_file = write_temp(&public);
    let config = AuthConfig {
        public_keys: vec![public_file.path().to_owned()],
        ..AuthConfig::default()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let token = sign(
        &claims("carol", 60, &[]),
        &SigningKey::Ec(private.into_bytes()),
        None,
    )
    .expect("sign");
    assert_eq!(try_auth(&server, &token).await["ok"]["user"], "carol");
    // Another P-256 key's signature does not verify.
    let (other, _) = ec_pair();
    let forged = sign(
        &claims("carol", 60, &[]),
        &SigningKey::Ec(other.into_bytes()),
        None,
    )
    .expect("sign");
    assert_eq!(
        error(&try_auth(&server, &forged).await),
        (401, String::from("signature invalid"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_jwks_key_is_picked_by_kid() {
    let (ec_private, _) = ec_pair();
    let config = AuthConfig {
        jwks: vec![keys_dir().join("rsa.jwks.json")],
        ..AuthConfig::default()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let rsa = SigningKey::Rsa(rsa_private());
    let good = sign(&claims("dan", 60, &[]), &rsa, Some("rsa-1")).expect("sign");
    assert_eq!(try_auth(&server, &good).await["ok"]["user"], "dan");
    let unknown = sign(&claims("dan", 60, &[]), &rsa, Some("rsa-2")).expect("sign");
    assert_eq!(
        error(&try_auth(&server, &unknown).await),
        (401, String::from("unknown key id \"rsa-2\""))
    );
    // The JWKS has no EC key: ES256 is not an algorithm this server accepts.
    let es = sign(
        &claims("dan", 60, &[]),
        &SigningKey::Ec(ec_private.into_bytes()),
        Some("rsa-1"),
    )
    .expect("sign");
    assert_eq!(error(&try_auth(&server, &es).await).0, 401);
    server.stop().await;
}

fn unsigned(header: &Value, claims: &Claims) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(serde_json::to_string(claims).expect("claims"))
    )
}

#[tokio::test]
async fn alg_none_is_refused() {
    let server = start_secret().await;
    let token = unsigned(
        &json!({"alg": "none", "typ": "JWT"}),
        &claims("eve", 60, &[("*", &["sub", "pub"])]),
    );
    assert_eq!(
        error(&try_auth(&server, &token).await),
        (401, String::from("algorithm not allowed: \"none\""))
    );
    server.stop().await;
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_rsa_public_key_is_refused() {
    let public_pem = std::fs::read_to_string(keys_dir().join("rsa-public.pem")).expect("key");
    let forged = sign(
        &claims("eve", 60, &[("*", &["sub", "pub"])]),
        &SigningKey::Secret(public_pem),
        None,
    )
    .expect("sign");
    // A server with only the RSA key accepts no HS256 token at all.
    let rsa_only = AuthConfig {
        public_keys: vec![keys_dir().join("rsa-public.pem")],
        ..AuthConfig::default()
    };
    let server = start_auth(rsa_only, HubConfig::default()).await;
    assert_eq!(
        error(&try_auth(&server, &forged).await),
        (401, String::from("algorithm not allowed: \"HS256\""))
    );
    server.stop().await;
    // One with a secret too checks HS256 against the secret only.
    let both = AuthConfig {
        secret: Some(SECRET.into()),
        public_keys: vec![keys_dir().join("rsa-public.pem")],
        ..AuthConfig::default()
    };
    let server = start_auth(both, HubConfig::default()).await;
    assert_eq!(
        error(&try_auth(&server, &forged).await),
        (401, String::from("signature invalid"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_wrong_audience_or_issuer_is_refused() {
    let config = AuthConfig {
        audience: Some(String::from("pushwire")),
        issuer: Some(String::from("https://app.example")),
        ..secret_config()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let right = Claims {
        aud: Some(String::from("pushwire")),
        iss: Some(String::from("https://app.example")),
        ..claims("fay", 60, &[])
    };
    assert!(try_auth(&server, &hs256(&right)).await["ok"].is_object());
    let wrong_aud = Claims {
        aud: Some(String::from("other")),
        ..right.clone()
    };
    assert_eq!(
        error(&try_auth(&server, &hs256(&wrong_aud)).await),
        (401, String::from("wrong audience"))
    );
    let wrong_iss = Claims {
        iss: Some(String::from("https://evil.example")),
        ..right.clone()
    };
    assert_eq!(
        error(&try_auth(&server, &hs256(&wrong_iss)).await),
        (401, String::from("wrong issuer"))
    );
    server.stop().await;
}

#[tokio::test]
async fn expiry_is_checked_with_the_configured_leeway() {
    let config = AuthConfig {
        leeway: Duration::from_secs(30),
        ..secret_config()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let within = claims("gus", -10, &[]);
    assert!(try_auth(&server, &hs256(&within)).await["ok"].is_object());
    let beyond = claims("gus", -60, &[]);
    assert_eq!(
        error(&try_auth(&server, &hs256(&beyond)).await),
        (401, String::from("token expired"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_used_before_nbf_is_refused() {
    let server = start_secret().await;
    let early = Claims {
        nbf: Some(now() + 600),
        ..claims("hal", 1200, &[])
    };
    assert_eq!(
        error(&try_auth(&server, &hs256(&early)).await),
        (401, String::from("token not yet valid"))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_token_without_exp_is_refused() {
    let server = start_secret().await;
    // jsonwebtoken straight, with the crypto provider pushwire installed in this
    // process when the server read its key.
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "ivy", "topics": {"*": ["sub"]}}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign");
    assert_eq!(
        error(&try_auth(&server, &token).await),
        (401, String::from("invalid claims: missing \"exp\""))
    );
    server.stop().await;
}

#[tokio::test]
async fn every_request_before_auth_gets_401() {
    let server = start_secret().await;
    let (mut client, _) = ws(&server).await;
    for (n, req) in [
        json!({"op": "sub", "id": 1, "topic": "news"}),
        json!({"op": "pub", "id": 2, "topic": "news", "data": 1}),
        json!({"op": "presence", "id": 3, "topic": "chat:x"}),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = request(&mut client, req).await;
        let (code, message) = error(&reply);
        assert_eq!(code, 401, "request {n}: {reply}");
        assert!(message.contains("authenticate first"), "{message}");
    }
    // A bad token is refused with its reason, and the connection stays usable.
    let reply = auth(&mut client, "not-a-jwt").await;
    assert_eq!(error(&reply).0, 401);
    assert!(error(&reply).1.starts_with("token malformed"), "{reply}");
    let token = hs256(&claims("jo", 60, &[("news", &["sub"])]));
    assert!(auth(&mut client, &token).await["ok"].is_object());
    assert_eq!(sub(&mut client, "news", None).await["topic"], "news");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_authenticate_in_time_is_closed_with_3000() {
    let config = AuthConfig {
        auth_timeout: Duration::from_millis(500),
        ..secret_config()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 3000);
    assert_eq!(close.reason.as_str(), "authentication timed out");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn permissions_follow_the_patterns_of_the_token() {
    let server = start_secret().await;
    let token = hs256(&claims(
        "kim",
        60,
        &[("chat:*", &["sub", "presence"]), ("news", &["sub", "pub"])],
    ));
    let mut client = authed(&server, &token).await;
    assert_eq!(sub(&mut client, "chat:x", None).await["topic"], "chat:x");
    let join = next_json(&mut client).await;
    assert_eq!(
        join["join"]["user"], "kim",
        "the join names the user: {join}"
    );
    let chatter = request(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "chatter"}),
    )
    .await;
    assert_eq!(error(&chatter).0, 403, "{chatter}");
    let pub_chat = request(
        &mut client,
        json!({"op": "pub", "id": 2, "topic": "chat:x", "data": "hi"}),
    )
    .await;
    let (code, message) = error(&pub_chat);
    assert_eq!(code, 403, "{pub_chat}");
    assert!(message.contains("\"pub\""), "{message}");
    let pub_news = request(
        &mut client,
        json!({"op": "pub", "id": 3, "topic": "news", "data": "hi"}),
    )
    .await;
    assert!(pub_news["ok"].is_object(), "{pub_news}");
    let presence = request(
        &mut client,
        json!({"op": "presence", "id": 4, "topic": "chat:x"}),
    )
    .await;
    assert_eq!(
        presence["ok"]["members"][0]["user"], "kim",
        "presence shows the token's user: {presence}"
    );
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_token_grants_one_topic_to_its_user() {
    let server = start_secret().await;
    let mut client = authed(&server, &hs256(&claims("lee", 60, &[]))).await;
    let for_room = |user: &str| {
        hs256(&Claims {
            topic: Some(String::from("chat:room-42")),
            ..claims(user, 60, &[])
        })
    };
    let plain = request(
        &mut client,
        json!({"op": "sub", "id": 1, "topic": "chat:room-42"}),
    )
    .await;
    assert_eq!(error(&plain).0, 403, "{plain}");
    let other_topic = request(
        &mut client,
        json!({"op": "sub", "id": 2, "topic": "chat:room-43", "token": for_room("lee")}),
    )
    .await;
    assert_eq!(error(&other_topic).0, 403, "{other_topic}");
    let other_user = request(
        &mut client,
        json!({"op": "sub", "id": 3, "topic": "chat:room-42", "token": for_room("max")}),
    )
    .await;
    assert_eq!(error(&other_user).0, 403, "{other_user}");
    let ok = request(
        &mut client,
        json!({"op": "sub", "id": 4, "topic": "chat:room-42", "token": for_room("lee")}),
    )
    .await;
    assert_eq!(ok["ok"]["topic"], "chat:room-42", "{ok}");
    let join = next_json(&mut client).await;
    assert_eq!(join["join"]["user"], "lee", "{join}");
    let presence = request(
        &mut client,
        json!({"op": "presence", "id": 5, "topic": "chat:room-42"}),
    )
    .await;
    assert!(presence["ok"]["members"].is_array(), "{presence}");
    // A connection token is not a subscription token, nor the reverse.
    let conn_as_sub = request(
        &mut client,
        json!({"op": "sub", "id": 6, "topic": "news", "token": hs256(&claims("lee", 60, &[("news", &["sub"])]))}),
    )
    .await;
    assert_eq!(error(&conn_as_sub).0, 401, "{conn_as_sub}");
    assert_eq!(error(&auth(&mut client, &for_room("lee")).await).0, 401);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn public_topics_need_no_token_to_subscribe_but_do_to_publish() {
    let config = AuthConfig {
        public_topics: vec![String::from("public:*")],
        auth_timeout: Duration::from_millis(500),
        ..secret_config()
    };
    let server = start_auth(config, HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    assert_eq!(
        sub(&mut client, "public:a", None).await["topic"],
        "public:a"
    );
    let reply = request(
        &mut client,
        json!({"op": "pub", "id": 1, "topic": "public:a", "data": 1}),
    )
    .await;
    assert_eq!(error(&reply).0, 401, "{reply}");
    // A client of public topics only is not closed for not authenticating.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let reply = request(
        &mut client,
        json!({"op": "unsub", "id": 2, "topic": "public:a"}),
    )
    .await;
    assert!(reply["ok"].is_object(), "{reply}");
    // SSE and long-poll too.
    let (status, _) = get(&server, "/sse?topic=public:a", None).await;
    assert_eq!(status, 200);
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_refreshed_connection_outlives_its_first_token_and_an_unrefreshed_one_closes_with_3000() {
    let server = start_secret().await;
    let grants: &[(&str, &[&str])] = &[("news", &["sub"])];
    let mut refreshed = authed(&server, &hs256(&claims("ned", 2, grants))).await;
    let mut expiring = authed(&server, &hs256(&claims("ned", 2, grants))).await;
    sub(&mut refreshed, "news", None).await;
    let reply = auth(&mut refreshed, &hs256(&claims("ned", 60, grants))).await;
    assert_eq!(reply["ok"]["user"], "ned", "{reply}");
    let close = next_close(&mut expiring).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 3000);
    assert_eq!(close.reason.as_str(), "token expired");
    // Past the first token's expiry the refreshed connection still works.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = request(
        &mut refreshed,
        json!({"op": "unsub", "id": 9, "topic": "news"}),
    )
    .await;
    assert!(reply["ok"].is_object(), "{reply}");
    drop(refreshed);
    drop(expiring);
    server.stop().await;
}

#[tokio::test]
async fn a_refresh_for_another_user_is_forbidden() {
    let server = start_secret().await;
    let mut client = authed(&server, &hs256(&claims("oz", 60, &[]))).await;
    let reply = auth(&mut client, &hs256(&claims("pat", 60, &[]))).await;
    assert_eq!(error(&reply).0, 403, "{reply}");
    drop(client);
    server.stop().await;
}

/// A GET with an optional bearer token; answers the status and the first bytes of
/// the body (an SSE stream is not read to its end).
async fn get(server: &Running, path: &str, bearer: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(server.url(path));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let mut response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("request timed out")
        .expect("request failed");
    let status = response.status().as_u16();
    let chunk = tokio::time::timeout(STEP, response.chunk())
        .await
        .expect("body timed out")
        .ok()
        .flatten()
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&chunk).into_owned())
}

#[tokio::test]
async fn sse_and_poll_take_the_token_from_the_query_or_the_header() {
    let server = start_secret().await;
    let token = hs256(&claims("quinn", 60, &[("news", &["sub"])]));
    for transport in ["sse", "poll"] {
        let (status, body) = get(&server, &format!("/{transport}?topic=news"), None).await;
        assert_eq!(status, 401, "{transport}: {body}");
        let (status, body) = get(
            &server,
            &format!("/{transport}?topic=news&token={token}"),
            None,
        )
        .await;
        assert_eq!(status, 200, "{transport}: {body}");
        let (status, _) = get(&server, &format!("/{transport}?topic=news"), Some(&token)).await;
        assert_eq!(status, 200, "{transport} with Authorization: Bearer");
        let (status, body) = get(
            &server,
            &format!("/{transport}?topic=news&topic=secret&token={token}"),
            None,
        )
        .await;
        assert_eq!(status, 403, "{transport}: {body}");
        let expired = hs256(&claims("quinn", -60, &[("news", &["sub"])]));
        let (status, body) = get(
            &server,
            &format!("/{transport}?topic=news&token={expired}"),
            None,
        )
        .await;
        assert_eq!(status, 401, "{transport}: {body}");
        assert!(body.contains("token expired"), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_sse_stream_ends_when_its_token_expires() {
    let server = start_secret().await;
    let token = hs256(&claims("rex", 2, &[("news", &["sub"])]));
    let response = reqwest::get(server.url(&format!("/sse?topic=news&token={token}")))
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let body = tokio::time::timeout(STEP, response.text())
        .await
        .expect("the stream did not end at the token's expiry")
        .expect("body");
    assert!(body.contains("event: subscribed"), "{body}");
    server.stop().await;
}

async fn publish_with(server: &Running, topic: &str, bearer: &str) -> (u16, Value) {
    let response = tokio::time::timeout(
        STEP,
        reqwest::Client::new()
            .post(server.url(&format!("/api/publish/{topic}")))
            .bearer_auth(bearer)
            .header("content-type", "application/json")
            .body("{\"n\":1}")
            .send(),
    )
    .await
    .expect("publish timed out")
    .expect("publish failed");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_publish_api_accepts_a_jwt_with_pub_permission_besides_its_key() {
    let verifier = TokenVerifier::from_config(&secret_config())
        .expect("config")
        .expect("enabled");
    let server = start(
        App::new()
            .topics(Hub::default())
            .api_key("the-api-key")
            .auth(verifier),
    )
    .await;
    let token = hs256(&claims("sam", 60, &[("news", &["pub"])]));
    let (status, body) = publish_with(&server, "news", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["offset"], 1);
    let (status, body) = publish_with(&server, "other", &token).await;
    assert_eq!(status, 403, "{body}");
    let expired = hs256(&claims("sam", -60, &[("news", &["pub"])]));
    let (status, body) = publish_with(&server, "news", &expired).await;
    assert_eq!(
        (status, body["error"]["message"].clone()),
        (401, json!("token expired"))
    );
    let (status, _) = publish_with(&server, "news", "the-api-key").await;
    assert_eq!(status, 200, "the API key still works");
    let (status, _) = publish_with(&server, "news", "wrong-key").await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn without_a_key_tokens_are_not_needed_and_auth_is_refused_plainly() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    assert_eq!(sub(&mut client, "news", None).await["topic"], "news");
    let reply = auth(&mut client, &hs256(&claims("tom", 60, &[]))).await;
    assert_eq!(error(&reply).0, 400, "{reply}");
    drop(client);
    server.stop().await;
}

#[tokio::test]
async fn a_token_in_the_ws_url_authenticates_at_once_and_a_bad_one_closes_with_3000() {
    let server = start_secret().await;
    let token = hs256(&claims("uma", 60, &[("news", &["sub"])]));
    let mut client = connect(&server.ws_url(&format!("/ws?token={token}"))).await;
    let hello = next_json(&mut client).await;
    assert!(hello["hello"].is_object(), "{hello}");
    assert_eq!(sub(&mut client, "news", None).await["topic"], "news");
    drop(client);
    let expired = hs256(&claims("uma", -60, &[("news", &["sub"])]));
    let mut client = connect(&server.ws_url(&format!("/ws?token={expired}"))).await;
    let close = next_close(&mut client).await.expect("a close frame");
    assert_eq!(u16::from(close.code), 3000);
    assert_eq!(close.reason.as_str(), "token expired");
    drop(client);
    server.stop().await;
}
