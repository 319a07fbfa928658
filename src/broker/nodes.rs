//! [`NodeInfo`]: how a node describes itself to the other nodes sharing its
//! broker (the admin page lists them).

use serde::{Deserialize, Serialize};

/// One pushwire node, as it announces itself with [`Broker::heartbeat`](super::Broker::heartbeat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's id (the prefix of its client ids; new on every start).
    pub id: String,
    /// The address it listens on, as it sees it (`127.0.0.1:8888`).
    pub addr: String,
    /// Its pushwire version.
    pub version: String,
    /// When it started (Unix milliseconds).
    pub started: u64,
    /// When it last announced itself (Unix milliseconds).
    pub seen: u64,
}
