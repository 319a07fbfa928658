//! The [`Hub`]: topics, fan-out to local subscribers, and the way in to history and
//! presence.
//!
//! A topic exists while someone uses it: the hub keeps a list of local subscribers
//! per topic (created with the first, dropped with the last), and the
//! [`Broker`] keeps what must be shared between nodes:
//! offsets, history, presence. A publish goes to the broker, which assigns the next
//! offset and hands the message back to every node's hub; the hub then offers one
//! shared [`Push`] to every subscriber's [`Sink`] without waiting on any of them.
//!
//! # Subscribing without gaps
//!
//! Subscribing takes two steps so that nothing published meanwhile is lost or
//! doubled:
//! 1. [`Hub::subscribe`] registers the sink as *pending* (live messages are buffered
//!    for it, not delivered) and then asks the broker for the topic's position and,
//!    with `since`, the missed messages: a [`Pending`] subscription;
//! 2. the transport sends its reply and the missed messages at its own pace, then
//!    calls [`Pending::go_live`], which delivers the buffered messages newer than
//!    the last recovered one and switches the sink to live delivery, under the
//!    topic's lock so no live message can overtake them.
//!
//! # Occupancy
//!
//! Every subscribe and unsubscribe of a topic (any transport) marks it *changed*;
//! the hub's occupancy task ([`Hub::run_occupancy`], in `occupancy.rs`) hands the
//! broker this node's counts of the changed topics every 100 ms (a count that fell
//! to 0 once it stayed 0 for a second), and the broker
//! answers the cluster-wide transitions this node decided, which the hub reports to
//! its listeners ([`Hub::on_occupancy`]). [`Hub::occupancy`] and [`Hub::occupied`]
//! add this node's exact counts to the other nodes' flushed ones.
//!
//! # Journals
//!
//! A [`Journal`] (in `journal.rs`) keeps a copy of every message of the topics
//! under a prefix in one topic: after publishing on such a topic,
//! [`Hub::publish`] appends the entry `{"topic":…,"data":…}` to the journal
//! through the broker, so that the journal has its own offsets and history, the
//! same on every node. [`Hub::publish_journal`] appends to the journal only, and
//! [`Hub::kept`] answers everything a topic's history still holds (how a Mercure
//! subscriber's `Last-Event-ID` is found in the journal).

pub mod journal;
pub(crate) mod mailbox;
mod occupancy;

pub use journal::Journal;

pub use occupancy::{OCCUPANCY_FLUSH_EVERY, OCCUPANCY_GRACE};

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use slab::Slab;

use crate::broker::{
    Broker, BrokerError, Deliver, MemoryBroker, NodeInfo, OccupancyChange, Recovery,
};
use crate::ops::Metrics;
use crate::sync::lock;
use crate::topic::{Data, Epoch, HistoryConfig, Member, Position, Push, PushKind, Topic};

/// The hub's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// History per topic.
    pub history: HistoryConfig,
    /// Namespaces whose topics track presence (`"chat"` for `chat:lobby`; `""` for
    /// topics without a namespace).
    pub presence: Vec<String>,
    /// The largest published value, in bytes of JSON.
    pub max_data_size: usize,
    /// How many live messages a subscription may buffer while it is still sending
    /// what it recovered; beyond that it is dropped as a slow consumer.
    pub pending_limit: usize,
    /// Topic name prefixes that clients of pushwire's own protocol (`/ws`, SSE,
    /// long-poll) may use only with a token that grants them: without token checks
    /// they are refused (403). The topics of Pusher apps' private, presence and
    /// user channels are guarded this way (their own protocol authorizes them);
    /// the publish API, with its key, may publish to them.
    pub guarded: Vec<String>,
    /// Journals: every message published on a topic under a journal's prefix is
    /// also appended, as an entry, to the journal's topic (see [`journal`]).
    /// None by default.
    pub journals: Vec<Journal>,
}

impl HubConfig {
    /// Whether `topic` starts with one of the [`guarded`](Self::guarded) prefixes.
    pub fn guards(&self, topic: &str) -> bool {
        guards(&self.guarded, topic)
    }
}

/// Whether `topic` starts with one of `prefixes` (what [`HubConfig::guards`] and
/// the session's [`Rules`](crate::protocol::session::Rules) check).
pub fn guards(prefixes: &[String], topic: &str) -> bool {
    prefixes
        .iter()
        .any(|prefix| topic.starts_with(prefix.as_str()))
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            history: HistoryConfig::default(),
            presence: Vec::new(),
            max_data_size: 64 * 1024,
            pending_limit: 10_000,
            guarded: Vec::new(),
            journals: Vec::new(),
        }
    }
}

