//! Journals (`HubConfig::journals`): messages published on `mercure:` topics over
//! the publish API arrive, as entries, in the journal topic, in order, for `/ws`
//! subscribers of the journal and in what `Hub::kept` answers; journal-only
//! appends reach the journal and never the topic; `kept` on the in-process broker
//! and on two nodes sharing a real `redis-server`.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis::{READY, RedisServer};
use common::topics::{
    next_json, next_json_within, publish_http, pushes, start_with_broker, sub, ws,
};
use pushwire::broker::{Broker, Recovery, RedisBroker, RedisConfig};
use pushwire::hub::journal::{self, Journal};
use pushwire::topic::{HistoryConfig, PushKind};
use pushwire::{Data, Hub, HubConfig, Topic};
use serde_json::{Value, json};

fn topic(name: &str) -> Topic {
    Topic::new(name).expect("valid topic")
}

/// A hub config with the journal `mercure.journal` of the `mercure:` topics and
/// `history`.
fn journaled(history: HistoryConfig) -> HubConfig {
    HubConfig {
        history,
        journals: vec![Journal {
            prefix: "mercure:".into(),
            topic: topic("mercure.journal"),
        }],
        ..HubConfig::default()
    }
}

/// The entries of what `kept` answered: (offset, topic, data).
fn entries(kept: &Recovery) -> Vec<(u64, String, Value)> {
    kept.messages
        .iter()
        .filter_map(|push| match push.kind() {
            PushKind::Message { offset, data, .. } => {
                let (topic, data) = journal::read(data)?;
                let data = serde_json::from_str(data.as_str()).ok()?;
                Some((*offset, topic.as_str().to_owned(), data))
            }
            _ => None,
        })
        .collect()
}

/// Publishes `data` over the publish API and checks it was taken.
async fn publish_ok(server: &common::Running, topic: &str, data: Value) -> u64 {
    let (status, body) = publish_http(server, topic, &data.to_string()).await;
    assert_eq!(status, 200, "{body}");
    body["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {body}"))
}

