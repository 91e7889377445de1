//! Upgrades past the server's "still serving?" check but not yet registered as connections.
//!
//! A shutdown that finds no connection must not end while such an upgrade is in flight: its
//! client has (or is about to have) its 101, and the connection it becomes closes itself with
//! 1001 once registered. Without this count the process could exit in between, and that client
//! would see its socket vanish without a close frame.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// How many upgrades are in flight; the shutdown waits for none to be left.
#[derive(Debug, Default)]
pub(super) struct UpgradesInFlight {
    count: AtomicUsize,
}

impl UpgradesInFlight {
    /// Counts one upgrade until the returned guard drops; `done` is notified then.
    pub(super) fn start<'a>(&'a self, done: &'a Notify) -> UpgradeGuard<'a> {
        self.count.fetch_add(1, Ordering::SeqCst);
        UpgradeGuard { owner: self, done }
    }

    /// How many upgrades are in flight now.
    pub(super) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

/// One upgrade in flight: taken before the serving check, dropped once the connection is
/// registered (or the upgrade failed).
#[derive(Debug)]
pub(super) struct UpgradeGuard<'a> {
    owner: &'a UpgradesInFlight,
    done: &'a Notify,
}

impl Drop for UpgradeGuard<'_> {
    fn drop(&mut self) {
        self.owner.count.fetch_sub(1, Ordering::SeqCst);
        self.done.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_until_the_guard_drops() {
        let in_flight = UpgradesInFlight::default();
        let done = Notify::new();
        let a = in_flight.start(&done);
        let b = in_flight.start(&done);
        assert_eq!(in_flight.count(), 2);
        drop(a);
        assert_eq!(in_flight.count(), 1);
        drop(b);
        assert_eq!(in_flight.count(), 0);
    }
}
