//! The body of a webhook post, in Pusher's format:
//! `{"time_ms": …, "events": [{"name": …, "channel": …, …}, …]}`.

use serde_json::{Map, Value, json};

use crate::interop::pusher::{Notice, WebhookEvent};

/// Which webhook event `notice` is.
pub(crate) fn kind(notice: &Notice) -> WebhookEvent {
    match notice {
        Notice::ChannelOccupied { .. } => WebhookEvent::ChannelOccupied,
        Notice::ChannelVacated { .. } => WebhookEvent::ChannelVacated,
        Notice::MemberAdded { .. } => WebhookEvent::MemberAdded,
        Notice::MemberRemoved { .. } => WebhookEvent::MemberRemoved,
        Notice::ClientEvent { .. } => WebhookEvent::ClientEvent,
    }
}

/// One event of the body: `name`, `channel`, and per kind `user_id` (members),
/// or `event`, `data` (the client's data as a JSON text string), `socket_id` and,
/// on presence channels, `user_id` (client events).
pub(crate) fn event(notice: &Notice) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), kind(notice).as_str().into());
    match notice {
        Notice::ChannelOccupied { channel } | Notice::ChannelVacated { channel } => {
            out.insert("channel".into(), channel.as_str().into());
        }
        Notice::MemberAdded { channel, user_id } | Notice::MemberRemoved { channel, user_id } => {
            out.insert("channel".into(), channel.as_str().into());
            out.insert("user_id".into(), user_id.as_str().into());
        }
        Notice::ClientEvent {
            channel,
            event,
            data,
            socket_id,
            user_id,
        } => {
            out.insert("channel".into(), channel.as_str().into());
            out.insert("event".into(), event.as_str().into());
            out.insert("data".into(), data.as_str().into());
            out.insert("socket_id".into(), socket_id.as_str().into());
            if let Some(user_id) = user_id {
                out.insert("user_id".into(), user_id.as_str().into());
            }
        }
    }
    Value::Object(out)
}

/// The body posting `notices` at `time_ms` (Unix milliseconds).
pub(crate) fn body(time_ms: u64, notices: &[Notice]) -> String {
    let events: Vec<Value> = notices.iter().map(event).collect();
    json!({"time_ms": time_ms, "events": events}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::pusher::Channel;

    fn channel(name: &str) -> Channel {
        Channel::parse(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_kind_has_pushers_fields() {
        let notices = [
            Notice::ChannelOccupied {
                channel: channel("orders"),
            },
            Notice::ChannelVacated {
                channel: channel("orders"),
            },
            Notice::MemberAdded {
                channel: channel("presence-room"),
                user_id: "u1".into(),
            },
            Notice::MemberRemoved {
                channel: channel("presence-room"),
                user_id: "u1".into(),
            },
            Notice::ClientEvent {
                channel: channel("private-chat"),
                event: "client-typing".into(),
                data: r#"{"who":"ann"}"#.into(),
                socket_id: "1.2".into(),
                user_id: None,
            },
            Notice::ClientEvent {
                channel: channel("presence-room"),
                event: "client-wave".into(),
                data: "{}".into(),
                socket_id: "3.4".into(),
                user_id: Some("u2".into()),
            },
        ];
        let parsed: Value =
            serde_json::from_str(&body(1_700_000_000_123, &notices)).unwrap_or_default();
        assert_eq!(
            parsed,
            json!({
                "time_ms": 1_700_000_000_123_u64,
                "events": [
                    {"name": "channel_occupied", "channel": "orders"},
                    {"name": "channel_vacated", "channel": "orders"},
                    {"name": "member_added", "channel": "presence-room", "user_id": "u1"},
                    {"name": "member_removed", "channel": "presence-room", "user_id": "u1"},
                    {"name": "client_event", "channel": "private-chat", "event": "client-typing",
                     "data": "{\"who\":\"ann\"}", "socket_id": "1.2"},
                    {"name": "client_event", "channel": "presence-room", "event": "client-wave",
                     "data": "{}", "socket_id": "3.4", "user_id": "u2"},
                ]
            })
        );
    }
}
