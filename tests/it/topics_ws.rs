//! The topic protocol on `/ws` (docs/protocol.md), spoken by an independent client
//! (tokio-tungstenite) to a real server over loopback.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::topics::*;
use common::{STEP, next_close};
use futures_util::StreamExt;
use pushwire::HubConfig;
use pushwire::broker::{Broker, BrokerError, Deliver, Recovery};
use pushwire::protocol::session::SessionConfig;
use pushwire::topic::{Data, HistoryConfig, Member, Position, Topic};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn history(size: usize, ttl: Duration) -> HubConfig {
    HubConfig {
        history: HistoryConfig { size, ttl },
        ..HubConfig::default()
    }
}

#[tokio::test]
async fn the_in_process_broker_is_always_ready() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    assert_eq!(
        common::raw_get(server.addr, "/readyz").await,
        (200, String::from("ok\n"))
    );
    assert_eq!(common::raw_get(server.addr, "/healthz").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn hello_names_each_client_differently() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let (mut a_client, a) = ws(&server).await;
    let (mut b_client, b) = ws(&server).await;
    assert_ne!(a, b);
    server.stop_with(&mut [&mut a_client, &mut b_client]).await;
}

#[tokio::test]
async fn subscriber_receives_messages_published_over_ws_and_http_in_order() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let (mut sub_client, _) = ws(&server).await;
    let ok = sub(&mut sub_client, "news", None).await;
    assert_eq!(ok["topic"], "news");
    assert_eq!(ok["offset"], 0);
    assert!(
        ok.get("recovered").is_none(),
        "no since, no recovered: {ok}"
    );
    let epoch = ok["epoch"].clone();

    let (mut publisher, _) = ws(&server).await;
    let reply = request(
        &mut publisher,
        json!({"op": "pub", "id": 7, "topic": "news", "data": {"n": 1}}),
    )
    .await;
    assert_eq!(
        reply["ok"],
        json!({"topic": "news", "epoch": epoch, "offset": 1})
    );
    let (status, body) = publish_http(&server, "news", r#"{"n": 2}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["offset"], 2);

    let got = pushes(&mut sub_client, 2).await;
    assert_eq!(
        got,
        vec![
            json!({"topic": "news", "epoch": epoch, "offset": 1, "data": {"n": 1}}),
            json!({"topic": "news", "epoch": epoch, "offset": 2, "data": {"n": 2}}),
        ]
    );
    server
        .stop_with(&mut [&mut sub_client, &mut publisher])
        .await;
}

