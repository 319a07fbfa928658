//! The [`Envelope`]: how an event of another protocol is kept in a topic, so that
//! every protocol reads what every other one published.
//!
//! An envelope is the JSON object `{"event":NAME,"data":DATA}` with, when they
//! apply, the fields of the protocol that published it:
//!
//! | field | set by | meaning |
//! |---|---|---|
//! | `event` | all | the event name: a Pusher event, a Mercure update's `type`, or [`DEFAULT_EVENT`] |
//! | `data` | all | the event's data as the publisher gave it, byte for byte (a JSON string for Pusher SDKs and Mercure forms) |
//! | `user_id` | Pusher | the sender of a client event on a presence channel |
//! | `exclude` | Pusher | a socket id that must not get it |
//! | `id` | Mercure | the update's id (the SSE `id:` Mercure subscribers see) |
//! | `retry` | Mercure | the reconnection time in ms (the SSE `retry:`) |
//! | `topics` | Mercure | the update's alternate topics (IRIs); the canonical one is the topic it is in |
//! | `private` | Mercure | only subscribers granted one of its topics get it (kept in the Mercure journal only) |
//!
//! `/ws`, SSE and long-poll subscribers see the object as the message's data. A
//! topic message that is not an envelope (anything pushwire's own publishers send)
//! reaches pusher-js as the event [`DEFAULT_EVENT`] and Mercure subscribers as an
//! update without a type, its data the message's JSON text. `message` is also
//! what a browser's `EventSource` calls an event without a type, so the three
//! protocols agree on it.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::topic::{Data, InvalidJson};

/// The event name of a topic message that is not an [`Envelope`], and of a
/// Mercure update published without a `type`.
pub const DEFAULT_EVENT: &str = "message";

/// An event of another protocol as it is kept in a topic (see the
/// [module docs](self)).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// The event name.
    pub event: String,
    /// The event's data as the publisher gave it, byte for byte.
    pub data: Box<RawValue>,
    /// Pusher: the user who sent a client event on a presence channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Pusher: the socket that must not get the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
    /// Mercure: the update's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Mercure: the reconnection time the publisher asked for, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
    /// Mercure: the update's alternate topics (the canonical one is the topic the
    /// envelope is published to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// Mercure: a private update (see the [module docs](self)).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
}

impl Envelope {
    /// The envelope of `event` with `data` (JSON text kept as it is) and no other
    /// field.
    pub fn of(event: &str, data: Box<RawValue>) -> Self {
        Self {
            event: event.to_owned(),
            data,
            user_id: None,
            exclude: None,
            id: None,
            retry: None,
            topics: Vec::new(),
            private: false,
        }
    }

    /// The envelope of `event` with `data` (its JSON text), or `None` when `data`
    /// is not JSON.
    pub fn new(event: &str, data: &str) -> Option<Self> {
        Some(Self::of(
            event,
            RawValue::from_string(data.to_owned()).ok()?,
        ))
    }

    /// The envelope of an event whose data is a string (what the Pusher HTTP API,
    /// Pusher client events and Mercure forms carry): `text` is written as a JSON
    /// string.
    pub fn with_text(event: &str, text: &str) -> Self {
        let quoted = serde_json::Value::String(text.to_owned()).to_string();
        match RawValue::from_string(quoted) {
            Ok(data) => Self::of(event, data),
            // A serialized JSON string is valid JSON.
            Err(err) => unreachable!("a JSON string did not parse: {err}"),
        }
    }

    /// The data as text: the string itself when it is a JSON string, else its
    /// JSON text.
    pub fn data_text(&self) -> std::borrow::Cow<'_, str> {
        let raw = self.data.get();
        if raw.starts_with('"')
            && let Ok(text) = serde_json::from_str::<String>(raw)
        {
            return std::borrow::Cow::Owned(text);
        }
        std::borrow::Cow::Borrowed(raw)
    }

    /// The envelope as the topic message's data; refused as any published value
    /// is when its data nests deeper than [`MAX_DEPTH`](crate::topic::MAX_DEPTH).
    pub fn to_data(&self) -> Result<Data, InvalidJson> {
        match serde_json::to_vec(self) {
            Ok(bytes) => Data::json(bytes),
            // Strings, numbers and raw JSON always serialize.
            Err(err) => unreachable!("an envelope does not serialize: {err}"),
        }
    }

    /// The envelope a topic message holds, if it is one.
    pub fn read(data: &Data) -> Option<Self> {
        serde_json::from_slice(data.as_bytes()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_through_topic_data() {
        let envelope = Envelope::new("e", "[1, 2]").unwrap_or_else(|| panic!("json"));
        let read = Envelope::read(&envelope.to_data().unwrap_or_else(|e| panic!("{e}")))
            .unwrap_or_else(|| panic!("read"));
        assert_eq!(read.data.get(), "[1, 2]");
        assert!(Envelope::new("e", "not json").is_none());
    }

    #[test]
    fn mercure_fields_are_written_only_when_set() {
        let mut envelope = Envelope::with_text("message", "a\nb");
        assert_eq!(
            envelope.to_data().map(|d| d.as_str().to_owned()).ok(),
            Some(r#"{"event":"message","data":"a\nb"}"#.to_owned())
        );
        envelope.id = Some("urn:uuid:1".into());
        envelope.retry = Some(500);
        envelope.topics = vec!["https://example.com/alt".into()];
        envelope.private = true;
        let data = envelope.to_data().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            data.as_str(),
            r#"{"event":"message","data":"a\nb","id":"urn:uuid:1","retry":500,"topics":["https://example.com/alt"],"private":true}"#
        );
        let read = Envelope::read(&data).unwrap_or_else(|| panic!("read"));
        assert_eq!(read.data_text(), "a\nb");
        assert!(read.private);
    }

    #[test]
    fn unknown_fields_make_a_message_not_an_envelope() {
        let data =
            Data::json(r#"{"event":"x","data":1,"other":2}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(Envelope::read(&data).is_none());
    }

    #[test]
    fn data_text_unquotes_strings_only() {
        assert_eq!(Envelope::with_text("e", "hi \"x\"").data_text(), "hi \"x\"");
        let object = Envelope::new("e", r#"{"a":1}"#).unwrap_or_else(|| panic!("json"));
        assert_eq!(object.data_text(), r#"{"a":1}"#);
    }
}