/// Where the hub delivers a subscriber's messages: a WebSocket's outbound queue, an
/// SSE stream, a waiting long-poll.
pub trait Sink: Send + Sync + 'static {
    /// Offers one message or presence event, without waiting. Returns `false` when
    /// the subscriber is gone or cannot keep up; it then gets nothing more.
    fn push(&self, push: &Arc<Push>) -> bool;

    /// The subscriber fell behind while still subscribing (its buffer of live
    /// messages overflowed) and gets nothing more.
    fn lagged(&self);

    /// The broker lost messages this subscriber should have had; it gets nothing
    /// more and should resubscribe from its last position (where it learns whether
    /// it can recover). By default the same as [`lagged`](Sink::lagged).
    fn lost(&self) {
        self.lagged();
    }
}

/// Why a publish was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The value is larger than [`HubConfig::max_data_size`].
    #[error("data is {size} bytes; at most {max} allowed")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The broker could not publish.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// The subscription was dropped because its subscriber fell behind.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("slow consumer: fell behind while subscribing")]
pub struct Lagged;

/// Topics and their local subscribers. Cheap to clone: clones share the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    config: HubConfig,
    broker: Arc<dyn Broker>,
    topics: Mutex<HashMap<Topic, Arc<Mutex<Subscribers>>>>,
    /// A random prefix that makes client ids unique across nodes.
    node: Epoch,
    next_client: AtomicU64,
    /// The last offset given out on each system topic (node-local, see
    /// [`Hub::publish_system`]).
    system_offsets: Mutex<HashMap<Topic, u64>>,
    /// What the hub records, once an app with metrics serves it.
    metrics: OnceLock<Arc<Metrics>>,
    /// Topics whose local subscriber count changed since the last occupancy flush.
    changed: Mutex<HashSet<Topic>>,
    /// Who is told about occupancy transitions ([`Hub::on_occupancy`]).
    occupancy_listeners: Mutex<Vec<Arc<OccupancyListener>>>,
    /// One occupancy flush at a time, so that counts reach the broker in order.
    flushing: tokio::sync::Mutex<()>,
}

/// A listener of occupancy transitions (see [`Hub::on_occupancy`]).
type OccupancyListener = dyn Fn(&Topic, OccupancyChange) + Send + Sync;

/// One topic's local subscribers.
#[derive(Default)]
struct Subscribers {
    entries: Slab<Entry>,
    /// The topic is in the hub's changed set since the last occupancy flush (so
    /// that churn on a busy topic touches that set once per flush).
    marked: bool,
}

struct Entry {
    sink: Arc<dyn Sink>,
    /// `Some` while subscribing: live messages wait here.
    pending: Option<Vec<Arc<Push>>>,
    /// The sink refused a message; nothing more is offered to it.
    dead: bool,
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Default for Hub {
    fn default() -> Self {
        Self::new(HubConfig::default())
    }
}

impl Hub {
    /// A hub with the in-process broker.
    pub fn new(config: HubConfig) -> Self {
        let broker = Arc::new(MemoryBroker::new(config.history.clone()));
        Self::with_broker(config, broker)
    }

