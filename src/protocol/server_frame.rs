//! What a client reads: every frame the server sends (a hello, a reply, a push) as
//! a [`ServerFrame`], pushes as [`Event`]s.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::push::PushJson;
use crate::topic::{Data, Epoch, ErrorReply, Member, Position, Push, Topic};

/// A push from the server: a message on a subscribed topic, or a presence event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A published message.
    Message {
        /// The topic.
        topic: Topic,
        /// Its epoch and offset.
        position: Position,
        /// The value, as the JSON text that was published.
        data: Data,
    },
    /// A client subscribed to a topic with presence.
    Join {
        /// The topic.
        topic: Topic,
        /// Who joined.
        member: Member,
    },
    /// A client left a topic with presence.
    Leave {
        /// The topic.
        topic: Topic,
        /// Who left.
        member: Member,
    },
}

impl Event {
    /// The topic the event belongs to.
    pub fn topic(&self) -> &Topic {
        match self {
            Self::Message { topic, .. } | Self::Join { topic, .. } | Self::Leave { topic, .. } => {
                topic
            }
        }
    }

    /// The event as the JSON object the server sent, such as
    /// `{"topic":"news","epoch":"k3J9x0a","offset":42,"data":"hello"}`.
    pub fn to_json(&self) -> String {
        let push = match self.clone() {
            Self::Message {
                topic,
                position,
                data,
            } => Push::message(topic, position.epoch, position.offset, data),
            Self::Join { topic, member } => Push::presence(topic, true, member),
            Self::Leave { topic, member } => Push::presence(topic, false, member),
        };
        push.json().as_str().to_owned()
    }
}

/// What one frame from the server is.
#[derive(Debug)]
pub enum ServerFrame {
    /// `{"hello":{"client":…,"version":…}}`.
    Hello {
        /// The client id the server gave the connection.
        client: Arc<str>,
        /// The protocol version (1 when not given).
        version: u32,
    },
    /// A reply to a request.
    Reply {
        /// The id as raw JSON text (`"null"` when the server could not read it).
        id: String,
        /// The `ok` value's JSON text, or the error.
        result: Result<String, ErrorReply>,
    },
    /// A push.
    Event(Event),
    /// A push of a kind this client does not know (from a newer server).
    Ignored,
}

/// The server sent something that is not the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

/// Any frame from the server, every field optional; which are present says what it
/// is. Unknown fields are ignored (a newer server may add some).
#[derive(Deserialize)]
struct WireIncoming<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    ok: Option<&'a RawValue>,
    #[serde(default, borrow)]
    error: Option<WireError<'a>>,
    #[serde(default, borrow)]
    hello: Option<WireHello<'a>>,
    #[serde(default, borrow)]
    topic: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    epoch: Option<Cow<'a, str>>,
    #[serde(default)]
    offset: Option<u64>,
    #[serde(default, borrow, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    join: Option<WireMember<'a>>,
    #[serde(default, borrow)]
    leave: Option<WireMember<'a>>,
}

/// A field that is present, whatever its value, even `null` (which a plain
/// `Option` would read as absent).
fn present<'de, D: Deserializer<'de>>(de: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(de).map(Some)
}

#[derive(Deserialize)]
struct WireError<'a> {
    code: u16,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct WireHello<'a> {
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(default)]
    version: Option<u32>,
}

#[derive(Deserialize)]
struct WireMember<'a> {
    #[serde(borrow)]
    client: Cow<'a, str>,
    #[serde(default, borrow)]
    user: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "present")]
    info: Option<&'a RawValue>,
}

/// A position in a `sub` or `pub` reply.
#[derive(Deserialize)]
struct WirePosition<'a> {
    #[serde(borrow)]
    topic: Cow<'a, str>,
    #[serde(borrow)]
    epoch: Cow<'a, str>,
    offset: u64,
    #[serde(default)]
    recovered: Option<bool>,
}

#[derive(Deserialize)]
struct WireMembers<'a> {
    #[serde(borrow)]
    members: Vec<WireMember<'a>>,
}

/// Reads one text frame from the server.
pub fn read(text: &str) -> Result<ServerFrame, DecodeError> {
    let wire: WireIncoming<'_> = serde_json::from_str(text)
        .map_err(|err| DecodeError(format!("{err} in {}", excerpt(text))))?;
    if let Some(hello) = wire.hello {
        return Ok(ServerFrame::Hello {
            client: Arc::from(hello.client.as_ref()),
            version: hello.version.unwrap_or(1),
        });
    }
    if wire.id.is_some() || wire.ok.is_some() || wire.error.is_some() {
        let id = wire
            .id
            .ok_or_else(|| DecodeError(format!("a reply without id: {}", excerpt(text))))?
            .get()
            .to_owned();
        let result = match (wire.ok, wire.error) {
            (_, Some(error)) => Err(ErrorReply::new(error.code, error.message.into_owned())),
            (Some(ok), None) => Ok(ok.get().to_owned()),
            (None, None) => {
                return Err(DecodeError(format!(
                    "a reply with neither ok nor error: {}",
                    excerpt(text)
                )));
            }
        };
        return Ok(ServerFrame::Reply { id, result });
    }
    let Some(topic) = wire.topic else {
        return Ok(ServerFrame::Ignored);
    };
    let topic = reply_topic(&topic)?;
    if let Some(joined) = wire.join {
        return Ok(ServerFrame::Event(Event::Join {
            topic,
            member: member(&joined)?,
        }));
    }
    if let Some(left) = wire.leave {
        return Ok(ServerFrame::Event(Event::Leave {
            topic,
            member: member(&left)?,
        }));
    }
    match (wire.epoch, wire.offset, wire.data) {
        (Some(epoch), Some(offset), Some(data)) => Ok(ServerFrame::Event(Event::Message {
            topic,
            position: reply_position(&epoch, offset)?,
            data: raw_data(data)?,
        })),
        (None, None, None) => Ok(ServerFrame::Ignored),
        _ => Err(DecodeError(format!(
            "a message without epoch, offset or data: {}",
            excerpt(text)
        ))),
    }
}

