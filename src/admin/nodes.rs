//! The node heartbeat: every node announces itself to the nodes sharing its broker
//! once a second (a Redis key with a TTL, see `broker/redis/nodes.rs`) and keeps
//! the list of the live ones for the admin page.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::broker::NodeInfo;
use crate::clock::unix_millis;
use crate::hub::Hub;
use crate::sync::lock;

/// How often a node announces itself.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);

/// How long an announcement lasts: a node that stopped is gone from the others'
/// lists within this.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(5);

/// The live nodes as last heard (this one included); cloning shares the list.
#[derive(Debug, Clone, Default)]
pub struct NodeList(Arc<Mutex<Vec<NodeInfo>>>);

impl NodeList {
    /// The nodes, ordered by id.
    pub fn get(&self) -> Vec<NodeInfo> {
        lock(&self.0).clone()
    }

    fn set(&self, nodes: Vec<NodeInfo>) {
        *lock(&self.0) = nodes;
    }
}

/// Announces `me` every [`HEARTBEAT_EVERY`] until `stop` is cancelled, keeping
/// `list` up to date. While the broker cannot be reached the list keeps the nodes
/// heard from within [`HEARTBEAT_TTL`] (and this one).
pub async fn heartbeat(hub: Hub, mut me: NodeInfo, list: NodeList, stop: CancellationToken) {
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        me.seen = unix_millis();
        match hub.heartbeat(&me, HEARTBEAT_TTL).await {
            Ok(nodes) => list.set(nodes),
            Err(err) => {
                tracing::debug!(error = %err, "node heartbeat failed");
                let ttl = u64::try_from(HEARTBEAT_TTL.as_millis()).unwrap_or(u64::MAX);
                let mut nodes: Vec<NodeInfo> = list
                    .get()
                    .into_iter()
                    .filter(|n| n.id != me.id && n.seen.saturating_add(ttl) > me.seen)
                    .collect();
                nodes.push(me.clone());
                nodes.sort_by(|a, b| a.id.cmp(&b.id));
                list.set(nodes);
            }
        }
    }
}