    /// A hub on `broker`.
    pub fn with_broker(config: HubConfig, broker: Arc<dyn Broker>) -> Self {
        let inner = Arc::new(Inner {
            config,
            broker,
            topics: Mutex::new(HashMap::new()),
            node: Epoch::random(),
            next_client: AtomicU64::new(1),
            system_offsets: Mutex::new(HashMap::new()),
            metrics: OnceLock::new(),
            changed: Mutex::new(HashSet::new()),
            occupancy_listeners: Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        inner.broker.attach(weak);
        Self { inner }
    }

    /// The settings.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Records this hub's work (subscriptions, topics, publishes, deliveries,
    /// broker calls, recoveries) into `metrics` from now on. The first call wins:
    /// a hub reports into one set of metrics.
    pub fn attach_metrics(&self, metrics: Arc<Metrics>) {
        let _ = self.inner.metrics.set(metrics);
    }

    /// The metrics this hub records into, when an app with metrics serves it.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.inner.metrics.get()
    }

    /// A client id unique across nodes, such as `Xk2p9QaB-17`.
    pub fn new_client_id(&self) -> Arc<str> {
        let n = self.inner.next_client.fetch_add(1, Ordering::Relaxed);
        Arc::from(format!("{}-{n}", self.inner.node))
    }

    /// Whether `topic`'s namespace tracks presence.
    pub fn presence_enabled(&self, topic: &Topic) -> bool {
        let namespace = topic.namespace();
        self.inner.config.presence.iter().any(|n| n == namespace)
    }

    /// How many topics have local subscribers.
    pub fn topic_count(&self) -> usize {
        lock(&self.inner.topics).len()
    }

    /// This node's id: the random prefix of its client ids, new on every start.
    pub fn node_id(&self) -> &Epoch {
        &self.inner.node
    }

    /// Every topic with local subscribers (system topics left out) and how many
    /// it has, the most subscribed first, at most `limit` of them.
    pub fn topic_counts(&self, limit: usize) -> Vec<(Topic, usize)> {
        let topics: Vec<(Topic, Arc<Mutex<Subscribers>>)> = lock(&self.inner.topics)
            .iter()
            .filter(|(topic, _)| !topic.is_system())
            .map(|(topic, list)| (topic.clone(), Arc::clone(list)))
            .collect();
        let mut counts: Vec<(Topic, usize)> = topics
            .into_iter()
            .map(|(topic, list)| {
                let live = lock(&list).entries.iter().filter(|(_, e)| !e.dead).count();
                (topic, live)
            })
            .collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(limit);
        counts
    }

    /// Delivers `data` on the system topic `topic` to this node's subscribers
    /// only: not through the broker, kept in no history; each system topic counts
    /// its own offsets (in this node's epoch). Answers the position, or `None` when
    /// `topic` is not a system topic.
    pub fn publish_system(&self, topic: &Topic, data: Data) -> Option<Position> {
        if !topic.is_system() {
            return None;
        }
        let offset = {
            let mut offsets = lock(&self.inner.system_offsets);
            let last = offsets.entry(topic.clone()).or_insert(0);
            *last += 1;
            *last
        };
        let epoch = self.inner.node.clone();
        let push = Push::message(topic.clone(), epoch.clone(), offset, data);
        self.inner.deliver(Arc::new(push));
        Some(Position { epoch, offset })
    }

    /// How many local subscribers `topic` has (not counting those dropped for
    /// falling behind whose connections are still closing).
    pub fn subscriber_count(&self, topic: &Topic) -> usize {
        let subscribers = lock(&self.inner.topics).get(topic).cloned();
        subscribers.map_or(0, |s| {
            lock(&s).entries.iter().filter(|(_, e)| !e.dead).count()
        })
    }

    /// Publishes `data` on `topic` and answers its position.
    ///
    /// When `topic` is under a journal's prefix ([`HubConfig::journals`]), the
    /// message is then appended to the journal as an entry. If that append fails,
    /// the error is answered although the message *did* reach `topic` (its
    /// subscribers have it, and history keeps it) but is missing from the journal;
    /// the metric `pushwire_journal_failures_total` counts such publishes.
    pub async fn publish(&self, topic: &Topic, data: Data) -> Result<Position, PublishError> {
        self.check_size(&data)?;
        let journaled = self.inner.config.journals.iter().any(|j| j.keeps(topic));
        let entry = journaled.then(|| journal::entry(topic, &data));
        let size = data.len();
        let position = self.broker_publish(topic, data).await?;
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.published(size);
        }
        if let Some(entry) = entry {
            for journal in self.inner.config.journals.iter().filter(|j| j.keeps(topic)) {
                if let Err(err) = self.broker_publish(&journal.topic, entry.clone()).await {
                    tracing::warn!(%topic, journal = %journal.topic, error = %err, "a message reached its topic but not its journal");
                    if let Some(metrics) = self.inner.metrics.get() {
                        metrics.journal_failure();
                    }
                    return Err(err.into());
                }
            }
        }
        Ok(position)
    }

    /// Appends `data`, published on `topic`, to the journal topic `journal` only:
    /// `topic`'s own subscribers and history never see it (Mercure's private
    /// updates). Answers the entry's position in the journal. `data` is limited by
    /// [`HubConfig::max_data_size`], the entry is not.
    pub async fn publish_journal(
        &self,
        journal: &Topic,
        topic: &Topic,
        data: Data,
    ) -> Result<Position, PublishError> {
        self.check_size(&data)?;
        let size = data.len();
        let position = self
            .broker_publish(journal, journal::entry(topic, &data))
            .await?;
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.published(size);
        }
        Ok(position)
    }

