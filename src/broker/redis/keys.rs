//! The Redis keys and the pub/sub channel of a topic (the table in the
//! [module docs](super)).

use crate::topic::Topic;

/// The Redis keys and channel of one topic.
pub(super) struct Keys {
    pub(super) meta: String,
    pub(super) log: String,
    pub(super) members: String,
    pub(super) info: String,
    pub(super) channel: String,
}

impl Keys {
    pub(super) fn of(topic: &Topic) -> Self {
        let base = format!("pushwire:{{{topic}}}");
        Self {
            meta: format!("{base}:meta"),
            log: format!("{base}:log"),
            members: format!("{base}:members"),
            info: format!("{base}:info"),
            channel: base,
        }
    }
}

/// The hash of a topic's subscriber count on each node (node id → count), the
/// name the occupancy scripts build too.
pub(super) fn occupancy_key(topic: &Topic) -> String {
    format!("pushwire:{{{topic}}}:occ")
}

/// The topic a channel name belongs to.
pub(super) fn topic_of_channel(channel: &str) -> Option<Topic> {
    let name = channel.strip_prefix("pushwire:{")?.strip_suffix('}')?;
    Topic::new(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_name_their_topic() {
        let topic = Topic::new("chat:lobby").unwrap_or_else(|e| panic!("{e}"));
        let keys = Keys::of(&topic);
        assert_eq!(keys.channel, "pushwire:{chat:lobby}");
        assert_eq!(keys.log, "pushwire:{chat:lobby}:log");
        assert_eq!(topic_of_channel(&keys.channel), Some(topic));
        assert_eq!(topic_of_channel("other"), None);
    }
}
