//! The [`Broker`]: everything about topics that must be the same on every node —
//! offsets, history, presence — behind one trait.
//!
//! The [`Hub`](crate::hub::Hub) keeps the local subscribers and fans messages out to
//! them; it asks the broker to publish (assign the next offset, keep the message in
//! history, and hand it to every node's hub, this one included, in offset order), to
//! recover what a client missed, and to track presence. The in-process broker
//! ([`MemoryBroker`]) is the default; [`RedisBroker`] shares topics between nodes
//! through Redis and implements the same trait.
//!
//! The broker also adds up every node's subscriber counts ([`occupancy`]): which
//! topics are occupied anywhere, and the moments a topic gets its first
//! subscriber on any node or loses its last one on every node.

mod memory;
mod nodes;
pub mod occupancy;
mod redis;

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;

use crate::topic::{Data, Member, Position, Push, Topic};

pub use self::redis::{RedisBroker, RedisConfig};
pub use memory::MemoryBroker;
pub use nodes::NodeInfo;
pub use occupancy::{OccupancyChange, OccupancyReport};

/// Where a broker hands every published message and presence event: the hub of its
/// node.
pub trait Deliver: Send + Sync {
    /// Delivers `push` to the local subscribers of its topic. Called in offset order
    /// per topic, and never concurrently for one topic.
    fn deliver(&self, push: Arc<Push>);

    /// Some messages of `topic` cannot be delivered (the broker lost them, or its
    /// history no longer covers what this node missed): every local subscriber of
    /// the topic is dropped, so that it resubscribes from its last position and is
    /// told plainly whether it can recover. Never concurrent with `deliver` for the
    /// same topic.
    fn lost(&self, topic: &Topic);
}

/// Why a broker could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The broker's backing service cannot be reached now (or did not answer in
    /// time, or answered something unexpected).
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// A Redis command failed: the connection was refused or lost, or Redis
    /// answered with an error.
    #[error("broker unavailable: redis {doing} failed: {source}")]
    Redis {
        /// What the broker asked of Redis (`publish`, `read`, `join`, …).
        doing: &'static str,
        /// What the Redis client said (shared, so that the error stays `Clone`).
        #[source]
        source: Arc<::redis::RedisError>,
    },
    /// The Redis URL cannot be used.
    #[error("invalid Redis URL: {source}")]
    RedisUrl {
        /// What the Redis client said about it.
        #[source]
        source: Arc<::redis::RedisError>,
    },
}

/// What a client missed, as far as history can tell.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The topic's current position: the live stream continues after it.
    pub position: Position,
    /// With `since`: whether every message after it is in `messages`.
    pub recovered: Option<bool>,
    /// The missed messages, in order (empty unless `recovered` is `Some(true)`).
    pub messages: Vec<Arc<Push>>,
}

/// The cross-node side of topics: offsets, history, presence.
///
/// Methods that may talk to another process return boxed futures so that a broker
/// can be chosen at run time (`Arc<dyn Broker>`).
pub trait Broker: Send + Sync + 'static {
    /// Connects the broker to its node's hub. Called once, before anything else.
    fn attach(&self, hub: Weak<dyn Deliver>);

    /// Assigns `data` the topic's next offset, keeps it in history, and delivers it
    /// to every node's hub; answers its position.
    fn publish(&self, topic: &Topic, data: Data) -> BoxFuture<'_, Result<Position, BrokerError>>;

    /// The topic's current position and, with `since`, the messages after it.
    ///
    /// Resolves only once every message up to the answered position has been
    /// handed to this node's hub (when the topic is watched), so that none of them
    /// can reach a subscriber after it went live.
    fn recover(
        &self,
        topic: &Topic,
        since: Option<Position>,
    ) -> BoxFuture<'_, Result<Recovery, BrokerError>>;

    /// The topic's current position and every message its history still holds,
    /// oldest first; `recovered` is `Some(true)` when that history starts at
    /// offset 1 (nothing was trimmed: it is the whole stream), else
    /// `Some(false)`. How a reader finds an id anywhere in what is kept (Mercure's
    /// `Last-Event-ID` in its journal).
    ///
    /// By default (a broker that cannot list its history) the position and no
    /// messages, `recovered` true only for a topic with no message yet.
    fn kept(&self, topic: &Topic) -> BoxFuture<'_, Result<Recovery, BrokerError>> {
        let recover = self.recover(topic, None);
        async move {
            let position = recover.await?.position;
            Ok(Recovery {
                recovered: Some(position.offset == 0),
                position,
                messages: Vec::new(),
            })
        }
        .boxed()
    }

    /// This node has local subscribers on `topic` (the first one arrived).
    fn watch(&self, topic: &Topic);

    /// This node has no more local subscribers on `topic`.
    fn unwatch(&self, topic: &Topic);

    /// `member` joined `topic`: remember it and deliver a join event to every node.
    fn join(&self, topic: &Topic, member: Member);

    /// The client left `topic`: forget it and deliver a leave event to every node.
    fn leave(&self, topic: &Topic, client: &str);

    /// Who is present on `topic`.
    fn members(&self, topic: &Topic) -> BoxFuture<'_, Result<Vec<Member>, BrokerError>>;

    /// Whether the broker can serve requests now (`/readyz`). The in-process broker
    /// always can.
    fn ready(&self) -> BoxFuture<'_, bool>;

    /// Announces `me` as alive for `ttl` and answers every node alive now (`me`
    /// included), ordered by id. A node that stops announcing itself drops out of
    /// the list within `ttl`. By default (one process, no one to tell) the list is
    /// `me` alone.
    fn heartbeat(
        &self,
        me: &NodeInfo,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<Vec<NodeInfo>, BrokerError>> {
        let _ = ttl;
        futures_util::future::ready(Ok(vec![me.clone()])).boxed()
    }

    /// Tells the broker this node's subscriber count of every topic in `counts`
    /// (those whose count changed since the last flush; `0`: none left here) and
    /// keeps this node's share alive for `ttl`; answers the transitions this flush
    /// decided, each decided once across nodes (see [`occupancy`]). Called
    /// periodically, also with nothing to tell. By default (a broker that tracks
    /// no occupancy) nothing is decided.
    fn occupancy_flush(
        &self,
        counts: Vec<(Topic, u64)>,
        ttl: Duration,
    ) -> BoxFuture<'_, Result<OccupancyReport, BrokerError>> {
        let _ = (counts, ttl);
        futures_util::future::ready(Ok(OccupancyReport::default())).boxed()
    }

    /// How many subscribers `topic` has on the *other* nodes, as they last
    /// flushed. By default (one node) none.
    fn remote_occupancy(&self, topic: &Topic) -> BoxFuture<'_, Result<u64, BrokerError>> {
        let _ = topic;
        futures_util::future::ready(Ok(0)).boxed()
    }

    /// The topics whose name starts with `prefix` that have subscribers on the
    /// *other* nodes, with how many, as they last flushed. By default none.
    fn remote_occupied(
        &self,
        prefix: &str,
    ) -> BoxFuture<'_, Result<Vec<(Topic, u64)>, BrokerError>> {
        let _ = prefix;
        futures_util::future::ready(Ok(Vec::new())).boxed()
    }
}
