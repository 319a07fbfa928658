//! What a token allows: permissions, topic patterns, and the verified identity
//! and subscription grant they are checked against.

use std::sync::Arc;

use crate::topic::ErrorCode;
use crate::topic::ErrorReply;
use crate::topic::Topic;

/// One permission a token can grant on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Subscribe (`sub`, SSE, long-poll).
    Sub,
    /// Publish (`pub`, the publish API).
    Pub,
    /// Ask who is present (`presence`).
    Presence,
}

impl Permission {
    pub(super) fn bit(self) -> u8 {
        match self {
            Self::Sub => 1,
            Self::Pub => 2,
            Self::Presence => 4,
        }
    }

    /// The name used in tokens and messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sub => "sub",
            Self::Pub => "pub",
            Self::Presence => "presence",
        }
    }

    pub(super) fn parse(name: &str) -> Option<Self> {
        match name {
            "sub" => Some(Self::Sub),
            "pub" => Some(Self::Pub),
            "presence" => Some(Self::Presence),
            _ => None,
        }
    }
}

/// A topic pattern: an exact name, or a prefix ending in `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// Exactly this topic.
    Exact(String),
    /// Every topic starting with this prefix (the pattern without its `*`).
    Prefix(String),
}

impl Pattern {
    /// Reads `news` or `chat:*`; a `*` anywhere but at the end is refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (body, prefix) = match text.strip_suffix('*') {
            Some(body) => (body, true),
            None => (text, false),
        };
        if body.contains('*') {
            return Err(String::from("'*' may only end a pattern"));
        }
        if !prefix && body.is_empty() {
            return Err(String::from("empty pattern"));
        }
        Ok(if prefix {
            Self::Prefix(body.to_owned())
        } else {
            Self::Exact(body.to_owned())
        })
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            Self::Exact(name) => name == topic,
            Self::Prefix(prefix) => topic.starts_with(prefix.as_str()),
        }
    }
}

/// A verified connection token: who the client is, until when, and what it may do.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The user id (`sub`).
    pub user: Arc<str>,
    /// When the token expires (`exp`, Unix seconds).
    pub expires: u64,
    /// Each pattern with the bits of the permissions it grants.
    pub(super) grants: Vec<(Pattern, u8)>,
}

impl Identity {
    /// Whether the token grants `permission` on `topic`.
    pub fn allows(&self, topic: &str, permission: Permission) -> bool {
        self.grants
            .iter()
            .any(|(pattern, bits)| bits & permission.bit() != 0 && pattern.matches(topic))
    }
}

/// A verified subscription token: `user` may subscribe to `topic` until `expires`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionGrant {
    /// The user id (`sub`).
    pub user: String,
    /// The one topic.
    pub topic: String,
    /// When the token expires (Unix seconds).
    pub expires: u64,
}

/// The 403 for a permission the token does not grant.
pub fn forbidden(topic: &Topic, permission: Permission) -> ErrorReply {
    ErrorCode::Forbidden.reply(format!(
        "the token does not grant {:?} on {:?}",
        permission.name(),
        topic.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_names_and_prefixes() {
        let chat = Pattern::parse("chat:*").unwrap_or_else(|e| panic!("{e}"));
        assert!(chat.matches("chat:x"));
        assert!(!chat.matches("chatter"));
        let all = Pattern::parse("*").unwrap_or_else(|e| panic!("{e}"));
        assert!(all.matches("anything"));
        let news = Pattern::parse("news").unwrap_or_else(|e| panic!("{e}"));
        assert!(news.matches("news") && !news.matches("news2"));
        assert!(Pattern::parse("a*b").is_err());
        assert!(Pattern::parse("").is_err());
    }
}
