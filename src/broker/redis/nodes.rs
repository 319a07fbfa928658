//! The node registry: every node keeps a key `pushwire:node:<id>` (its
//! [`NodeInfo`] as JSON) alive with a TTL, and lists the keys that are still there.

use std::time::Duration;

use ::redis::Value;

use super::shared::{Shared, failed};
use crate::broker::{BrokerError, NodeInfo};
use crate::clock::ttl_millis;

/// The prefix of the nodes' keys.
const PREFIX: &str = "pushwire:node:";

/// The most `SCAN` rounds one listing makes (100 keys asked per round): a bound,
/// not a limit anyone should meet.
const MAX_ROUNDS: usize = 100;

/// Sets `me`'s key for `ttl`, then reads every node's key.
pub(super) async fn heartbeat(
    shared: &Shared,
    me: &NodeInfo,
    ttl: Duration,
) -> Result<Vec<NodeInfo>, BrokerError> {
    let timeout = shared.config.command_timeout;
    let within = |what: &'static str| {
        move |_| BrokerError::Unavailable(format!("Redis did not answer {what} within {timeout:?}"))
    };
    let mut conn = shared.conn.clone();
    let json = serde_json::to_string(me)
        .map_err(|err| BrokerError::Unavailable(format!("node info: {err}")))?;
    let mut set = ::redis::cmd("SET");
    set.arg(format!("{PREFIX}{}", me.id))
        .arg(json)
        .arg("PX")
        .arg(ttl_millis(ttl));
    tokio::time::timeout(timeout, set.query_async::<Value>(&mut conn))
        .await
        .map_err(within("a heartbeat"))?
        .map_err(|err| failed("heartbeat", err))?;
    let mut keys: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    for _ in 0..MAX_ROUNDS {
        let mut scan = ::redis::cmd("SCAN");
        scan.arg(cursor)
            .arg("MATCH")
            .arg(format!("{PREFIX}*"))
            .arg("COUNT")
            .arg(100);
        let (next, found): (u64, Vec<String>) =
            tokio::time::timeout(timeout, scan.query_async(&mut conn))
                .await
                .map_err(within("a node scan"))?
                .map_err(|err| failed("node scan", err))?;
        keys.extend(found);
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sort();
    keys.dedup();
    if keys.is_empty() {
        return Ok(vec![me.clone()]);
    }
    let mut get = ::redis::cmd("MGET");
    get.arg(&keys);
    let values: Vec<Option<String>> = tokio::time::timeout(timeout, get.query_async(&mut conn))
        .await
        .map_err(within("a node read"))?
        .map_err(|err| failed("node read", err))?;
    let mut nodes: Vec<NodeInfo> = values
        .into_iter()
        .flatten()
        .filter_map(|json| serde_json::from_str(&json).ok())
        .collect();
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(nodes)
}
