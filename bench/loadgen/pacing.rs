//! The arithmetic of a paced publisher: when publish `k` is due, and how to wait for it.
//!
//! The runtime's timers fire at millisecond granularity, so a paced publisher sleeps on a timer
//! only until [`SPIN_AHEAD_NS`] before a publish is due and yields to the runtime (letting the
//! receivers on the same thread run) until the due time arrives. Publishes then leave within a
//! few microseconds of their due time instead of in one burst per millisecond; what is left of the
//! generator's own delay is measured per publish (due → sent) and reported next to the latency.

/// How long before a publish is due the publisher stops sleeping on a timer and starts yielding:
/// one timer tick (1 ms, the most a timer may fire late) plus 200 µs of margin.
pub(crate) const SPIN_AHEAD_NS: u64 = 1_200_000;

/// The schedule of one publisher: publish `k` is due `k × interval` after `start`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    /// When publish 0 is due (clock ns).
    start: u64,
    /// Nanoseconds between two publishes of this publisher.
    interval_ns: f64,
}

/// What a paced publisher does next for its next publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The publish is due: send it now.
    Send,
    /// Due within [`SPIN_AHEAD_NS`]: yield to the runtime and look again.
    Spin,
    /// Not due soon: sleep on a timer until this time (clock ns), then look again.
    Sleep(u64),
}

impl Pace {
    /// The schedule of one of `publishers` publishers sharing a total of `rate` publishes per
    /// second from `start`; `None` when `rate` is not positive (unpaced).
    pub(crate) fn new(start: u64, publishers: usize, rate: f64) -> Option<Self> {
        (rate > 0.0).then(|| Self {
            start,
            interval_ns: publishers.max(1) as f64 * 1e9 / rate,
        })
    }

    /// When publish `k` is due (clock ns).
    pub(crate) fn due(&self, k: u64) -> u64 {
        self.start
            .saturating_add((k as f64 * self.interval_ns).min(u64::MAX as f64) as u64)
    }

    /// What to do at `now` about publish `k`.
    pub(crate) fn wait(&self, k: u64, now: u64) -> Wait {
        let due = self.due(k);
        if now >= due {
            Wait::Send
        } else if due - now <= SPIN_AHEAD_NS {
            Wait::Spin
        } else {
            Wait::Sleep(due - SPIN_AHEAD_NS)
        }
    }

    /// How late publish `k` is when sent at `sent` (0 when on time or early).
    pub(crate) fn lateness(&self, k: u64, sent: u64) -> u64 {
        sent.saturating_sub(self.due(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_are_due_at_evenly_spaced_times_per_publisher() {
        // 4 publishers sharing 5 000/s: each publishes every 800 µs.
        let p = Pace::new(1_000, 4, 5_000.0).unwrap();
        assert_eq!(p.due(0), 1_000);
        assert_eq!(p.due(1), 801_000);
        assert_eq!(p.due(5), 4_001_000);
        // One publisher at 3/s: due times are truncated, never drift.
        let p = Pace::new(0, 1, 3.0).unwrap();
        assert_eq!(p.due(1), 333_333_333);
        assert_eq!(p.due(3), 1_000_000_000);
        assert!(Pace::new(0, 1, 0.0).is_none());
        assert!(Pace::new(0, 0, 10.0).is_some());
    }

    #[test]
    fn the_wait_sleeps_far_off_spins_close_and_sends_when_due() {
        let p = Pace::new(0, 1, 100.0).unwrap(); // every 10 ms
        assert_eq!(p.wait(1, 0), Wait::Sleep(10_000_000 - SPIN_AHEAD_NS));
        assert_eq!(
            p.wait(1, 10_000_000 - SPIN_AHEAD_NS - 1),
            Wait::Sleep(8_800_000)
        );
        assert_eq!(p.wait(1, 10_000_000 - SPIN_AHEAD_NS), Wait::Spin);
        assert_eq!(p.wait(1, 9_999_999), Wait::Spin);
        assert_eq!(p.wait(1, 10_000_000), Wait::Send);
        // Behind schedule: send at once (catching up).
        assert_eq!(p.wait(1, 50_000_000), Wait::Send);
    }

    #[test]
    fn lateness_is_sent_minus_due_and_never_negative() {
        let p = Pace::new(1_000, 1, 1_000.0).unwrap(); // every 1 ms
        assert_eq!(p.lateness(2, 2_001_000), 0);
        assert_eq!(p.lateness(2, 2_001_250), 250);
        assert_eq!(p.lateness(2, 1_500_000), 0);
    }
}
