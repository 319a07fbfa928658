//! Mercure publishers (`POST /.well-known/mercure`) over real sockets: every
//! refusal (400, 401, 403, 413), the answered id, the update as Mercure
//! subscribers and `/ws` subscribers of its topic get it, and private updates,
//! which no `/ws` subscriber gets.

use pushwire::hub::HubConfig;
use serde_json::{Value, json};

use crate::common;
use common::mercure::{
    ISSUER, Stream, config, detail, hub_url, publish, start_hub, subscribe_url, token, token_with,
};

/// A token that may publish anywhere.
fn publisher(server: &common::Running) -> String {
    token(server, &[detail(&["publish"], &[("*", "exact")])])
}

#[tokio::test]
async fn bad_publishes_are_refused() {
    let hub_config = HubConfig {
        max_data_size: 1024,
        ..HubConfig::default()
    };
    let (server, _hub) = start_hub(config(false), hub_config).await;
    let any = publisher(&server);
    // Not a form.
    let response = reqwest::Client::new()
        .post(hub_url(&server))
        .bearer_auth(&any)
        .header("content-type", "application/json")
        .body(r#"{"topic":"a"}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 400);
    // No token: a bare challenge.
    let response = reqwest::Client::new()
        .post(hub_url(&server))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("topic=a&data=x")
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"].to_str().ok(),
        Some("Bearer realm=\"mercure\"")
    );
    // Tokens that cannot be used: garbage, another issuer, another audience.
    for bad in [
        "not.a.token".to_owned(),
        token_with(
            "https://other/",
            common::mercure::SECRET,
            &hub_url(&server),
            3600,
            &[],
        ),
        token_with(
            ISSUER,
            common::mercure::SECRET,
            "https://elsewhere/.well-known/mercure",
            3600,
            &[],
        ),
        token_with(
            ISSUER,
            "another-secret-of-at-least-32-bytes",
            &hub_url(&server),
            3600,
            &[],
        ),
    ] {
        let (status, _) = publish(&server, Some(&bad), &[("topic", "a"), ("data", "x")]).await;
        assert_eq!(status, 401, "{bad}");
    }
    // Granted elsewhere, or subscribe only: 403.
    let narrow = token(
        &server,
        &[
            detail(
                &["publish"],
                &[("https://example.com/books/:id", "urlpattern")],
            ),
            detail(&["subscribe"], &[("*", "exact")]),
        ],
    );
    for topics in [
        vec![("topic", "https://example.com/authors/1")],
        // Every topic of the update, alternates included, must be granted.
        vec![
            ("topic", "https://example.com/books/1"),
            ("topic", "https://example.com/authors/1"),
        ],
    ] {
        let (status, _) = publish(&server, Some(&narrow), &topics).await;
        assert_eq!(status, 403, "{topics:?}");
    }
    let (status, _) = publish(
        &server,
        Some(&narrow),
        &[("topic", "https://example.com/books/1")],
    )
    .await;
    assert_eq!(status, 200);
    // The hub's own topics.
    for topic in [
        "/.well-known/mercure/subscriptions/x",
        "https://example.com/.well-known/mercure",
    ] {
        let (status, _) = publish(&server, Some(&any), &[("topic", topic)]).await;
        assert_eq!(status, 403, "{topic}");
    }
    // Malformed fields.
    for fields in [
        vec![("data", "no topic")],
        vec![("topic", "a"), ("id", "#fragment")],
        vec![("topic", "a"), ("id", "a\nb")],
        vec![("topic", "a"), ("type", "mercure")],
        vec![("topic", "a"), ("type", "a\nb")],
        vec![("topic", "a"), ("retry", "soon")],
    ] {
        let (status, _) = publish(&server, Some(&any), &fields).await;
        assert_eq!(status, 400, "{fields:?}");
    }
    // Too large: data past the hub's limit, and a body past the route's.
    let big = "x".repeat(2000);
    let (status, _) = publish(&server, Some(&any), &[("topic", "a"), ("data", &big)]).await;
    assert_eq!(status, 413);
    let huge = "x".repeat(200_000);
    let (status, _) = publish(&server, Some(&any), &[("topic", "a"), ("data", &huge)]).await;
    assert_eq!(status, 413);
    server.stop().await;
}

