//! [`MercureEvent`]: a journal message as a Mercure update — its topics, whether
//! it is private, its id, and the Server-Sent Event subscribers get. Decoded once
//! per message and shared by every subscriber (through [`Push::encoded`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::topic::iri_of;
use crate::hub::journal;
use crate::interop::envelope::{DEFAULT_EVENT, Envelope};
use crate::topic::{Epoch, Push, PushKind};

/// One Mercure update, read from a message of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercureEvent {
    /// Its topics (IRIs): the canonical one first, then the alternates.
    pub topics: Vec<String>,
    /// Only subscribers granted one of its topics get it.
    pub private: bool,
    /// Its id: the publisher's, or `urn:pushwire:{epoch}:{offset}` (the journal
    /// message's position) for a message published without one.
    pub id: String,
    /// The Server-Sent Event: `id:`, `event:` (unless `message`), `retry:` when
    /// set, one `data:` line per line of the data, and the blank line.
    pub sse: Bytes,
}

impl MercureEvent {
    /// The update a journal push holds (`None` for anything else: a presence
    /// event, a message that is no journal entry, a topic outside `namespace` or
    /// whose name is not an IRI). Decoded on the first call, shared after that.
    pub fn of<'a>(push: &'a Push, namespace: &str) -> &'a Option<MercureEvent> {
        push.encoded(|push| Self::decode(push, namespace))
    }

    fn decode(push: &Push, namespace: &str) -> Option<Self> {
        let PushKind::Message {
            epoch,
            offset,
            data,
        } = push.kind()
        else {
            return None;
        };
        let (topic, data) = journal::read(data)?;
        let canonical = iri_of(namespace, &topic)?;
        let generated = || generated_id(epoch, *offset);
        let mut topics = vec![canonical];
        let event = match Envelope::read(&data) {
            Some(envelope) => {
                topics.extend(envelope.topics.iter().cloned());
                // An id or a type that would break the event's lines (published
                // as an envelope through another protocol) is not used.
                let id = envelope
                    .id
                    .clone()
                    .filter(|id| one_line(id))
                    .unwrap_or_else(generated);
                let kind = Some(envelope.event.as_str())
                    .filter(|kind| *kind != DEFAULT_EVENT && one_line(kind));
                let sse = write(&id, kind, envelope.retry, &envelope.data_text());
                Self {
                    topics,
                    private: envelope.private,
                    id,
                    sse,
                }
            }
            None => {
                let id = generated();
                let sse = write(&id, None, None, data.as_str());
                Self {
                    topics,
                    private: false,
                    id,
                    sse,
                }
            }
        };
        Some(event)
    }
}

/// The id of a journal message published without one: its position,
/// `urn:pushwire:{epoch}:{offset}` (the same on every node).
pub fn generated_id(epoch: &Epoch, offset: u64) -> String {
    format!("urn:pushwire:{epoch}:{offset}")
}

/// The epoch and offset of a [`generated_id`].
pub fn parse_generated_id(id: &str) -> Option<(&str, u64)> {
    let (epoch, offset) = id.strip_prefix("urn:pushwire:")?.rsplit_once(':')?;
    Some((epoch, offset.parse().ok()?))
}

/// A new update id: a random (version 4) `urn:uuid:`.
pub fn new_id() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Whether `text` fits on one SSE line (no CR, LF or NUL).
fn one_line(text: &str) -> bool {
    !text.contains(['\r', '\n', '\0'])
}

