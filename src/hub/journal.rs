//! Journals: one topic that keeps a copy of every message of many topics, in one
//! order.
//!
//! A [`Journal`] names a topic prefix and a journal topic. When the hub publishes
//! a message on a topic that starts with the prefix (see
//! [`HubConfig::journals`](super::HubConfig::journals)), it then appends an
//! [`entry`] `{"topic":"<topic>","data":<data>}` to the journal topic through
//! the broker: the journal gets its own offsets (the same on every node, since the
//! broker assigns them), its own bounded history, and its subscribers read the
//! messages of every journaled topic in the order the journal got them. The
//! Mercure hub ([`crate::interop::mercure`]) reads its journal (`mercure.journal`
//! for the `mercure:` topics): its subscribers match many topics at once and
//! resume from one id.
//!
//! Messages reach the journal in the order their copies were appended: two
//! publishes racing on different topics may land in either order, and the journal
//! order is the one its readers see. [`Hub::publish_journal`](super::Hub::publish_journal)
//! appends an entry to the journal only (not to the topic): Mercure's private
//! updates, which must never reach the topic's own subscribers.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::topic::{Data, Topic};

/// A journal: every message of the topics starting with `prefix` is copied, as an
/// [`entry`], into `topic`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Journal {
    /// The topics it keeps: those whose name starts with this (`"mercure:"`).
    pub prefix: String,
    /// The journal topic (`mercure.journal`); it must not start with `prefix`.
    pub topic: Topic,
}

impl Journal {
    /// Whether a message published on `topic` is copied into this journal: `topic`
    /// starts with the prefix and is not the journal itself.
    pub fn keeps(&self, topic: &Topic) -> bool {
        topic.as_str().starts_with(self.prefix.as_str()) && *topic != self.topic
    }
}

/// The journal entry of `data` published on `topic`:
/// `{"topic":"<topic>","data":<data>}` (one line, `data` as it is).
///
/// It nests one level deeper than `data` and is not limited by
/// [`HubConfig::max_data_size`](super::HubConfig::max_data_size): the value was
/// checked when it was published.
pub fn entry(topic: &Topic, data: &Data) -> Data {
    let mut out = Vec::with_capacity(topic.as_str().len() + data.len() + 22);
    out.extend_from_slice(b"{\"topic\":");
    // Serializing a str into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, topic.as_str());
    out.extend_from_slice(b",\"data\":");
    out.extend_from_slice(data.as_bytes());
    out.push(b'}');
    Data::trusted(Bytes::from(out))
}

/// An entry as [`entry`] writes it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry<'a> {
    topic: String,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// Reads a journal entry back: the topic and the data (sharing the entry's
/// bytes). `None` when `data` is not an entry (another message on the journal
/// topic, or a topic name that is not valid).
pub fn read(data: &Data) -> Option<(Topic, Data)> {
    let bytes = data.as_bytes();
    // An object only (serde would also take the fields as an array).
    if bytes.first() != Some(&b'{') {
        return None;
    }
    let entry: Entry<'_> = serde_json::from_slice(bytes).ok()?;
    let topic = Topic::new(&entry.topic).ok()?;
    let raw = entry.data.get().as_bytes();
    let start = (raw.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    let inner = bytes.get(start..start + raw.len())?;
    // The same bytes, not a copy of them: `raw` borrows from `bytes`.
    if inner.as_ptr() != raw.as_ptr() {
        return None;
    }
    Some((topic, Data::trusted(bytes.slice(start..start + raw.len()))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    fn json(text: &str) -> Data {
        Data::json(text.to_owned()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_entry_holds_the_topic_and_the_data_as_they_are_and_reads_back() {
        let data = json(r#"{"event":"x","data":"a\nb","id":"urn:uuid:1"}"#);
        let made = entry(&topic("mercure:https%3A//e.com/a"), &data);
        assert_eq!(
            made.as_str(),
            r#"{"topic":"mercure:https%3A//e.com/a","data":{"event":"x","data":"a\nb","id":"urn:uuid:1"}}"#
        );
        let (read_topic, read_data) = read(&made).unwrap_or_else(|| panic!("not an entry"));
        assert_eq!(read_topic, topic("mercure:https%3A//e.com/a"));
        assert_eq!(read_data, data);
        for scalar in ["1", "\"text\"", "null", "[1,{\"a\":[]}]"] {
            let back = read(&entry(&topic("a:b"), &json(scalar)));
            assert_eq!(back.map(|(_, d)| d), Some(json(scalar)), "{scalar}");
        }
    }

    #[test]
    fn an_entry_of_data_nested_to_the_limit_nests_one_more_and_reads_back() {
        let deepest = format!(
            "{}{}",
            "[".repeat(crate::topic::MAX_DEPTH),
            "]".repeat(crate::topic::MAX_DEPTH)
        );
        let made = entry(&topic("t"), &json(&deepest));
        assert!(Data::json(made.as_str().to_owned()).is_err(), "65 levels");
        assert!(Data::stored(made.as_str().to_owned()).is_ok());
        assert_eq!(read(&made).map(|(_, d)| d), Some(json(&deepest)));
    }

    #[test]
    fn what_is_not_an_entry_reads_as_none() {
        for text in [
            r#"{"topic":"t"}"#,
            r#"{"data":1}"#,
            r#"{"topic":"t","data":1,"more":2}"#,
            r#"{"topic":1,"data":1}"#,
            r#"{"topic":"bad topic","data":1}"#,
            r#"{"topic":"","data":1}"#,
            r#"["t",1]"#,
            r#""text""#,
        ] {
            assert!(read(&json(text)).is_none(), "{text}");
        }
    }

    #[test]
    fn a_journal_keeps_its_prefix_but_not_itself() {
        let journal = Journal {
            prefix: "mercure".into(),
            topic: topic("mercure.journal"),
        };
        assert!(journal.keeps(&topic("mercure:a")));
        assert!(!journal.keeps(&topic("mercure.journal")));
        assert!(!journal.keeps(&topic("other:a")));
    }
}
