//! The admin page's access rules (`--admin-password`, `POST /admin/token`,
//! `/ws?admin=`) and the system topic `$sys/admin` it reads: off unless
//! configured, 401 without the right credential, the snapshots with it, and no
//! way for a normal client to subscribe or publish to the system topic.

use std::time::Duration;

use pushwire::admin::AdminAuth;
use pushwire::config::ServeConfig;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;

use crate::common::corpus::start_with;
use crate::common::redis::{Node, RedisServer, wait_status};
use crate::common::topics::{next_json, next_json_within, request, send, sub, ws};
use crate::common::{Client, Running, STEP, connect, raw_get};

const PASSWORD: &str = "correct horse battery staple";

fn with_admin() -> ServeConfig {
    ServeConfig {
        admin_password: Some(PASSWORD.to_owned()),
        ..ServeConfig::default()
    }
}

/// `POST /admin/token` with `body` and maybe a bearer token: the status, the
/// `WWW-Authenticate` header, and the JSON body.
async fn token_request(base: &str, body: &str, bearer: Option<&str>) -> (u16, String, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/admin/token"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = tokio::time::timeout(STEP, request.send())
        .await
        .expect("login timed out")
        .expect("login failed");
    let status = response.status().as_u16();
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let text = response.text().await.expect("body");
    (
        status,
        challenge,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Logs in with the password and answers the admin token.
async fn log_in(base: &str) -> String {
    let (status, _, body) =
        token_request(base, &json!({"password": PASSWORD}).to_string(), None).await;
    assert_eq!(status, 200, "login: {body}");
    assert_eq!(body["topic"], "$sys/admin");
    body["token"].as_str().expect("a token").to_owned()
}

/// The status of a `/ws` upgrade that the server refuses (101 if it accepts).
async fn ws_status(url: &str) -> u16 {
    match tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake timed out")
    {
        Ok((_, response)) => response.status().as_u16(),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(err) => panic!("handshake failed: {err}"),
    }
}

/// The admin socket of `server`, past its hello and subscribed to `$sys/admin`.
async fn admin_socket(base_ws: &str, token: &str) -> Client {
    let mut admin = connect(&format!("{base_ws}/ws?admin={token}")).await;
    let hello = next_json(&mut admin).await;
    assert!(hello["hello"].is_object(), "{hello}");
    let ok = sub(&mut admin, "$sys/admin", None).await;
    assert_eq!(ok["topic"], "$sys/admin");
    admin
}

/// Reads snapshots until one satisfies `good` (bounded: 20 snapshots).
async fn snapshot_where(admin: &mut Client, good: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..20 {
        let push = next_json_within(admin, Duration::from_secs(5))
            .await
            .unwrap_or_else(|| panic!("no snapshot; last one: {last}"));
        assert_eq!(push["topic"], "$sys/admin", "{push}");
        if good(&push["data"]) {
            return push["data"].clone();
        }
        last = push["data"].clone();
    }
    panic!("no snapshot showed what was expected; last one: {last}");
}

#[tokio::test]
async fn the_admin_page_is_off_unless_configured() {
    let server = start_with(ServeConfig::default()).await;
    let (status, _) = raw_get(server.addr, "/admin").await;
    assert_eq!(status, 404);
    let (status, _, _) = token_request(&server.url(""), r#"{"password":"x"}"#, None).await;
    assert_eq!(status, 404);
    assert_eq!(ws_status(&server.ws_url("/ws?admin=1.abc")).await, 401);
    server.stop().await;
}

#[tokio::test]
async fn a_missing_or_wrong_password_is_401_and_the_right_one_gives_a_token_five_times_a_second() {
    let server = start_with(with_admin()).await;
    let (status, _) = raw_get(server.addr, "/admin").await;
    assert_eq!(status, 200, "the page itself (a login form) is served");
    let base = server.url("");
    for body in [
        "",
        "{}",
        r#"{"password":""}"#,
        r#"{"password":"wrong"}"#,
        "not json",
    ] {
        let (status, challenge, answer) = token_request(&base, body, None).await;
        assert_eq!(status, 401, "{body:?}: {answer}");
        assert_eq!(challenge, "Bearer realm=\"pushwire\"");
        assert_eq!(answer["error"]["code"], 401);
        assert!(
            !answer.to_string().contains("wrong\""),
            "never echoes the password"
        );
    }
    // Five attempts a second, all clients together: the sixth is not even checked.
    let (status, _, answer) =
        token_request(&base, &json!({"password": PASSWORD}).to_string(), None).await;
    assert_eq!(status, 429, "{answer}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = log_in(&base).await;
    // A valid token buys a fresh one; a forged one does not.
    let (status, _, renewed) = token_request(&base, "", Some(&token)).await;
    assert_eq!(status, 200, "{renewed}");
    let (status, _, _) = token_request(&base, "", Some("9999999999.AAAA")).await;
    assert_eq!(status, 401);
    server.stop().await;
}

#[tokio::test]
async fn the_admin_socket_needs_a_valid_unexpired_token() {
    let server = start_with(with_admin()).await;
    assert_eq!(ws_status(&server.ws_url("/ws?admin=")).await, 401);
    assert_eq!(ws_status(&server.ws_url("/ws?admin=garbage")).await, 401);
    let other = AdminAuth::new("another password").issue().0;
    assert_eq!(
        ws_status(&server.ws_url(&format!("/ws?admin={other}"))).await,
        401
    );
    let expired = AdminAuth::new(PASSWORD)
        .issue_until(pushwire::auth::now() - 1)
        .0;
    assert_eq!(
        ws_status(&server.ws_url(&format!("/ws?admin={expired}"))).await,
        401
    );
    let token = log_in(&server.url("")).await;
    assert_eq!(
        ws_status(&server.ws_url(&format!("/ws?admin={token}"))).await,
        101
    );
    server.stop().await;
}

#[tokio::test]
async fn normal_clients_cannot_subscribe_or_publish_to_the_system_topic() {
    let server = start_with(with_admin()).await;
    let (mut client, _) = ws(&server).await;
    for (op, extra) in [
        ("sub", json!({})),
        ("pub", json!({"data": 1})),
        ("presence", json!({})),
    ] {
        let mut req = json!({"op": op, "id": op, "topic": "$sys/admin"});
        if let (Some(req), Some(extra)) = (req.as_object_mut(), extra.as_object()) {
            req.extend(extra.clone());
        }
        let reply = request(&mut client, req).await;
        assert_eq!(reply["error"]["code"], 403, "{op}: {reply}");
    }
    // Not even the admin connection publishes to it.
    let token = log_in(&server.url("")).await;
    let mut admin = admin_socket(&server.ws_url(""), &token).await;
    let reply = request(
        &mut admin,
        json!({"op": "pub", "id": 9, "topic": "$sys/admin", "data": {"fake": true}}),
    )
    .await;
    assert_eq!(reply["error"]["code"], 403, "{reply}");
    // The other ways in do not take the name at all.
    let (status, _) = raw_get(server.addr, "/sse?topic=%24sys%2Fadmin").await;
    assert!((400..500).contains(&status), "SSE answered {status}");
    let (status, _) = raw_get(server.addr, "/poll?topic=%24sys%2Fadmin").await;
    assert!((400..500).contains(&status), "long-poll answered {status}");
    let (status, _) = crate::common::topics::publish_http(&server, "%24sys%2Fadmin", "1").await;
    assert!(
        (400..500).contains(&status),
        "the publish API answered {status}"
    );
    server.stop_with(&mut [&mut client, &mut admin]).await;
}

#[tokio::test]
async fn the_admin_socket_gets_a_snapshot_every_second() {
    // Without `/metrics` the figures are still counted for the admin page.
    let server: Running = start_with(ServeConfig {
        metrics: None,
        ..with_admin()
    })
    .await;
    let token = log_in(&server.url("")).await;
    let mut admin = admin_socket(&server.ws_url(""), &token).await;
    let (mut reader, _) = ws(&server).await;
    sub(&mut reader, "news", None).await;
    let snapshot = snapshot_where(&mut admin, |s| {
        s["topics"].as_array().is_some_and(|t| {
            t.iter()
                .any(|t| t["topic"] == "news" && t["subscribers"] == 1)
        })
    })
    .await;
    assert_eq!(
        snapshot["topic_count"], 1,
        "the system topic is not listed: {snapshot}"
    );
    assert_eq!(
        snapshot["nodes"].as_array().map(Vec::len),
        Some(1),
        "{snapshot}"
    );
    assert_eq!(snapshot["nodes"][0]["id"], snapshot["node"]["id"]);
    assert_eq!(snapshot["node"]["addr"], server.addr.to_string());
    assert!(snapshot["errors"].is_array());
    // The figures come from the metrics: both sockets, then a publish delivered.
    assert_eq!(snapshot["connections"]["ws"], 2, "{snapshot}");
    let (status, _) = crate::common::topics::publish_http(&server, "news", "1").await;
    assert_eq!(status, 200);
    let snapshot = snapshot_where(&mut admin, |s| s["delivered"] == 1).await;
    assert_eq!(snapshot["published"], 1, "{snapshot}");
    let buckets = snapshot["latency"].as_array().expect("latency buckets");
    assert_eq!(
        buckets.last().map(|b| &b["count"]),
        Some(&json!(1)),
        "{snapshot}"
    );
    assert!(
        buckets.last().is_some_and(|b| b["le"].is_null()),
        "+Inf last"
    );
    drop(reader);
    send(
        &mut admin,
        json!({"op": "unsub", "id": 2, "topic": "$sys/admin"}),
    )
    .await;
    server.stop_with(&mut [&mut admin]).await;
}

#[tokio::test]
async fn the_admin_socket_needs_no_jwt_where_tokens_are_required() {
    let mut config = with_admin();
    config.auth.secret = Some(String::from("a token secret of at least 32 bytes!"));
    config.auth.auth_timeout = Duration::from_secs(1);
    let server = start_with(config).await;
    let token = log_in(&server.url("")).await;
    let mut admin = admin_socket(&server.ws_url(""), &token).await;
    // Three snapshots: well past the time a client has to authenticate.
    for _ in 0..3 {
        let push = next_json_within(&mut admin, Duration::from_secs(5))
            .await
            .expect("a snapshot, not a close");
        assert_eq!(push["topic"], "$sys/admin", "{push}");
    }
    // Its other requests still need a token.
    let reply = request(&mut admin, json!({"op": "sub", "id": 5, "topic": "news"})).await;
    assert_eq!(reply["error"]["code"], 401, "{reply}");
    server.stop_with(&mut [&mut admin]).await;
}

#[tokio::test]
async fn two_nodes_on_one_redis_list_each_other() {
    let redis = RedisServer::start();
    let extra = ["--admin-password", PASSWORD];
    let a = Node::start(&redis.url(), &extra);
    let b = Node::start(&redis.url(), &extra);
    for node in [&a, &b] {
        wait_status(node, "/readyz", 200, crate::common::redis::READY).await;
    }
    let base = format!("http://{}", a.addr);
    let token = log_in(&base).await;
    let mut admin = admin_socket(&format!("ws://{}", a.addr), &token).await;
    let b_addr = b.addr.to_string();
    let snapshot = snapshot_where(&mut admin, |s| {
        s["nodes"].as_array().is_some_and(|nodes| {
            nodes.len() == 2 && nodes.iter().any(|n| n["addr"] == b_addr.as_str())
        })
    })
    .await;
    assert_eq!(snapshot["node"]["addr"], a.addr.to_string());
    // The other node's token is good here too: the same password.
    let token_b = log_in(&format!("http://{}", b.addr)).await;
    assert_eq!(
        ws_status(&format!("ws://{}/ws?admin={token_b}", a.addr)).await,
        101
    );
    drop(b);
    // A stopped node drops out within the heartbeat's TTL (5 s).
    snapshot_where(&mut admin, |s| {
        s["nodes"].as_array().is_some_and(|n| n.len() == 1)
    })
    .await;
}