#[tokio::test]
async fn publishes_over_the_api_arrive_in_the_journal_in_order_as_entries() {
    let hub = Hub::new(journaled(HistoryConfig::default()));
    let server = common::topics::start_hub(hub.clone()).await;
    let (mut reader, _) = ws(&server).await;
    sub(&mut reader, "mercure.journal", None).await;
    let (mut a_reader, _) = ws(&server).await;
    sub(&mut a_reader, "mercure:a", None).await;

    // (the topic in the publish API's path, the topic, the data)
    let published = [
        ("mercure:a", "mercure:a", json!({"n": 1})),
        ("mercure:b", "mercure:b", json!("two")),
        ("other:c", "other:c", json!(3)),
        ("mercure:a", "mercure:a", json!([4, {"deep": [true]}])),
        (
            "mercure:https%3A%2F%2Fexample.com%2Fcaf%25C3%25A9",
            "mercure:https://example.com/caf%C3%A9",
            json!(null),
        ),
    ];
    for (path, _, data) in &published {
        publish_ok(&server, path, data.clone()).await;
    }
    let expected: Vec<(u64, String, Value)> = published
        .iter()
        .filter(|(_, topic, _)| topic.starts_with("mercure:"))
        .enumerate()
        .map(|(i, (_, topic, data))| (i as u64 + 1, (*topic).to_owned(), data.clone()))
        .collect();

    // Live, over /ws: the journal's own offsets, each entry naming its topic.
    let live: Vec<(u64, String, Value)> = pushes(&mut reader, expected.len())
        .await
        .into_iter()
        .map(|push| {
            assert_eq!(push["topic"], "mercure.journal", "{push}");
            let entry = &push["data"];
            assert_eq!(entry.as_object().map(|o| o.len()), Some(2), "{push}");
            (
                push["offset"].as_u64().unwrap_or_default(),
                entry["topic"].as_str().unwrap_or_default().to_owned(),
                entry["data"].clone(),
            )
        })
        .collect();
    assert_eq!(live, expected);
    // The topic's own subscriber has its two messages, at its own offsets.
    let own = pushes(&mut a_reader, 2).await;
    assert_eq!(common::topics::offsets(&own), vec![1, 2]);
    assert_eq!(own[1]["data"], json!([4, {"deep": [true]}]));

    // And as kept: the whole journal, from its first entry.
    let kept = hub.kept(&topic("mercure.journal")).await.expect("kept");
    assert_eq!(kept.recovered, Some(true));
    assert_eq!(kept.position.offset, expected.len() as u64);
    assert_eq!(entries(&kept), expected);
    // A topic outside the prefix is in no journal but keeps its own history.
    let other = hub.kept(&topic("other:c")).await.expect("kept");
    assert_eq!(other.messages.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_journal_only_append_reaches_journal_subscribers_but_not_topic_subscribers() {
    let hub = Hub::new(journaled(HistoryConfig::default()));
    let server = common::topics::start_hub(hub.clone()).await;
    let (mut topic_reader, _) = ws(&server).await;
    sub(&mut topic_reader, "mercure:secret", None).await;
    let (mut journal_reader, _) = ws(&server).await;
    sub(&mut journal_reader, "mercure.journal", None).await;

    let private = Data::json(r#"{"event":"message","data":"s","private":true}"#).expect("JSON");
    let position = hub
        .publish_journal(&topic("mercure.journal"), &topic("mercure:secret"), private)
        .await
        .expect("journal append");
    assert_eq!(position.offset, 1);
    let push = next_json(&mut journal_reader).await;
    assert_eq!(push["offset"], 1, "{push}");
    assert_eq!(
        push["data"],
        json!({"topic": "mercure:secret", "data": {"event": "message", "data": "s", "private": true}})
    );
    // Nothing reached the topic: its subscriber's next message is the public
    // publish that follows, at the topic's first offset.
    publish_ok(&server, "mercure:secret", json!("public")).await;
    let next = next_json_within(&mut topic_reader, Duration::from_secs(5))
        .await
        .expect("the public message");
    assert_eq!(
        (next["offset"].as_u64(), &next["data"]),
        (Some(1), &json!("public"))
    );
    let journal_next = next_json(&mut journal_reader).await;
    assert_eq!(journal_next["offset"], 2, "{journal_next}");
    assert_eq!(journal_next["data"]["data"], "public");
    let secret = hub.kept(&topic("mercure:secret")).await.expect("kept");
    assert_eq!(
        secret.messages.len(),
        1,
        "the topic keeps the public message only"
    );
    server.stop().await;
}

#[tokio::test]
async fn kept_on_the_in_process_broker_is_what_history_holds() {
    let hub = Hub::new(journaled(HistoryConfig {
        size: 3,
        ..HistoryConfig::default()
    }));
    let journal = topic("mercure.journal");
    let empty = hub.kept(&journal).await.expect("kept");
    assert_eq!((empty.position.offset, empty.recovered), (0, Some(true)));
    assert!(empty.messages.is_empty());
    for n in 1..=5 {
        let data = Data::json(n.to_string()).expect("JSON");
        hub.publish(&topic("mercure:n"), data)
            .await
            .expect("publish");
    }
    let kept = hub.kept(&journal).await.expect("kept");
    assert_eq!(kept.recovered, Some(false), "entries 1 and 2 were trimmed");
    assert_eq!(kept.position.offset, 5);
    let offsets: Vec<u64> = entries(&kept).iter().map(|e| e.0).collect();
    assert_eq!(offsets, vec![3, 4, 5]);
    let data: Vec<Value> = entries(&kept).into_iter().map(|e| e.2).collect();
    assert_eq!(data, vec![json!(3), json!(4), json!(5)]);
}

/// A node on `redis` with the journal, served on a free port.
async fn redis_node(redis: &RedisServer, history: HistoryConfig) -> (common::Running, Hub) {
    let broker = RedisBroker::new(history.clone(), RedisConfig::new(redis.url())).expect("broker");
    let deadline = Instant::now() + READY;
    while !broker.ready().await {
        assert!(Instant::now() < deadline, "the broker never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start_with_broker(journaled(history), Arc::new(broker)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_share_one_journal_and_what_it_kept() {
    let redis = RedisServer::start();
    let history = HistoryConfig {
        size: 4,
        ..HistoryConfig::default()
    };
    let (one, hub_one) = redis_node(&redis, history.clone()).await;
    let (two, hub_two) = redis_node(&redis, history).await;
    let (mut reader, _) = ws(&two).await;
    sub(&mut reader, "mercure.journal", None).await;

    // Publishes on both nodes land in one journal, in one order.
    publish_ok(&one, "mercure:a", json!(1)).await;
    publish_ok(&two, "mercure:b", json!(2)).await;
    publish_ok(&one, "mercure:a", json!(3)).await;
    let expected = vec![
        (1, "mercure:a".to_owned(), json!(1)),
        (2, "mercure:b".to_owned(), json!(2)),
        (3, "mercure:a".to_owned(), json!(3)),
    ];
    let live: Vec<(u64, String, Value)> = pushes(&mut reader, 3)
        .await
        .into_iter()
        .map(|push| {
            (
                push["offset"].as_u64().unwrap_or_default(),
                push["data"]["topic"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                push["data"]["data"].clone(),
            )
        })
        .collect();
    assert_eq!(live, expected, "node two hears node one's entries live");

    let journal = topic("mercure.journal");
    let kept_one = hub_one.kept(&journal).await.expect("kept on node one");
    let kept_two = hub_two.kept(&journal).await.expect("kept on node two");
    assert_eq!(
        kept_one.position, kept_two.position,
        "one journal, one position"
    );
    assert_eq!(kept_one.recovered, Some(true));
    assert_eq!(entries(&kept_one), expected);
    assert_eq!(entries(&kept_two), expected);

    // A journal-only append on node two, then two more publishes: the journal
    // holds 4 of its 6 entries, so it no longer starts at offset 1.
    let private = Data::json(r#"{"private":true}"#).expect("JSON");
    let position = hub_two
        .publish_journal(&journal, &topic("mercure:p"), private)
        .await
        .expect("journal append");
    assert_eq!(position.offset, 4);
    publish_ok(&two, "mercure:b", json!(5)).await;
    publish_ok(&one, "mercure:a", json!(6)).await;
    let kept = hub_one.kept(&journal).await.expect("kept");
    assert_eq!(kept.recovered, Some(false));
    assert_eq!(kept.position.offset, 6);
    assert_eq!(
        entries(&kept),
        vec![
            (3, "mercure:a".to_owned(), json!(3)),
            (4, "mercure:p".to_owned(), json!({"private": true})),
            (5, "mercure:b".to_owned(), json!(5)),
            (6, "mercure:a".to_owned(), json!(6)),
        ]
    );
    let private_topic = hub_one.kept(&topic("mercure:p")).await.expect("kept");
    assert_eq!(
        (private_topic.position.offset, private_topic.messages.len()),
        (0, 0),
        "the journal-only append never reached its topic"
    );
    // Data nested to the limit makes an entry one level deeper, which the Redis
    // broker reads back (history and channel) all the same.
    let depth = pushwire::topic::MAX_DEPTH;
    let deepest: Value =
        serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth))).expect("JSON");
    publish_ok(&one, "mercure:deep", deepest.clone()).await;
    let deep = pushes(&mut reader, 4).await;
    assert_eq!(common::topics::offsets(&deep), vec![4, 5, 6, 7]);
    let kept = hub_two.kept(&journal).await.expect("kept");
    assert_eq!(
        entries(&kept).last(),
        Some(&(7, "mercure:deep".to_owned(), deepest))
    );
    one.stop().await;
    two.stop().await;
}
