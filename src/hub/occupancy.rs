//! The hub's side of occupancy (see [`crate::broker::occupancy`]): this node's
//! subscriber counts of the changed topics flushed to the broker in the
//! background, the transitions it answers told to the listeners, and the queries
//! that add this node's exact counts to the other nodes' flushed ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Hub;
use crate::broker::{BrokerError, OccupancyChange};
use crate::sync::lock;
use crate::topic::Topic;

/// How often [`Hub::run_occupancy`] flushes: the longest a transition waits
/// before it is decided (and a remote count lags).
pub const OCCUPANCY_FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The most topics one flush tells the broker about (one Redis script); more wait
/// for the next flushes.
const FLUSH_LIMIT: usize = 1000;

/// How long a topic must have had no local subscriber before this node tells the
/// broker (see [`Hub::run_occupancy`]).
pub const OCCUPANCY_GRACE: Duration = Duration::from_secs(1);

impl Hub {
    /// Calls `listener` with every occupancy transition this node decides (each
    /// transition is decided by exactly one node of those sharing the broker),
    /// from the occupancy task. `listener` must not block.
    pub fn on_occupancy(&self, listener: impl Fn(&Topic, OccupancyChange) + Send + Sync + 'static) {
        lock(&self.inner.occupancy_listeners).push(Arc::new(listener));
    }

    /// How many subscribers `topic` has on every node: this node's now, the
    /// others' as they last flushed (at most [`OCCUPANCY_FLUSH_EVERY`] ago while
    /// they run their occupancy task).
    pub async fn occupancy(&self, topic: &Topic) -> Result<u64, BrokerError> {
        let remote = self.inner.broker.remote_occupancy(topic).await?;
        Ok(remote + self.local_occupancy(topic))
    }

    /// Every topic whose name starts with `prefix` that has subscribers on any
    /// node, with how many (as [`Hub::occupancy`] counts them), ordered by name.
    /// System topics are left out.
    pub async fn occupied(&self, prefix: &str) -> Result<Vec<(Topic, u64)>, BrokerError> {
        let remote = self.inner.broker.remote_occupied(prefix).await?;
        let mut all: BTreeMap<Topic, u64> = remote.into_iter().collect();
        let local: Vec<(Topic, u64)> = {
            let topics = lock(&self.inner.topics);
            topics
                .iter()
                .filter(|(topic, _)| !topic.is_system() && topic.as_str().starts_with(prefix))
                .map(|(topic, list)| (topic.clone(), Arc::clone(list)))
                .collect::<Vec<_>>()
        }
        .into_iter()
        .map(|(topic, list)| (topic, lock(&list).entries.len() as u64))
        .collect();
        for (topic, count) in local {
            *all.entry(topic).or_default() += count;
        }
        Ok(all.into_iter().filter(|(_, count)| *count > 0).collect())
    }

    /// Flushes this node's counts of the topics changed since the last flush (at
    /// most 1000 of them; the rest wait for the next flush) to the broker (keeping
    /// its share alive for `ttl`) and tells the listeners the transitions it
    /// answers; answers how many. On failure the changed topics
    /// stay marked, for the next flush.
    pub async fn flush_occupancy(&self, ttl: Duration) -> Result<usize, BrokerError> {
        self.flush_with_grace(ttl, Duration::ZERO, &mut HashMap::new())
            .await
    }

    /// [`Hub::flush_occupancy`], except that a topic whose local count fell to 0
    /// is told only once it stayed 0 for `grace` (`emptied`: since when each was
    /// seen at 0).
    async fn flush_with_grace(
        &self,
        ttl: Duration,
        grace: Duration,
        emptied: &mut HashMap<Topic, Instant>,
    ) -> Result<usize, BrokerError> {
        let _one_at_a_time = self.inner.flushing.lock().await;
        let changed: Vec<Topic> = {
            let mut set = lock(&self.inner.changed);
            if set.len() <= FLUSH_LIMIT {
                std::mem::take(&mut *set).into_iter().collect()
            } else {
                let batch: Vec<Topic> = set.iter().take(FLUSH_LIMIT).cloned().collect();
                for topic in &batch {
                    set.remove(topic);
                }
                batch
            }
        };
        let now = Instant::now();
        let mut held = Vec::new();
        let mut counts: Vec<(Topic, u64)> = Vec::with_capacity(changed.len());
        for topic in &changed {
            let count = self.take_change(topic);
            if count > 0 {
                emptied.remove(topic);
            } else if !grace.is_zero() {
                let since = *emptied.entry(topic.clone()).or_insert(now);
                if now.saturating_duration_since(since) < grace {
                    held.push(topic.clone());
                    continue;
                }
                emptied.remove(topic);
            }
            counts.push((topic.clone(), count));
        }
        if !held.is_empty() {
            lock(&self.inner.changed).extend(held);
        }
        let report = match self.inner.broker.occupancy_flush(counts, ttl).await {
            Ok(report) => report,
            Err(err) => {
                lock(&self.inner.changed).extend(changed);
                return Err(err);
            }
        };
        if report.resend {
            let all: Vec<Topic> = lock(&self.inner.topics)
                .keys()
                .filter(|topic| !topic.is_system())
                .cloned()
                .collect();
            lock(&self.inner.changed).extend(all);
        }
        if !report.changes.is_empty() {
            let listeners = lock(&self.inner.occupancy_listeners).clone();
            for (topic, change) in &report.changes {
                for listener in &listeners {
                    listener(topic, *change);
                }
            }
        }
        Ok(report.changes.len())
    }

