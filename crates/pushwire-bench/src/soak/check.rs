//! The soak's judge: what one subscriber knows about one topic, and whether what
//! the server sends next follows from it.
//!
//! A subscriber remembers its position (epoch, offset) per topic across every
//! connection it opens. The server's answers must follow the protocol exactly:
//!
//! - a subscription without `since` starts the stream after the offset in the reply;
//! - with `since`, `recovered: true` keeps the epoch and the next message is exactly
//!   `since.offset + 1`; `recovered: false` is allowed (counted, not a failure) and
//!   the stream continues after the reply's position;
//! - every message is the one after the previous: a larger offset is a gap, a
//!   smaller or equal one a duplicate, another epoch without a new subscription a
//!   failure too.

use std::fmt;

/// A position in a topic: its epoch and the offset of the last message seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// The topic's epoch.
    pub(crate) epoch: String,
    /// The last offset seen (0: before the first message).
    pub(crate) offset: u64,
}

/// What a subscription reply (or an SSE `subscribed` entry, or a poll's `subs`
/// entry) says about one topic.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    /// The epoch the stream continues in.
    pub(crate) epoch: String,
    /// The offset the live stream continues after.
    pub(crate) offset: u64,
    /// `recovered`, when present.
    pub(crate) recovered: Option<bool>,
}

/// A violation of the protocol's promise: a gap, a duplicate, or an answer that
/// does not follow from what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation(pub(crate) String);

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a subscription went, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscribed {
    /// No `since` was sent: the stream starts now.
    Fresh,
    /// `recovered: true`: nothing is missed.
    Recovered,
    /// `recovered: false`: the server said plainly that it cannot fill the gap.
    NotRecovered,
}

/// One subscriber's knowledge of one topic, across its connections.
#[derive(Debug, Clone, Default)]
pub(crate) struct Track {
    /// The last position seen; `None` before the first subscription.
    position: Option<Position>,
    /// Whether a subscription is live (its reply came, and no unsubscribe reply
    /// since): only then may messages arrive.
    live: bool,
    /// How many messages arrived in order (each the one after the previous).
    received: u64,
}

impl Track {
    /// The last position seen.
    pub(crate) fn position(&self) -> Option<&Position> {
        self.position.as_ref()
    }

    /// How many messages arrived, each the one after the previous.
    pub(crate) fn received(&self) -> u64 {
        self.received
    }

    /// Forgets the position (the next subscription starts fresh).
    pub(crate) fn forget(&mut self) {
        self.position = None;
        self.live = false;
    }

    /// The stream ended (connection closed, unsubscribed): no message may arrive
    /// until the next subscription.
    pub(crate) fn end(&mut self) {
        self.live = false;
    }

    /// The server answered a subscription that was sent with `since` (the position
    /// at the time it was sent, `None` for a fresh one).
    pub(crate) fn subscribed(
        &mut self,
        since: Option<&Position>,
        reply: &Reply,
    ) -> Result<Subscribed, Violation> {
        self.live = true;
        let Some(since) = since else {
            self.position = Some(Position {
                epoch: reply.epoch.clone(),
                offset: reply.offset,
            });
            return Ok(Subscribed::Fresh);
        };
        match reply.recovered {
            Some(true) => {
                if reply.epoch != since.epoch {
                    return Err(Violation(format!(
                        "recovered:true from {}:{} but the reply is in epoch {}",
                        since.epoch, since.offset, reply.epoch
                    )));
                }
                if reply.offset < since.offset {
                    return Err(Violation(format!(
                        "recovered:true from offset {} but the topic is at {}",
                        since.offset, reply.offset
                    )));
                }
                self.position = Some(since.clone());
                Ok(Subscribed::Recovered)
            }
            Some(false) => {
                self.position = Some(Position {
                    epoch: reply.epoch.clone(),
                    offset: reply.offset,
                });
                Ok(Subscribed::NotRecovered)
            }
            None => Err(Violation(format!(
                "subscribed with since {}:{} but the reply has no \"recovered\"",
                since.epoch, since.offset
            ))),
        }
    }

    /// A message arrived.
    pub(crate) fn message(&mut self, epoch: &str, offset: u64) -> Result<(), Violation> {
        if !self.live {
            return Err(Violation(format!(
                "message {epoch}:{offset} while not subscribed"
            )));
        }
        let Some(position) = &mut self.position else {
            return Err(Violation(format!(
                "message {epoch}:{offset} before any position"
            )));
        };
        if epoch != position.epoch {
            return Err(Violation(format!(
                "message {epoch}:{offset} after {}:{} (epoch changed without a new subscription)",
                position.epoch, position.offset
            )));
        }
        let expected = position.offset + 1;
        if offset > expected {
            let missed = offset - expected;
            return Err(Violation(format!(
                "gap: offset {offset} after {}, {missed} missed",
                position.offset
            )));
        }
        if offset < expected {
            return Err(Violation(format!(
                "duplicate: offset {offset} after {}",
                position.offset
            )));
        }
        position.offset = offset;
        self.received += 1;
        Ok(())
    }

