//! [`MemoryBroker`]: the in-process broker, for one node. Nothing to install; history
//! and presence live in this process and are lost with it (a restart gives every
//! topic a new epoch, so clients learn that they cannot recover).
//!
//! Occupancy has one node to add up: a topic is occupied while this node's last
//! flushed count of it is above zero, and every transition is decided by the
//! flush that makes it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use futures_util::future::{self, BoxFuture};

use super::{Broker, BrokerError, Deliver, OccupancyChange, OccupancyReport, Recovery};
use crate::sync::lock;
use crate::topic::{Data, Epoch, HistoryConfig, Member, Position, Push, Topic};

/// How often, at most, idle topics are looked for and dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The in-process broker: offsets, history and presence in memory.
pub struct MemoryBroker {
    history: HistoryConfig,
    topics: Mutex<HashMap<Topic, Arc<Mutex<Log>>>>,
    hub: OnceLock<Weak<dyn Deliver>>,
    started: Instant,
    /// Milliseconds after `started` of the last sweep.
    last_sweep: AtomicU64,
    /// The occupied topics and their subscriber counts, as last flushed.
    occupied: Mutex<HashMap<Topic, u64>>,
}

/// One topic's stream.
struct Log {
    epoch: Epoch,
    last: u64,
    history: VecDeque<(Instant, Arc<Push>)>,
    /// Nodes (here: this one) with local subscribers.
    watchers: usize,
    members: HashMap<Arc<str>, Member>,
    /// Removed from the map: whoever holds it must look the topic up again.
    dropped: bool,
}

impl Log {
    fn new() -> Self {
        Self {
            epoch: Epoch::random(),
            last: 0,
            history: VecDeque::new(),
            watchers: 0,
            members: HashMap::new(),
            dropped: false,
        }
    }

    fn position(&self) -> Position {
        Position {
            epoch: self.epoch.clone(),
            offset: self.last,
        }
    }

    fn trim(&mut self, config: &HistoryConfig, now: Instant) {
        while self.history.len() > config.size {
            self.history.pop_front();
        }
        while let Some((at, _)) = self.history.front() {
            if now.saturating_duration_since(*at) > config.ttl {
                self.history.pop_front();
            } else {
                break;
            }
        }
    }

    fn idle(&self) -> bool {
        self.history.is_empty() && self.watchers == 0 && self.members.is_empty()
    }
}

impl MemoryBroker {
    /// A broker that keeps history as `history` says.
    pub fn new(history: HistoryConfig) -> Self {
        Self {
            history,
            topics: Mutex::new(HashMap::new()),
            hub: OnceLock::new(),
            started: Instant::now(),
            last_sweep: AtomicU64::new(0),
            occupied: Mutex::new(HashMap::new()),
        }
    }

    /// How many topics it holds (with history, subscribers or members).
    pub fn topic_count(&self) -> usize {
        lock(&self.topics).len()
    }

    /// Runs `f` on the topic's log, creating the topic when missing.
    fn with_log<R>(&self, topic: &Topic, f: impl FnOnce(&mut Log) -> R) -> R {
        self.maybe_sweep();
        let mut f = Some(f);
        loop {
            let log = Arc::clone(
                lock(&self.topics)
                    .entry(topic.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(Log::new()))),
            );
            let mut log = lock(&log);
            if log.dropped {
                continue; // swept between the lookup and the lock: look again
            }
            if let Some(f) = f.take() {
                return f(&mut log);
            }
        }
    }

    fn deliver(&self, push: Arc<Push>) {
        if let Some(hub) = self.hub.get().and_then(Weak::upgrade) {
            hub.deliver(push);
        }
    }

    /// Drops topics with no history, no watchers and no members, at most once a
    /// second.
    fn maybe_sweep(&self) {
        let now = Instant::now();
        let now_ms =
            u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < SWEEP_EVERY.as_millis() as u64
            || self
                .last_sweep
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let mut topics = lock(&self.topics);
        topics.retain(|_, log| {
            let mut log = lock(log);
            log.trim(&self.history, now);
            if log.idle() {
                log.dropped = true;
                false
            } else {
                true
            }
        });
    }
}

