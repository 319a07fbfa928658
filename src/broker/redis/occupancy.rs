//! Occupancy in Redis (see "Occupancy" in the [module docs](super)): one script
//! per flush sets this node's counts, pushes its deadline forward, sweeps the
//! shares of nodes whose deadline passed and answers the transitions it made;
//! the queries read the other nodes' counts.

use std::time::Duration;

use ::redis::Value;

use super::keys::occupancy_key;
use super::replies::{number, text};
use super::shared::{Shared, failed};
use crate::broker::{BrokerError, OccupancyChange, OccupancyReport};
use crate::clock::ttl_millis;
use crate::topic::Topic;

/// The nodes' deadlines: a sorted set, node id → Unix ms.
const NODES: &str = "pushwire:occupancy:nodes";
/// The prefix of a node's set of the topics it has a count in.
const NODE_TOPICS: &str = "pushwire:occupancy:node:";
/// The occupied topics: a sorted set, every score 0, so that a prefix is a
/// lexicographic range.
const OCCUPIED: &str = "pushwire:occupied";
/// The most dead nodes one flush sweeps.
const SWEEP_NODES: u64 = 16;

/// Sets this node's counts and answers the transitions (see the script).
pub(super) async fn flush(
    shared: &Shared,
    counts: &[(Topic, u64)],
    ttl: Duration,
) -> Result<OccupancyReport, BrokerError> {
    let node_topics = format!("{NODE_TOPICS}{}", shared.node);
    let mut invocation = shared.scripts.occupancy_flush.key(NODES);
    invocation
        .key(&node_topics)
        .key(OCCUPIED)
        .arg(&shared.node)
        .arg(ttl_millis(ttl))
        .arg(SWEEP_NODES);
    for (topic, count) in counts {
        invocation.arg(topic.as_str()).arg(*count);
    }
    let bad = || BrokerError::Unavailable(String::from("redis: unexpected answer to a flush"));
    let Value::Array(values) = shared.run("occupancy flush", invocation).await? else {
        return Err(bad());
    };
    let known = values.first().and_then(number).ok_or_else(bad)?;
    let mut changes = Vec::new();
    for pair in values.get(1..).unwrap_or_default().chunks(2) {
        let [kind, topic] = pair else {
            return Err(bad());
        };
        let change = match text(kind).as_deref() {
            Some("o") => OccupancyChange::Occupied,
            Some("v") => OccupancyChange::Vacated,
            _ => return Err(bad()),
        };
        let Some(topic) = text(topic).and_then(|t| Topic::new(&t).ok()) else {
            return Err(bad());
        };
        changes.push((topic, change));
    }
    Ok(OccupancyReport {
        changes,
        resend: known == 0,
    })
}

/// The other nodes' subscribers of `topic`.
pub(super) async fn remote(shared: &Shared, topic: &Topic) -> Result<u64, BrokerError> {
    let mut cmd = ::redis::cmd("HGETALL");
    cmd.arg(occupancy_key(topic));
    let mut conn = shared.conn.clone();
    let counts: Vec<(String, u64)> =
        tokio::time::timeout(shared.config.command_timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| {
                BrokerError::Unavailable(format!(
                    "Redis did not answer within {:?}",
                    shared.config.command_timeout
                ))
            })?
            .map_err(|err| failed("occupancy", err))?;
    Ok(counts
        .into_iter()
        .filter(|(node, _)| *node != shared.node)
        .map(|(_, count)| count)
        .sum())
}

/// The occupied topics starting with `prefix` with the other nodes' subscribers.
pub(super) async fn remote_list(
    shared: &Shared,
    prefix: &str,
) -> Result<Vec<(Topic, u64)>, BrokerError> {
    let (low, high) = if prefix.is_empty() {
        (b"-".to_vec(), b"+".to_vec())
    } else {
        // Topic names are ASCII: every name starting with `prefix` sorts between
        // it and it followed by 0xff.
        let mut high = format!("[{prefix}").into_bytes();
        high.push(0xff);
        (format!("[{prefix}").into_bytes(), high)
    };
    let mut invocation = shared.scripts.occupancy_list.key(OCCUPIED);
    invocation.arg(low).arg(high).arg(&shared.node);
    let bad = || BrokerError::Unavailable(String::from("redis: unexpected answer to a listing"));
    let Value::Array(values) = shared.run("occupancy list", invocation).await? else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(values.len() / 2);
    for pair in values.chunks(2) {
        let [topic, count] = pair else {
            return Err(bad());
        };
        let (Some(topic), Some(count)) =
            (text(topic).and_then(|t| Topic::new(&t).ok()), number(count))
        else {
            return Err(bad());
        };
        out.push((topic, count));
    }
    Ok(out)
}