/// The event's bytes.
fn write(id: &str, kind: Option<&str>, retry: Option<u64>, data: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(data.len() + id.len() + 32);
    out.put_slice(b"id: ");
    out.put_slice(id.as_bytes());
    out.put_u8(b'\n');
    if let Some(kind) = kind {
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(retry) = retry {
        out.put_slice(format!("retry: {retry}\n").as_bytes());
    }
    for line in lines(data) {
        out.put_slice(b"data: ");
        out.put_slice(line.as_bytes());
        out.put_u8(b'\n');
    }
    out.put_u8(b'\n');
    out.freeze()
}

/// The lines of `text`, split on CRLF, LF and CR as an SSE parser splits them;
/// one empty line for empty text.
fn lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    lines.push(rest);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::mercure::topic::topic_of;
    use crate::topic::{Data, Topic};

    fn journal_push(topic: &str, data: &Data, offset: u64) -> Push {
        let topic = topic_of("mercure", topic).unwrap_or_else(|e| panic!("{e}"));
        let entry = journal::entry(&topic, data);
        Push::message(
            Topic::new("mercure.journal").unwrap_or_else(|e| panic!("{e}")),
            Epoch::new("E").unwrap_or_else(|e| panic!("{e}")),
            offset,
            entry,
        )
    }

    fn text(event: &MercureEvent) -> &str {
        std::str::from_utf8(&event.sse).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_envelope_becomes_an_event_with_its_fields_and_one_data_line_per_line() {
        let mut envelope = Envelope::with_text("book", "a\r\nb\nc\rd");
        envelope.id = Some("urn:uuid:1".into());
        envelope.retry = Some(500);
        envelope.topics = vec!["https://example.com/alt".into()];
        envelope.private = true;
        let data = envelope.to_data().unwrap_or_else(|e| panic!("{e}"));
        let push = journal_push("https://example.com/books/1", &data, 3);
        let event = MercureEvent::of(&push, "mercure")
            .as_ref()
            .unwrap_or_else(|| panic!("an event"));
        assert_eq!(
            event.topics,
            vec!["https://example.com/books/1", "https://example.com/alt"]
        );
        assert!(event.private);
        assert_eq!(event.id, "urn:uuid:1");
        assert_eq!(
            text(event),
            "id: urn:uuid:1\nevent: book\nretry: 500\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        // Decoded once: the same value on the second call.
        assert!(std::ptr::eq(
            MercureEvent::of(&push, "mercure"),
            MercureEvent::of(&push, "mercure")
        ));
    }

    #[test]
    fn other_messages_are_untyped_updates_with_a_generated_id() {
        let data = Data::json(r#"{"n":1}"#).unwrap_or_else(|e| panic!("{e}"));
        let push = journal_push("news", &data, 7);
        let event = MercureEvent::of(&push, "mercure")
            .as_ref()
            .unwrap_or_else(|| panic!("an event"));
        assert_eq!(event.id, "urn:pushwire:E:7");
        assert!(!event.private);
        assert_eq!(text(event), "id: urn:pushwire:E:7\ndata: {\"n\":1}\n\n");
    }

    #[test]
    fn a_message_type_is_not_written_and_empty_data_is_one_empty_line() {
        let envelope = Envelope::with_text("message", "");
        let data = envelope.to_data().unwrap_or_else(|e| panic!("{e}"));
        let push = journal_push("a", &data, 1);
        let event = MercureEvent::of(&push, "mercure")
            .as_ref()
            .unwrap_or_else(|| panic!("an event"));
        assert_eq!(text(event), "id: urn:pushwire:E:1\ndata: \n\n");
    }

    #[test]
    fn ids_and_types_that_would_break_lines_are_not_used() {
        let mut envelope = Envelope::with_text("x\ny", "d");
        envelope.id = Some("a\nb".into());
        let data = envelope.to_data().unwrap_or_else(|e| panic!("{e}"));
        let push = journal_push("a", &data, 2);
        let event = MercureEvent::of(&push, "mercure")
            .as_ref()
            .unwrap_or_else(|| panic!("an event"));
        assert_eq!(text(event), "id: urn:pushwire:E:2\ndata: d\n\n");
    }

    #[test]
    fn ids_are_made_and_read_back() {
        let id = new_id();
        assert_eq!(id.len(), "urn:uuid:".len() + 36);
        assert_eq!(&id[9 + 14..9 + 15], "4");
        assert_ne!(new_id(), id);
        let epoch = Epoch::new("Ab3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            parse_generated_id(&generated_id(&epoch, 42)),
            Some(("Ab3", 42))
        );
        assert_eq!(parse_generated_id("urn:pushwire:x"), None);
    }

    #[test]
    fn messages_that_are_no_entries_are_no_events() {
        let push = Push::message(
            Topic::new("mercure.journal").unwrap_or_else(|e| panic!("{e}")),
            Epoch::new("E").unwrap_or_else(|e| panic!("{e}")),
            1,
            Data::text("x"),
        );
        assert!(MercureEvent::of(&push, "mercure").is_none());
        let data = Data::text("x");
        let other = journal_push("a", &data, 1);
        assert!(MercureEvent::of(&other, "other").is_none());
    }
}
