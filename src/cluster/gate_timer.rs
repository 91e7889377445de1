//! [`GateTimer`]: the deadlines of the interest gates an adapter opened, served by one task per
//! adapter (started on the first deadline through the cluster's [`super::Outlet::spawn`], ending
//! when none is left) instead of one sleeping task per gate.
//!
//! Every gate waits the same time, so deadlines are queued in the order they fall due: the task
//! sleeps until the first one, expires what is due, and goes on with the next.

use std::collections::VecDeque;
use std::sync::Weak;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// What owns the gates: expires one of them (its `ready` runs, if it had not opened yet).
pub(super) trait GateOwner: Send + Sync + 'static {
    /// The owner's timer.
    fn gate_timer(&self) -> &GateTimer;
    /// The gate `token` waited long enough.
    fn expire_gate(&self, token: u64);
}

/// Queued gate deadlines and whether the task serving them runs.
#[derive(Debug, Default)]
pub(super) struct GateTimer {
    state: Mutex<TimerState>,
}

#[derive(Debug, Default)]
struct TimerState {
    /// (when, gate token), in the order they fall due.
    deadlines: VecDeque<(Instant, u64)>,
    /// A task serves the deadlines.
    running: bool,
}

impl GateTimer {
    /// Queues gate `token` to expire `after` from now. True when no task serves the queue: the
    /// caller starts one ([`run`]), or, if it cannot, calls [`GateTimer::not_started`].
    pub(super) fn schedule(&self, token: u64, after: Duration) -> bool {
        let mut st = self.state.lock();
        st.deadlines.push_back((Instant::now() + after, token));
        !std::mem::replace(&mut st.running, true)
    }

    /// The task could not be started (no runtime, cluster stopped): every queued token, to be
    /// expired now.
    pub(super) fn not_started(&self) -> Vec<u64> {
        let mut st = self.state.lock();
        st.running = false;
        st.deadlines.drain(..).map(|(_, t)| t).collect()
    }

    /// The first deadline, or None after marking the task stopped (the queue is empty).
    fn next(&self) -> Option<Instant> {
        let mut st = self.state.lock();
        let next = st.deadlines.front().map(|(at, _)| *at);
        if next.is_none() {
            st.running = false;
        }
        next
    }

    /// Removes and returns the tokens due at `now`.
    fn due(&self, now: Instant) -> Vec<u64> {
        let mut st = self.state.lock();
        let mut out = Vec::new();
        while let Some(&(at, token)) = st.deadlines.front() {
            if at > now {
                break;
            }
            st.deadlines.pop_front();
            out.push(token);
        }
        out
    }

    /// How many deadlines are queued.
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.state.lock().deadlines.len()
    }
}

/// Marks the task stopped if it is cancelled (dropped) before its queue emptied, so the next
/// deadline starts a new one.
struct Cancelled<O: GateOwner>(Option<Weak<O>>);

impl<O: GateOwner> Drop for Cancelled<O> {
    fn drop(&mut self) {
        if let Some(owner) = self.0.take().and_then(|w| w.upgrade()) {
            owner.gate_timer().state.lock().running = false;
        }
    }
}

/// Serves `owner`'s deadlines until none is left (or the owner is gone).
pub(super) async fn run<O: GateOwner>(owner: Weak<O>) {
    let mut cancelled = Cancelled(Some(owner.clone()));
    loop {
        let next = match owner.upgrade() {
            Some(o) => o.gate_timer().next(),
            None => None,
        };
        let Some(at) = next else {
            // `next` marked the task stopped (or the owner is gone): nothing to undo on drop.
            cancelled.0 = None;
            return;
        };
        tokio::time::sleep_until(at).await;
        let Some(o) = owner.upgrade() else {
            cancelled.0 = None;
            return;
        };
        for token in o.gate_timer().due(Instant::now()) {
            o.expire_gate(token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Owner {
        timer: GateTimer,
        expired: Mutex<Vec<u64>>,
    }

    impl GateOwner for Owner {
        fn gate_timer(&self) -> &GateTimer {
            &self.timer
        }
        fn expire_gate(&self, token: u64) {
            self.expired.lock().push(token);
        }
    }

    #[tokio::test]
    async fn one_task_expires_every_gate_in_order_then_ends() {
        let owner = Arc::new(Owner {
            timer: GateTimer::default(),
            expired: Mutex::new(Vec::new()),
        });
        assert!(owner.timer.schedule(1, Duration::from_millis(5)));
        assert!(
            !owner.timer.schedule(2, Duration::from_millis(5)),
            "one task"
        );
        run(Arc::downgrade(&owner)).await;
        assert_eq!(*owner.expired.lock(), vec![1, 2]);
        assert_eq!(owner.timer.queued(), 0);
        assert!(owner.timer.schedule(3, Duration::from_secs(1)), "ended");
        assert_eq!(owner.timer.not_started(), vec![3]);
        assert!(owner.timer.schedule(4, Duration::ZERO), "not running");
    }

    #[tokio::test]
    async fn a_cancelled_task_lets_the_next_deadline_start_another() {
        let owner = Arc::new(Owner {
            timer: GateTimer::default(),
            expired: Mutex::new(Vec::new()),
        });
        assert!(owner.timer.schedule(1, Duration::from_secs(60)));
        let task = run(Arc::downgrade(&owner));
        let _ = tokio::time::timeout(Duration::from_millis(10), task).await;
        assert!(owner.expired.lock().is_empty());
        assert!(owner.timer.schedule(2, Duration::from_secs(1)), "restarted");
    }
}
