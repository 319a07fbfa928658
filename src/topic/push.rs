//! [`Push`]: one delivery the hub offers every subscriber of a topic (a published
//! message or a presence event), with room for the forms it is sent in, so that it
//! is encoded once per wire format however many subscribers it reaches.

use std::any::Any;
use std::fmt;
use std::sync::OnceLock;

use super::data::Data;
use super::member::Member;
use super::name::{Epoch, Topic};
use super::position::Position;

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

/// One delivery: a published message or a presence event, shared (behind an
/// `Arc`) by every subscriber it reaches.
///
/// A push knows no wire format. Each protocol that sends it keeps its encoded form
/// here ([`encoded`](Self::encoded)): the first subscriber of that protocol encodes
/// it, every other one shares the result. This is how a publish to 10,000 `/ws`
/// subscribers writes its JSON and its WebSocket frame once.
pub struct Push {
    topic: Topic,
    kind: PushKind,
    encodings: Encodings,
}

/// Encoded forms of a push, one per type: a chain of once-filled slots, lock-free
/// to read. Almost always one slot (one wire format) is used.
#[derive(Default)]
struct Encodings {
    value: OnceLock<Box<dyn Any + Send + Sync>>,
    next: OnceLock<Box<Encodings>>,
}

impl Push {
    /// A published message.
    pub fn message(topic: Topic, epoch: Epoch, offset: u64, data: Data) -> Self {
        Self::new(
            topic,
            PushKind::Message {
                epoch,
                offset,
                data,
            },
        )
    }

    /// A presence event: `member` joined (or, with `joined` false, left) `topic`.
    pub fn presence(topic: Topic, joined: bool, member: Member) -> Self {
        let kind = if joined {
            PushKind::Join(member)
        } else {
            PushKind::Leave(member)
        };
        Self::new(topic, kind)
    }

    /// A push of `kind` on `topic`.
    pub fn new(topic: Topic, kind: PushKind) -> Self {
        Self {
            topic,
            kind,
            encodings: Encodings::default(),
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

    /// The push encoded as a `T` (one type per wire format): made by `encode` on
    /// first use, once even when several threads ask at the same moment, and shared
    /// after that.
    pub fn encoded<T: Any + Send + Sync>(&self, encode: impl Fn(&Push) -> T) -> &T {
        let mut slot = &self.encodings;
        loop {
            let value = slot.value.get_or_init(|| Box::new(encode(self)));
            if let Some(value) = value.downcast_ref::<T>() {
                return value;
            }
            slot = slot.next.get_or_init(Box::default);
        }
    }
}

impl fmt::Debug for Push {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Push")
            .field("topic", &self.topic)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn push() -> Push {
        let topic = Topic::new("news").unwrap_or_else(|e| panic!("{e}"));
        let epoch = Epoch::new("E1").unwrap_or_else(|e| panic!("{e}"));
        Push::message(topic, epoch, 42, Data::text("x"))
    }

    #[test]
    fn each_form_is_encoded_once_and_forms_of_other_types_sit_beside_it() {
        let push = push();
        let calls = AtomicUsize::new(0);
        let text = |p: &Push| {
            calls.fetch_add(1, Ordering::Relaxed);
            format!("{}@{:?}", p.topic(), p.offset())
        };
        assert_eq!(push.encoded(text), "news@Some(42)");
        assert_eq!(push.encoded(text), "news@Some(42)");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert_eq!(*push.encoded(|p| p.offset().unwrap_or(0) + 1), 43u64);
        assert_eq!(push.encoded(text), "news@Some(42)");
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_presence_event_has_no_position() {
        let topic = Topic::new("chat:x").unwrap_or_else(|e| panic!("{e}"));
        let member = Member {
            client: "n-1".into(),
            user: None,
            info: None,
        };
        let push = Push::presence(topic, false, member);
        assert!(matches!(push.kind(), PushKind::Leave(_)));
        assert_eq!(push.offset(), None);
        assert_eq!(push.position(), None);
    }
}
