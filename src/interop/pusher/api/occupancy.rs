//! What the channel queries know about who is subscribed, on every node: the
//! occupied channels of an app and a channel's subscription count (the hub's
//! occupancy: this node's counts now, the other nodes' as they last flushed),
//! and the users of a presence channel (the broker's member list).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::broker::BrokerError;
use crate::hub::Hub;
use crate::interop::pusher::app::PusherApp;
use crate::interop::pusher::channel::Channel;
use crate::topic::Topic;

/// How many connections are subscribed to `topic`, on every node.
pub(crate) async fn subscription_count(hub: &Hub, topic: &Topic) -> Result<u64, BrokerError> {
    hub.occupancy(topic).await
}

/// `app`'s occupied channels (at least one subscriber on some node) and their
/// subscription counts, by name.
pub(crate) async fn occupied(
    hub: &Hub,
    app: &PusherApp,
) -> Result<BTreeMap<Channel, u64>, BrokerError> {
    let topics = hub.occupied(&format!("{}:", app.namespace)).await?;
    Ok(topics
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(topic, n)| app.channel(&topic).map(|channel| (channel, n)))
        .collect())
}

/// The distinct user ids present on `topic` (members without a user are not
/// Pusher users), sorted.
pub(crate) async fn users(hub: &Hub, topic: &Topic) -> Result<Vec<String>, BrokerError> {
    let members = hub.members(topic).await?;
    let users: BTreeSet<Arc<str>> = members.into_iter().filter_map(|m| m.user).collect();
    Ok(users.into_iter().map(|user| user.to_string()).collect())
}
