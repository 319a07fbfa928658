//! What the hub delivers: [`Push`], one published message or presence event,
//! encoded once as JSON and, on first use, once as a WebSocket frame shared by every
//! subscriber; and [`Data`], a validated JSON value.

use std::fmt;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use super::topic::{Epoch, Position, Topic};
use crate::ws::{Message, Prepared, Utf8Bytes};

/// Whether arrays and objects in `json` (valid JSON) nest deeper than `max`.
fn nesting_exceeds(json: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A published value: the bytes of one valid JSON value, without line breaks.
///
/// Line breaks can only be insignificant whitespace in valid JSON; they are removed
/// so that a message is always one line (one SSE `data:` line, one line of
/// `pushwire sub`).
#[derive(Clone, PartialEq, Eq)]
pub struct Data(Bytes);

/// How deeply arrays and objects may nest in published data. Subscribers parse
/// what they get, and common parsers stop at 128 levels (serde_json) or run out of
/// stack; a message every subscriber can read is kept well below that.
pub const MAX_DEPTH: usize = 64;

/// The published bytes are not one JSON value that subscribers can read.
#[derive(Debug, thiserror::Error)]
pub enum InvalidJson {
    /// Not JSON.
    #[error("not valid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Arrays and objects nested deeper than [`MAX_DEPTH`].
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
}

impl Data {
    /// Checks that `bytes` hold exactly one JSON value (surrounding whitespace
    /// allowed), nested at most [`MAX_DEPTH`] levels.
    pub fn json(bytes: impl Into<Bytes>) -> Result<Self, InvalidJson> {
        let bytes = bytes.into();
        serde_json::from_slice::<serde::de::IgnoredAny>(&bytes)?;
        if nesting_exceeds(&bytes, MAX_DEPTH) {
            return Err(InvalidJson::TooDeep);
        }
        let trimmed = bytes.trim_ascii();
        let start = trimmed.as_ptr() as usize - bytes.as_ptr() as usize;
        let bytes = bytes.slice(start..start + trimmed.len());
        if memchr_newline(&bytes) {
            let one_line: Vec<u8> = bytes
                .iter()
                .copied()
                .filter(|&b| b != b'\n' && b != b'\r')
                .collect();
            return Ok(Self(Bytes::from(one_line)));
        }
        Ok(Self(bytes))
    }

    /// A JSON string holding `text`.
    pub fn text(text: &str) -> Self {
        let mut out = Vec::with_capacity(text.len() + 2);
        // Serializing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, text);
        Self(Bytes::from(out))
    }

    /// The JSON text.
    pub fn as_bytes(&self) -> &Bytes {
        &self.0
    }

    /// The JSON text as a string slice.
    pub fn as_str(&self) -> &str {
        // Validated as JSON, so valid UTF-8.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Its size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty (never, for a valid value).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn memchr_newline(bytes: &[u8]) -> bool {
    bytes.iter().any(|&b| b == b'\n' || b == b'\r')
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One client present on a topic: its id and what it said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The client id (from the WebSocket `hello`).
    pub client: Arc<str>,
    /// The user id of the client's token (`sub`), when authentication is on.
    pub user: Option<Arc<str>>,
    /// The `info` the client gave when subscribing (JSON), if any.
    pub info: Option<Data>,
}

impl Member {
    /// The member as the JSON object `{"client":…,"user":…,"info":…}` (`user` and
    /// `info` only when present).
    pub fn to_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"client\":");
        let _ = serde_json::to_writer(&mut *out, &*self.client);
        if let Some(user) = &self.user {
            out.extend_from_slice(b",\"user\":");
            let _ = serde_json::to_writer(&mut *out, &**user);
        }
        if let Some(info) = &self.info {
            out.extend_from_slice(b",\"info\":");
            out.extend_from_slice(info.as_bytes());
        }
        out.push(b'}');
    }
}

/// What a push carries.
#[derive(Debug, Clone)]
pub enum PushKind {
    /// A published message at `offset` of the topic's `epoch`.
    Message {
        /// The topic's epoch.
        epoch: Epoch,
        /// The message's offset.
        offset: u64,
        /// The published value.
        data: Data,
    },
    /// A client subscribed to a presence topic.
    Join(Member),
    /// A client left a presence topic.
    Leave(Member),
}

/// One delivery: a published message or a presence event, encoded once as JSON and
/// (when first sent over a WebSocket) once as a frame, then shared by every
/// subscriber.
pub struct Push {
    topic: Topic,
    kind: PushKind,
    json: Utf8Bytes,
    frame: OnceLock<Prepared>,
}

impl Push {
    /// A published message: `{"topic":…,"epoch":…,"offset":…,"data":…}`.
    pub fn message(topic: Topic, epoch: Epoch, offset: u64, data: Data) -> Self {
        let mut out = BytesMut::with_capacity(64 + topic.as_str().len() + data.len());
        out.put_slice(b"{\"topic\":\"");
        // Topic names and epochs need no escaping: their grammar excludes it.
        out.put_slice(topic.as_str().as_bytes());
        out.put_slice(b"\",\"epoch\":\"");
        out.put_slice(epoch.as_str().as_bytes());
        out.put_slice(b"\",\"offset\":");
        out.put_slice(itoa(offset).as_bytes());
        out.put_slice(b",\"data\":");
        out.put_slice(data.as_bytes());
        out.put_u8(b'}');
        // SAFETY: every piece is UTF-8: the literals, the topic and epoch (`str`s)
        // and the data (JSON, validated as text when it was parsed).
        let json = unsafe { Utf8Bytes::from_validated(out.freeze()) };
        Self {
            topic,
            kind: PushKind::Message {
                epoch,
                offset,
                data,
            },
            json,
            frame: OnceLock::new(),
        }
    }