    /// `topic`'s position and every message its history still holds, oldest
    /// first; `recovered` is `Some(true)` when that history starts at the topic's
    /// first message (nothing was trimmed), `Some(false)` otherwise.
    pub async fn kept(&self, topic: &Topic) -> Result<Recovery, BrokerError> {
        let started = Instant::now();
        let result = self.inner.broker.kept(topic).await;
        if let Some(metrics) = self.inner.metrics.get() {
            metrics.broker_call(started.elapsed(), result.is_ok());
        }
        result
    }

    /// Refuses data larger than [`HubConfig::max_data_size`].
    fn check_size(&self, data: &Data) -> Result<(), PublishError> {
        let max = self.inner.config.max_data_size;
        if data.len() > max {
            return Err(PublishError::TooLarge {
                size: data.len(),
                max,
            });
        }
        Ok(())
    }

    /// One publish through the broker, timed into the metrics.
    async fn broker_publish(&self, topic: &Topic, data: Data) -> Result<Position, BrokerError> {
        let Some(metrics) = self.inner.metrics.get() else {
            return self.inner.broker.publish(topic, data).await;
        };
        let started = Instant::now();
        let result = self.inner.broker.publish(topic, data).await;
        metrics.broker_call(started.elapsed(), result.is_ok());
        result
    }

    /// Announces this node as `me` to the nodes sharing its broker for `ttl`, and
    /// answers every node alive now (see [`Broker::heartbeat`]).
    pub async fn heartbeat(
        &self,
        me: &NodeInfo,
        ttl: std::time::Duration,
    ) -> Result<Vec<NodeInfo>, BrokerError> {
        self.inner.broker.heartbeat(me, ttl).await
    }

    /// Whether the broker can serve requests now (what `/readyz` answers).
    pub async fn ready(&self) -> bool {
        self.inner.broker.ready().await
    }

    /// Who is present on `topic`.
    pub async fn members(&self, topic: &Topic) -> Result<Vec<Member>, BrokerError> {
        self.inner.broker.members(topic).await
    }

    /// Makes `member` present on `topic` apart from any subscription, until the
    /// answered [`Membership`] is dropped: for clients whose membership outlives
    /// each request (long-polls) or is kept beside their subscriptions (SSE
    /// streams). `None` when `topic`'s namespace does not track presence.
    pub fn join(&self, topic: &Topic, member: Member) -> Option<Membership> {
        if !self.presence_enabled(topic) {
            return None;
        }
        let client = Arc::clone(&member.client);
        self.inner.broker.join(topic, member);
        Some(Membership {
            hub: Arc::clone(&self.inner),
            topic: topic.clone(),
            client,
        })
    }

    /// Starts a subscription of `sink` to `topic` (step 1 of 2, see the module
    /// docs): live messages are buffered until [`Pending::go_live`]. With `since`,
    /// the answer holds what the sink missed. `member` is announced on topics with
    /// presence once the subscription is live.
    pub async fn subscribe(
        &self,
        topic: Topic,
        sink: Arc<dyn Sink>,
        since: Option<Position>,
        member: Option<Member>,
    ) -> Result<Pending, BrokerError> {
        let metrics = self.inner.metrics.get();
        let (subscribers, key, first) = {
            let mut topics = lock(&self.inner.topics);
            let topic_count = topics.len();
            let subscribers = Arc::clone(topics.entry(topic.clone()).or_default());
            if let Some(metrics) = metrics {
                metrics.subscriptions_add(1);
                if topics.len() > topic_count {
                    metrics.topics_add(1);
                }
            }
            let mut list = lock(&subscribers);
            let first = list.entries.is_empty();
            let key = list.entries.insert(Entry {
                sink,
                pending: Some(Vec::new()),
                dead: false,
            });
            let mark = !list.marked && !topic.is_system();
            list.marked |= mark;
            drop(list);
            if mark {
                lock(&self.inner.changed).insert(topic.clone());
            }
            (subscribers, key, first)
        };
        // Broker calls happen outside the hub's locks: the broker delivers into the
        // hub while holding its own. System topics are this node's alone.
        let system = topic.is_system();
        if first && !system {
            self.inner.broker.watch(&topic);
        }
        let member = member.filter(|_| self.presence_enabled(&topic));
        let subscription = Subscription {
            hub: Arc::clone(&self.inner),
            topic,
            subscribers,
            key,
            member: None,
        };
        let recovery = if system {
            self.system_recovery(&subscription.topic, since)
        } else {
            let started = metrics.map(|_| Instant::now());
            let recovery = self.inner.broker.recover(&subscription.topic, since).await;
            if let (Some(metrics), Some(started)) = (metrics, started) {
                metrics.broker_call(started.elapsed(), recovery.is_ok());
                if let Ok(Recovery {
                    recovered: Some(recovered),
                    ..
                }) = &recovery
                {
                    metrics.recovery(*recovered);
                }
            }
            recovery?
        };
        Ok(Pending {
            subscription,
            recovery,
            member,
        })
    }

