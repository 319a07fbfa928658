//! The wire messages of `/ws` (see `docs/protocol.md`): reading client requests,
//! writing replies, and the error codes.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::hub::{Data, Epoch, Member, NameError, Position, PositionReply, Topic};

/// The most bytes of JSON a subscriber's presence `info` may hold.
pub const MAX_INFO_SIZE: usize = 1024;

/// The protocol version in the hello.
pub const VERSION: u32 = 1;

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

/// Why the server ended a subscription: the code and reason of an `unsub` push
/// (`{"topic":…,"unsub":{"code":…,"reason":…}}`, an SSE `unsub` event, an entry in a
/// long-poll's `messages`), listed in `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// 401: the subscription token expired (past `exp` plus the leeway) and no
    /// fresh one came in time.
    Expired,
    /// 403: the connection's token no longer allows the topic (a refresh with
    /// narrower permissions).
    Withdrawn,
}

impl Ended {
    /// The code: 401 or 403, as the error replies of the same causes.
    pub fn code(self) -> u16 {
        match self {
            Self::Expired => 401,
            Self::Withdrawn => 403,
        }
    }

    /// The reason, for people.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Expired => "subscription token expired",
            Self::Withdrawn => "permission withdrawn",
        }
    }
}

/// An error reply's code and message (the codes are listed in `docs/protocol.md`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// The code: 400, 401, 403, 404, 405, 409, 413, 422, 429 or 503.
    pub code: u16,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error with `code` and `message`.
    pub fn new(code: u16, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The request as it arrives, before its fields are checked for its op.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(borrow)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow)]
    topic: Option<Cow<'a, str>>,
    since: Option<WireSince<'a>>,
    // `null` is a value to publish, not a missing field.
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    info: Option<&'a RawValue>,
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
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

/// Just the id, read separately so that a request with bad fields can still be
/// answered under its id.
#[derive(Deserialize)]
struct WireId<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Reads a request. Answers the request's id (raw JSON, echoed verbatim; `null` when
/// it cannot be read) and the request or the error to reply with.
pub fn parse(text: &str, max_data_size: usize) -> (Cow<'_, str>, Result<Request, ErrorReply>) {
    if !text.trim_start().starts_with('{') {
        return (
            Cow::Borrowed("null"),
            Err(ErrorReply::new(
                400,
                "invalid request: a request is a JSON object",
            )),
        );
    }
    let id = match serde_json::from_str::<WireId<'_>>(text) {
        Ok(WireId { id: Some(id) }) if is_valid_id(id) => Cow::Borrowed(id.get()),
        Ok(WireId { id: Some(_) }) => {
            return (
                Cow::Borrowed("null"),
                Err(ErrorReply::new(
                    400,
                    format!("id must be a string or an integer of at most {MAX_ID_LEN} bytes"),
                )),
            );
        }
        Ok(WireId { id: None }) => {
            return (
                Cow::Borrowed("null"),
                Err(ErrorReply::new(
                    400,
                    "invalid request: missing field \"id\"",
                )),
            );
        }
        Err(err) => {
            return (
                Cow::Borrowed("null"),
                Err(ErrorReply::new(400, format!("invalid request: {err}"))),
            );
        }
    };
    (id, parse_fields(text, max_data_size))
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

fn parse_fields(text: &str, max_data_size: usize) -> Result<Request, ErrorReply> {
    let wire: Wire<'_> = serde_json::from_str(text)
        .map_err(|err| ErrorReply::new(400, format!("invalid request: {err}")))?;
    let op = wire
        .op
        .ok_or_else(|| ErrorReply::new(400, "invalid request: missing field \"op\""))?;
    let topic = || -> Result<Topic, ErrorReply> {
        let name = wire
            .topic
            .as_deref()
            .ok_or_else(|| ErrorReply::new(400, "invalid request: missing field \"topic\""))?;
        Topic::new(name).map_err(|err| invalid_topic(name, &err))
    };
    match &*op {
        "sub" => {
            let topic = topic()?;
            let since = match wire.since {
                Some(since) => Some(Position {
                    epoch: Epoch::new(&since.epoch)
                        .map_err(|err| ErrorReply::new(422, format!("invalid since: {err}")))?,
                    offset: since.offset,
                }),
                None => None,
            };
            let info = match wire.info {
                Some(info) if info.get().len() > MAX_INFO_SIZE => {
                    return Err(ErrorReply::new(
                        413,
                        format!(
                            "info is {} bytes; at most {MAX_INFO_SIZE} allowed",
                            info.get().len()
                        ),
                    ));
                }
                Some(info) => Some(raw_data(info)?),
                None => None,
            };
            Ok(Request::Sub {
                topic,
                since,
                info,
                token: wire.token.map(Cow::into_owned),
            })
        }
        "unsub" => Ok(Request::Unsub { topic: topic()? }),
        "pub" => {
            let topic = topic()?;
            let data = wire
                .data
                .ok_or_else(|| ErrorReply::new(400, "invalid request: missing field \"data\""))?;
            if data.get().len() > max_data_size {
                return Err(ErrorReply::new(
                    413,
                    format!(
                        "data is {} bytes; at most {max_data_size} allowed",
                        data.get().len()
                    ),
                ));
            }
            Ok(Request::Pub {
                topic,
                data: raw_data(data)?,
            })
        }
        "presence" => Ok(Request::Presence { topic: topic()? }),
        "auth" => match wire.token {
            Some(token) => Ok(Request::Auth {
                token: token.into_owned(),
            }),
            None => Err(ErrorReply::new(
                400,
                "invalid request: missing field \"token\"",
            )),
        },
        other => Err(ErrorReply::new(
            405,
            format!("unknown op {:?}", truncate(other, 64)),
        )),
    }
}

