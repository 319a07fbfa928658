//! Requests, both ways: what the server reads ([`parse`] into a [`Request`]) and
//! what a client writes ([`ClientRequest::encode`]).
//!
//! `{"op":"sub","id":1,"topic":"news","since":{"epoch":"…","offset":41}}` and the
//! other ops of `docs/protocol.md`. The server reads each request once: its fields
//! are kept as raw JSON, then each is checked for the op.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::MAX_INFO_SIZE;
use super::reply::push_json_str;
use crate::topic::{Data, Epoch, ErrorCode, ErrorReply, NameError, Position, Topic};

/// A request, read and checked.
#[derive(Debug)]
pub enum Request {
    /// `sub`: subscribe, optionally resuming after `since`.
    Sub {
        /// The topic.
        topic: Topic,
        /// The last position the client has.
        since: Option<Position>,
        /// What to show in presence.
        info: Option<Data>,
        /// A subscription token for this topic (see `crate::auth`).
        token: Option<String>,
    },
    /// `unsub`: stop a subscription.
    Unsub {
        /// The topic.
        topic: Topic,
    },
    /// `pub`: publish `data` on `topic`.
    Pub {
        /// The topic.
        topic: Topic,
        /// The value.
        data: Data,
    },
    /// `presence`: who is on `topic`.
    Presence {
        /// The topic.
        topic: Topic,
    },
    /// `auth`: authenticate (or refresh) with a connection token.
    Auth {
        /// The token (a JWT).
        token: String,
    },
}

impl Request {
    /// The topic the request names (`auth` names none).
    pub fn topic(&self) -> Option<&Topic> {
        match self {
            Self::Sub { topic, .. }
            | Self::Unsub { topic }
            | Self::Pub { topic, .. }
            | Self::Presence { topic } => Some(topic),
            Self::Auth { .. } => None,
        }
    }
}

/// The request as it arrives: every field raw, so that reading it cannot fail on
/// a field of the wrong type (the id must be read even then), and each field is
/// checked afterwards for the op.
#[derive(Deserialize)]
struct Wire<'a> {
    // `"id": null` is no id.
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    // `null` is a value to publish, not a missing field; the other fields are
    // checked for `null` when they are read.
    #[serde(borrow, default, deserialize_with = "present")]
    op: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    topic: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    since: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    info: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    token: Option<&'a RawValue>,
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    <&RawValue>::deserialize(deserializer).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSince<'a> {
    #[serde(borrow)]
    epoch: Cow<'a, str>,
    offset: u64,
}

/// Just the id: read on its own only when the request as a whole cannot be read
/// (a duplicate field), so that it can still be answered under its id.
#[derive(Deserialize)]
struct WireId<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Reads a request. Answers the request's id (raw JSON, echoed verbatim; `null` when
/// it cannot be read) and the request or the error to reply with.
pub fn parse(text: &str, max_data_size: usize) -> (Cow<'_, str>, Result<Request, ErrorReply>) {
    let null = Cow::Borrowed("null");
    if !text.trim_start().starts_with('{') {
        return (
            null,
            Err(ErrorCode::BadRequest.reply("invalid request: a request is a JSON object")),
        );
    }
    let wire = match serde_json::from_str::<Wire<'_>>(text) {
        Ok(wire) => wire,
        Err(err) => {
            // Unreadable as a whole; the id may still be readable on its own.
            let id = match serde_json::from_str::<WireId<'_>>(text) {
                Ok(WireId { id: Some(id) }) if is_valid_id(id) => Cow::Borrowed(id.get()),
                _ => null,
            };
            return (id, Err(bad_request(&err)));
        }
    };
    let id = match wire.id {
        Some(id) if is_valid_id(id) => Cow::Borrowed(id.get()),
        Some(_) => {
            return (
                null,
                Err(ErrorCode::BadRequest.reply(format!(
                    "id must be a string or an integer of at most {MAX_ID_LEN} bytes"
                ))),
            );
        }
        None => return (null, Err(missing("id"))),
    };
    (id, check(&wire, max_data_size))
}