    /// Whether this track reached `offset` in `epoch` (a position in another
    /// epoch has not: it must subscribe again and learn the new one).
    pub(crate) fn reached(&self, epoch: &str, offset: u64) -> bool {
        self.position
            .as_ref()
            .is_some_and(|p| p.epoch == epoch && p.offset >= offset)
    }
}

/// The text form of positions: `topic@epoch:offset`, joined by `,`.
pub(crate) fn positions_text<'a>(
    positions: impl IntoIterator<Item = (&'a str, &'a Position)>,
) -> String {
    positions
        .into_iter()
        .map(|(topic, p)| format!("{topic}@{}:{}", p.epoch, p.offset))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two position texts name the same positions, in any order.
pub(crate) fn same_positions(a: &str, b: &str) -> bool {
    let mut a: Vec<&str> = a.split(',').filter(|s| !s.is_empty()).collect();
    let mut b: Vec<&str> = b.split(',').filter(|s| !s.is_empty()).collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: &str, offset: u64) -> Position {
        Position {
            epoch: epoch.into(),
            offset,
        }
    }

    fn reply(epoch: &str, offset: u64, recovered: Option<bool>) -> Reply {
        Reply {
            epoch: epoch.into(),
            offset,
            recovered,
        }
    }

    #[test]
    fn a_fresh_subscription_continues_after_the_reply() {
        let mut track = Track::default();
        let how = track.subscribed(None, &reply("E", 7, None));
        assert_eq!(how, Ok(Subscribed::Fresh));
        assert_eq!(track.message("E", 8), Ok(()));
        assert_eq!(track.message("E", 9), Ok(()));
        assert_eq!(track.position(), Some(&at("E", 9)));
        assert_eq!(track.received(), 2);
    }

    #[test]
    fn recovered_true_expects_exactly_the_next_offset() {
        let mut track = Track::default();
        let since = at("E", 4);
        let how = track.subscribed(Some(&since), &reply("E", 9, Some(true)));
        assert_eq!(how, Ok(Subscribed::Recovered));
        assert!(track.message("E", 6).is_err(), "offset 5 is missing");
        let mut track = Track::default();
        let _ = track.subscribed(Some(&since), &reply("E", 9, Some(true)));
        assert_eq!(track.message("E", 5), Ok(()));
        assert!(track.message("E", 5).is_err(), "a duplicate");
    }

    #[test]
    fn recovered_true_in_another_epoch_is_a_violation() {
        let mut track = Track::default();
        let how = track.subscribed(Some(&at("E", 4)), &reply("F", 9, Some(true)));
        assert!(how.is_err());
    }

    #[test]
    fn recovered_false_is_honest_and_continues_after_the_reply() {
        let mut track = Track::default();
        let how = track.subscribed(Some(&at("E", 4)), &reply("F", 2, Some(false)));
        assert_eq!(how, Ok(Subscribed::NotRecovered));
        assert_eq!(track.message("F", 3), Ok(()));
    }

    #[test]
    fn a_missing_recovered_field_after_since_is_a_violation() {
        let mut track = Track::default();
        assert!(
            track
                .subscribed(Some(&at("E", 4)), &reply("E", 4, None))
                .is_err()
        );
    }

    #[test]
    fn messages_outside_a_subscription_are_violations() {
        let mut track = Track::default();
        assert!(track.message("E", 1).is_err());
        let _ = track.subscribed(None, &reply("E", 0, None));
        track.end();
        assert!(track.message("E", 1).is_err());
    }

    #[test]
    fn another_epoch_without_a_subscription_is_a_violation() {
        let mut track = Track::default();
        let _ = track.subscribed(None, &reply("E", 3, None));
        assert!(track.message("F", 4).is_err());
    }

    #[test]
    fn reaching_the_last_offset_needs_the_same_epoch() {
        let mut track = Track::default();
        assert!(!track.reached("E", 0));
        let _ = track.subscribed(None, &reply("E", 5, None));
        assert!(track.reached("E", 5));
        assert!(!track.reached("E", 6));
        assert!(!track.reached("F", 1), "another epoch is not reached");
    }

    #[test]
    fn positions_compare_in_any_order() {
        let (a, b) = (at("E", 3), at("F", 9));
        let text = positions_text([("x", &a), ("y:z", &b)]);
        assert_eq!(text, "x@E:3,y:z@F:9");
        assert!(same_positions(&text, "y:z@F:9,x@E:3"));
        assert!(!same_positions(&text, "y:z@F:8,x@E:3"));
    }
}
