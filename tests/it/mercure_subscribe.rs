//! Mercure subscribers (`GET /.well-known/mercure`) over real sockets, read with
//! reqwest: refusals as RFC 6750 says, exact and URL Pattern selection, private
//! updates, resuming with `Last-Event-ID` / `last_event_id` / `earliest` and the
//! `Mercure-Last-Event-ID` header, the event's lines, heartbeats, the farewell at
//! shutdown, the end at the token's expiry, updates published over `/ws`, and two
//! nodes sharing a real Redis.

use std::sync::Arc;
use std::time::Duration;

use pushwire::broker::{RedisBroker, RedisConfig};
use pushwire::hub::HubConfig;
use pushwire::interop::Envelope;
use pushwire::interop::mercure::topic::topic_of;
use pushwire::{App, Hub};
use serde_json::json;

use crate::common;
use common::mercure::{
    ISSUER, SECRET, Stream, config, detail, refusal, start_hub, subscribe_url, token, token_with,
};
use common::redis::RedisServer;

/// Publishes `envelope` on the Mercure topic `iri` through the hub (as the
/// publish API and `/ws` do); answers its offset.
async fn update(hub: &Hub, iri: &str, envelope: &Envelope) -> u64 {
    let topic = topic_of("mercure", iri).expect("topic");
    let data = envelope.to_data().expect("data");
    hub.publish(&topic, data).await.expect("publish").offset
}

/// An update with `data` and `id`.
fn with_id(data: &str, id: &str) -> Envelope {
    let mut envelope = Envelope::with_text("message", data);
    envelope.id = Some(id.to_owned());
    envelope
}

#[tokio::test]
async fn bad_subscriptions_are_refused_as_rfc_6750_says() {
    let (server, _hub) = start_hub(config(false), HubConfig::default()).await;
    let url = |q: &[(&str, &str)]| subscribe_url(&server, q);
    // No token, anonymous subscribers not allowed: a bare challenge.
    let (status, challenge) = refusal(&url(&[("match", "a")]), &[]).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"mercure\""));
    // A token that cannot be used.
    let (status, challenge) = refusal(
        &url(&[("match", "a")]),
        &[("authorization", "Bearer not.a.token")],
    )
    .await;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.contains("error=\"invalid_token\"")));
    // Malformed requests.
    let many: Vec<(&str, String)> = (0..65).map(|n| ("match", n.to_string())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for query in [
        url(&[]),
        url(&[("last_event_id", "x")]),
        url(&[("matchx", "a")]),
        url(&[("match_URI", "a")]),
        url(&[("Match", "a")]),
        url(&[("match", "a\u{1}b")]),
        url(&[("match", "")]),
        url(&many),
    ] {
        let (status, challenge) = refusal(&query, &[]).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            challenge.is_some_and(|c| c.contains("error=\"invalid_request\"")),
            "{query}"
        );
    }
    // 0.x `topic=` is not a matcher outside the compatibility mode.
    assert_eq!(refusal(&url(&[("topic", "a")]), &[]).await.0, 400);
    server.stop().await;
}

#[tokio::test]
async fn exact_matchers_select_updates_and_the_stream_says_where_it_starts() {
    let (server, hub) = start_hub(config(true), HubConfig::default()).await;
    let mut stream = Stream::open(
        &subscribe_url(
            &server,
            &[
                ("match", "https://example.com/books/1"),
                ("match_exact", "urn:isbn:2"),
            ],
        ),
        &[],
    )
    .await;
    let headers = stream.response.headers();
    assert!(
        headers["cache-control"]
            .to_str()
            .is_ok_and(|v| v.contains("no-cache"))
    );
    assert_eq!(headers["x-accel-buffering"], "no");
    assert_eq!(stream.last_event_id().as_deref(), Some("earliest"));
    update(&hub, "https://example.com/books/2", &with_id("no", "u1")).await;
    update(&hub, "https://example.com/books/1", &with_id("yes", "u2")).await;
    update(&hub, "https://example.com/books/10", &with_id("no", "u3")).await;
    update(&hub, "urn:isbn:2", &with_id("yes too", "u4")).await;
    let first = stream.next().await;
    assert_eq!(
        (first.id.as_deref(), first.data.as_str()),
        (Some("u2"), "yes")
    );
    assert_eq!(
        first.event, None,
        "an update without a type has no event line"
    );
    let second = stream.next().await;
    assert_eq!(
        (second.id.as_deref(), second.data.as_str()),
        (Some("u4"), "yes too")
    );
    // A subscriber that comes later starts after the newest update.
    let later = Stream::open(&subscribe_url(&server, &[("match", "urn:isbn:2")]), &[]).await;
    assert_eq!(later.last_event_id().as_deref(), Some("u4"));
    server.stop().await;
}

