//! [`HistoryConfig`]: how much of each topic's stream a broker keeps for recovery.

use std::time::Duration;

/// How much history each topic keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// At most this many messages (0: no history, so no recovery).
    pub size: usize,
    /// Messages older than this are dropped.
    pub ttl: Duration,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            size: 100,
            ttl: Duration::from_secs(300),
        }
    }
}
