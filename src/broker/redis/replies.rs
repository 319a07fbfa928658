//! Reading what the scripts answer: a position, and the messages a READ found.

use ::redis::Value;

use crate::broker::BrokerError;
use crate::topic::{Data, Epoch, Position};

/// What the READ script answered.
pub(super) struct Read {
    pub(super) position: Position,
    /// (offset, data) after `since`, in order.
    pub(super) entries: Vec<(u64, Data)>,
}

pub(super) fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(text) => Some(text.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

pub(super) fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

pub(super) fn position_of(values: &[Value]) -> Option<Position> {
    let epoch = Epoch::new(&text(values.first()?)?).ok()?;
    let offset = number(values.get(1)?)?;
    Some(Position { epoch, offset })
}

pub(super) fn parse_read(value: &Value) -> Result<Read, BrokerError> {
    let bad = || BrokerError::Unavailable(String::from("redis: unexpected answer to a read"));
    let Value::Array(values) = value else {
        return Err(bad());
    };
    let position = position_of(values).ok_or_else(bad)?;
    let mut entries = Vec::new();
    for pair in values.get(2..).unwrap_or_default().chunks(2) {
        let [offset, data] = pair else {
            return Err(bad());
        };
        let offset = number(offset).ok_or_else(bad)?;
        let data = match data {
            Value::BulkString(bytes) => Data::stored(bytes.clone()),
            _ => return Err(bad()),
        };
        match data {
            Ok(data) => entries.push((offset, data)),
            Err(err) => {
                // Skipped: the gap makes recovery answer `false` rather than lie.
                tracing::warn!(offset, error = %err, "redis: a stored message is not JSON");
            }
        }
    }
    Ok(Read { position, entries })
}

/// Whether `entries` are exactly the messages after `since` up to `last`.
pub(super) fn covers(entries: &[(u64, Data)], since: u64, last: u64) -> bool {
    since <= last
        && entries.len() as u64 == last - since
        && entries
            .iter()
            .enumerate()
            .all(|(i, (offset, _))| *offset == since + 1 + i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: u64) -> (u64, Data) {
        (n, Data::text(&n.to_string()))
    }

    #[test]
    fn coverage_needs_every_offset_after_since() {
        assert!(covers(&[], 5, 5));
        assert!(covers(&[data(6), data(7)], 5, 7));
        assert!(!covers(&[data(7)], 5, 7), "6 is missing");
        assert!(!covers(&[data(6)], 5, 7), "7 is missing");
        assert!(!covers(&[], 8, 7), "since is ahead");
    }
}
