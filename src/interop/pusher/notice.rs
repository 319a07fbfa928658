//! [`Notice`]: what happened on a Pusher channel that an app's webhooks are told
//! about, as the connection and the API report it.

use super::channel::Channel;

/// One thing an app's webhooks may be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The channel got its first subscriber on any node.
    ChannelOccupied {
        /// The channel.
        channel: Channel,
    },
    /// The channel lost its last subscriber on every node.
    ChannelVacated {
        /// The channel.
        channel: Channel,
    },
    /// A user joined a presence channel (their first connection in it).
    MemberAdded {
        /// The channel.
        channel: Channel,
        /// The user.
        user_id: String,
    },
    /// A user left a presence channel (their last connection in it).
    MemberRemoved {
        /// The channel.
        channel: Channel,
        /// The user.
        user_id: String,
    },
    /// A client sent a client event.
    ClientEvent {
        /// The channel.
        channel: Channel,
        /// The event name (`client-…`).
        event: String,
        /// Its data, as the client sent it (JSON text).
        data: String,
        /// The sender's socket id.
        socket_id: String,
        /// The sender's user id, on a presence channel.
        user_id: Option<String>,
    },
}