    /// A system topic's position; it keeps no history, so nothing is recovered.
    fn system_recovery(&self, topic: &Topic, since: Option<Position>) -> Recovery {
        let offset = lock(&self.inner.system_offsets)
            .get(topic)
            .copied()
            .unwrap_or(0);
        let position = Position {
            epoch: self.inner.node.clone(),
            offset,
        };
        Recovery {
            recovered: since.map(|since| since == position),
            position,
            messages: Vec::new(),
        }
    }
}

impl Deliver for Inner {
    fn deliver(&self, push: Arc<Push>) {
        let Some(subscribers) = lock(&self.topics).get(push.topic()).cloned() else {
            return;
        };
        // Counted once per message, not once per subscriber: no shared counter
        // is touched inside the loop. The node's own system topics (the admin
        // page's snapshots) are not counted.
        let started = self
            .metrics
            .get()
            .filter(|_| !push.topic().is_system())
            .map(|_| Instant::now());
        let limit = self.config.pending_limit;
        let mut list = lock(&subscribers);
        let mut delivered = 0usize;
        for (_, entry) in &mut list.entries {
            if entry.dead {
                continue;
            }
            match &mut entry.pending {
                Some(buffer) if buffer.len() >= limit => {
                    entry.dead = true;
                    entry.sink.lagged();
                }
                Some(buffer) => buffer.push(Arc::clone(&push)),
                None => {
                    if entry.sink.push(&push) {
                        delivered += 1;
                    } else {
                        entry.dead = true;
                    }
                }
            }
        }
        drop(list);
        if let (Some(metrics), Some(started), Some(size)) =
            (self.metrics.get(), started, data_size(&push))
        {
            metrics.delivered(delivered, size, started.elapsed());
        }
    }

    fn lost(&self, topic: &Topic) {
        let Some(subscribers) = lock(&self.topics).get(topic).cloned() else {
            return;
        };
        let mut list = lock(&subscribers);
        for (_, entry) in &mut list.entries {
            if !entry.dead {
                entry.dead = true;
                entry.sink.lost();
            }
        }
    }
}

/// The data size of a message push; `None` for a presence event (not a message).
fn data_size(push: &Push) -> Option<usize> {
    match push.kind() {
        PushKind::Message { data, .. } => Some(data.len()),
        PushKind::Join(_) | PushKind::Leave(_) => None,
    }
}

/// A subscription between its two steps: registered, its recovery known, live
/// messages buffered. Dropping it unsubscribes.
pub struct Pending {
    subscription: Subscription,
    recovery: Recovery,
    member: Option<Member>,
}

impl Pending {
    /// The topic's position and what was recovered; send the messages, then call
    /// [`go_live`](Self::go_live).
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Takes the recovered messages out (to send them), leaving the rest.
    pub fn take_messages(&mut self) -> Vec<Arc<Push>> {
        std::mem::take(&mut self.recovery.messages)
    }

