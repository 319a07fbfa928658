//! Pushes on the wire: a [`Push`] as the JSON object every transport delivers,
//! `{"topic":…,"epoch":…,"offset":…,"data":…}` or `{"topic":…,"join":{…}}` /
//! `"leave"`, and as the WebSocket frame that carries it.
//!
//! Encode once, send many: the JSON is written when the first subscriber needs it
//! and the frame built when the first WebSocket subscriber needs it; both are kept
//! in the push ([`Push::encoded`]) and shared by every other subscriber.

use std::sync::OnceLock;

use bytes::{BufMut, Bytes, BytesMut};

use crate::topic::{Member, Push, PushKind};
use crate::ws::{Message, Prepared, Utf8Bytes};

/// The forms of a push in our protocol, kept in the push.
struct Encoded {
    json: Utf8Bytes,
    frame: OnceLock<Prepared>,
}

impl Encoded {
    fn new(push: &Push) -> Self {
        Self {
            json: encode(push),
            frame: OnceLock::new(),
        }
    }
}

/// A push in our protocol: its JSON and its WebSocket frame, each encoded once per
/// push and shared by every subscriber.
pub trait PushJson {
    /// The JSON object every transport delivers.
    fn json(&self) -> &Utf8Bytes;

    /// The WebSocket text frame holding [`json`](Self::json), built on first use
    /// and shared after that.
    fn frame(&self) -> &Prepared;
}

impl PushJson for Push {
    fn json(&self) -> &Utf8Bytes {
        &self.encoded(Encoded::new).json
    }

    fn frame(&self) -> &Prepared {
        let encoded = self.encoded(Encoded::new);
        encoded
            .frame
            .get_or_init(|| Prepared::new(Message::Text(encoded.json.clone())))
    }
}

/// Writes `push` as its JSON object.
fn encode(push: &Push) -> Utf8Bytes {
    let topic = push.topic();
    match push.kind() {
        PushKind::Message {
            epoch,
            offset,
            data,
        } => {
            let mut out = BytesMut::with_capacity(64 + topic.as_str().len() + data.len());
            out.put_slice(b"{\"topic\":\"");
            // Topic names and epochs need no escaping: their grammar excludes it.
            out.put_slice(topic.as_str().as_bytes());
            out.put_slice(b"\",\"epoch\":\"");
            out.put_slice(epoch.as_str().as_bytes());
            out.put_slice(b"\",\"offset\":");
            out.put_slice(itoa(*offset).as_bytes());
            out.put_slice(b",\"data\":");
            out.put_slice(data.as_bytes());
            out.put_u8(b'}');
            // SAFETY: every piece is UTF-8: the literals, the topic and epoch (`str`s)
            // and the data (JSON, validated as text when it was parsed).
            unsafe { Utf8Bytes::from_validated(out.freeze()) }
        }
        PushKind::Join(member) | PushKind::Leave(member) => {
            let joined = matches!(push.kind(), PushKind::Join(_));
            let mut out = Vec::with_capacity(64);
            out.extend_from_slice(b"{\"topic\":\"");
            out.extend_from_slice(topic.as_str().as_bytes());
            out.extend_from_slice(if joined {
                b"\",\"join\":"
            } else {
                b"\",\"leave\":"
            });
            member_json(member, &mut out);
            out.push(b'}');
            // SAFETY: the literals and the topic are `str`s, and `member_json`
            // writes JSON built from `str`s.
            unsafe { Utf8Bytes::from_validated(Bytes::from(out)) }
        }
    }
}

/// Appends `member` as the JSON object `{"client":…,"user":…,"info":…}` (`user`
/// and `info` only when present).
pub fn member_json(member: &Member, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"client\":");
    let _ = serde_json::to_writer(&mut *out, &*member.client);
    if let Some(user) = &member.user {
        out.extend_from_slice(b",\"user\":");
        let _ = serde_json::to_writer(&mut *out, &**user);
    }
    if let Some(info) = &member.info {
        out.extend_from_slice(b",\"info\":");
        out.extend_from_slice(info.as_bytes());
    }
    out.push(b'}');
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::topic::{Data, Epoch, Topic};

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
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
    fn the_json_and_the_frame_are_made_once_per_push() {
        let push = Push::message(
            topic("news"),
            Epoch::new("E1").unwrap_or_else(|e| panic!("{e}")),
            1,
            Data::text("x"),
        );
        assert!(std::ptr::eq(push.json(), push.json()));
        assert!(std::ptr::eq(push.frame(), push.frame()));
        assert_eq!(push.frame().message().as_text(), Some(push.json().as_str()));
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
