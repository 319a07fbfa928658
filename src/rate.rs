//! The one [`TokenBucket`] behind every rate limit: requests per `/ws` client,
//! new connections per address.
//!
//! A bucket holds up to one second's worth of tokens at its rate and refills
//! continuously; each action takes a token. It is handed the time (a
//! [`clock::ticks`](crate::clock::ticks) reading) rather than reading a clock,
//! so that a protocol state machine can drive it and tests can step time.

/// A token bucket of one second's worth of tokens at a rate given on each use
/// (the rate is a setting; the bucket does not store it). Eight bytes, so one per
/// connection costs little.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f32,
    /// The [`clock::ticks`](crate::clock::ticks) reading at the last refill.
    refilled: u32,
}

/// Why [`TokenBucket::take_on_credit`] found no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overdrawn {
    /// The bucket owes less than a second's worth: refuse this one action.
    InDebt,
    /// The debt reached a whole second's worth: the client goes on regardless of
    /// refusals (the `/ws` session closes it).
    Exhausted,
}

impl TokenBucket {
    /// A full bucket, whatever the rate it is first used with.
    pub(crate) const fn full() -> Self {
        Self {
            tokens: f32::INFINITY,
            refilled: 0,
        }
    }

    /// Adds the tokens earned at `rate` per second since the last refill, up to
    /// one second's worth.
    fn refill(&mut self, rate: u32, now: u32) {
        let rate = rate as f32;
        let elapsed = now.wrapping_sub(self.refilled) as f32 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate).min(rate);
        self.refilled = now;
    }

    /// Takes a token at `rate` per second if there is one; without one, takes
    /// nothing and answers `false`.
    pub(crate) fn try_take(&mut self, rate: u32, now: u32) -> bool {
        self.refill(rate, now);
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }

    /// Takes a token at `rate` per second, on credit when there is none: `Ok`
    /// if there was one; otherwise the debt grows, and [`Overdrawn::Exhausted`]
    /// says it reached a whole second's worth.
    pub(crate) fn take_on_credit(&mut self, rate: u32, now: u32) -> Result<(), Overdrawn> {
        self.refill(rate, now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Ok(())
        } else if self.tokens <= -(rate as f32) {
            Err(Overdrawn::Exhausted)
        } else {
            Err(Overdrawn::InDebt)
        }
    }

    /// Whether the bucket is full at `now` (refilled to it), so that forgetting
    /// it and starting a [`full`](Self::full) one later changes nothing.
    pub(crate) fn is_full(&mut self, rate: u32, now: u32) -> bool {
        self.refill(rate, now);
        self.tokens >= rate as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_gives_one_seconds_worth_then_refuses_without_debt() {
        let mut bucket = TokenBucket::full();
        assert!((0..3).all(|_| bucket.try_take(3, 1000)));
        assert!(!bucket.try_take(3, 1000));
        assert!(!bucket.try_take(3, 1000), "refusals do not take");
        assert!(bucket.try_take(3, 1334), "a third of a second earns one");
        assert!(!bucket.try_take(3, 1334));
    }

    #[test]
    fn on_credit_the_debt_grows_until_a_whole_second() {
        let mut bucket = TokenBucket::full();
        assert!((0..2).all(|_| bucket.take_on_credit(2, 50).is_ok()));
        assert_eq!(bucket.take_on_credit(2, 50), Err(Overdrawn::InDebt));
        assert_eq!(bucket.take_on_credit(2, 50), Err(Overdrawn::Exhausted));
        assert_eq!(
            bucket.take_on_credit(2, 800),
            Err(Overdrawn::InDebt),
            "750 ms paid back 1.5 of the 2 owed"
        );
    }

    #[test]
    fn time_refills_up_to_the_rate_across_the_clock_wrap() {
        let mut bucket = TokenBucket::full();
        assert!(bucket.try_take(2, u32::MAX - 100));
        assert!(!bucket.is_full(2, u32::MAX - 100));
        assert!(bucket.is_full(2, 400), "500 ms later, across the wrap");
        assert!(
            bucket.is_full(0, 400),
            "a zero rate holds nothing and is full"
        );
    }
}