    /// Step 2: delivers the live messages buffered meanwhile that are newer than
    /// what was recovered, and switches to live delivery; then announces the member
    /// on presence topics.
    pub fn go_live(self) -> Result<Subscription, Lagged> {
        let Pending {
            mut subscription,
            recovery,
            member,
        } = self;
        let epoch = &recovery.position.epoch;
        let last = recovery
            .messages
            .last()
            .and_then(|push| push.offset())
            .unwrap_or(recovery.position.offset)
            .max(recovery.position.offset);
        {
            let mut list = lock(&subscription.subscribers);
            let Some(entry) = list.entries.get_mut(subscription.key) else {
                return Err(Lagged);
            };
            if entry.dead {
                return Err(Lagged);
            }
            let buffered = entry.pending.take().unwrap_or_default();
            let (mut messages, mut bytes) = (0, 0);
            for push in &buffered {
                let fresh = match push.position() {
                    Some(position) => position.epoch != *epoch || position.offset > last,
                    None => true,
                };
                if fresh && !entry.sink.push(push) {
                    entry.dead = true;
                    return Err(Lagged);
                }
                if let (true, Some(size)) = (fresh, data_size(push)) {
                    messages += 1;
                    bytes += size;
                }
            }
            if let Some(metrics) = subscription.hub.metrics.get() {
                metrics.delivered_late(messages, bytes);
            }
        }
        if let Some(member) = member {
            subscription.member = Some(Arc::clone(&member.client));
            subscription.hub.broker.join(&subscription.topic, member);
        }
        Ok(subscription)
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("topic", &self.subscription.topic)
            .field("recovery", &self.recovery)
            .finish_non_exhaustive()
    }
}

/// A live subscription. Dropping it unsubscribes (and, on presence topics, announces
/// that the member left).
pub struct Subscription {
    hub: Arc<Inner>,
    topic: Topic,
    subscribers: Arc<Mutex<Subscribers>>,
    key: usize,
    member: Option<Arc<str>>,
}

impl Subscription {
    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut topics = lock(&self.hub.topics);
            let mut list = lock(&self.subscribers);
            let removed = list.entries.try_remove(self.key).is_some();
            let last = list.entries.is_empty();
            let mark = removed && !list.marked && !self.topic.is_system();
            list.marked |= mark;
            drop(list);
            let gone = last && topics.remove(&self.topic).is_some();
            if mark {
                lock(&self.hub.changed).insert(self.topic.clone());
            }
            if let Some(metrics) = self.hub.metrics.get() {
                if removed {
                    metrics.subscriptions_add(-1);
                }
                if gone {
                    metrics.topics_add(-1);
                }
            }
            last
        };
        if let Some(client) = &self.member {
            self.hub.broker.leave(&self.topic, client);
        }
        if last && !self.topic.is_system() {
            self.hub.broker.unwatch(&self.topic);
        }
    }
}

/// A member present on a topic (see [`Hub::join`]). Dropping it announces that the
/// member left.
pub struct Membership {
    hub: Arc<Inner>,
    topic: Topic,
    client: Arc<str>,
}

impl Membership {
    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }
}

