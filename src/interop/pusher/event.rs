//! Events in topics and on the wire.
//!
//! A Pusher event is published to its channel's topic as an [`Envelope`], the JSON
//! object `{"event":NAME,"data":DATA}` with, when they apply, `"user_id"` (the
//! sender of a client event on a presence channel) and `"exclude"` (a socket id
//! that must not get it: the HTTP API's `socket_id`, a client event's sender).
//! `/ws`, SSE and long-poll subscribers see that object as the message's data.
//!
//! A topic message that is not an envelope (anything pushwire's own publishers
//! send) reaches pusher-js as the event [`DEFAULT_EVENT`], its data the message's
//! JSON text as a string.
//!
//! The frame pusher-js receives, `{"event":NAME,"channel":CHANNEL,"data":DATA}`,
//! is built once per push ([`PusherFrame::of`]) and shared by every Pusher
//! subscriber of the topic (a topic is the channel of at most one app: apps have
//! namespaces of their own).

use super::channel::Channel;
use crate::topic::{Push, PushKind};
use crate::ws::{Message, Prepared, Utf8Bytes};

pub use crate::interop::envelope::{DEFAULT_EVENT, Envelope};

/// The event that ends connections: published as an [`Envelope`] to a user's
/// channel topic (`app.topic(&Channel::for_user(id)?)`), it closes every
/// connection signed in as that user, on every node, with `pusher:error` 4009
/// and close code 4009 (what the HTTP API's `terminate_connections` publishes;
/// see [`Envelope::terminate`]). It is never delivered to a client.
pub const TERMINATE_EVENT: &str = "pusher_internal:terminate";

impl Envelope {
    /// The envelope that terminates a user's connections, to be published to
    /// their user channel's topic ([`TERMINATE_EVENT`], data `{}`).
    pub fn terminate() -> Self {
        match Self::new(TERMINATE_EVENT, "{}") {
            Some(envelope) => envelope,
            None => unreachable!("{{}} is JSON"),
        }
    }
}

/// A push as pusher-js receives it, built once and shared by every Pusher
/// subscriber of its topic.
pub struct PusherFrame {
    /// The text frame `{"event":…,"channel":…,"data":…}`; `None` for a presence
    /// event (each connection tells its own client about members).
    pub frame: Option<Prepared>,
    /// The event name (for webhooks and logs); empty for a presence event.
    pub event: Box<str>,
    /// The socket that must not get it.
    pub exclude: Option<Box<str>>,
}

impl PusherFrame {
    /// The Pusher form of `push`, a message of `channel`'s topic: encoded on the
    /// first call, shared after that.
    pub fn of<'p>(push: &'p Push, channel: &Channel) -> &'p Self {
        push.encoded(|push| Self::new(push, channel))
    }

    fn new(push: &Push, channel: &Channel) -> Self {
        let PushKind::Message { data, .. } = push.kind() else {
            return Self {
                frame: None,
                event: Box::from(""),
                exclude: None,
            };
        };
        let (event, text, exclude) = match Envelope::read(data) {
            Some(envelope) => {
                let text = frame_text(
                    &envelope.event,
                    channel,
                    envelope.data.get(),
                    envelope.user_id.as_deref(),
                );
                (envelope.event, text, envelope.exclude)
            }
            None => {
                let quoted = serde_json::Value::String(data.as_str().to_owned()).to_string();
                let text = frame_text(DEFAULT_EVENT, channel, &quoted, None);
                (DEFAULT_EVENT.to_owned(), text, None)
            }
        };
        Self {
            frame: Some(Prepared::new(Message::Text(text))),
            event: event.into_boxed_str(),
            exclude: exclude.map(String::into_boxed_str),
        }
    }

    /// Whether the socket `socket_id` gets this push.
    pub fn is_for(&self, socket_id: &str) -> bool {
        self.exclude.as_deref() != Some(socket_id)
    }
}

/// `{"event":EVENT,"channel":CHANNEL,"data":DATA[,"user_id":USER]}`, `data` being
/// JSON text written as it is.
pub fn frame_text(event: &str, channel: &Channel, data: &str, user_id: Option<&str>) -> Utf8Bytes {
    let mut out = String::with_capacity(48 + event.len() + channel.as_str().len() + data.len());
    out.push_str("{\"event\":");
    push_json_string(&mut out, event);
    out.push_str(",\"channel\":");
    // Channel names need no escaping: their grammar has no quote or backslash.
    out.push('"');
    out.push_str(channel.as_str());
    out.push('"');
    out.push_str(",\"data\":");
    out.push_str(data);
    if let Some(user) = user_id {
        out.push_str(",\"user_id\":");
        push_json_string(&mut out, user);
    }
    out.push('}');
    Utf8Bytes::from(out)
}

fn push_json_string(out: &mut String, text: &str) {
    out.push_str(&serde_json::Value::String(text.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::topic::{Data, Epoch, Topic};

    fn push(data: Data) -> Arc<Push> {
        let topic = Topic::new("app:c").unwrap_or_else(|e| panic!("{e}"));
        let epoch = Epoch::new("e1").unwrap_or_else(|e| panic!("{e}"));
        Arc::new(Push::message(topic, epoch, 1, data))
    }

    fn text(frame: &PusherFrame) -> String {
        let frame = frame.frame.as_ref().unwrap_or_else(|| panic!("no frame"));
        String::from_utf8_lossy(frame.message().payload()).into_owned()
    }

    #[test]
    fn an_envelope_becomes_its_event_with_the_data_byte_for_byte() {
        let mut envelope = Envelope::with_text("order-paid", "{\"id\": 7}");
        envelope.exclude = Some(String::from("1.2"));
        envelope.user_id = Some(String::from("u\"1"));
        let channel = Channel::parse("presence-c").unwrap_or_else(|e| panic!("{e}"));
        let push = push(envelope.to_data().unwrap_or_else(|e| panic!("{e}")));
        let frame = PusherFrame::of(&push, &channel);
        assert_eq!(
            text(frame),
            r#"{"event":"order-paid","channel":"presence-c","data":"{\"id\": 7}","user_id":"u\"1"}"#
        );
        assert!(!frame.is_for("1.2") && frame.is_for("1.3"));
        assert_eq!(&*frame.event, "order-paid");
        assert!(
            std::ptr::eq(frame, PusherFrame::of(&push, &channel)),
            "built once"
        );
    }

    #[test]
    fn any_other_message_is_the_default_event_with_its_json_as_a_string() {
        let data = Data::json(r#"{"price":1.5,"event":"x"}"#).unwrap_or_else(|e| panic!("{e}"));
        let channel = Channel::parse("c").unwrap_or_else(|e| panic!("{e}"));
        let push = push(data);
        assert_eq!(
            text(PusherFrame::of(&push, &channel)),
            r#"{"event":"message","channel":"c","data":"{\"price\":1.5,\"event\":\"x\"}"}"#
        );
    }
}
