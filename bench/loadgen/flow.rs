//! The bound on in-flight publishes: publishers stop sending while too many deliveries are still
//! on their way, so neither the node's per-connection outboxes nor the load generator's sockets
//! grow without bound when the node (or the load generator) saturates.
//!
//! The bound is counted in deliveries: a publish to a channel with `s` live subscribers adds `s`,
//! each delivery received takes one off. `--max-inflight P` publishes becomes a limit of
//! `P × (mean subscribers per channel)` deliveries, capped by `--max-inflight-deliveries` (so a
//! channel of 10 000 members does not put millions of deliveries in flight) but never below one
//! publish's worth. A lost delivery would hold the count up for
//! ever, so a publisher that has waited [`STALL_WAIT`] without room goes on anyway and the stall
//! is counted in the report.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest a publisher waits for room before sending anyway.
pub(crate) const STALL_WAIT: Duration = Duration::from_millis(200);

/// The shared in-flight counter.
#[derive(Debug)]
pub(crate) struct Flow {
    /// Deliveries sent for but not yet received.
    outstanding: AtomicI64,
    /// Publishers may send while `outstanding` is below this.
    limit: i64,
    /// Set by a publisher about to wait; receivers wake publishers only then.
    waiting: AtomicBool,
    /// Wakes waiting publishers.
    room: Notify,
    /// How many times a publisher gave up waiting ([`STALL_WAIT`]).
    stalls: AtomicU64,
}

impl Flow {
    /// A bound of `limit` deliveries in flight (at least 1).
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            outstanding: AtomicI64::new(0),
            limit: i64::try_from(limit.max(1)).unwrap_or(i64::MAX),
            waiting: AtomicBool::new(false),
            room: Notify::new(),
            stalls: AtomicU64::new(0),
        }
    }

    /// True if a publish may be sent now without waiting.
    pub(crate) fn has_room(&self) -> bool {
        self.outstanding.load(Ordering::Acquire) < self.limit
    }

    /// Waits for room (at most [`STALL_WAIT`]), then accounts `deliveries` more in flight.
    pub(crate) async fn admit(&self, deliveries: u64) {
        while !self.has_room() {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.waiting.store(true, Ordering::Release);
            if self.has_room() {
                break;
            }
            if tokio::time::timeout(STALL_WAIT, notified).await.is_err() {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        self.outstanding.fetch_add(
            i64::try_from(deliveries).unwrap_or(i64::MAX),
            Ordering::AcqRel,
        );
    }

    /// Accounts one delivery received.
    pub(crate) fn delivered(&self) {
        let now = self.outstanding.fetch_sub(1, Ordering::AcqRel) - 1;
        if now < self.limit && self.waiting.load(Ordering::Acquire) {
            self.waiting.store(false, Ordering::Release);
            self.room.notify_waiters();
        }
    }

    /// How many times publishers stopped waiting for room.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn a_full_window_waits_for_deliveries() {
        let flow = Arc::new(Flow::new(10));
        flow.admit(10).await;
        assert!(!flow.has_room());
        let f = flow.clone();
        let waiter = tokio::spawn(async move { f.admit(10).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        flow.delivered();
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .map(|r| r.is_ok())
            .map_err(|_| "the waiting publisher was not woken")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(flow.stalls(), 0);
    }

    #[tokio::test]
    async fn lost_deliveries_only_stall_for_a_while() {
        let flow = Flow::new(1);
        flow.admit(5).await;
        let started = std::time::Instant::now();
        flow.admit(5).await;
        assert!(started.elapsed() >= STALL_WAIT);
        assert_eq!(flow.stalls(), 1);
    }
}