#[tokio::test]
async fn hundred_subscribers_each_receive_a_thousand_messages_in_order() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let mut clients = Vec::new();
    for _ in 0..100 {
        let (mut client, _) = ws(&server).await;
        sub(&mut client, "fan", None).await;
        clients.push(client);
    }
    let publisher = tokio::spawn({
        let hub = hub.clone();
        async move {
            for n in 1..=1000u64 {
                assert_eq!(publish(&hub, "fan", json!(n)).await, n);
            }
        }
    });
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let got = pushes(&mut client, 1000).await;
                let data: Vec<u64> = got.iter().filter_map(|p| p["data"].as_u64()).collect();
                assert_eq!(data, (1..=1000).collect::<Vec<_>>());
                assert_eq!(offsets(&got), (1..=1000).collect::<Vec<_>>());
            })
        })
        .collect();
    publisher.await.expect("publisher");
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(60), reader)
            .await
            .expect("a subscriber did not get 1000 messages within 60 s")
            .expect("reader failed");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_closed_and_does_not_delay_the_others() {
    let (server, hub) = start_topics(HubConfig {
        // Keep history out of the way: the slow client is judged by its queue.
        history: HistoryConfig {
            size: 0,
            ttl: Duration::from_secs(1),
        },
        ..HubConfig::default()
    })
    .await;
    let (mut slow, _) = ws(&server).await;
    sub(&mut slow, "firehose", None).await;
    let (mut fast, _) = ws(&server).await;
    sub(&mut fast, "firehose", None).await;

    // 32 MiB in all: far more than the slow client's outbound queue (1 MiB) and
    // the kernel's socket buffers together. The publisher keeps pace with the fast
    // subscriber (at most 32 messages ahead of it), never with the slow one.
    let payload = "x".repeat(16 * 1024);
    let total = 2048u64;
    let (progress, mut seen) = tokio::sync::watch::channel(0u64);
    let reader = tokio::spawn(async move {
        for expected in 1..=total {
            let push = next_json(&mut fast).await;
            assert_eq!(push["offset"], expected);
            let _ = progress.send(expected);
        }
        fast
    });
    for n in 1..=total {
        publish(&hub, "firehose", json!(payload)).await;
        tokio::time::timeout(STEP, seen.wait_for(|&got| got + 32 >= n))
            .await
            .expect("the fast subscriber was held up")
            .expect("fast reader failed");
    }
    let mut fast = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the fast subscriber was held up")
        .expect("fast reader failed");

    // The hub stopped offering messages to the slow client: one subscriber left.
    let topic = Topic::new("firehose").expect("topic");
    let deadline = tokio::time::Instant::now() + STEP;
    while hub.subscriber_count(&topic) != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow subscriber still subscribed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Reading now, the slow client finds a gapless prefix and then 1008.
    let mut expected = 1u64;
    let close = loop {
        match tokio::time::timeout(STEP, slow.next()).await {
            Ok(Some(Ok(WsMessage::Text(text)))) => {
                let push: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(push["offset"], expected);
                expected += 1;
            }
            Ok(Some(Ok(WsMessage::Close(frame)))) => break frame,
            Ok(Some(Ok(WsMessage::Ping(_)))) => continue, // keepalive
            other => panic!("expected messages then a close, got {other:?}"),
        }
    };
    assert!(expected < total, "the slow client got everything: not slow");
    let close = close.expect("a close frame with a code");
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "slow consumer");
    server.stop_with(&mut [&mut slow, &mut fast]).await;
}

