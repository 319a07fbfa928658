//! What the server writes besides pushes: the hello, replies (`ok` and `error`),
//! and `unsub` pushes that tell why the server ended a subscription.

use serde::Serialize;

use super::VERSION;
use super::push::member_json;
use crate::topic::{ErrorCode, ErrorReply, Member, Position, Topic};

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
        self.error_code().number()
    }

    /// The code as an [`ErrorCode`].
    pub fn error_code(self) -> ErrorCode {
        match self {
            Self::Expired => ErrorCode::Unauthorized,
            Self::Withdrawn => ErrorCode::Forbidden,
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

/// `{"topic":…}`: the reply to an `unsub`.
pub fn topic(topic: &Topic) -> String {
    format!("{{\"topic\":\"{topic}\"}}")
}

/// `{"topic":…,"expires":…,"refreshed":true}`: a fresh subscription token for a
/// subscription that goes on.
pub fn refreshed(topic: &Topic, expires: u64) -> String {
    let mut ok = String::from("{\"topic\":");
    push_json_str(&mut ok, topic.as_str());
    ok.push_str(&format!(",\"expires\":{expires},\"refreshed\":true}}"));
    ok
}

/// A `sub` reply's position with the subscription token's `expires` added.
pub fn with_expires(mut reply: String, expires: u64) -> String {
    reply.pop();
    reply.push_str(&format!(",\"expires\":{expires}}}"));
    reply
}

/// `{"user":…,"expires":…}`: the reply to an `auth`.
pub fn authenticated(user: &str, expires: u64) -> String {
    serde_json::json!({"user": user, "expires": expires}).to_string()
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
        member_json(member, &mut out);
    }
    out.extend_from_slice(b"]}");
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `text` as a JSON string.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    // Serializing a str cannot fail.
    out.push_str(&serde_json::to_string(text).unwrap_or_else(|_| String::from("\"\"")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_json() {
        let err = ErrorCode::NotSubscribed.reply("not subscribed to \"n\"");
        let text = error("\"x\"", &err);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(value["id"], "x");
        assert_eq!(value["error"]["code"], 404);
        assert_eq!(value["error"]["message"], "not subscribed to \"n\"");
        let hello: serde_json::Value = serde_json::from_str(&hello("a-1")).unwrap_or_default();
        assert_eq!(hello["hello"]["client"], "a-1");
    }
}