#[tokio::test]
async fn an_update_reaches_mercure_and_ws_subscribers_with_its_id() {
    let (server, _hub) = start_hub(config(true), HubConfig::default()).await;
    let iri = "https://example.com/books/1";
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", iri)]), &[]).await;
    let (mut client, _) = common::topics::ws(&server).await;
    common::topics::sub(&mut client, "mercure:https://example.com/books/1", None).await;
    let any = publisher(&server);
    let (status, id) = publish(
        &server,
        Some(&any),
        &[
            ("topic", iri),
            ("topic", "https://example.com/alternate"),
            ("data", "{\"title\":\"Dune\"}\nsecond line"),
            ("id", "urn:example:1"),
            ("type", "book"),
            ("retry", "3000"),
        ],
    )
    .await;
    assert_eq!((status, id.as_str()), (200, "urn:example:1"));
    let event = stream.next().await;
    assert_eq!(event.id.as_deref(), Some("urn:example:1"));
    assert_eq!(event.event.as_deref(), Some("book"));
    assert_eq!(event.retry.as_deref(), Some("3000"));
    assert_eq!(event.data, "{\"title\":\"Dune\"}\nsecond line");
    let push = common::topics::next_json(&mut client).await;
    assert_eq!(
        push["data"],
        json!({
            "event": "book",
            "data": "{\"title\":\"Dune\"}\nsecond line",
            "id": "urn:example:1",
            "retry": 3000,
            "topics": ["https://example.com/alternate"]
        }),
        "{push}"
    );
    // Without an id, one is made up; a subscriber of the alternate topic gets it.
    let mut alternate = Stream::open(
        &subscribe_url(&server, &[("match", "https://example.com/alternate")]),
        &[],
    )
    .await;
    let (status, id) = publish(
        &server,
        Some(&any),
        &[
            ("topic", iri),
            ("topic", "https://example.com/alternate"),
            ("data", "x"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
    assert_eq!(alternate.next().await.id.as_deref(), Some(id.as_str()));
    assert_eq!(stream.next().await.id, Some(id));
    server.stop().await;
}

#[tokio::test]
async fn private_updates_go_to_granted_mercure_subscribers_only() {
    let (server, _hub) = start_hub(config(true), HubConfig::default()).await;
    let iri = "https://example.com/users/1";
    let url = subscribe_url(&server, &[("match", iri)]);
    let reader = token(&server, &[detail(&["subscribe"], &[(iri, "exact")])]);
    let mut granted = Stream::open(&url, &[("authorization", &format!("Bearer {reader}"))]).await;
    let mut anonymous = Stream::open(&url, &[]).await;
    let (mut client, _) = common::topics::ws(&server).await;
    common::topics::sub(&mut client, "mercure:https://example.com/users/1", None).await;
    let any = publisher(&server);
    let (status, _) = publish(
        &server,
        Some(&any),
        &[
            ("topic", iri),
            ("data", "secret"),
            ("id", "s1"),
            ("private", "on"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = publish(
        &server,
        Some(&any),
        &[("topic", iri), ("data", "public"), ("id", "s2")],
    )
    .await;
    assert_eq!(status, 200);
    let first = granted.next().await;
    assert_eq!(
        (first.id.as_deref(), first.data.as_str()),
        (Some("s1"), "secret")
    );
    assert_eq!(granted.next().await.id.as_deref(), Some("s2"));
    assert_eq!(anonymous.next().await.id.as_deref(), Some("s2"));
    // A `/ws` subscriber of the topic never sees the private one.
    let push: Value = common::topics::next_json(&mut client).await;
    assert_eq!(push["data"]["id"], "s2", "{push}");
    server.stop().await;
}

/// A signed `POST /apps/{id}/events` of the Pusher HTTP API (signed as Pusher's
/// HTTP API reference says): its status.
async fn pusher_publish(
    server: &common::Running,
    id: &str,
    key: &str,
    secret: &str,
    body: &Value,
) -> u16 {
    use md5::{Digest as _, Md5};
    let body = body.to_string();
    let hex = |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
    let path = format!("/apps/{id}/events");
    let timestamp = common::mercure::unix(0);
    let params = format!(
        "auth_key={key}&auth_timestamp={timestamp}&auth_version=1.0&body_md5={}",
        hex(&Md5::digest(body.as_bytes()))
    );
    let signing = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let signature =
        hex(ring::hmac::sign(&signing, format!("POST\n{path}\n{params}").as_bytes()).as_ref());
    let url = format!("{}?{params}&auth_signature={signature}", server.url(&path));
    let response = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("pusher publish");
    response.status().as_u16()
}

#[tokio::test]
async fn updates_cross_between_mercure_and_a_pusher_app_in_its_namespace() {
    use futures_util::{SinkExt as _, StreamExt as _};
    use pushwire::interop::pusher::{PusherApp, PusherApps};
    use tokio_tungstenite::tungstenite::Message as WsMessage;

    let mut app = PusherApp::new("app1", "app1-key", "app1-secret").expect("app");
    app.namespace = "mercure".into();
    let apps = PusherApps::new(vec![app]).expect("apps");
    let mercure = config(true);
    let hub = pushwire::Hub::new(apps.hub_config(mercure.hub_config(HubConfig::default())));
    let server = common::start(
        pushwire::App::new()
            .topics(hub.clone())
            .pusher(apps)
            .mercure(mercure),
    )
    .await;
    // Pusher → Mercure: an API publish on the channel `news`.
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", "news")]), &[]).await;
    let status = pusher_publish(
        &server,
        "app1",
        "app1-key",
        "app1-secret",
        &json!({"name": "headline", "channels": ["news"], "data": "from pusher"}),
    )
    .await;
    assert_eq!(status, 200);
    let event = stream.next().await;
    assert_eq!(
        (event.event.as_deref(), event.data.as_str()),
        (Some("headline"), "from pusher")
    );
    // Mercure → a Pusher client subscribed to `news`.
    let mut client = common::connect(&server.ws_url("/app/app1-key?protocol=7")).await;
    let hello: Value = common::topics::next_json(&mut client).await;
    assert_eq!(hello["event"], "pusher:connection_established", "{hello}");
    client
        .send(WsMessage::text(
            json!({"event": "pusher:subscribe", "data": {"channel": "news"}}).to_string(),
        ))
        .await
        .expect("send");
    let ok: Value = common::topics::next_json(&mut client).await;
    assert_eq!(
        ok["event"], "pusher_internal:subscription_succeeded",
        "{ok}"
    );
    let any = publisher(&server);
    let (status, _) = publish(
        &server,
        Some(&any),
        &[
            ("topic", "news"),
            ("type", "book"),
            ("data", "from mercure"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let event: Value = common::topics::next_json(&mut client).await;
    assert_eq!(event["event"], "book", "{event}");
    assert_eq!(event["channel"], "news", "{event}");
    assert_eq!(event["data"], "from mercure", "{event}");
    let _ = client.close(None).await;
    drop(client.next().await);
    server.stop().await;
}

#[tokio::test]
async fn the_compatibility_mode_takes_0x_selectors_and_tokens() {
    let compat_secret = "a-0x-compat-secret-of-at-least-32-b";
    let mercure = pushwire::interop::mercure::MercureConfig {
        compat: Some(pushwire::interop::mercure::KeySpec::Hs256(
            compat_secret.into(),
        )),
        ..config(true)
    };
    let (server, _hub) = start_hub(mercure, HubConfig::default()).await;
    let mut stream = Stream::open(
        &subscribe_url(&server, &[("topic", "https://example.com/books/{id}")]),
        &[],
    )
    .await;
    // A 0.x token: no typ, aud or iss; the `mercure` claim.
    let _ = pushwire::auth::sign(
        &pushwire::auth::Claims::default(),
        &pushwire::auth::SigningKey::Secret(compat_secret.into()),
        None,
    );
    let old = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"mercure": {"publish": ["*"]}, "exp": common::mercure::unix(3600)}),
        &jsonwebtoken::EncodingKey::from_secret(compat_secret.as_bytes()),
    )
    .expect("sign");
    let (status, _) = publish(
        &server,
        Some(&old),
        &[("topic", "https://example.com/authors/1"), ("data", "no")],
    )
    .await;
    assert_eq!(status, 200);
    let (status, id) = publish(
        &server,
        Some(&old),
        &[("topic", "https://example.com/books/9"), ("data", "yes")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(stream.next().await.id, Some(id.clone()));
    // `lastEventID`, the 0.x spelling of `last_event_id`.
    let resumed = Stream::open(
        &subscribe_url(
            &server,
            &[
                ("topic", "https://example.com/books/{id}"),
                ("lastEventID", "earliest"),
            ],
        ),
        &[],
    )
    .await;
    assert_eq!(resumed.last_event_id().as_deref(), Some("earliest"));
    server.stop().await;
}

/// A form posted with the token in the hub's cookie publishes only from the hub's
/// own origin, even when every origin may use the hub (`Origins::any`): another
/// site's page (its `Origin`), or a request without one, is answered as if it had
/// no token, and nothing reaches subscribers.
#[tokio::test]
async fn a_cookie_token_publishes_only_from_the_hubs_own_origin() {
    let config = config(true);
    let hub = pushwire::Hub::new(config.hub_config(HubConfig::default()));
    let app = pushwire::App::new()
        .topics(hub)
        .mercure(config)
        .allowed_origins(pushwire::Origins::any());
    let server = common::start(app).await;
    let cookie = format!(
        "{}={}",
        pushwire::interop::mercure::config::DEFAULT_COOKIE,
        publisher(&server)
    );
    let own = server.url("");
    let own = own.trim_end_matches('/').to_owned();
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", "csrf")]), &[]).await;
    let post = |origin: Option<String>, data: &'static str| {
        let mut request = reqwest::Client::new()
            .post(hub_url(&server))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie.clone())
            .body(format!("topic=csrf&data={data}"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    for (origin, data) in [
        (Some("http://evil.example".to_owned()), "forged"),
        (None, "no-origin"),
    ] {
        let response = post(origin.clone(), data).await.expect("post");
        assert_eq!(response.status(), 401, "origin {origin:?}");
        assert_eq!(
            response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer realm=\"mercure\"")
        );
    }
    let response = post(Some(own), "same-site").await.expect("post");
    assert_eq!(response.status(), 200);
    let event = stream.next().await;
    assert_eq!(event.data, "same-site", "the refused forms reached nobody");
}