#[tokio::test]
async fn resubscribe_after_gap_recovers_missed_messages() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    let ok = sub(&mut client, "news", None).await;
    let epoch = ok["epoch"].clone();
    for n in 1..=5 {
        publish(&hub, "news", json!(n)).await;
    }
    assert_eq!(offsets(&pushes(&mut client, 5).await), vec![1, 2, 3, 4, 5]);
    drop(client);

    for n in 6..=10 {
        publish(&hub, "news", json!(n)).await;
    }
    let (mut client, _) = ws(&server).await;
    let ok = sub(
        &mut client,
        "news",
        Some(json!({"epoch": epoch, "offset": 5})),
    )
    .await;
    assert_eq!(
        ok,
        json!({"topic": "news", "epoch": epoch, "offset": 10, "recovered": true})
    );
    publish(&hub, "news", json!(11)).await;
    let got = pushes(&mut client, 6).await;
    assert_eq!(offsets(&got), vec![6, 7, 8, 9, 10, 11]);
    assert_eq!(got[0]["data"], 6);
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn recovery_while_publishing_has_no_gap_and_no_duplicate() {
    let (server, hub) = start_topics(history(10_000, Duration::from_secs(300))).await;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = tokio::spawn({
        let (hub, stop) = (hub.clone(), Arc::clone(&stop));
        async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5000 {
                n += 1;
                publish(&hub, "race", json!(n)).await;
                if n.is_multiple_of(4) {
                    tokio::task::yield_now().await;
                }
            }
            n
        }
    });
    let (mut client, _) = ws(&server).await;
    let ok = sub(&mut client, "race", None).await;
    let epoch = ok["epoch"].clone();
    let mut last = ok["offset"].as_u64().expect("offset");
    // Reconnect ten times, each time resuming from the last offset seen, while the
    // publisher keeps going.
    for _ in 0..10 {
        for push in pushes(&mut client, 20).await {
            last += 1;
            assert_eq!(push["offset"], last, "gap or duplicate before reconnecting");
        }
        drop(client);
        let (again, _) = ws(&server).await;
        client = again;
        let ok = sub(
            &mut client,
            "race",
            Some(json!({"epoch": epoch, "offset": last})),
        )
        .await;
        assert_eq!(ok["recovered"], true, "{ok}");
        for push in pushes(&mut client, 20).await {
            last += 1;
            assert_eq!(push["offset"], last, "gap or duplicate after recovering");
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let published = publisher.await.expect("publisher");
    assert!(last <= published);
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn history_keeps_only_the_last_n_messages() {
    let (server, hub) = start_topics(history(3, Duration::from_secs(300))).await;
    let (mut client, _) = ws(&server).await;
    let epoch = sub(&mut client, "h", None).await["epoch"].clone();
    for n in 1..=10 {
        publish(&hub, "h", json!(n)).await;
    }
    pushes(&mut client, 10).await;

    let (mut late, _) = ws(&server).await;
    let ok = sub(&mut late, "h", Some(json!({"epoch": epoch, "offset": 6}))).await;
    assert_eq!(ok["recovered"], false, "offset 7 is no longer kept: {ok}");
    assert_eq!(ok["offset"], 10);
    // Nothing from history follows; the next message is live.
    publish(&hub, "h", json!(11)).await;
    assert_eq!(offsets(&pushes(&mut late, 1).await), vec![11]);

    let (mut recent, _) = ws(&server).await;
    let ok = sub(&mut recent, "h", Some(json!({"epoch": epoch, "offset": 8}))).await;
    assert_eq!(ok["recovered"], true, "{ok}");
    assert_eq!(offsets(&pushes(&mut recent, 3).await), vec![9, 10, 11]);
    server
        .stop_with(&mut [&mut client, &mut late, &mut recent])
        .await;
}

#[tokio::test]
async fn history_forgets_messages_older_than_its_ttl() {
    let (server, hub) = start_topics(history(100, Duration::from_millis(300))).await;
    let (mut client, _) = ws(&server).await;
    let epoch = sub(&mut client, "t", None).await["epoch"].clone();
    publish(&hub, "t", json!(1)).await;
    publish(&hub, "t", json!(2)).await;
    pushes(&mut client, 2).await;

    let (mut fresh, _) = ws(&server).await;
    let ok = sub(&mut fresh, "t", Some(json!({"epoch": epoch, "offset": 0}))).await;
    assert_eq!(ok["recovered"], true);
    assert_eq!(offsets(&pushes(&mut fresh, 2).await), vec![1, 2]);

    tokio::time::sleep(Duration::from_millis(600)).await;
    let (mut stale, _) = ws(&server).await;
    let ok = sub(&mut stale, "t", Some(json!({"epoch": epoch, "offset": 0}))).await;
    assert_eq!(
        ok["recovered"], false,
        "expired messages cannot be recovered: {ok}"
    );
    // Up to date is still up to date, even with nothing left in history.
    let (mut current, _) = ws(&server).await;
    let ok = sub(
        &mut current,
        "t",
        Some(json!({"epoch": epoch, "offset": 2})),
    )
    .await;
    assert_eq!(ok["recovered"], true, "{ok}");
    server
        .stop_with(&mut [&mut client, &mut fresh, &mut stale, &mut current])
        .await;
}

#[tokio::test]
async fn another_epoch_or_a_future_offset_is_not_recovered() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    let epoch = sub(&mut client, "e", None).await["epoch"].clone();
    publish(&hub, "e", json!(1)).await;
    pushes(&mut client, 1).await;

    let (mut other, _) = ws(&server).await;
    let ok = sub(
        &mut other,
        "e",
        Some(json!({"epoch": "OldEpoch1", "offset": 0})),
    )
    .await;
    assert_eq!(
        ok,
        json!({"topic": "e", "epoch": epoch, "offset": 1, "recovered": false})
    );
    let (mut ahead, _) = ws(&server).await;
    let ok = sub(&mut ahead, "e", Some(json!({"epoch": epoch, "offset": 99}))).await;
    assert_eq!(ok["recovered"], false);
    server
        .stop_with(&mut [&mut client, &mut other, &mut ahead])
        .await;
}

#[tokio::test]
async fn a_topic_gets_a_new_epoch_after_it_was_dropped() {
    let (server, hub) = start_topics(history(100, Duration::from_millis(100))).await;
    let (mut client, _) = ws(&server).await;
    let first = sub(&mut client, "gone", None).await["epoch"].clone();
    publish(&hub, "gone", json!(1)).await;
    pushes(&mut client, 1).await;
    drop(client);
    // No subscriber, history expired: the topic is dropped at the next sweep (at
    // most a second apart), and comes back with offsets from 1 and a new epoch.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    publish(&hub, "other", json!(0)).await; // gives the broker a chance to sweep
    let (mut client, _) = ws(&server).await;
    let ok = sub(
        &mut client,
        "gone",
        Some(json!({"epoch": first, "offset": 1})),
    )
    .await;
    assert_ne!(ok["epoch"], first);
    assert_eq!(ok["offset"], 0);
    assert_eq!(ok["recovered"], false);
    server.stop_with(&mut [&mut client]).await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery() {
    let (server, hub) = start_topics(HubConfig::default()).await;
    let (mut client, _) = ws(&server).await;
    sub(&mut client, "a", None).await;
    sub(&mut client, "b", None).await;
    let reply = request(&mut client, json!({"op": "unsub", "id": 3, "topic": "a"})).await;
    assert_eq!(reply, json!({"id": 3, "ok": {"topic": "a"}}));
    publish(&hub, "a", json!("not for me")).await;
    publish(&hub, "b", json!("for me")).await;
    let push = next_json(&mut client).await;
    assert_eq!(push["topic"], "b");
    assert_eq!(hub.subscriber_count(&Topic::new("a").expect("topic")), 0);
    server.stop_with(&mut [&mut client]).await;
}

/// Sends `text` and returns the error reply's id and code.
async fn error_of(client: &mut common::Client, text: &str) -> (Value, u64) {
    send_text(client, text).await;
    let reply = next_json(client).await;
    let code = reply["error"]["code"]
        .as_u64()
        .unwrap_or_else(|| panic!("expected an error reply to {text}, got {reply}"));
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    (reply["id"].clone(), code)
}

#[tokio::test]
async fn every_bad_request_gets_its_error_code_and_the_connection_stays_open() {
    let (server, _hub) = start_topics_with(
        HubConfig {
            max_data_size: 100,
            ..HubConfig::default()
        },
        SessionConfig {
            max_subscriptions: 2,
            ..SessionConfig::default()
        },
    )
    .await;
    let (mut c, _) = ws(&server).await;
    let cases: &[(&str, Value, u64)] = &[
        ("not json", Value::Null, 400),
        ("[1,2]", Value::Null, 400),
        (r#"{"op":"sub","topic":"a"}"#, Value::Null, 400),
        (r#"{"op":"sub","id":{"x":1},"topic":"a"}"#, Value::Null, 400),
        (r#"{"op":"sub","id":1e999,"topic":"a"}"#, Value::Null, 400),
        (
            r#"{"op":"sub","id":1,"id":2,"topic":"a"}"#,
            Value::Null,
            400,
        ),
        (r#"{"id":1,"topic":"a"}"#, json!(1), 400),
        (r#"{"op":"sub","id":2}"#, json!(2), 400),
        (r#"{"op":"pub","id":3,"topic":"a"}"#, json!(3), 400),
        (r#"{"op":"unsub","id":4,"topic":"a"}"#, json!(4), 404),
        (r#"{"op":"subscribe","id":5,"topic":"a"}"#, json!(5), 405),
        (r#"{"op":"sub","id":"s","topic":"a b"}"#, json!("s"), 422),
        (r#"{"op":"sub","id":6,"topic":""}"#, json!(6), 422),
        (
            r#"{"op":"sub","id":7,"topic":"a","since":{"epoch":"no!","offset":1}}"#,
            json!(7),
            422,
        ),
        (r#"{"op":"presence","id":8,"topic":"news"}"#, json!(8), 403),
    ];
    for (text, id, code) in cases {
        assert_eq!(error_of(&mut c, text).await, (id.clone(), *code), "{text}");
    }
    let big = format!(
        r#"{{"op":"pub","id":9,"topic":"a","data":"{}"}}"#,
        "x".repeat(200)
    );
    assert_eq!(error_of(&mut c, &big).await, (json!(9), 413));
    let big_info = format!(
        r#"{{"op":"sub","id":10,"topic":"a","info":"{}"}}"#,
        "x".repeat(2000)
    );
    assert_eq!(error_of(&mut c, &big_info).await, (json!(10), 413));
    sub(&mut c, "a", None).await;
    assert_eq!(
        error_of(&mut c, r#"{"op":"sub","id":11,"topic":"a"}"#).await,
        (json!(11), 409)
    );
    sub(&mut c, "b", None).await;
    assert_eq!(
        error_of(&mut c, r#"{"op":"sub","id":12,"topic":"c"}"#).await,
        (json!(12), 429)
    );
    // A binary frame is not a request either.
    futures_util::SinkExt::send(&mut c, WsMessage::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(next_json(&mut c).await["error"]["code"], 400);
    // After all that, the connection still works.
    let reply = request(
        &mut c,
        json!({"op": "pub", "id": 13, "topic": "z", "data": 1}),
    )
    .await;
    assert_eq!(reply["ok"]["offset"], 1);
    server.stop_with(&mut [&mut c]).await;
}

#[tokio::test]
async fn publishing_can_be_reserved_to_the_api() {
    let (server, _hub) = start_topics_with(
        HubConfig::default(),
        SessionConfig {
            client_publish: false,
            ..SessionConfig::default()
        },
    )
    .await;
    let (mut c, _) = ws(&server).await;
    let reply = request(
        &mut c,
        json!({"op": "pub", "id": 1, "topic": "a", "data": 1}),
    )
    .await;
    assert_eq!(reply["error"]["code"], 403);
    let (status, _) = publish_http(&server, "a", "1").await;
    assert_eq!(status, 200);
    server.stop_with(&mut [&mut c]).await;
}

#[tokio::test]
async fn a_request_larger_than_the_data_limit_plus_envelope_closes_with_1009() {
    let (server, _hub) = start_topics(HubConfig {
        max_data_size: 1000,
        ..HubConfig::default()
    })
    .await;
    let (mut c, _) = ws(&server).await;
    // The WebSocket limit is 64 KiB (the default), at least data + 4 KiB.
    let huge = format!(
        r#"{{"op":"pub","id":1,"topic":"a","data":"{}"}}"#,
        "x".repeat(70_000)
    );
    send_text(&mut c, &huge).await;
    let close = next_close(&mut c).await.expect("close frame");
    assert_eq!(u16::from(close.code), 1009);
    server.stop().await;
}

#[tokio::test]
async fn presence_announces_joins_and_leaves_and_lists_members() {
    let (server, _hub) = start_topics(HubConfig {
        presence: vec!["chat".into()],
        ..HubConfig::default()
    })
    .await;
    let (mut ann, ann_id) = ws(&server).await;
    let mut req = json!({"op": "sub", "id": 1, "topic": "chat:room", "info": {"name": "Ann"}});
    assert!(request(&mut ann, req.clone()).await["ok"].is_object());
    let join = next_json(&mut ann).await;
    assert_eq!(
        join,
        json!({"topic": "chat:room", "join": {"client": ann_id, "info": {"name": "Ann"}}})
    );

    let (mut bob, bob_id) = ws(&server).await;
    req["info"] = json!({"name": "Bob"});
    assert!(request(&mut bob, req).await["ok"].is_object());
    let bob_join =
        json!({"topic": "chat:room", "join": {"client": bob_id, "info": {"name": "Bob"}}});
    assert_eq!(next_json(&mut bob).await, bob_join);
    assert_eq!(next_json(&mut ann).await, bob_join);

    let reply = request(
        &mut ann,
        json!({"op": "presence", "id": 2, "topic": "chat:room"}),
    )
    .await;
    let members = reply["ok"]["members"].as_array().expect("members").clone();
    let mut names: Vec<&str> = members
        .iter()
        .filter_map(|m| m["info"]["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, vec!["Ann", "Bob"]);

    drop(bob);
    let leave = next_json(&mut ann).await;
    assert_eq!(
        leave,
        json!({"topic": "chat:room", "leave": {"client": bob_id, "info": {"name": "Bob"}}})
    );
    let reply = request(
        &mut ann,
        json!({"op": "presence", "id": 3, "topic": "chat:room"}),
    )
    .await;
    assert_eq!(reply["ok"]["members"].as_array().map(Vec::len), Some(1));
    server.stop_with(&mut [&mut ann]).await;
}

/// A broker whose backing service is down: every call fails. It stands for a
/// Redis that cannot be reached, which the cluster tests exercise for real.
struct DownBroker;

impl Broker for DownBroker {
    fn attach(&self, _hub: std::sync::Weak<dyn Deliver>) {}
    fn publish(
        &self,
        _topic: &Topic,
        _data: Data,
    ) -> futures_util::future::BoxFuture<'_, Result<Position, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into())) })
    }
    fn recover(
        &self,
        _topic: &Topic,
        _since: Option<Position>,
    ) -> futures_util::future::BoxFuture<'_, Result<Recovery, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into())) })
    }
    fn watch(&self, _topic: &Topic) {}
    fn unwatch(&self, _topic: &Topic) {}
    fn join(&self, _topic: &Topic, _member: Member) {}
    fn leave(&self, _topic: &Topic, _client: &str) {}
    fn members(
        &self,
        _topic: &Topic,
    ) -> futures_util::future::BoxFuture<'_, Result<Vec<Member>, BrokerError>> {
        Box::pin(async { Err(BrokerError::Unavailable("connection refused".into())) })
    }

    fn ready(&self) -> futures_util::future::BoxFuture<'_, bool> {
        Box::pin(async { false })
    }
}

#[tokio::test]
async fn a_broker_that_is_down_answers_503_and_the_connection_stays_open() {
    let (server, hub) = start_with_broker(
        HubConfig {
            presence: vec!["chat".into()],
            ..HubConfig::default()
        },
        Arc::new(DownBroker),
    )
    .await;
    let (mut c, _) = ws(&server).await;
    for req in [
        json!({"op": "sub", "id": 1, "topic": "a"}),
        json!({"op": "pub", "id": 2, "topic": "a", "data": 1}),
        json!({"op": "presence", "id": 3, "topic": "chat:x"}),
    ] {
        let reply = request(&mut c, req).await;
        assert_eq!(reply["error"]["code"], 503, "{reply}");
    }
    let (status, body) = publish_http(&server, "a", "1").await;
    assert_eq!(status, 503, "{body}");
    // The failed subscription left nothing behind.
    assert_eq!(hub.topic_count(), 0);
    // Not ready, but alive.
    assert_eq!(common::raw_get(server.addr, "/readyz").await.0, 503);
    assert_eq!(common::raw_get(server.addr, "/healthz").await.0, 200);
    server.stop_with(&mut [&mut c]).await;
}

#[tokio::test]
async fn shutdown_closes_topic_clients_with_1012_service_restart() {
    let (server, _hub) = start_topics(HubConfig::default()).await;
    let (mut c, _) = ws(&server).await;
    sub(&mut c, "a", None).await;
    let stopping = tokio::spawn(server.stop());
    let close = next_close(&mut c).await.expect("close frame");
    assert_eq!(u16::from(close.code), 1012);
    assert_eq!(close.reason.as_str(), "service restart");
    tokio::time::timeout(STEP, stopping)
        .await
        .expect("stop")
        .expect("stop task");
}