#[tokio::test]
async fn url_patterns_select_updates() {
    let (server, hub) = start_hub(config(true), HubConfig::default()).await;
    let mut stream = Stream::open(
        &subscribe_url(
            &server,
            &[("match_urlpattern", "https://example.com/books/:id")],
        ),
        &[],
    )
    .await;
    update(&hub, "https://example.com/authors/1", &with_id("no", "a1")).await;
    update(
        &hub,
        "https://example.com/books/1/reviews",
        &with_id("no", "a2"),
    )
    .await;
    update(&hub, "https://example.com/books/7", &with_id("yes", "a3")).await;
    assert_eq!(stream.next().await.id.as_deref(), Some("a3"));
    server.stop().await;
}

#[tokio::test]
async fn the_event_has_its_type_retry_and_one_data_line_per_line() {
    let (server, hub) = start_hub(config(true), HubConfig::default()).await;
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", "*")]), &[]).await;
    let mut envelope = with_id("line 1\nline 2\r\nline 3\rline 4", "m1");
    envelope.event = "book-updated".into();
    envelope.retry = Some(2500);
    update(&hub, "https://example.com/books/1", &envelope).await;
    let event = stream.next().await;
    assert_eq!(event.event.as_deref(), Some("book-updated"));
    assert_eq!(event.retry.as_deref(), Some("2500"));
    assert_eq!(event.data, "line 1\nline 2\nline 3\nline 4");
    // A message that is not an envelope: its JSON text, a generated id.
    common::topics::publish(&hub, "mercure:plain", json!({"n": 1})).await;
    let plain = stream.next().await;
    assert_eq!(plain.data, r#"{"n":1}"#);
    assert!(plain.id.is_some_and(|id| id.starts_with("urn:pushwire:")));
    server.stop().await;
}

#[tokio::test]
async fn subscribers_resume_from_last_event_id_last_event_id_or_earliest() {
    let (server, hub) = start_hub(config(true), HubConfig::default()).await;
    for n in 1..=4 {
        let iri = if n == 3 {
            "https://example.com/other"
        } else {
            "https://example.com/a"
        };
        update(&hub, iri, &with_id(&format!("d{n}"), &format!("id-{n}"))).await;
    }
    let url = subscribe_url(&server, &[("match", "https://example.com/a")]);
    let ids = |events: &[common::mercure::Event]| -> Vec<String> {
        events.iter().filter_map(|e| e.id.clone()).collect()
    };
    // The header of an EventSource's reconnect.
    let mut stream = Stream::open(&url, &[("last-event-id", "id-1")]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-1"));
    let events = vec![stream.next().await, stream.next().await];
    assert_eq!(ids(&events), ["id-2", "id-4"]);
    // Live updates follow the replayed ones.
    update(&hub, "https://example.com/a", &with_id("d5", "id-5")).await;
    assert_eq!(stream.next().await.id.as_deref(), Some("id-5"));
    // The query parameter, for bootstrapping.
    let query = subscribe_url(
        &server,
        &[
            ("match", "https://example.com/a"),
            ("last_event_id", "id-2"),
        ],
    );
    let mut stream = Stream::open(&query, &[]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-2"));
    let events = vec![stream.next().await, stream.next().await];
    assert_eq!(ids(&events), ["id-4", "id-5"]);
    // The header wins over the query.
    let mut stream = Stream::open(&query, &[("last-event-id", "id-4")]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-4"));
    assert_eq!(stream.next().await.id.as_deref(), Some("id-5"));
    // Everything kept.
    let earliest = subscribe_url(
        &server,
        &[
            ("match", "https://example.com/a"),
            ("last_event_id", "earliest"),
        ],
    );
    let mut stream = Stream::open(&earliest, &[]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("earliest"));
    let mut events = Vec::new();
    for _ in 0..4 {
        events.push(stream.next().await);
    }
    assert_eq!(ids(&events), ["id-1", "id-2", "id-4", "id-5"]);
    assert_eq!(events[0].data, "d1");
    // An id history does not hold: from now on, and the header says so.
    let mut stream = Stream::open(&url, &[("last-event-id", "unknown")]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-5"));
    update(&hub, "https://example.com/a", &with_id("d6", "id-6")).await;
    assert_eq!(stream.next().await.id.as_deref(), Some("id-6"));
    server.stop().await;
}

#[tokio::test]
async fn history_trimmed_past_the_id_is_told_by_the_header() {
    let hub_config = HubConfig {
        history: pushwire::topic::HistoryConfig {
            size: 3,
            ..pushwire::topic::HistoryConfig::default()
        },
        ..HubConfig::default()
    };
    let (server, hub) = start_hub(config(true), hub_config).await;
    for n in 1..=5 {
        update(&hub, "a", &with_id("d", &format!("id-{n}"))).await;
    }
    // id-1 is gone from the journal's history (3 kept): the stream starts now.
    let url = subscribe_url(&server, &[("match", "a")]);
    let stream = Stream::open(&url, &[("last-event-id", "id-1")]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-5"));
    let mut stream = Stream::open(&url, &[("last-event-id", "id-3")]).await;
    assert_eq!(stream.last_event_id().as_deref(), Some("id-3"));
    assert_eq!(stream.next().await.id.as_deref(), Some("id-4"));
    server.stop().await;
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_granted_one_of_their_topics() {
    let (server, hub) = start_hub(config(true), HubConfig::default()).await;
    let url = subscribe_url(&server, &[("match", "*")]);
    let granted = token(
        &server,
        &[detail(
            &["subscribe"],
            &[("https://example.com/users/:id", "urlpattern")],
        )],
    );
    let other = token(
        &server,
        &[detail(
            &["subscribe"],
            &[("https://example.com/x", "exact")],
        )],
    );
    let mut anonymous = Stream::open(&url, &[]).await;
    let mut with_grant =
        Stream::open(&url, &[("authorization", &format!("Bearer {granted}"))]).await;
    let cookie = format!("__Secure-mercure_access_token={other}");
    let mut without = Stream::open(&url, &[("cookie", &cookie)]).await;
    let mut private = with_id("secret", "p1");
    private.private = true;
    // Granted through its alternate topic.
    private.topics = vec!["https://example.com/users/7".into()];
    let topic = topic_of("mercure", "https://example.com/private/7").expect("topic");
    let journal = pushwire::Topic::new("mercure.journal").expect("journal");
    hub.publish_journal(&journal, &topic, private.to_data().expect("data"))
        .await
        .expect("publish");
    update(&hub, "https://example.com/public", &with_id("public", "p2")).await;
    assert_eq!(with_grant.next().await.id.as_deref(), Some("p1"));
    assert_eq!(with_grant.next().await.id.as_deref(), Some("p2"));
    // The others' next event is the public one: the private one was never theirs.
    assert_eq!(anonymous.next().await.id.as_deref(), Some("p2"));
    assert_eq!(without.next().await.id.as_deref(), Some("p2"));
    // Replayed history is filtered the same way.
    let earliest = subscribe_url(&server, &[("match", "*"), ("last_event_id", "earliest")]);
    let mut replay = Stream::open(&earliest, &[]).await;
    assert_eq!(replay.next().await.id.as_deref(), Some("p2"));
    server.stop().await;
}

#[tokio::test]
async fn the_stream_ends_when_its_token_expires() {
    let (server, _hub) = start_hub(config(false), HubConfig::default()).await;
    let url = subscribe_url(&server, &[("match", "*")]);
    // Expired 29 s ago: inside the 30 s leeway, so accepted; the stream ends at
    // once since `exp` has passed.
    let token = token_with(
        ISSUER,
        SECRET,
        &common::mercure::hub_url(&server),
        -29,
        &[detail(&["subscribe"], &[("*", "exact")])],
    );
    let mut stream = Stream::open(&url, &[("authorization", &format!("Bearer {token}"))]).await;
    assert_eq!(
        stream.next_block().await.as_deref(),
        Some(":\n\n"),
        "the opening comment"
    );
    assert_eq!(stream.next_block().await, None, "the stream ended");
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_keep_idle_streams_and_shutdown_says_farewell() {
    let mercure = pushwire::interop::mercure::MercureConfig {
        heartbeat: Duration::from_millis(50),
        ..config(true)
    };
    let hub = Hub::new(mercure.hub_config(HubConfig::default()));
    let app = App::new()
        .topics(hub.clone())
        .mercure(mercure)
        .metrics(pushwire::MetricsAccess::default());
    let server = common::start(app).await;
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", "*")]), &[]).await;
    // The opening comment, then (nothing being published) a heartbeat.
    assert_eq!(stream.next_block().await.as_deref(), Some(":\n\n"));
    assert_eq!(stream.next_block().await.as_deref(), Some(":\n\n"));
    let metrics = reqwest::get(server.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pushwire_connections{transport=\"mercure\"} 1"),
        "{metrics}"
    );
    let stop = tokio::spawn(server.stop());
    let mut farewell = None;
    for _ in 0..100 {
        match stream.next_block().await {
            Some(block) if block.starts_with(':') && !block.contains("service restart") => continue,
            other => {
                farewell = other;
                break;
            }
        }
    }
    let farewell = farewell.expect("a farewell");
    assert!(farewell.starts_with("retry: "), "{farewell}");
    assert!(farewell.contains(": service restart"), "{farewell}");
    assert_eq!(stream.next_block().await, None);
    stop.await.expect("stopped");
}

#[tokio::test]
async fn updates_published_over_ws_reach_mercure_subscribers() {
    let (server, _hub) = start_hub(config(true), HubConfig::default()).await;
    let mut stream = Stream::open(&subscribe_url(&server, &[("match", "news")]), &[]).await;
    let (mut client, _) = common::topics::ws(&server).await;
    let reply = common::topics::request(
        &mut client,
        json!({"op": "pub", "id": 1, "topic": "mercure:news", "data": {"headline": "hi"}}),
    )
    .await;
    assert!(reply["ok"].is_object(), "{reply}");
    let event = stream.next().await;
    assert_eq!(event.data, r#"{"headline":"hi"}"#);
    // The publish API too.
    let (status, _) =
        common::topics::publish_http(&server, "mercure:news", r#"{"event":"e","data":"x"}"#).await;
    assert_eq!(status, 200);
    let event = stream.next().await;
    assert_eq!(
        (event.event.as_deref(), event.data.as_str()),
        (Some("e"), "x")
    );
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_resumes_on_another_node_sharing_redis() {
    let redis = RedisServer::start();
    let mercure = config(true);
    let mut servers = Vec::new();
    let mut hubs = Vec::new();
    for _ in 0..2 {
        let broker = RedisBroker::new(
            pushwire::topic::HistoryConfig::default(),
            RedisConfig::new(redis.url()),
        )
        .expect("broker");
        let hub = Hub::with_broker(mercure.hub_config(HubConfig::default()), Arc::new(broker));
        let app = App::new().topics(hub.clone()).mercure(mercure.clone());
        servers.push(common::start(app).await);
        hubs.push(hub);
    }
    let url_a = subscribe_url(&servers[0], &[("match", "https://example.com/a")]);
    let mut on_a = Stream::open(&url_a, &[]).await;
    update(&hubs[0], "https://example.com/a", &with_id("1", "r1")).await;
    assert_eq!(on_a.next().await.id.as_deref(), Some("r1"));
    drop(on_a);
    // Published on node A while the subscriber is away.
    update(&hubs[0], "https://example.com/a", &with_id("2", "r2")).await;
    update(&hubs[0], "https://example.com/a", &with_id("3", "r3")).await;
    let url_b = subscribe_url(&servers[1], &[("match", "https://example.com/a")]);
    let mut on_b = Stream::open(&url_b, &[("last-event-id", "r1")]).await;
    assert_eq!(on_b.last_event_id().as_deref(), Some("r1"));
    assert_eq!(on_b.next().await.id.as_deref(), Some("r2"));
    assert_eq!(on_b.next().await.id.as_deref(), Some("r3"));
    // And live, from a publish on node A.
    update(&hubs[0], "https://example.com/a", &with_id("4", "r4")).await;
    assert_eq!(on_b.next().await.id.as_deref(), Some("r4"));
    for server in servers {
        server.stop().await;
    }
}

#[tokio::test]
async fn pages_on_allowed_origins_may_read_the_stream_and_its_header() {
    let mercure = config(true);
    let hub = Hub::new(mercure.hub_config(HubConfig::default()));
    let origins = pushwire::Origins::same_host()
        .allow("https://app.example")
        .expect("origin");
    let app = App::new()
        .topics(hub)
        .mercure(mercure)
        .allowed_origins(origins);
    let server = common::start(app).await;
    let url = subscribe_url(&server, &[("match", "*")]);
    // A preflight (an EventSource polyfill sending Last-Event-ID).
    let preflight = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .expect("preflight");
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("last-event-id"))
    );
    let stream = Stream::open(&url, &[("origin", "https://app.example")]).await;
    let headers = stream.response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        headers["access-control-expose-headers"]
            .to_str()
            .is_ok_and(|v| v.to_ascii_lowercase().contains("mercure-last-event-id")),
        "{headers:?}"
    );
    drop(stream);
    // A page on an origin not allowed is refused.
    let (status, _) = refusal(&url, &[("origin", "https://evil.example")]).await;
    assert_eq!(status, 403);
    server.stop().await;
}