/// A `sub` or `pub` reply's `ok` value: the topic, its position, and (for `sub`
/// with `since`) whether the missed messages follow.
pub fn read_position(op: &str, ok: &str) -> Result<(Topic, Position, Option<bool>), DecodeError> {
    let reply: WirePosition<'_> = parse_ok(op, ok)?;
    Ok((
        reply_topic(&reply.topic)?,
        reply_position(&reply.epoch, reply.offset)?,
        reply.recovered,
    ))
}

/// A `presence` reply's `ok` value: the members.
pub fn read_members(ok: &str) -> Result<Vec<Member>, DecodeError> {
    let reply: WireMembers<'_> = parse_ok("presence", ok)?;
    reply.members.iter().map(member).collect()
}

fn parse_ok<'a, T: Deserialize<'a>>(op: &str, ok: &'a str) -> Result<T, DecodeError> {
    serde_json::from_str(ok).map_err(|err| DecodeError(format!("unreadable {op} reply: {err}")))
}

fn reply_topic(name: &str) -> Result<Topic, DecodeError> {
    Topic::new(name).map_err(|err| DecodeError(format!("topic {name:?}: {err}")))
}

fn reply_position(epoch: &str, offset: u64) -> Result<Position, DecodeError> {
    let epoch = Epoch::new(epoch).map_err(|err| DecodeError(format!("epoch {epoch:?}: {err}")))?;
    Ok(Position { epoch, offset })
}

fn raw_data(value: &RawValue) -> Result<Data, DecodeError> {
    Data::json(Bytes::copy_from_slice(value.get().as_bytes()))
        .map_err(|err| DecodeError(err.to_string()))
}

fn member(wire: &WireMember<'_>) -> Result<Member, DecodeError> {
    Ok(Member {
        client: Arc::from(wire.client.as_ref()),
        user: wire.user.as_deref().map(Arc::from),
        info: wire.info.map(raw_data).transpose()?,
    })
}

/// The start of a frame, for error messages.
pub fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(120).collect();
    if text.chars().nth(120).is_some() {
        out.push('…');
    }
    format!("{out:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_read_by_the_fields_they_have() -> Result<(), DecodeError> {
        assert!(matches!(
            read(r#"{"hello":{"client":"a-1","version":1}}"#)?,
            ServerFrame::Hello { client, version: 1 } if &*client == "a-1"
        ));
        assert!(matches!(
            read(r#"{"id":7,"ok":{"topic":"n"}}"#)?,
            ServerFrame::Reply { id, result: Ok(ok) } if id == "7" && ok == r#"{"topic":"n"}"#
        ));
        assert!(matches!(
            read(r#"{"id":null,"error":{"code":400,"message":"m"}}"#)?,
            ServerFrame::Reply { id, result: Err(ErrorReply { code: 400, .. }) } if id == "null"
        ));
        let ServerFrame::Event(Event::Message { data, position, .. }) =
            read(r#"{"topic":"n","epoch":"E","offset":3,"data":null}"#)?
        else {
            panic!("not a message");
        };
        assert_eq!((data.as_str(), position.offset), ("null", 3));
        assert!(matches!(
            read(r#"{"topic":"chat:x","join":{"client":"c-2","info":{"n":1}}}"#)?,
            ServerFrame::Event(Event::Join { member, .. })
                if member.info.as_ref().map(Data::as_str) == Some(r#"{"n":1}"#)
        ));
        assert!(matches!(
            read(r#"{"topic":"n","typing":{}}"#)?,
            ServerFrame::Ignored
        ));
        Ok(())
    }

    #[test]
    fn broken_frames_are_decode_errors() {
        for bad in [
            "nope",
            r#"{"ok":{}}"#,
            r#"{"id":1}"#,
            r#"{"topic":"n","offset":1,"data":1}"#,
            r#"{"topic":"a b","epoch":"E","offset":1,"data":1}"#,
            r#"{"topic":"n","epoch":"-","offset":1,"data":1}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_message_event_is_written_back_as_the_push_object() -> Result<(), DecodeError> {
        let ServerFrame::Event(event) =
            read(r#"{"topic":"n","epoch":"E","offset":3,"data":{"a":[1,2]}}"#)?
        else {
            panic!("not an event");
        };
        assert_eq!(
            event.to_json(),
            r#"{"topic":"n","epoch":"E","offset":3,"data":{"a":[1,2]}}"#
        );
        Ok(())
    }
}