fn raw_data(value: &RawValue) -> Result<Data, ErrorReply> {
    Data::json(value.get().as_bytes().to_vec())
        .map_err(|err| ErrorReply::new(400, format!("invalid data: {err}")))
}

/// The 422 for a bad topic name.
pub fn invalid_topic(name: &str, err: &NameError) -> ErrorReply {
    ErrorReply::new(
        422,
        format!("invalid topic {:?}: {err}", truncate(name, 64)),
    )
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// `{"hello":{"client":…,"version":1}}`.
pub fn hello(client: &str) -> String {
    let mut out = String::from("{\"hello\":{\"client\":");
    push_json_str(&mut out, client);
    out.push_str(",\"version\":");
    out.push_str(&VERSION.to_string());
    out.push_str("}}");
    out
}

/// `{"id":…,"ok":…}` with `ok` already JSON.
pub fn ok(id: &str, ok: &str) -> String {
    format!("{{\"id\":{id},\"ok\":{ok}}}")
}

/// `{"id":…,"error":{"code":…,"message":…}}`.
pub fn error(id: &str, err: &ErrorReply) -> String {
    format!("{{\"id\":{id},\"error\":{}}}", error_object(err))
}

/// `{"code":…,"message":…}`.
pub fn error_object(err: &ErrorReply) -> String {
    let mut out = format!("{{\"code\":{},\"message\":", err.code);
    push_json_str(&mut out, &err.message);
    out.push('}');
    out
}

/// A position reply, with `recovered` when given: `{"topic","epoch","offset"[,"recovered"]}`.
pub fn position(topic: &Topic, position: &Position, recovered: Option<bool>) -> String {
    let mut out = serde_json::to_string(&PositionReply {
        topic: topic.as_str(),
        epoch: position.epoch.as_str(),
        offset: position.offset,
    })
    .unwrap_or_default();
    if let Some(recovered) = recovered {
        out.pop();
        out.push_str(if recovered {
            ",\"recovered\":true}"
        } else {
            ",\"recovered\":false}"
        });
    }
    out
}

/// `{"topic":…,"unsub":{"code":…,"reason":…}}`: the server ended a subscription.
pub fn unsub(topic: &Topic, ended: Ended) -> String {
    let mut out = String::from("{\"topic\":");
    push_json_str(&mut out, topic.as_str());
    out.push_str(&format!(
        ",\"unsub\":{{\"code\":{},\"reason\":",
        ended.code()
    ));
    push_json_str(&mut out, ended.reason());
    out.push_str("}}");
    out
}

/// `{"topic":…,"members":[…]}`.
pub fn members(topic: &Topic, members: &[Member]) -> String {
    let mut out = Vec::with_capacity(32 + members.len() * 48);
    out.extend_from_slice(b"{\"topic\":\"");
    out.extend_from_slice(topic.as_str().as_bytes());
    out.extend_from_slice(b"\",\"members\":[");
    for (i, member) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        member.to_json(&mut out);
    }
    out.extend_from_slice(b"]}");
    String::from_utf8(out).unwrap_or_default()
}

fn push_json_str(out: &mut String, text: &str) {
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\"")));
}

/// Fuzzing entry point (`fuzz/fuzz_targets/protocol.rs`): reads `data` as a
/// request, as positions and as published JSON, and checks that whatever comes out
/// is well-formed: every reply is valid JSON with the id echoed, every accepted
/// value is valid JSON without line breaks, positions print back to what parses
/// to the same.
#[doc(hidden)]
pub fn fuzz(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (id, request) = parse(text, 256);
    let reply = match &request {
        Ok(_) => ok(&id, "{}"),
        Err(err) => error(&id, err),
    };
    let value: serde_json::Value =
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"));
    assert!(value.get("id").is_some(), "reply without id: {reply}");
    if let Ok(Request::Pub { data, .. })
    | Ok(Request::Sub {
        info: Some(data), ..
    }) = &request
    {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data.as_bytes()).is_ok());
        assert!(!data.as_bytes().iter().any(|&b| b == b'\n' || b == b'\r'));
    }
    if let Ok(positions) = text.parse::<crate::hub::Positions>() {
        let printed = positions.to_string();
        assert_eq!(
            printed.parse::<crate::hub::Positions>().ok(),
            Some(positions)
        );
    }
    if let Ok(data) = Data::json(data.to_vec()) {
        assert!(serde_json::from_slice::<serde::de::IgnoredAny>(data.as_bytes()).is_ok());
    }
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
    fn replies_are_json() {
        let err = ErrorReply::new(404, "not subscribed to \"n\"");
        let text = error("\"x\"", &err);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["id"], "x");
        assert_eq!(value["error"]["code"], 404);
        assert_eq!(value["error"]["message"], "not subscribed to \"n\"");
        let hello: serde_json::Value = serde_json::from_str(&hello("a-1")).unwrap_or_default();
        assert_eq!(hello["hello"]["client"], "a-1");
    }
}
