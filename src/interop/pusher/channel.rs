//! Pusher channel names: [`Channel`] (a checked name), its [`ChannelKind`] (told by
//! its prefix), and the escaping that makes every channel name a topic name.
//!
//! Channel names are 1 to 164 characters of `A-Z a-z 0-9 _ - = @ , . ;` (and the
//! `#` of `#server-to-user-…`). Topic names have `A-Z a-z 0-9 _ - . : /`, so the
//! others are written `/XX` in a topic (two upper-case hex digits of the byte):
//! `/` is never in a channel name, so the escaping can be undone exactly.

use std::fmt;
use std::sync::Arc;

/// The prefix of a user's own channel, which the server subscribes a signed-in
/// pusher-js to (`#server-to-user-{user id}`).
pub const USER_CHANNEL_PREFIX: &str = "#server-to-user-";

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// The name is empty.
    #[error("a channel name cannot be empty")]
    Empty,
    /// The name is longer than Pusher allows.
    #[error("a channel name has at most {max} characters, this one has {len}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A character outside the grammar.
    #[error("{0:?} is not allowed in a channel name (use A-Z a-z 0-9 _ - = @ , . ;)")]
    Char(char),
}

/// What a channel's prefix makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// Anyone may subscribe.
    Public,
    /// `private-`: subscribing needs an auth signature.
    Private,
    /// `private-encrypted-`: as private; the server relays the ciphertext it is given
    /// and never decrypts; no client events.
    PrivateEncrypted,
    /// `presence-`: as private, with a member list.
    Presence,
    /// `#server-to-user-{id}`: a signed-in user's own channel; only the server
    /// subscribes a connection to it.
    User,
}

impl ChannelKind {
    fn of(name: &str) -> Self {
        if name.starts_with("private-encrypted-") {
            Self::PrivateEncrypted
        } else if name.starts_with("private-") {
            Self::Private
        } else if name.starts_with("presence-") {
            Self::Presence
        } else if name.starts_with(USER_CHANNEL_PREFIX) {
            Self::User
        } else {
            Self::Public
        }
    }
}

/// A checked Pusher channel name. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Channel(Arc<str>);

/// The longest channel name Pusher accepts.
pub const MAX_CHANNEL_LEN: usize = 164;

impl Channel {
    /// Checks `name` against the grammar of channel names.
    pub fn parse(name: &str) -> Result<Self, ChannelError> {
        if name.is_empty() {
            return Err(ChannelError::Empty);
        }
        let body = name.strip_prefix(USER_CHANNEL_PREFIX).unwrap_or(name);
        if let Some(bad) = body.chars().find(|&c| !is_channel_char(c)) {
            return Err(ChannelError::Char(bad));
        }
        if name.len() > MAX_CHANNEL_LEN {
            return Err(ChannelError::TooLong {
                len: name.len(),
                max: MAX_CHANNEL_LEN,
            });
        }
        Ok(Self(Arc::from(name)))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What its prefix makes it.
    pub fn kind(&self) -> ChannelKind {
        ChannelKind::of(&self.0)
    }

    /// The user's own channel of `user_id`, if the id makes a valid channel name.
    pub fn for_user(user_id: &str) -> Result<Self, ChannelError> {
        Self::parse(&format!("{USER_CHANNEL_PREFIX}{user_id}"))
    }

    /// The name as it is written in a topic: every character outside the topic
    /// grammar as `/XX`.
    pub fn escaped(&self) -> String {
        let mut out = String::with_capacity(self.0.len());
        for byte in self.0.bytes() {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.') {
                out.push(char::from(byte));
            } else {
                out.push('/');
                out.push_str(&format!("{byte:02X}"));
            }
        }
        out
    }

    /// The channel whose [`escaped`](Self::escaped) form is `text`; `None` when
    /// `text` is not one.
    pub fn unescape(text: &str) -> Option<Self> {
        let mut name = Vec::with_capacity(text.len());
        let mut bytes = text.bytes();
        while let Some(byte) = bytes.next() {
            if byte == b'/' {
                let hex = [bytes.next()?, bytes.next()?];
                let hex = std::str::from_utf8(&hex).ok()?;
                if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                name.push(u8::from_str_radix(hex, 16).ok()?);
            } else {
                name.push(byte);
            }
        }
        let channel = Self::parse(std::str::from_utf8(&name).ok()?).ok()?;
        // Only the one spelling `escaped` writes (`:` and the letters are never
        // escaped), so that two topics never name one channel.
        (channel.escaped() == text).then_some(channel)
    }
}

fn is_channel_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '=' | '@' | ',' | '.' | ';')
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_pushers_grammar() {
        for good in [
            "a",
            "private-x",
            "presence-room@1,2;3=4",
            "#server-to-user-42",
            &"x".repeat(164),
        ] {
            assert!(Channel::parse(good).is_ok(), "{good}");
        }
        assert_eq!(Channel::parse(""), Err(ChannelError::Empty));
        assert_eq!(Channel::parse("a b"), Err(ChannelError::Char(' ')));
        assert_eq!(Channel::parse("a/b"), Err(ChannelError::Char('/')));
        assert_eq!(Channel::parse("a:b"), Err(ChannelError::Char(':')));
        assert_eq!(Channel::parse("#x"), Err(ChannelError::Char('#')));
        assert_eq!(
            Channel::parse(&"x".repeat(165)),
            Err(ChannelError::TooLong { len: 165, max: 164 })
        );
    }

    #[test]
    fn kinds_come_from_the_prefix() {
        let kind = |n: &str| Channel::parse(n).map(|c| c.kind());
        assert_eq!(kind("news"), Ok(ChannelKind::Public));
        assert_eq!(kind("private-a"), Ok(ChannelKind::Private));
        assert_eq!(
            kind("private-encrypted-a"),
            Ok(ChannelKind::PrivateEncrypted)
        );
        assert_eq!(kind("presence-a"), Ok(ChannelKind::Presence));
        assert_eq!(kind("#server-to-user-1"), Ok(ChannelKind::User));
    }

    #[test]
    fn escaping_is_undone_exactly_and_only_one_spelling_is_read() {
        let channel = Channel::parse("a@b=c,d;e#").map(|c| c.escaped());
        assert_eq!(channel, Err(ChannelError::Char('#')));
        let channel = Channel::parse("a@b=c,d;e").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(channel.escaped(), "a/40b/3Dc/2Cd/3Be");
        assert_eq!(Channel::unescape("a/40b/3Dc/2Cd/3Be"), Some(channel));
        assert_eq!(Channel::unescape("a/4"), None);
        assert_eq!(Channel::unescape("a/3a"), None, "lower-case hex");
        assert_eq!(Channel::unescape("a/41"), None, "an escaped letter");
        assert_eq!(Channel::unescape("a:b"), None);
    }
}
