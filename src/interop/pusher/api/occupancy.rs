//! What the channel queries know about who is subscribed: the occupied channels
//! of an app, a channel's subscription count and its users.
//!
//! Counts are this node's for now (`Hub::topic_counts`, `Hub::subscriber_count`);
//! the users of a presence channel come from the broker's member list and so
//! span every node. The cross-node counts replace [`counts`] when the broker
//! gains them.

use std::collections::BTreeMap;

use crate::broker::BrokerError;
use crate::hub::Hub;
use crate::interop::pusher::app::PusherApp;
use crate::interop::pusher::channel::Channel;
use crate::topic::Topic;

/// The subscribers of every topic that has any.
fn counts(hub: &Hub) -> Vec<(Topic, usize)> {
    hub.topic_counts(usize::MAX)
}

/// How many connections are subscribed to `topic`.
pub(crate) fn subscription_count(hub: &Hub, topic: &Topic) -> usize {
    hub.subscriber_count(topic)
}

/// `app`'s occupied channels (at least one subscriber) and their subscription
/// counts, by name.
pub(crate) fn occupied(hub: &Hub, app: &PusherApp) -> BTreeMap<Channel, usize> {
    counts(hub)
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .filter_map(|(topic, n)| app.channel(&topic).map(|channel| (channel, n)))
        .collect()
}

/// The distinct user ids present on `topic` (members without a user are not
/// Pusher users), in the order they are listed.
pub(crate) async fn users(hub: &Hub, topic: &Topic) -> Result<Vec<String>, BrokerError> {
    let members = hub.members(topic).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(members
        .into_iter()
        .filter_map(|member| member.user)
        .filter(|user| seen.insert(user.clone()))
        .map(|user| user.to_string())
        .collect())
}
