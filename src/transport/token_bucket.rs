//! [`TokenBucket`]: the rate rule behind the connection-rate and publish-rate limits. Sans-I/O:
//! the caller passes the time, so the rule is tested without clocks or sockets.

use std::time::{Duration, Instant};

/// A token bucket: it holds up to `burst` tokens, refills at `rate` tokens a second, and each
/// admitted event takes one token.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilling `rate` tokens a second, holding at most `burst` (at least 1).
    pub(crate) fn new(rate: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            rate: rate.max(0.0),
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one (true), or refuses the event (false).
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: its owner has been idle long enough that
    /// forgetting it changes nothing.
    pub(crate) fn is_full(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }

    /// How long until the next token (zero when one is available).
    pub(crate) fn wait(&self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if tokens >= 1.0 || self.rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - tokens) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        assert_eq!(b.wait(t0), Duration::from_millis(100));
        assert!(!b.take(t0 + Duration::from_millis(50)));
        assert!(b.take(t0 + Duration::from_millis(101)));
        assert!(!b.is_full(t0 + Duration::from_millis(101)));
        assert!(b.is_full(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn zero_burst_still_admits_one() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(1.0, 0, t0);
        assert!(b.take(t0));
        assert!(!b.take(t0));
    }

    proptest! {
        /// Over any window, at most `burst + rate * seconds` events are admitted.
        #[test]
        fn never_admits_more_than_burst_plus_rate(
            rate in 1u32..100, burst in 1u32..20, gaps in proptest::collection::vec(0u64..50, 1..300)
        ) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(f64::from(rate), burst, t0);
            let mut now = t0;
            let mut admitted = 0u64;
            for g in gaps {
                now += Duration::from_millis(g);
                if b.take(now) {
                    admitted += 1;
                }
            }
            let secs = now.duration_since(t0).as_secs_f64();
            prop_assert!(admitted as f64 <= f64::from(burst) + f64::from(rate) * secs + 1e-6);
        }
    }
}
