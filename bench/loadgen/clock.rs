//! The one monotonic clock of the load generator.
//!
//! Every timestamp the load generator writes into a message, and every receive time it compares
//! against, is nanoseconds since one [`Instant`] taken at start. Publishers and subscribers live in
//! the same process, so a publish→deliver latency is the difference of two readings of this clock:
//! no wall clock, no cross-machine skew.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The process-wide origin of the clock, fixed by the first reading.
static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds elapsed since the clock's origin (the first call in this process).
pub(crate) fn now_ns() -> u64 {
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// The (tokio) instant that corresponds to a reading of [`now_ns`], for sleeping until it.
pub(crate) fn instant_at(ns: u64) -> tokio::time::Instant {
    let origin = *ORIGIN.get_or_init(Instant::now);
    tokio::time::Instant::from_std(origin + Duration::from_nanos(ns))
}

/// Converts a [`Duration`] to clock nanoseconds, saturating.
pub(crate) fn dur_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_monotonic_and_map_back_to_instants() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
        let at = instant_at(b);
        assert!(at <= tokio::time::Instant::now());
        assert_eq!(dur_ns(Duration::from_millis(3)), 3_000_000);
    }
}
