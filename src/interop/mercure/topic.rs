//! Mercure topics (any IRI) as pushwire topics, and back.
//!
//! The IRI `I` is the topic `{namespace}:{E}`, `E` being `I` with every byte
//! outside `A-Z a-z 0-9 _ - . : /` written `%XX` (upper-case hex, UTF-8 bytes for
//! non-ASCII characters; `%` itself becomes `%25`). So
//! `https://example.com/books/1` is the topic `mercure:https://example.com/books/1`,
//! `https://example.com/?q=a b` is `mercure:https://example.com/%3Fq%3Da%20b`, and
//! the mapping is reversible: [`iri_of`] gives the IRI of any topic of the
//! namespace whose name decodes to UTF-8.
//!
//! A pushwire topic name has at most [`MAX_TOPIC_LEN`] characters, so an IRI whose
//! topic would be longer is refused ([`TopicTooLong`]).

use crate::topic::{MAX_TOPIC_LEN, Topic};

/// A Mercure topic whose pushwire topic name would be longer than
/// [`MAX_TOPIC_LEN`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "topic {shown:?} is too long: as a pushwire topic (namespace, `:`, percent-encoded IRI) it has \
     {len} characters, at most {MAX_TOPIC_LEN} allowed"
)]
pub struct TopicTooLong {
    /// The start of the IRI.
    pub shown: String,
    /// The length it would have.
    pub len: usize,
}

/// The pushwire topic of the IRI `iri` in `namespace`.
pub fn topic_of(namespace: &str, iri: &str) -> Result<Topic, TopicTooLong> {
    let mut name = String::with_capacity(namespace.len() + 1 + iri.len());
    name.push_str(namespace);
    name.push(':');
    for byte in iri.bytes() {
        if keeps(byte) {
            name.push(char::from(byte));
        } else {
            name.push('%');
            name.push(hex(byte >> 4));
            name.push(hex(byte & 0x0f));
        }
    }
    if name.len() > MAX_TOPIC_LEN {
        return Err(TopicTooLong {
            shown: iri.chars().take(64).collect(),
            len: name.len(),
        });
    }
    Topic::new(&name).map_err(|_| TopicTooLong {
        // Every character written is in the grammar and the length is checked:
        // only an empty or malformed namespace gets here.
        shown: iri.chars().take(64).collect(),
        len: name.len(),
    })
}

/// The IRI of `topic` when it is in `namespace` and decodes to UTF-8.
pub fn iri_of(namespace: &str, topic: &Topic) -> Option<String> {
    let encoded = topic.as_str().strip_prefix(namespace)?.strip_prefix(':')?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let [high, low, tail @ ..] = tail else {
                return None;
            };
            bytes.push(unhex(*high)? << 4 | unhex(*low)?);
            rest = tail;
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    String::from_utf8(bytes).ok()
}

fn keeps(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.' | b':' | b'/')
}

fn hex(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0x0f)])
}

fn unhex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(iri: &str) -> String {
        topic_of("mercure", iri)
            .map(|t| t.as_str().to_owned())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn urls_keep_their_shape() {
        assert_eq!(
            topic("https://example.com/books/1"),
            "mercure:https://example.com/books/1"
        );
        assert_eq!(topic("news"), "mercure:news");
    }

    #[test]
    fn other_bytes_are_percent_encoded_and_come_back() {
        for iri in [
            "https://example.com/?q=a b&x=%41#frag",
            "urn:isbn:978-3-16",
            "/.well-known/mercure/subscriptions/exact/a%2Fb/urn%3Auuid%3A1",
            "https://exämple.com/ünïcode/日本",
            "@,;=~!$'()*+",
        ] {
            let name = topic(iri);
            assert!(Topic::new(&name).is_ok(), "{name}");
            let back = Topic::new(&name).ok().and_then(|t| iri_of("mercure", &t));
            assert_eq!(back.as_deref(), Some(iri), "{name}");
        }
        assert_eq!(topic("a b%"), "mercure:a%20b%25");
    }

    #[test]
    fn topics_outside_the_namespace_or_not_utf8_have_no_iri() {
        let other = Topic::new("chat:lobby").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(iri_of("mercure", &other), None);
        let prefix_only = Topic::new("mercurex:a").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(iri_of("mercure", &prefix_only), None);
        let bad = Topic::new("mercure:%FF").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(iri_of("mercure", &bad), None);
        let cut = Topic::new("mercure:a%4").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(iri_of("mercure", &cut), None);
        let plain = Topic::new("mercure:news").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(iri_of("mercure", &plain).as_deref(), Some("news"));
    }

    #[test]
    fn too_long_iris_are_refused_with_their_length() {
        let long = "x".repeat(MAX_TOPIC_LEN);
        let err = topic_of("mercure", &long)
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!(err.len, MAX_TOPIC_LEN + 8);
        let fits = "x".repeat(MAX_TOPIC_LEN - 8);
        assert!(topic_of("mercure", &fits).is_ok());
    }
}
