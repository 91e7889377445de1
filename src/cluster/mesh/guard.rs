//! Failed link handshakes, counted per source IP: an address that fails
//! `cluster.mesh.max_failed_handshakes_per_ip` handshakes within `failed_handshake_window_ms` has its
//! further connections closed before anything is read from them, until that window ends. An online
//! guesser of the cluster secret gets a handful of tries per window, and the log one line per window
//! instead of one per attempt.
//!
//! The table holds at most [`MAX_TRACKED_ADDRESSES`] addresses (about 64 bytes each: 256 KiB);
//! when it is full, expired entries go first, then the oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::metrics::{self, Limit};

/// Most source addresses whose failures are remembered at once.
pub(crate) const MAX_TRACKED_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Entry {
    since: Instant,
    failures: u32,
}

/// Failed handshakes per source IP (sans I/O apart from the metric and the log line).
#[derive(Debug)]
pub(crate) struct HandshakeGuard {
    limit: u32,
    window: Duration,
    table: Mutex<HashMap<IpAddr, Entry>>,
}

impl HandshakeGuard {
    /// `limit` failures per `window` (0: no limit).
    pub(crate) fn new(limit: u32, window: Duration) -> Self {
        Self {
            limit,
            window: window.max(Duration::from_millis(1)),
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a new connection from `ip` may start a handshake; a refused one is counted
    /// (`limit = "mesh_handshake_failures"`).
    pub(crate) fn admit(&self, ip: IpAddr, now: Instant) -> bool {
        if self.limit == 0 {
            return true;
        }
        let blocked = self.table.lock().get(&ip).is_some_and(|e| {
            now.saturating_duration_since(e.since) < self.window && e.failures >= self.limit
        });
        if blocked {
            metrics::limit_refused(Limit::MeshHandshakeFailures);
        }
        !blocked
    }

    /// Records a failed handshake from `ip`; the failure that reaches the limit is logged (once
    /// per window and address).
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) {
        if self.limit == 0 {
            return;
        }
        let mut table = self.table.lock();
        if !table.contains_key(&ip) && table.len() >= MAX_TRACKED_ADDRESSES {
            let window = self.window;
            table.retain(|_, e| now.saturating_duration_since(e.since) < window);
            if table.len() >= MAX_TRACKED_ADDRESSES
                && let Some(oldest) = table.iter().min_by_key(|(_, e)| e.since).map(|(k, _)| *k)
            {
                table.remove(&oldest);
            }
        }
        let e = table.entry(ip).or_insert(Entry {
            since: now,
            failures: 0,
        });
        if now.saturating_duration_since(e.since) >= self.window {
            *e = Entry {
                since: now,
                failures: 0,
            };
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures == self.limit {
            let rest = self
                .window
                .saturating_sub(now.saturating_duration_since(e.since));
            tracing::warn!(
                addr = %ip,
                failures = self.limit,
                window_ms = self.window.as_millis() as u64,
                blocked_ms = rest.as_millis() as u64,
                "mesh handshakes from this address keep failing (cluster.mesh.max_failed_handshakes_per_ip): its connections are closed unread until the window ends"
            );
        }
    }

    /// Addresses remembered now.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.table.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_the_limit_until_its_window_ends() {
        let g = HandshakeGuard::new(3, Duration::from_secs(10));
        let (a, b): (IpAddr, IpAddr) = ([10, 0, 0, 1].into(), [10, 0, 0, 2].into());
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(g.admit(a, t0), "attempt {i}");
            g.failed(a, t0);
        }
        assert!(!g.admit(a, t0 + Duration::from_secs(9)), "blocked");
        assert!(g.admit(b, t0), "another address is not");
        assert!(g.admit(a, t0 + Duration::from_secs(10)), "window over");
        g.failed(a, t0 + Duration::from_secs(10));
        assert!(g.admit(a, t0 + Duration::from_secs(10)), "a new window");
    }

    #[test]
    fn zero_turns_it_off_and_the_table_is_capped() {
        let off = HandshakeGuard::new(0, Duration::from_secs(10));
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        for _ in 0..100 {
            off.failed(a, t0);
        }
        assert!(off.admit(a, t0));
        let g = HandshakeGuard::new(5, Duration::from_secs(10));
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 100) {
            g.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(g.tracked(), MAX_TRACKED_ADDRESSES);
    }
}
