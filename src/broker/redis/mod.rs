//! [`RedisBroker`]: topics shared by many nodes through one Redis server.
//!
//! # What lives where
//!
//! For a topic `T` (its name cannot hold `{` or `}`, so `{T}` is also a Redis
//! Cluster hash tag):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `pushwire:{T}:meta` | hash | `epoch`, `last` (the last offset given out) |
//! | `pushwire:{T}:log` | stream | history: entry id `<offset>-0`, fields `t` (ms) and `d` (data) |
//! | `pushwire:{T}:members` | sorted set | present clients, scored by their deadline (ms) |
//! | `pushwire:{T}:info` | hash | each present client's `info` |
//! | `pushwire:{T}` | pub/sub channel | every message and presence event, in order |
//! | `pushwire:node:<id>` | string | a live node's `NodeInfo` (JSON), kept by its heartbeat with a TTL |
//! | `pushwire:{T}:occ` | hash | each node's count of `T`'s subscribers (broker id → count) |
//! | `pushwire:occupied` | sorted set | the occupied topics (score 0: a prefix is a lexicographic range) |
//! | `pushwire:occupancy:nodes` | sorted set | each node's occupancy deadline (ms) |
//! | `pushwire:occupancy:node:<id>` | set | the topics a node has a count in |
//!
//! # Publishing
//!
//! One Lua script assigns the next offset (creating the topic with a random epoch
//! when its meta key is missing), appends to the stream (trimmed to the history size,
//! expiring with the history's age), and `PUBLISH`es the message on the topic's
//! channel. Redis runs scripts one at a time, so the order of messages on a channel
//! is their offset order, whichever node published them.
//!
//! # Delivering
//!
//! Each node has one pub/sub connection, subscribed to the channels of the topics
//! it has local subscribers on, and one task that reads it and hands everything to
//! the hub: one at a time, so never concurrently for one topic. The task remembers
//! the last offset it delivered per topic. When it sees a hole (offset n+2 after
//! n, another epoch, or a reconnected pub/sub connection) it reads the missing
//! messages from the stream before anything newer; if the stream no longer holds
//! them (Redis lost its data, or history was trimmed), the topic's local subscribers
//! are dropped ([`Deliver::lost`](super::Deliver::lost)) and learn, when they
//! resubscribe, that they cannot recover. Never a silent gap.
//!
//! # Presence
//!
//! Members sit in a sorted set scored by a deadline that their node pushes forward
//! every third of [`RedisConfig::presence_ttl`]. A node that dies stops refreshing,
//! and its members are removed (with leave events) by any node that watches the
//! topic, within the presence TTL plus one refresh interval.
//!
//! # Occupancy
//!
//! Every 100 ms the hub hands the broker its counts of the topics whose local
//! subscribers changed ([`Broker::occupancy_flush`](super::Broker::occupancy_flush)),
//! never on the subscribe path. One script (`occupancy.rs`) writes them into each
//! topic's `occ` hash under this broker's random id, pushes the node's deadline
//! forward by the TTL it is given (the node heartbeat's, 5 s), adds up the topic's
//! counts and, when the total crosses zero, adds the topic to or removes it from
//! `pushwire:occupied` and answers the transition. The same script removes the
//! share of every node whose deadline passed (a node that died, or could not
//! reach Redis for a whole TTL), and answers the vacated topics that leaves. Redis
//! runs scripts alone, so each transition is answered to exactly one node, which
//! reports it. A node that learns that its share was removed (its deadline was
//! gone) sends all its counts again at the next flush. A transition whose answer is
//! lost (Redis ran the script, the reply timed out) is not reported.
//!
//! These keys are global (not in a topic's hash slot): the broker speaks to one
//! Redis, not a Redis Cluster.
//!
//! # When Redis is away
//!
//! Every command has a timeout ([`RedisConfig::command_timeout`]); publishes fail
//! with a [`BrokerError`](super::BrokerError) (503 on the wire), and at most
//! [`RedisConfig::max_pending`] publishes wait for Redis at once (more fail at
//! once). The pub/sub connection is pinged every second and reconnected with
//! backoff (100 ms doubling to 5 s); `/readyz` says 503 meanwhile.
//!
//! # Files
//!
//! [`keys`] names a topic's keys and channel, [`nodes`] keeps the node registry,
//! [`occupancy`] flushes and reads subscriber counts, [`scripts`] holds the Lua scripts,
//! [`replies`] reads their answers and [`member_text`] the stored members;
//! [`shared`] is the state the broker handle ([`broker`]), the pub/sub
//! dispatcher ([`dispatch`]) and the presence worker ([`presence`]) share.

mod broker;
mod dispatch;
mod keys;
mod member_text;
mod nodes;
mod occupancy;
mod presence;
mod replies;
mod scripts;
mod shared;

use std::time::Duration;

pub use broker::RedisBroker;

/// How a [`RedisBroker`] reaches Redis and how patient it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port/db` (also `redis://:password@host:port/db`).
    pub url: String,
    /// The longest a command may take before the request that needed it fails.
    pub command_timeout: Duration,
    /// A member whose node stopped refreshing it (a crashed node) is removed after
    /// at most this long plus a third of it.
    pub presence_ttl: Duration,
    /// The most publishes that may wait for Redis at once; more fail at once.
    pub max_pending: usize,
}

impl RedisConfig {
    /// The defaults for `url`: 1 s command timeout, 15 s presence TTL, 1000 pending
    /// publishes.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            command_timeout: Duration::from_secs(1),
            presence_ttl: Duration::from_secs(15),
            max_pending: 1000,
        }
    }

    fn refresh_every(&self) -> Duration {
        (self.presence_ttl / 3).max(Duration::from_millis(100))
    }
}