impl fmt::Debug for Membership {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Membership")
            .field("topic", &self.topic)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.broker.leave(&self.topic, &self.client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that records offsets and can be told to refuse.
    #[derive(Default)]
    struct Recorder {
        offsets: Mutex<Vec<u64>>,
        refuse: std::sync::atomic::AtomicBool,
        lagged: std::sync::atomic::AtomicBool,
    }

    impl Sink for Recorder {
        fn push(&self, push: &Arc<Push>) -> bool {
            if self.refuse.load(Ordering::Relaxed) {
                return false;
            }
            lock(&self.offsets).extend(push.offset());
            true
        }
        fn lagged(&self) {
            self.lagged.store(true, Ordering::Relaxed);
        }
    }

    fn topic() -> Topic {
        Topic::new("t").unwrap_or_else(|e| panic!("{e}"))
    }

    async fn publish(hub: &Hub, n: u64) -> Position {
        let data = Data::text(&n.to_string());
        hub.publish(&topic(), data)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn messages_published_while_subscribing_follow_the_recovered_ones_once() {
        let hub = Hub::default();
        for n in 1..=3 {
            publish(&hub, n).await;
        }
        let position = publish(&hub, 4).await;
        let recorder = Arc::new(Recorder::default());
        let since = Position {
            epoch: position.epoch.clone(),
            offset: 2,
        };
        let mut pending = hub
            .subscribe(topic(), recorder.clone(), Some(since), None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending.recovery().recovered, Some(true));
        let recovered: Vec<u64> = pending
            .take_messages()
            .iter()
            .filter_map(|p| p.offset())
            .collect();
        assert_eq!(recovered, vec![3, 4]);
        // Published while the transport sends 3 and 4: buffered, not delivered.
        publish(&hub, 5).await;
        publish(&hub, 6).await;
        assert!(lock(&recorder.offsets).is_empty());
        let subscription = pending.go_live().unwrap_or_else(|e| panic!("{e}"));
        publish(&hub, 7).await;
        assert_eq!(*lock(&recorder.offsets), vec![5, 6, 7]);
        drop(subscription);
        publish(&hub, 8).await;
        assert_eq!(*lock(&recorder.offsets), vec![5, 6, 7]);
        assert_eq!(
            hub.topic_count(),
            0,
            "the last subscriber took the topic with it"
        );
    }

    #[tokio::test]
    async fn system_topics_are_delivered_locally_with_their_own_offsets_and_not_listed() {
        let hub = Hub::default();
        let system = Topic::system("admin").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(system.as_str(), "$sys/admin");
        assert_eq!(hub.publish_system(&topic(), Data::text("x")), None);
        let before = hub.publish_system(&system, Data::text("0"));
        assert_eq!(
            before.map(|p| p.offset),
            Some(1),
            "nobody listens; counted anyway"
        );
        let recorder = Arc::new(Recorder::default());
        let pending = hub
            .subscribe(system.clone(), recorder.clone(), None, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pending.recovery().position.offset, 1);
        assert_eq!(&pending.recovery().position.epoch, hub.node_id());
        let live = pending.go_live().unwrap_or_else(|e| panic!("{e}"));
        let reader = Arc::new(Recorder::default());
        let _other = hub
            .subscribe(topic(), reader, None, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .go_live();
        hub.publish_system(&system, Data::text("1"));
        hub.publish_system(&system, Data::text("2"));
        assert_eq!(*lock(&recorder.offsets), vec![2, 3]);
        assert_eq!(hub.topic_counts(10), vec![(topic(), 1)]);
        drop(live);
    }

    #[tokio::test]
    async fn a_pending_subscriber_that_buffers_too_much_is_dropped_as_lagged() {
        let hub = Hub::new(HubConfig {
            pending_limit: 2,
            ..HubConfig::default()
        });
        let recorder = Arc::new(Recorder::default());
        let pending = hub
            .subscribe(topic(), recorder.clone(), None, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for n in 1..=3 {
            publish(&hub, n).await;
        }
        assert!(recorder.lagged.load(Ordering::Relaxed));
        assert!(pending.go_live().is_err());
        assert_eq!(hub.topic_count(), 0);
    }

    #[tokio::test]
    async fn a_sink_that_refuses_gets_nothing_more() {
        let hub = Hub::default();
        let recorder = Arc::new(Recorder::default());
        let _subscription = hub
            .subscribe(topic(), recorder.clone(), None, None)
            .await
            .and_then(|p| {
                p.go_live()
                    .map_err(|e| BrokerError::Unavailable(e.to_string()))
            })
            .unwrap_or_else(|e| panic!("{e}"));
        publish(&hub, 1).await;
        recorder.refuse.store(true, Ordering::Relaxed);
        publish(&hub, 2).await;
        recorder.refuse.store(false, Ordering::Relaxed);
        publish(&hub, 3).await;
        assert_eq!(*lock(&recorder.offsets), vec![1]);
        assert_eq!(hub.subscriber_count(&topic()), 0);
    }

    #[tokio::test]
    async fn data_over_the_limit_is_refused() {
        let hub = Hub::new(HubConfig {
            max_data_size: 4,
            ..HubConfig::default()
        });
        let result = hub.publish(&topic(), Data::text("12345")).await;
        assert!(matches!(
            result,
            Err(PublishError::TooLarge { size: 7, max: 4 })
        ));
    }

    fn journaled_hub() -> Hub {
        Hub::new(HubConfig {
            max_data_size: 8,
            journals: vec![Journal {
                prefix: "m:".into(),
                topic: Topic::new("m.journal").unwrap_or_else(|e| panic!("{e}")),
            }],
            ..HubConfig::default()
        })
    }

    fn named(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn messages_of_a_journaled_prefix_are_copied_into_the_journal_in_order() {
        let hub = journaled_hub();
        let journal = named("m.journal");
        for (topic, n) in [("m:a", "1"), ("m:b", "2"), ("x:c", "3"), ("m:a", "4")] {
            hub.publish(&named(topic), Data::text(n))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        // The entry is larger than max_data_size (8) and still kept.
        let kept = hub.kept(&journal).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.recovered, Some(true));
        let entries: Vec<(String, String)> = kept
            .messages
            .iter()
            .filter_map(|push| match push.kind() {
                PushKind::Message { data, .. } => journal::read(data),
                _ => None,
            })
            .map(|(topic, data)| (topic.as_str().to_owned(), data.as_str().to_owned()))
            .collect();
        let expected = [("m:a", "\"1\""), ("m:b", "\"2\""), ("m:a", "\"4\"")];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(t, d)| ((*t).to_owned(), (*d).to_owned()))
            .collect();
        assert_eq!(entries, expected);
        assert_eq!(kept.position.offset, 3);
        // Each topic keeps its own messages too.
        let a = hub
            .kept(&named("m:a"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.messages.len(), 2);
        // Publishing on the journal itself is not copied into it.
        hub.publish(&journal, Data::text("j"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let kept = hub.kept(&journal).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.position.offset, 4);
    }

    #[tokio::test]
    async fn a_journal_only_publish_skips_the_topic() {
        let hub = journaled_hub();
        let journal = named("m.journal");
        let position = hub
            .publish_journal(&journal, &named("m:secret"), Data::text("p"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(position.offset, 1);
        let topic = hub
            .kept(&named("m:secret"))
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((topic.position.offset, topic.messages.len()), (0, 0));
        let kept = hub.kept(&journal).await.unwrap_or_else(|e| panic!("{e}"));
        let read = kept.messages.first().and_then(|push| match push.kind() {
            PushKind::Message { data, .. } => journal::read(data),
            _ => None,
        });
        assert_eq!(read, Some((named("m:secret"), Data::text("p"))));
        let too_large = hub
            .publish_journal(&journal, &named("m:secret"), Data::text("123456789"))
            .await;
        assert!(matches!(too_large, Err(PublishError::TooLarge { .. })));
    }

    /// The in-process broker, except that publishes on `m.journal` fail (as a
    /// Redis that went away between the two publishes would).
    struct JournalDown(MemoryBroker);

    impl Broker for JournalDown {
        fn attach(&self, hub: std::sync::Weak<dyn Deliver>) {
            self.0.attach(hub);
        }
        fn publish(
            &self,
            topic: &Topic,
            data: Data,
        ) -> futures_util::future::BoxFuture<'_, Result<Position, BrokerError>> {
            if topic.as_str() == "m.journal" {
                return Box::pin(async { Err(BrokerError::Unavailable("down".into())) });
            }
            self.0.publish(topic, data)
        }
        fn recover(
            &self,
            topic: &Topic,
            since: Option<Position>,
        ) -> futures_util::future::BoxFuture<'_, Result<Recovery, BrokerError>> {
            self.0.recover(topic, since)
        }
        fn watch(&self, topic: &Topic) {
            self.0.watch(topic);
        }
        fn unwatch(&self, topic: &Topic) {
            self.0.unwatch(topic);
        }
        fn join(&self, topic: &Topic, member: Member) {
            self.0.join(topic, member);
        }
        fn leave(&self, topic: &Topic, client: &str) {
            self.0.leave(topic, client);
        }
        fn members(
            &self,
            topic: &Topic,
        ) -> futures_util::future::BoxFuture<'_, Result<Vec<Member>, BrokerError>> {
            self.0.members(topic)
        }
        fn ready(&self) -> futures_util::future::BoxFuture<'_, bool> {
            self.0.ready()
        }
    }

    #[tokio::test]
    async fn a_failed_journal_copy_is_answered_and_counted_and_the_topic_has_the_message() {
        let config = journaled_hub().config().clone();
        let broker = Arc::new(JournalDown(MemoryBroker::new(config.history.clone())));
        let hub = Hub::with_broker(config, broker);
        let metrics = Arc::new(Metrics::new());
        hub.attach_metrics(Arc::clone(&metrics));
        let recorder = Arc::new(Recorder::default());
        let _subscription = hub
            .subscribe(named("m:a"), recorder.clone(), None, None)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .go_live();
        let result = hub.publish(&named("m:a"), Data::text("1")).await;
        assert!(matches!(result, Err(PublishError::Broker(_))), "{result:?}");
        assert_eq!(*lock(&recorder.offsets), vec![1], "the topic has it");
        assert!(
            metrics
                .encode()
                .lines()
                .any(|line| line == "pushwire_journal_failures_total 1"),
            "{}",
            metrics.encode()
        );
        // A topic outside the prefix is not copied, so not refused.
        assert!(hub.publish(&named("x:a"), Data::text("2")).await.is_ok());
    }
}
