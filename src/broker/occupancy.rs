//! Occupancy: which topics have subscribers on any node, and the moments a topic
//! gets its first subscriber anywhere ([`OccupancyChange::Occupied`]) or loses
//! its last one everywhere ([`OccupancyChange::Vacated`]).
//!
//! Each node knows its own subscribers exactly (the hub's lists). It tells the
//! broker its count of every topic whose count changed, in a batch
//! ([`Broker::occupancy_flush`](super::Broker::occupancy_flush), every 100 ms from
//! the hub's occupancy task, never on the subscribe path). The broker adds the
//! counts of every node and decides the transitions atomically, so each one is
//! answered to exactly one node — the one whose flush (or sweep of a dead node's
//! share) made it — which reports it (Pusher's `channel_occupied` /
//! `channel_vacated` webhooks).
//!
//! A node's share lives as long as the node announces itself: every flush (at
//! least one every fifth of the TTL, changes or not) pushes its deadline forward
//! by the TTL it is given, and a node whose deadline passed loses its share (and
//! the topics left with no subscriber are vacated) at the next flush of any live
//! node.

use crate::topic::Topic;

/// A topic's cluster-wide transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OccupancyChange {
    /// The topic got its first subscriber on any node.
    Occupied,
    /// The topic lost its last subscriber on every node.
    Vacated,
}

/// What one [`Broker::occupancy_flush`](super::Broker::occupancy_flush) decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OccupancyReport {
    /// The transitions this flush made, in order: this node reports each of them.
    pub changes: Vec<(Topic, OccupancyChange)>,
    /// The broker did not know this node (first flush, or its share expired while
    /// it could not reach the broker): the next flush must carry the count of
    /// every topic with local subscribers.
    pub resend: bool,
}