    /// Flushes occupancy every `every` when a topic changed, and at least every
    /// fifth of `ttl` (keeping this node's share alive for `ttl`, and sweeping the
    /// shares of nodes that died), until `stop` is cancelled (see
    /// [`Hub::flush_occupancy`]). A topic whose last local subscriber left is told
    /// only once it had none for `grace` ([`OCCUPANCY_GRACE`]): a long-poll
    /// between two polls, or a page reloading, does not vacate its channel.
    pub async fn run_occupancy(
        self,
        every: Duration,
        ttl: Duration,
        grace: Duration,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let keep_alive = (ttl / 5).max(every);
        let mut flushed: Option<Instant> = None;
        let mut emptied = HashMap::new();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let due = flushed.is_none_or(|at| at.elapsed() >= keep_alive);
            if !due && lock(&self.inner.changed).is_empty() {
                continue;
            }
            match self.flush_with_grace(ttl, grace, &mut emptied).await {
                Ok(_) => flushed = Some(Instant::now()),
                Err(err) => tracing::debug!(error = %err, "occupancy flush failed; retrying"),
            }
        }
    }

    /// [`local_occupancy`](Self::local_occupancy), and clears the topic's mark:
    /// its next change marks it again.
    fn take_change(&self, topic: &Topic) -> u64 {
        let list = lock(&self.inner.topics).get(topic).cloned();
        list.map_or(0, |list| {
            let mut list = lock(&list);
            list.marked = false;
            list.entries.len() as u64
        })
    }

    /// How many subscribers `topic` has on this node (those still closing
    /// included).
    fn local_occupancy(&self, topic: &Topic) -> u64 {
        let list = lock(&self.inner.topics).get(topic).cloned();
        list.map_or(0, |list| lock(&list).entries.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::hub::{HubConfig, Sink};
    use crate::topic::Push;

    struct Quiet;

    impl Sink for Quiet {
        fn push(&self, _push: &Arc<Push>) -> bool {
            true
        }
        fn lagged(&self) {}
    }

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_flush_tells_at_most_a_thousand_topics_and_the_next_ones_the_rest() {
        let hub = Hub::new(HubConfig::default());
        let mut kept = Vec::new();
        for n in 0..1500 {
            let pending = hub
                .subscribe(topic(&format!("many:{n}")), Arc::new(Quiet), None, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            kept.push(pending.go_live().unwrap_or_else(|e| panic!("{e}")));
        }
        let ttl = Duration::from_secs(5);
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(FLUSH_LIMIT));
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(500));
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(0));
    }

    #[tokio::test]
    async fn a_topic_is_vacated_only_after_it_stayed_empty_for_the_grace() {
        let hub = Hub::new(HubConfig::default());
        let (ttl, grace) = (Duration::from_secs(5), Duration::from_millis(200));
        let mut emptied = HashMap::new();
        let mut flush = async |hub: &Hub| {
            hub.flush_with_grace(ttl, grace, &mut emptied)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let sub = async |hub: &Hub| {
            hub.subscribe(topic("poll:me"), Arc::new(Quiet), None, None)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .go_live()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let first = sub(&hub).await;
        assert_eq!(flush(&hub).await, 1, "occupied");
        drop(first);
        assert_eq!(flush(&hub).await, 0, "empty for less than the grace");
        let again = sub(&hub).await;
        assert_eq!(flush(&hub).await, 0, "back before the grace ended");
        drop(again);
        assert_eq!(flush(&hub).await, 0);
        tokio::time::sleep(grace + Duration::from_millis(50)).await;
        assert_eq!(flush(&hub).await, 1, "vacated once the grace passed");
        assert_eq!(flush(&hub).await, 0);
    }

    #[tokio::test]
    async fn flushes_report_each_transition_once_and_counts_are_exact_locally() {
        let hub = Hub::new(HubConfig::default());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        hub.on_occupancy(move |topic, change| {
            lock(&record).push((topic.to_string(), change));
        });
        let ttl = Duration::from_secs(5);
        let sub = |name: &str| {
            let hub = hub.clone();
            let name = name.to_owned();
            async move {
                hub.subscribe(topic(&name), Arc::new(Quiet), None, None)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"))
                    .go_live()
                    .unwrap_or_else(|e| panic!("{e}"))
            }
        };
        let a1 = sub("app:a").await;
        let a2 = sub("app:a").await;
        let b = sub("other:b").await;
        assert_eq!(hub.occupancy(&topic("app:a")).await.ok(), Some(2));
        assert_eq!(
            hub.occupied("app:").await.ok(),
            Some(vec![(topic("app:a"), 2)])
        );
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(2));
        drop(a1);
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(0), "one left");
        drop(a2);
        drop(b);
        // A subscriber that comes and goes between two flushes changes nothing.
        drop(sub("app:c").await);
        assert_eq!(hub.flush_occupancy(ttl).await.ok(), Some(2));
        assert_eq!(hub.occupancy(&topic("app:a")).await.ok(), Some(0));
        let mut seen = lock(&seen).clone();
        seen[..2].sort_by(|x, y| x.0.cmp(&y.0));
        seen[2..].sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(
            seen,
            vec![
                ("app:a".to_owned(), OccupancyChange::Occupied),
                ("other:b".to_owned(), OccupancyChange::Occupied),
                ("app:a".to_owned(), OccupancyChange::Vacated),
                ("other:b".to_owned(), OccupancyChange::Vacated),
            ]
        );
    }
}
