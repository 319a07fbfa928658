//! Ticking on a fixed grid, for sockets that push on a schedule.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, interval_at};

/// A ticker whose n-th tick is due at `start + n × period`, `start` being now.
///
/// The schedule never drifts: a tick that is late does not push the later ones back.
/// After a stall longer than a period (a busy machine, a suspended process), the
/// missed ticks are skipped, not fired in a burst: the next tick comes at the next
/// point of the grid.
///
/// # Panics
///
/// Panics if `period` is zero, like [`tokio::time::interval`].
pub fn ticker(period: Duration) -> Interval {
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    ticks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_fall_on_the_grid_without_drift() {
        let start = Instant::now();
        let period = Duration::from_millis(100);
        let mut ticks = ticker(period);
        for n in 1..=50u32 {
            let at = ticks.tick().await;
            assert_eq!(at - start, period * n);
            // Work that takes a while between ticks must not shift the grid.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stall_skips_missed_ticks_instead_of_bursting() {
        let start = Instant::now();
        let period = Duration::from_millis(100);
        let mut ticks = ticker(period);
        ticks.tick().await;
        // Stall for 5.5 periods: ticks 2..=6 are missed.
        tokio::time::advance(Duration::from_millis(550)).await;
        let late = ticks.tick().await;
        // One late tick fires at once…
        assert_eq!(Instant::now() - start, Duration::from_millis(650));
        assert_eq!(late - start, Duration::from_millis(200));
        // …and the next waits for the grid (700 ms), not 100 ms after the late one.
        let next = ticks.tick().await;
        assert_eq!(next - start, Duration::from_millis(700));
        assert_eq!(Instant::now() - start, Duration::from_millis(700));
    }
}
