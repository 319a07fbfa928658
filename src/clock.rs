//! Wall-clock time in Unix milliseconds, as tokens and deadlines use it.

/// The current time in Unix milliseconds.
pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long from now until Unix millisecond `at` (zero if past).
pub(crate) fn until_millis(at: u64) -> std::time::Duration {
    std::time::Duration::from_millis(at.saturating_sub(unix_millis()))
}