    /// A presence event: `{"topic":…,"join":{…}}` or `{"topic":…,"leave":{…}}`.
    pub fn presence(topic: Topic, joined: bool, member: Member) -> Self {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"topic\":\"");
        out.extend_from_slice(topic.as_str().as_bytes());
        out.extend_from_slice(if joined {
            b"\",\"join\":"
        } else {
            b"\",\"leave\":"
        });
        member.to_json(&mut out);
        out.push(b'}');
        // SAFETY: the literals and the topic are `str`s, and `Member::to_json`
        // writes JSON built from `str`s.
        let json = unsafe { Utf8Bytes::from_validated(Bytes::from(out)) };
        let kind = if joined {
            PushKind::Join(member)
        } else {
            PushKind::Leave(member)
        };
        Self {
            topic,
            kind,
            json,
            frame: OnceLock::new(),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &Topic {
        &self.topic
    }

    /// What it carries.
    pub fn kind(&self) -> &PushKind {
        &self.kind
    }

    /// The message's position, or `None` for a presence event.
    pub fn position(&self) -> Option<Position> {
        match &self.kind {
            PushKind::Message { epoch, offset, .. } => Some(Position {
                epoch: epoch.clone(),
                offset: *offset,
            }),
            _ => None,
        }
    }

    /// The message's offset, or `None` for a presence event.
    pub fn offset(&self) -> Option<u64> {
        match &self.kind {
            PushKind::Message { offset, .. } => Some(*offset),
            _ => None,
        }
    }

    /// The JSON object every transport delivers.
    pub fn json(&self) -> &Utf8Bytes {
        &self.json
    }

    /// The WebSocket frame, built on first use and shared after that.
    pub fn frame(&self) -> &Prepared {
        self.frame
            .get_or_init(|| Prepared::new(Message::Text(self.json.clone())))
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

/// Formats an integer without allocating through `fmt`.
fn itoa(mut n: u64) -> ItoaBuf {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    ItoaBuf { buf, start: i }
}

struct ItoaBuf {
    buf: [u8; 20],
    start: usize,
}

impl ItoaBuf {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// A position as it appears in replies: `{"topic":…,"epoch":…,"offset":…}`.
#[derive(Debug, Clone, Serialize)]
pub struct PositionReply<'a> {
    /// The topic.
    pub topic: &'a str,
    /// Its epoch.
    pub epoch: &'a str,
    /// The offset.
    pub offset: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn data_may_nest_64_levels_and_no_more() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Data::json(nested(64)).is_ok());
        assert!(matches!(Data::json(nested(65)), Err(InvalidJson::TooDeep)));
        let objects = format!("{}1{}", r#"{"a":"#.repeat(65), "}".repeat(65));
        assert!(matches!(Data::json(objects), Err(InvalidJson::TooDeep)));
        // Brackets inside strings (escaped quotes included) are not nesting.
        let in_string = format!(r#"["\"{}"]"#, "[".repeat(100));
        assert!(Data::json(in_string).is_ok());
    }

    #[test]
    fn a_message_is_encoded_as_one_json_object() {
        let data = Data::json(&b" {\"a\": [1,\n 2]}\n"[..]).unwrap_or_else(|e| panic!("{e}"));
        let epoch = Epoch::new("E1").unwrap_or_else(|e| panic!("{e}"));
        let push = Push::message(topic("news"), epoch, 42, data);
        assert_eq!(
            push.json().as_str(),
            r#"{"topic":"news","epoch":"E1","offset":42,"data":{"a": [1, 2]}}"#
        );
        let parsed: serde_json::Value =
            serde_json::from_str(push.json().as_str()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed["data"]["a"][1], 2);
    }

    #[test]
    fn text_becomes_a_json_string() {
        assert_eq!(Data::text("a \"b\"\n").as_str(), r#""a \"b\"\n""#);
    }

    #[test]
    fn invalid_json_is_refused() {
        for bad in [&b""[..], b"{", b"1 2", b"\xff", b"nul"] {
            assert!(Data::json(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn presence_events_name_the_member() {
        let member = Member {
            client: Arc::from("n-1"),
            user: None,
            info: Some(Data::text("ann")),
        };
        let push = Push::presence(topic("chat:x"), true, member);
        assert_eq!(
            push.json().as_str(),
            r#"{"topic":"chat:x","join":{"client":"n-1","info":"ann"}}"#
        );
        assert_eq!(push.offset(), None);
    }

    #[test]
    fn integers_format_like_display() {
        for n in [0u64, 7, 10, 12345, u64::MAX] {
            assert_eq!(itoa(n).as_bytes(), n.to_string().as_bytes());
        }
    }
}
