//! Time as pushwire counts it: Unix time for what crosses the wire or lives in
//! tokens (expiries, deadlines), a wrapping monotonic millisecond count for rates,
//! and durations in whole milliseconds for Redis.

use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The current time in Unix seconds (0 if the system clock is before 1970).
pub fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// How long from now until Unix second `at` (zero if past).
pub fn until_secs(at: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Duration::from_secs(at).saturating_sub(now)
}

/// The current time in Unix milliseconds (0 if the system clock is before 1970).
pub(crate) fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// How long from now until Unix millisecond `at` (zero if past).
pub(crate) fn until_millis(at: u64) -> Duration {
    Duration::from_millis(at.saturating_sub(unix_millis()))
}

/// Milliseconds since the first call in this process, wrapping after 49 days:
/// compare two readings with `wrapping_sub`, over spans shorter than that.
pub(crate) fn ticks() -> u32 {
    static START: OnceLock<Instant> = OnceLock::new();
    // Truncation is the wrap this count is documented to have.
    START.get_or_init(Instant::now).elapsed().as_millis() as u32
}

/// `duration` in whole milliseconds, at least 1 (Redis refuses a zero expiry) and
/// at most `u64::MAX`.
pub(crate) fn ttl_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_whole_milliseconds_and_never_zero() {
        assert_eq!(ttl_millis(Duration::from_micros(1500)), 1);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::from_secs(2)), 2000);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn deadlines_in_the_past_are_zero_away() {
        assert_eq!(until_millis(0), Duration::ZERO);
        assert_eq!(until_secs(0), Duration::ZERO);
    }
}
