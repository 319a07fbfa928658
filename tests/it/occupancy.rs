//! Occupancy across nodes: two hubs, each on its own `RedisBroker`, sharing one
//! real `redis-server`. Their flushes are driven by hand here (the server's
//! occupancy task does it every 100 ms), so that each step's transitions can be
//! told apart.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::RedisServer;
use pushwire::broker::{OccupancyChange, RedisBroker, RedisConfig};
use pushwire::hub::{Pending, Sink, Subscription};
use pushwire::topic::{HistoryConfig, Push, Topic};
use pushwire::{Hub, HubConfig};

type Seen = Arc<Mutex<Vec<(String, OccupancyChange)>>>;

struct Quiet;

impl Sink for Quiet {
    fn push(&self, _push: &Arc<Push>) -> bool {
        true
    }
    fn lagged(&self) {}
}

/// A hub on a Redis broker, and what its listener saw.
fn node(redis: &RedisServer) -> (Hub, Seen) {
    let broker = RedisBroker::new(HistoryConfig::default(), RedisConfig::new(redis.url()))
        .unwrap_or_else(|e| panic!("{e}"));
    let hub = Hub::with_broker(HubConfig::default(), Arc::new(broker));
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    hub.on_occupancy(move |topic, change| {
        record
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((topic.to_string(), change));
    });
    (hub, seen)
}

fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
}

async fn sub(hub: &Hub, name: &str) -> Subscription {
    let pending: Pending = hub
        .subscribe(topic(name), Arc::new(Quiet), None, None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    pending.go_live().unwrap_or_else(|e| panic!("{e}"))
}

const TTL: Duration = Duration::from_secs(5);

async fn flush(hub: &Hub, ttl: Duration) -> usize {
    hub.flush_occupancy(ttl)
        .await
        .unwrap_or_else(|e| panic!("flush: {e}"))
}

/// What the listener saw since the last call.
fn take(seen: &Seen) -> Vec<(String, OccupancyChange)> {
    std::mem::take(&mut *seen.lock().unwrap_or_else(|e| e.into_inner()))
}

fn occupied(name: &str) -> (String, OccupancyChange) {
    (name.to_owned(), OccupancyChange::Occupied)
}

fn vacated(name: &str) -> (String, OccupancyChange) {
    (name.to_owned(), OccupancyChange::Vacated)
}

#[tokio::test]
async fn a_topic_is_vacated_once_after_its_last_subscriber_on_every_node_left() {
    let redis = RedisServer::start();
    let (a, seen_a) = node(&redis);
    let (b, seen_b) = node(&redis);
    // Both nodes introduce themselves (their first flush asks for a resend).
    flush(&a, TTL).await;
    flush(&b, TTL).await;

    let on_a = sub(&a, "app:room").await;
    flush(&a, TTL).await;
    assert_eq!(take(&seen_a), vec![occupied("app:room")]);
    let on_b = sub(&b, "app:room").await;
    let also_b = sub(&b, "app:room").await;
    flush(&b, TTL).await;
    assert_eq!(take(&seen_b), vec![], "already occupied by node a");

    assert_eq!(a.occupancy(&topic("app:room")).await.ok(), Some(3));
    assert_eq!(b.occupancy(&topic("app:room")).await.ok(), Some(3));
    assert_eq!(
        a.occupied("app:").await.ok(),
        Some(vec![(topic("app:room"), 3)])
    );
    assert_eq!(b.occupied("zzz").await.ok(), Some(vec![]));

    drop(on_a);
    flush(&a, TTL).await;
    drop(on_b);
    flush(&b, TTL).await;
    assert_eq!(take(&seen_a), vec![]);
    assert_eq!(take(&seen_b), vec![], "node b still has a subscriber");
    assert_eq!(a.occupancy(&topic("app:room")).await.ok(), Some(1));

    drop(also_b);
    flush(&b, TTL).await;
    flush(&a, TTL).await;
    assert_eq!(take(&seen_b), vec![vacated("app:room")]);
    assert_eq!(take(&seen_a), vec![]);
    assert_eq!(a.occupied("").await.ok(), Some(vec![]));
}

#[tokio::test]
async fn concurrent_last_leaves_on_two_nodes_vacate_exactly_once() {
    let redis = RedisServer::start();
    let (a, seen_a) = node(&redis);
    let (b, seen_b) = node(&redis);
    for round in 0..20 {
        let name = format!("app:r{round}");
        let (on_a, on_b) = (sub(&a, &name).await, sub(&b, &name).await);
        let (x, y) = tokio::join!(flush(&a, TTL), flush(&b, TTL));
        assert!(x + y >= 1, "round {round}: nobody saw the topic occupied");
        drop((on_a, on_b));
        tokio::join!(flush(&a, TTL), flush(&b, TTL));
        let mut all = take(&seen_a);
        all.extend(take(&seen_b));
        all.retain(|(t, _)| *t == name);
        assert_eq!(all, vec![occupied(&name), vacated(&name)], "round {round}");
    }
}

#[tokio::test]
async fn a_node_that_stops_flushing_loses_its_share_and_gets_it_back_when_it_returns() {
    let redis = RedisServer::start();
    let (a, seen_a) = node(&redis);
    let (b, seen_b) = node(&redis);
    let short = Duration::from_millis(300);
    flush(&a, short).await;
    let _kept = sub(&a, "app:x").await;
    flush(&a, short).await;
    assert_eq!(take(&seen_a), vec![occupied("app:x")]);
    // Node a goes silent (as if it died) for longer than its TTL.
    tokio::time::sleep(short * 2).await;
    flush(&b, TTL).await;
    assert_eq!(take(&seen_b), vec![vacated("app:x")], "swept by node b");
    assert_eq!(b.occupancy(&topic("app:x")).await.ok(), Some(0));
    // Node a comes back: told that its share is gone, it sends it again.
    flush(&a, TTL).await;
    flush(&a, TTL).await;
    assert_eq!(take(&seen_a), vec![occupied("app:x")]);
    assert_eq!(b.occupancy(&topic("app:x")).await.ok(), Some(1));
    assert_eq!(take(&seen_b), vec![]);
}