/// The longest id accepted, in bytes of JSON.
pub const MAX_ID_LEN: usize = 128;

/// An id is a JSON string or an integer (one that fits 64 bits), at most
/// [`MAX_ID_LEN`] bytes: echoed verbatim, it must read back as the same value in
/// every JSON parser.
fn is_valid_id(id: &RawValue) -> bool {
    let text = id.get();
    text.len() <= MAX_ID_LEN
        && (text.starts_with('"') || text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok())
}

fn bad_request(err: &serde_json::Error) -> ErrorReply {
    ErrorCode::BadRequest.reply(format!("invalid request: {err}"))
}

fn missing(field: &str) -> ErrorReply {
    ErrorCode::BadRequest.reply(format!("invalid request: missing field {field:?}"))
}

/// A string field (`null` counts as missing, as it did for an `Option<String>`).
fn string(raw: Option<&RawValue>) -> Result<Option<Cow<'_, str>>, ErrorReply> {
    let Some(raw) = raw.filter(|raw| raw.get() != "null") else {
        return Ok(None);
    };
    // Borrowed unless the string has escapes.
    if let Ok(text) = serde_json::from_str::<&str>(raw.get()) {
        return Ok(Some(Cow::Borrowed(text)));
    }
    serde_json::from_str::<String>(raw.get())
        .map(|text| Some(Cow::Owned(text)))
        .map_err(|err| bad_request(&err))
}

fn check(wire: &Wire<'_>, max_data_size: usize) -> Result<Request, ErrorReply> {
    let op = string(wire.op)?.ok_or_else(|| missing("op"))?;
    let topic = || -> Result<Topic, ErrorReply> {
        let name = string(wire.topic)?.ok_or_else(|| missing("topic"))?;
        Topic::new_or_system(&name).map_err(|err| invalid_topic(&name, &err))
    };
    let token = || string(wire.token).map(|token| token.map(Cow::into_owned));
    match &*op {
        "sub" => {
            let topic = topic()?;
            let since = match wire.since.filter(|raw| raw.get() != "null") {
                Some(raw) => {
                    let since: WireSince<'_> =
                        serde_json::from_str(raw.get()).map_err(|err| bad_request(&err))?;
                    Some(Position {
                        epoch: Epoch::new(&since.epoch).map_err(|err| {
                            ErrorCode::Invalid.reply(format!("invalid since: {err}"))
                        })?,
                        offset: since.offset,
                    })
                }
                None => None,
            };
            let info = match wire.info {
                Some(info) if info.get().len() > MAX_INFO_SIZE => {
                    return Err(ErrorCode::TooLarge.reply(format!(
                        "info is {} bytes; at most {MAX_INFO_SIZE} allowed",
                        info.get().len()
                    )));
                }
                Some(info) => Some(raw_data(info)?),
                None => None,
            };
            Ok(Request::Sub {
                topic,
                since,
                info,
                token: token()?,
            })
        }
        "unsub" => Ok(Request::Unsub { topic: topic()? }),
        "pub" => {
            let topic = topic()?;
            let data = wire.data.ok_or_else(|| missing("data"))?;
            if data.get().len() > max_data_size {
                return Err(ErrorCode::TooLarge.reply(format!(
                    "data is {} bytes; at most {max_data_size} allowed",
                    data.get().len()
                )));
            }
            Ok(Request::Pub {
                topic,
                data: raw_data(data)?,
            })
        }
        "presence" => Ok(Request::Presence { topic: topic()? }),
        "auth" => match token()? {
            Some(token) => Ok(Request::Auth { token }),
            None => Err(missing("token")),
        },
        other => Err(ErrorCode::UnknownOp.reply(format!("unknown op {:?}", truncate(other, 64)))),
    }
}