impl Broker for MemoryBroker {
    fn attach(&self, hub: Weak<dyn Deliver>) {
        let _ = self.hub.set(hub);
    }

    fn publish(&self, topic: &Topic, data: Data) -> BoxFuture<'_, Result<Position, BrokerError>> {
        let position = self.with_log(topic, |log| {
            log.last += 1;
            let push = Arc::new(Push::message(
                topic.clone(),
                log.epoch.clone(),
                log.last,
                data,
            ));
            if self.history.size > 0 {
                let now = Instant::now();
                log.history.push_back((now, Arc::clone(&push)));
                log.trim(&self.history, now);
            }
            // Still under the topic's lock: deliveries leave in offset order.
            self.deliver(push);
            log.position()
        });
        future::ready(Ok(position)).boxed()
    }

    fn recover(
        &self,
        topic: &Topic,
        since: Option<Position>,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let recovery = self.with_log(topic, |log| {
            log.trim(&self.history, Instant::now());
            let position = log.position();
            let Some(since) = since else {
                return Recovery {
                    position,
                    recovered: None,
                    messages: Vec::new(),
                };
            };
            let oldest = log
                .history
                .front()
                .and_then(|(_, push)| push.offset())
                .unwrap_or(log.last + 1);
            let coverable =
                since.epoch == log.epoch && since.offset <= log.last && oldest <= since.offset + 1;
            let messages = if coverable {
                log.history
                    .iter()
                    .filter(|(_, push)| push.offset().is_some_and(|o| o > since.offset))
                    .map(|(_, push)| Arc::clone(push))
                    .collect()
            } else {
                Vec::new()
            };
            Recovery {
                position,
                recovered: Some(coverable),
                messages,
            }
        });
        future::ready(Ok(recovery)).boxed()
    }

    fn kept(&self, topic: &Topic) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let recovery = self.with_log(topic, |log| {
            log.trim(&self.history, Instant::now());
            let first = log
                .history
                .front()
                .and_then(|(_, push)| push.offset())
                .unwrap_or(log.last + 1);
            Recovery {
                position: log.position(),
                recovered: Some(first == 1),
                messages: log.history.iter().map(|(_, p)| Arc::clone(p)).collect(),
            }
        });
        future::ready(Ok(recovery)).boxed()
    }

    fn watch(&self, topic: &Topic) {
        self.with_log(topic, |log| log.watchers += 1);
    }

    fn unwatch(&self, topic: &Topic) {
        self.with_log(topic, |log| log.watchers = log.watchers.saturating_sub(1));
    }

    fn join(&self, topic: &Topic, member: Member) {
        self.with_log(topic, |log| {
            log.members
                .insert(Arc::clone(&member.client), member.clone());
            self.deliver(Arc::new(Push::presence(topic.clone(), true, member)));
        });
    }

    fn leave(&self, topic: &Topic, client: &str) {
        self.with_log(topic, |log| {
            if let Some(member) = log.members.remove(client) {
                self.deliver(Arc::new(Push::presence(topic.clone(), false, member)));
            }
        });
    }

    fn members(&self, topic: &Topic) -> BoxFuture<'_, Result<Vec<Member>, BrokerError>> {
        let mut members = self.with_log(topic, |log| {
            log.members.values().cloned().collect::<Vec<_>>()
        });
        members.sort_by(|a, b| a.client.cmp(&b.client));
        future::ready(Ok(members)).boxed()
    }

    fn ready(&self) -> BoxFuture<'_, bool> {
        future::ready(true).boxed()
    }

    fn occupancy_flush(
        &self,
        counts: Vec<(Topic, u64)>,
        _ttl: Duration,
    ) -> BoxFuture<'_, Result<OccupancyReport, BrokerError>> {
        let mut occupied = lock(&self.occupied);
        let mut changes = Vec::new();
        for (topic, count) in counts {
            let was = if count > 0 {
                occupied.insert(topic.clone(), count).is_some()
            } else {
                occupied.remove(&topic).is_some()
            };
            match (was, count > 0) {
                (false, true) => changes.push((topic, OccupancyChange::Occupied)),
                (true, false) => changes.push((topic, OccupancyChange::Vacated)),
                _ => {}
            }
        }
        future::ready(Ok(OccupancyReport {
            changes,
            resend: false,
        }))
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    async fn flush(broker: &MemoryBroker, counts: &[(&str, u64)]) -> Vec<(Topic, OccupancyChange)> {
        let counts = counts.iter().map(|(t, n)| (topic(t), *n)).collect();
        let report = broker
            .occupancy_flush(counts, Duration::from_secs(5))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!report.resend, "the in-process broker never forgets a node");
        report.changes
    }

    #[tokio::test]
    async fn a_topic_is_occupied_by_its_first_subscriber_and_vacated_by_its_last_once() {
        let broker = MemoryBroker::new(HistoryConfig::default());
        assert_eq!(
            flush(&broker, &[("a", 1), ("b", 0)]).await,
            vec![(topic("a"), OccupancyChange::Occupied)],
            "b never had a subscriber: no transition"
        );
        assert_eq!(
            flush(&broker, &[("a", 3)]).await,
            vec![],
            "more subscribers: still occupied"
        );
        assert_eq!(flush(&broker, &[]).await, vec![], "nothing changed");
        assert_eq!(
            flush(&broker, &[("a", 0), ("b", 2)]).await,
            vec![
                (topic("a"), OccupancyChange::Vacated),
                (topic("b"), OccupancyChange::Occupied)
            ]
        );
        assert_eq!(flush(&broker, &[("a", 0)]).await, vec![], "vacated once");
        assert_eq!(
            flush(&broker, &[("a", 1), ("b", 0)]).await,
            vec![
                (topic("a"), OccupancyChange::Occupied),
                (topic("b"), OccupancyChange::Vacated)
            ]
        );
    }

    #[tokio::test]
    async fn kept_is_every_message_history_holds_and_whether_it_is_the_whole_stream() {
        let broker = MemoryBroker::new(HistoryConfig {
            size: 3,
            ..HistoryConfig::default()
        });
        let t = topic("k");
        let kept = broker.kept(&t).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((kept.position.offset, kept.recovered), (0, Some(true)));
        assert!(kept.messages.is_empty());
        for n in 1..=3 {
            let _ = broker.publish(&t, Data::text(&n.to_string())).await;
        }
        let kept = broker.kept(&t).await.unwrap_or_else(|e| panic!("{e}"));
        let offsets: Vec<_> = kept.messages.iter().filter_map(|p| p.offset()).collect();
        assert_eq!((offsets, kept.recovered), (vec![1, 2, 3], Some(true)));
        let _ = broker.publish(&t, Data::text("4")).await;
        let kept = broker.kept(&t).await.unwrap_or_else(|e| panic!("{e}"));
        let offsets: Vec<_> = kept.messages.iter().filter_map(|p| p.offset()).collect();
        assert_eq!((offsets, kept.recovered), (vec![2, 3, 4], Some(false)));
        assert_eq!(kept.position.offset, 4);
    }

    #[tokio::test]
    async fn one_node_has_no_remote_subscribers() {
        let broker = MemoryBroker::new(HistoryConfig::default());
        flush(&broker, &[("a", 2)]).await;
        let remote = broker.remote_occupancy(&topic("a")).await;
        assert_eq!(remote.ok(), Some(0));
        let listed = broker.remote_occupied("").await;
        assert_eq!(listed.ok(), Some(Vec::new()));
    }
}
