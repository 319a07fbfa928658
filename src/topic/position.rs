//! Positions: [`Position`] (a place in one topic's stream) and the text form of
//! several positions ([`Positions`]) that SSE ids and long-poll `since` carry.

use std::fmt;
use std::str::FromStr;

use super::name::{Epoch, NameError, Topic};

/// A place in a topic's stream: the epoch and the offset of the last message
/// (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Position {
    /// The topic's epoch.
    pub epoch: Epoch,
    /// The offset of the last message; 0 before the first.
    pub offset: u64,
}

/// The positions of several topics, with the text form `topic@epoch:offset,…` used
/// by SSE event ids and long-poll `since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(pub Vec<(Topic, Position)>);

impl Positions {
    /// The position of `topic`, if listed.
    pub fn get(&self, topic: &Topic) -> Option<&Position> {
        self.0.iter().find(|(t, _)| t == topic).map(|(_, p)| p)
    }

    /// Sets the position of `topic`, adding it when missing.
    pub fn set(&mut self, topic: &Topic, position: Position) {
        match self.0.iter_mut().find(|(t, _)| t == topic) {
            Some((_, p)) => *p = position,
            None => self.0.push((topic.clone(), position)),
        }
    }
}

impl FromStr for Positions {
    type Err = NameError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut positions = Vec::new();
        for item in text.split(',').filter(|item| !item.is_empty()) {
            let bad = || NameError::Position(item.chars().take(200).collect());
            let (topic, rest) = item.rsplit_once('@').ok_or_else(bad)?;
            let (epoch, offset) = rest.split_once(':').ok_or_else(bad)?;
            let topic = Topic::new(topic)?;
            let epoch = Epoch::new(epoch)?;
            let offset = offset.parse::<u64>().map_err(|_| bad())?;
            if positions
                .iter()
                .any(|(t, _): &(Topic, Position)| *t == topic)
            {
                return Err(NameError::Duplicate(topic.to_string()));
            }
            positions.push((topic, Position { epoch, offset }));
        }
        Ok(Self(positions))
    }
}

impl fmt::Display for Positions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (topic, position)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{topic}@{}:{}", position.epoch, position.offset)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_text() -> Result<(), NameError> {
        let text = "news@k3J9x0a:42,chat:lobby@Qe81:7";
        let positions: Positions = text.parse()?;
        assert_eq!(positions.0.len(), 2);
        assert_eq!(positions.0[1].0.as_str(), "chat:lobby");
        assert_eq!(positions.0[1].1.offset, 7);
        assert_eq!(positions.to_string(), text);
        assert_eq!("".parse::<Positions>()?, Positions::default());
        Ok(())
    }

    #[test]
    fn malformed_positions_are_refused() {
        for bad in [
            "news",
            "news@e",
            "news@e:x",
            "news@:1",
            "@e:1",
            "news@e:-1",
            "a@e:1,a@e:2",
        ] {
            assert!(bad.parse::<Positions>().is_err(), "{bad}");
        }
    }
}
