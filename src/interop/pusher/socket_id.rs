//! Pusher socket ids: `{node}.{n}`, two runs of digits (what the `pusher` SDKs
//! check), unique across nodes: `node` is random for each [`SocketIds`], `n` counts.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// One connection's socket id. Cheap to clone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SocketId(Arc<str>);

impl SocketId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `text` has the form of a socket id (`\d+\.\d+`), as the HTTP API's
    /// `socket_id` must.
    pub fn is_valid(text: &str) -> bool {
        let digits =
            |s: &str| !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit());
        text.split_once('.')
            .is_some_and(|(a, b)| digits(a) && digits(b))
    }
}

impl fmt::Display for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SocketId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// Gives out this node's socket ids.
#[derive(Debug)]
pub struct SocketIds {
    node: u64,
    next: AtomicU64,
}

impl Default for SocketIds {
    fn default() -> Self {
        Self::new()
    }
}

impl SocketIds {
    /// A source with a random node part (nine or ten digits).
    pub fn new() -> Self {
        Self {
            node: rand::random_range(100_000_000..u64::from(u32::MAX)),
            next: AtomicU64::new(1),
        }
    }

    /// The next id.
    pub fn next_id(&self) -> SocketId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        SocketId(Arc::from(format!("{}.{n}", self.node)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_digits_dot_digits_and_differ() {
        let ids = SocketIds::new();
        let (a, b) = (ids.next_id(), ids.next_id());
        assert_ne!(a, b);
        assert!(SocketId::is_valid(a.as_str()), "{a}");
        for bad in ["", "1", "1.", ".1", "1.2.3", "a.1", "1.1 ", "-1.2"] {
            assert!(!SocketId::is_valid(bad), "{bad}");
        }
    }
}