fn raw_data(value: &RawValue) -> Result<Data, ErrorReply> {
    Data::json(value.get().as_bytes().to_vec())
        .map_err(|err| ErrorCode::BadRequest.reply(format!("invalid data: {err}")))
}

/// The 422 for a bad topic name.
pub fn invalid_topic(name: &str, err: &NameError) -> ErrorReply {
    ErrorCode::Invalid.reply(format!("invalid topic {:?}: {err}", truncate(name, 64)))
}

/// At most `max` characters of `text`.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// A request as a client writes it (the Rust client, `crate::topic_client`).
#[derive(Debug, Clone, Copy)]
pub enum ClientRequest<'a> {
    /// `sub`, optionally resuming after `since`, optionally with presence `info`.
    Sub {
        /// The topic, as given (the server checks it).
        topic: &'a str,
        /// The position of the last message the client has.
        since: Option<&'a Position>,
        /// What to show in presence.
        info: Option<&'a Data>,
    },
    /// `unsub`.
    Unsub {
        /// The topic.
        topic: &'a str,
    },
    /// `pub`.
    Pub {
        /// The topic.
        topic: &'a str,
        /// The value.
        data: &'a Data,
    },
    /// `presence`.
    Presence {
        /// The topic.
        topic: &'a str,
    },
    /// `auth` with a connection token.
    Auth {
        /// The token.
        token: &'a str,
    },
}

impl ClientRequest<'_> {
    /// The op: `sub`, `unsub`, `pub`, `presence` or `auth`.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Sub { .. } => "sub",
            Self::Unsub { .. } => "unsub",
            Self::Pub { .. } => "pub",
            Self::Presence { .. } => "presence",
            Self::Auth { .. } => "auth",
        }
    }

    /// The request as JSON text, with `id`.
    pub fn encode(&self, id: u64) -> String {
        let mut out = format!("{{\"op\":\"{}\",\"id\":{id}", self.op());
        match self {
            Self::Sub { topic, since, info } => {
                topic_field(&mut out, topic);
                if let Some(since) = since {
                    out.push_str(",\"since\":{\"epoch\":");
                    push_json_str(&mut out, since.epoch.as_str());
                    out.push_str(",\"offset\":");
                    out.push_str(&since.offset.to_string());
                    out.push('}');
                }
                if let Some(info) = info {
                    out.push_str(",\"info\":");
                    out.push_str(info.as_str());
                }
            }
            Self::Unsub { topic } | Self::Presence { topic } => topic_field(&mut out, topic),
            Self::Pub { topic, data } => {
                topic_field(&mut out, topic);
                out.push_str(",\"data\":");
                out.push_str(data.as_str());
            }
            Self::Auth { token } => {
                out.push_str(",\"token\":");
                push_json_str(&mut out, token);
            }
        }
        out.push('}');
        out
    }
}

