//! Names: [`Topic`] (validated topic names and their namespace) and [`Epoch`] (a
//! topic's incarnation), with the errors of their grammar ([`NameError`]).

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The longest topic name accepted, in characters (all ASCII, so also in bytes).
pub const MAX_TOPIC_LEN: usize = 256;

/// The longest epoch accepted.
pub const MAX_EPOCH_LEN: usize = 32;

/// The prefix of system topics (`$sys/admin`): published by the node itself to its
/// own local subscribers only, never through the broker; no client may publish to
/// one, and only a client the server grants it may subscribe (see
/// [`Topic::system`]).
pub const SYSTEM_PREFIX: &str = "$sys/";

/// Why a topic name, an epoch or a position was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The topic name is empty.
    #[error("a topic name cannot be empty")]
    EmptyTopic,
    /// The topic name is longer than [`MAX_TOPIC_LEN`].
    #[error("a topic name has at most {MAX_TOPIC_LEN} characters, this one has {0}")]
    TopicTooLong(usize),
    /// The topic name has a character outside the grammar.
    #[error("{0:?} is not allowed in a topic name (use A-Z a-z 0-9 _ - . : / %)")]
    TopicChar(char),
    /// The epoch is empty, too long, or not alphanumeric.
    #[error("an epoch is 1 to {MAX_EPOCH_LEN} characters of A-Z a-z 0-9")]
    Epoch,
    /// A position's text form is not `topic@epoch:offset`.
    #[error("a position is written topic@epoch:offset, not {0:?}")]
    Position(String),
    /// The same topic appears twice in a list of positions.
    #[error("topic {0:?} appears twice")]
    Duplicate(String),
}

/// A validated topic name: 1 to 256 characters of `A-Z a-z 0-9 _ - . : / %`
/// (`%` lets names carry percent-encoded text: Mercure topics are IRIs, see
/// [`crate::interop::mercure::topic`]).
///
/// Cheap to clone (a reference-counted string). The part before the first `:` is the
/// topic's [namespace](Topic::namespace).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Topic(Arc<str>);

impl Topic {
    /// Checks `name` against the grammar.
    pub fn new(name: &str) -> Result<Self, NameError> {
        check_topic(name)?;
        Ok(Self(Arc::from(name)))
    }

    /// The system topic `$sys/<name>`, `name` checked against the grammar. Its
    /// `$` is outside the grammar of [`Topic::new`], so no way in that reads topic
    /// names with it (SSE, long-poll, the publish API) can name one.
    pub fn system(name: &str) -> Result<Self, NameError> {
        check_topic(name)?;
        Ok(Self(Arc::from(format!("{SYSTEM_PREFIX}{name}"))))
    }

    /// Checks `name` as [`Topic::new`] does, but also accepts a system topic
    /// (`$sys/…`), so that a request naming one can be refused as forbidden (403)
    /// rather than as a bad name.
    pub fn new_or_system(name: &str) -> Result<Self, NameError> {
        match name.strip_prefix(SYSTEM_PREFIX) {
            Some(rest) => Self::system(rest),
            None => Self::new(name),
        }
    }

    /// Whether this is a system topic (see [`SYSTEM_PREFIX`]).
    pub fn is_system(&self) -> bool {
        self.0.starts_with(SYSTEM_PREFIX)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the part before the first `:`, or `""` when there is none.
    pub fn namespace(&self) -> &str {
        self.0
            .split_once(':')
            .map_or("", |(namespace, _)| namespace)
    }
}

fn check_topic(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::EmptyTopic);
    }
    if let Some(bad) = name.chars().find(|&c| !is_topic_char(c)) {
        return Err(NameError::TopicChar(bad));
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(NameError::TopicTooLong(name.len()));
    }
    Ok(())
}

fn is_topic_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/' | '%')
}

impl FromStr for Topic {
    type Err = NameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::new(name)
    }
}

impl Borrow<str> for Topic {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A topic's epoch: it changes whenever the topic's history is lost, so positions
/// from before cannot be mistaken for positions after.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// Checks `text`: 1 to 32 characters of `A-Z a-z 0-9`.
    pub fn new(text: &str) -> Result<Self, NameError> {
        if text.is_empty()
            || text.len() > MAX_EPOCH_LEN
            || !text.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(NameError::Epoch);
        }
        Ok(Self(Arc::from(text)))
    }

    /// A new random epoch of 8 characters (47 bits), practically never equal to an
    /// earlier one.
    pub fn random() -> Self {
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut bits: u64 = rand::random();
        let text: String = (0..8)
            .map(|_| {
                let c = ALPHABET[(bits % 62) as usize];
                bits /= 62;
                char::from(c)
            })
            .collect();
        Self(Arc::from(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_grammar() {
        for good in [
            "news",
            "chat:lobby",
            "a/b.c-d_e",
            "m:a%3Fb",
            &"x".repeat(256),
        ] {
            assert!(Topic::new(good).is_ok(), "{good}");
        }
        assert_eq!(Topic::new(""), Err(NameError::EmptyTopic));
        assert_eq!(Topic::new("a b"), Err(NameError::TopicChar(' ')));
        assert_eq!(Topic::new("a@b"), Err(NameError::TopicChar('@')));
        assert_eq!(Topic::new("a,b"), Err(NameError::TopicChar(',')));
        assert_eq!(Topic::new("é"), Err(NameError::TopicChar('é')));
        assert_eq!(
            Topic::new(&"x".repeat(257)),
            Err(NameError::TopicTooLong(257))
        );
    }

    #[test]
    fn the_namespace_is_before_the_first_colon() {
        assert_eq!(
            Topic::new("chat:lobby:1").map(|t| t.namespace().to_owned()),
            Ok("chat".into())
        );
        assert_eq!(
            Topic::new("news").map(|t| t.namespace().to_owned()),
            Ok(String::new())
        );
    }

    #[test]
    fn random_epochs_are_valid_and_differ() {
        let a = Epoch::random();
        assert!(Epoch::new(a.as_str()).is_ok());
        assert_ne!(a, Epoch::random());
    }
}