/// `,"topic":"…"`.
fn topic_field(out: &mut String, topic: &str) {
    out.push_str(",\"topic\":");
    push_json_str(out, topic);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> (String, u16) {
        let (id, result) = parse(text, 100);
        (id.into_owned(), result.err().map_or(0, |e| e.code))
    }

    #[test]
    fn requests_of_each_op_parse() {
        let (id, sub) = parse(
            r#"{"op":"sub","id":1,"topic":"news","since":{"epoch":"E1","offset":41},"info":{"n":"a"}}"#,
            100,
        );
        assert_eq!(id, "1");
        assert!(matches!(
            sub,
            Ok(Request::Sub {
                since: Some(Position { offset: 41, .. }),
                info: Some(_),
                ..
            })
        ));
        assert!(matches!(
            parse(r#"{"op":"unsub","id":"a","topic":"n"}"#, 100).1,
            Ok(Request::Unsub { .. })
        ));
        assert!(matches!(
            parse(r#"{"op":"pub","id":3,"topic":"n","data":[1, 2]}"#, 100).1,
            Ok(Request::Pub { .. })
        ));
        assert!(matches!(
            parse(r#"{"op":"presence","id":4,"topic":"n"}"#, 100).1,
            Ok(Request::Presence { .. })
        ));
    }

    #[test]
    fn each_kind_of_bad_request_has_its_code() {
        assert_eq!(code("not json"), ("null".into(), 400));
        assert_eq!(code("[1]"), ("null".into(), 400));
        assert_eq!(code(r#"{"op":"sub","topic":"n"}"#), ("null".into(), 400));
        assert_eq!(
            code(r#"{"op":"sub","id":{},"topic":"n"}"#),
            ("null".into(), 400)
        );
        assert_eq!(code(r#"{"op":"sub","id":7}"#), ("7".into(), 400));
        assert_eq!(code(r#"{"op":5,"id":7}"#), ("7".into(), 400));
        assert_eq!(
            code(r#"{"op":"subscribe","id":7,"topic":"n"}"#),
            ("7".into(), 405)
        );
        assert_eq!(
            code(r#"{"op":"sub","id":7,"topic":"a b"}"#),
            ("7".into(), 422)
        );
        assert_eq!(
            code(r#"{"op":"sub","id":7,"topic":"n","since":{"epoch":"-","offset":1}}"#),
            ("7".into(), 422)
        );
        assert_eq!(
            code(r#"{"op":"sub","id":7,"topic":"n","since":{"epoch":"E","offset":-1}}"#),
            ("7".into(), 400)
        );
        assert_eq!(
            code(r#"{"op":"pub","id":7,"topic":"n"}"#),
            ("7".into(), 400)
        );
        let big = format!(
            r#"{{"op":"pub","id":7,"topic":"n","data":"{}"}}"#,
            "x".repeat(100)
        );
        assert_eq!(code(&big), ("7".into(), 413));
    }

    #[test]
    fn a_field_of_the_wrong_type_is_answered_under_the_id() {
        assert_eq!(
            code(r#"{"op":"auth","id":"x","token":5}"#),
            ("\"x\"".into(), 400)
        );
        assert_eq!(
            code(r#"{"op":"sub","op":"pub","id":7,"topic":"n"}"#),
            ("7".into(), 400)
        );
        assert_eq!(
            code(r#"{"op":"sub","id":7,"topic":null}"#),
            ("7".into(), 400)
        );
    }

    #[test]
    fn what_a_client_writes_the_server_reads() {
        let data = Data::text("hi \"you\"");
        let epoch = Epoch::new("E1").unwrap_or_else(|e| panic!("{e}"));
        let since = Position { epoch, offset: 41 };
        let info = Data::text("ann");
        let requests = [
            ClientRequest::Sub {
                topic: "news",
                since: Some(&since),
                info: Some(&info),
            },
            ClientRequest::Unsub { topic: "news" },
            ClientRequest::Pub {
                topic: "news",
                data: &data,
            },
            ClientRequest::Presence { topic: "chat:x" },
            ClientRequest::Auth { token: "a.b.c" },
        ];
        for (n, request) in requests.iter().enumerate() {
            let text = request.encode(n as u64 + 1);
            let (id, parsed) = parse(&text, 100);
            assert_eq!(id, (n + 1).to_string());
            let parsed = parsed.unwrap_or_else(|e| panic!("{text}: {e:?}"));
            let same = match (request, parsed) {
                (ClientRequest::Sub { .. }, Request::Sub { since, info, .. }) => {
                    since.map(|s| s.offset) == Some(41) && info == Some(Data::text("ann"))
                }
                (ClientRequest::Unsub { .. }, Request::Unsub { .. }) => true,
                (ClientRequest::Pub { .. }, Request::Pub { data: got, .. }) => got == data,
                (ClientRequest::Presence { .. }, Request::Presence { topic }) => {
                    topic.as_str() == "chat:x"
                }
                (ClientRequest::Auth { .. }, Request::Auth { token }) => token == "a.b.c",
                _ => false,
            };
            assert!(same, "{text}");
        }
    }
}
