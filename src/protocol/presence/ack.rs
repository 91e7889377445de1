//! The optional server-side acknowledgment mode (docs/wire.md §3.5): every outgoing frame gets a fresh
//! `"id":"<GUID>"`, is remembered until the client acknowledges it, and is resent by a sweeper
//! every `interval` once it is older than `timeout`.
//!
//! With ids added per receiver a fan-out frame cannot be shared bytes: the frame is encoded once
//! and each receiver gets a copy with its own id appended (one memcpy, no re-encoding). When the
//! mode is off (the default) none of this runs and fan-out shares one `Bytes`.
//!
//! One sweeper task per protocol, spawned lazily on the first tracked frame through the tracker's
//! [`Tasks`] (stopped by the protocol's `stop`), holding only a `Weak`: it also ends by itself
//! once the protocol is dropped.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::Instant;

use super::config::AckConfig;
use super::frame;
use crate::tasks::Tasks;
use crate::transport::{Connection, new_guid};

/// A frame waiting for its acknowledgment.
struct Pending {
    id: Arc<str>,
    frame: Bytes,
    /// When it was last (re)sent.
    sent_at: Instant,
}

/// The unacknowledged frames of one connection, oldest first.
struct ConnPending {
    conn: Connection,
    next: u64,
    by_seq: BTreeMap<u64, Pending>,
    by_id: HashMap<Arc<str>, u64>,
    /// Bytes of the pending frames.
    bytes: usize,
}

/// Tracks unacknowledged frames per connection and resends them.
pub(crate) struct AckTracker {
    config: AckConfig,
    b64: bool,
    pending: Mutex<HashMap<u64, ConnPending>>,
    sweeper_started: AtomicBool,
    /// The sweeper (a new set after each `stop`: the protocol may be served again).
    tasks: Mutex<Tasks>,
}

impl AckTracker {
    /// A tracker for this configuration; `b64` is the protocol's `encode_base64`.
    pub(crate) fn new(config: AckConfig, b64: bool) -> Arc<Self> {
        Arc::new(Self {
            config,
            b64,
            pending: Mutex::new(HashMap::new()),
            sweeper_started: AtomicBool::new(false),
            tasks: Mutex::default(),
        })
    }

    /// Sends `frame` to `conn` with a new id and remembers it until acknowledged.
    pub(crate) fn send(self: &Arc<Self>, conn: &Connection, frame: &[u8]) {
        let id: Arc<str> = Arc::from(new_guid());
        let bytes = frame::with_id(frame, &id, self.b64);
        self.track(conn, id, bytes.clone(), Instant::now());
        if conn.send_text(bytes).is_err() {
            tracing::debug!(
                conn = conn.id(),
                "presence: frame not queued, connection closing"
            );
        }
        self.ensure_sweeper();
    }

    fn track(&self, conn: &Connection, id: Arc<str>, frame: Bytes, now: Instant) {
        let mut all = self.pending.lock();
        let p = all.entry(conn.key()).or_insert_with(|| ConnPending {
            conn: conn.clone(),
            next: 0,
            by_seq: BTreeMap::new(),
            by_id: HashMap::new(),
            bytes: 0,
        });
        p.next += 1;
        p.by_id.insert(id.clone(), p.next);
        p.bytes += frame.len();
        p.by_seq.insert(
            p.next,
            Pending {
                id,
                frame,
                sent_at: now,
            },
        );
        let cap = self.config.max_pending_per_connection.max(1);
        let max_bytes = self.config.max_pending_bytes_per_connection;
        while p.by_seq.len() > cap || (p.by_seq.len() > 1 && p.bytes > max_bytes) {
            if p.by_seq.len() <= cap {
                crate::metrics::limit_refused(crate::metrics::Limit::PresenceAckBytes);
            }
            if let Some((_, old)) = p.by_seq.pop_first() {
                p.by_id.remove(&old.id);
                p.bytes -= old.frame.len();
                tracing::debug!(
                    conn = conn.id(),
                    id = &*old.id,
                    "presence: unacked frame dropped, too many pending"
                );
            }
        }
    }

    /// The client acknowledged `id`; returns whether it was pending.
    pub(crate) fn acknowledge(&self, conn_key: u64, id: &str) -> bool {
        let mut all = self.pending.lock();
        let Some(p) = all.get_mut(&conn_key) else {
            return false;
        };
        let Some(seq) = p.by_id.remove(id) else {
            return false;
        };
        if let Some(old) = p.by_seq.remove(&seq) {
            p.bytes -= old.frame.len();
        }
        if p.by_seq.is_empty() {
            all.remove(&conn_key);
        }
        true
    }

    /// Forgets everything pending for a connection that is gone.
    pub(crate) fn forget(&self, conn_key: u64) {
        self.pending.lock().remove(&conn_key);
    }

    /// How many frames of this connection wait for an acknowledgment.
    pub(crate) fn pending_count(&self, conn_key: u64) -> usize {
        self.pending
            .lock()
            .get(&conn_key)
            .map_or(0, |p| p.by_seq.len())
    }

    /// The frames older than the timeout at `now`, marked as resent at `now`. Closed
    /// connections are forgotten on the way.
    fn due(&self, now: Instant) -> Vec<(Connection, Bytes)> {
        let timeout = self.config.timeout();
        let mut out = Vec::new();
        let mut all = self.pending.lock();
        all.retain(|_, p| p.conn.is_open());
        for p in all.values_mut() {
            for f in p.by_seq.values_mut() {
                if now.saturating_duration_since(f.sent_at) >= timeout {
                    f.sent_at = now;
                    out.push((p.conn.clone(), f.frame.clone()));
                }
            }
        }
        out
    }

    /// Resends what is due (outside the lock).
    fn resend_due(&self, now: Instant) -> usize {
        let due = self.due(now);
        let n = due.len();
        for (conn, frame) in due {
            let _ = conn.send_text(frame);
        }
        n
    }

    fn ensure_sweeper(self: &Arc<Self>) {
        // A plain load first: after the first frame this is all a send pays.
        if self.sweeper_started.load(Ordering::Acquire)
            || self.sweeper_started.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let interval = self.config.interval();
        let started = self.tasks.lock().try_spawn(async move {
            let mut tick = tokio::time::interval_at(Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(tracker) = weak.upgrade() else {
                    break;
                };
                let n = tracker.resend_due(Instant::now());
                if n > 0 {
                    tracing::debug!(resent = n, "presence: unacknowledged frames resent");
                }
            }
        });
        if !started {
            tracing::debug!("presence: no tokio runtime, acknowledgment resends disabled for now");
            self.sweeper_started.store(false, Ordering::Release);
        }
    }

    /// Stops the sweeper and waits for it; the next tracked frame starts a new one.
    pub(crate) async fn stop(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        tasks.stop(std::time::Duration::ZERO).await;
        self.sweeper_started.store(false, Ordering::Release);
    }

    /// Whether the sweeper runs (0 or 1).
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tracker(timeout_ms: u64, cap: usize) -> Arc<AckTracker> {
        AckTracker::new(
            AckConfig {
                enabled: true,
                interval_ms: 10,
                timeout_ms,
                max_pending_per_connection: cap,
                max_pending_bytes_per_connection: usize::MAX,
            },
            false,
        )
    }

    #[test]
    fn frames_are_due_after_the_timeout_until_acknowledged() {
        let t = tracker(100, 10);
        let c = Connection::detached("C", None);
        let t0 = Instant::now();
        t.track(&c, "a".into(), Bytes::from_static(b"A"), t0);
        t.track(&c, "b".into(), Bytes::from_static(b"B"), t0);
        assert!(t.due(t0 + Duration::from_millis(50)).is_empty());
        assert_eq!(t.due(t0 + Duration::from_millis(100)).len(), 2);
        // Just resent: not due again before another timeout.
        assert!(t.due(t0 + Duration::from_millis(150)).is_empty());
        assert!(t.acknowledge(c.key(), "a"));
        assert!(!t.acknowledge(c.key(), "a"));
        let due = t.due(t0 + Duration::from_millis(200));
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].1, Bytes::from_static(b"B"));
        t.forget(c.key());
        assert_eq!(t.pending_count(c.key()), 0);
    }

    #[test]
    fn pending_is_capped_oldest_first() {
        let t = tracker(0, 2);
        let c = Connection::detached("C", None);
        let now = Instant::now();
        for id in ["1", "2", "3"] {
            t.track(&c, id.into(), Bytes::from(id.to_owned()), now);
        }
        assert_eq!(t.pending_count(c.key()), 2);
        assert!(!t.acknowledge(c.key(), "1"));
        assert!(t.acknowledge(c.key(), "3"));
    }

    #[test]
    fn pending_is_capped_in_bytes_oldest_first() {
        let t = AckTracker::new(
            AckConfig {
                enabled: true,
                interval_ms: 10,
                timeout_ms: 0,
                max_pending_per_connection: 100,
                max_pending_bytes_per_connection: 25,
            },
            false,
        );
        let c = Connection::detached("C", None);
        let now = Instant::now();
        // 10 bytes each, 25 at most: two stay.
        for id in ["1", "2", "3"] {
            t.track(&c, id.into(), Bytes::from(id.repeat(10)), now);
        }
        assert_eq!(t.pending_count(c.key()), 2);
        assert!(!t.acknowledge(c.key(), "1"));
        assert!(t.acknowledge(c.key(), "2") && t.acknowledge(c.key(), "3"));
        // One frame bigger than the cap is still kept (the newest always is).
        t.track(&c, "big".into(), Bytes::from("x".repeat(100)), now);
        assert_eq!(t.pending_count(c.key()), 1);
    }

    #[test]
    fn send_adds_a_fresh_id_per_frame() {
        let t = tracker(1000, 10);
        let c = Connection::detached("C", None);
        t.send(&c, br#"{"jsonrpc":"2.0","method":"m"}"#);
        t.send(&c, br#"{"jsonrpc":"2.0","method":"m"}"#);
        let sent = c.drain_sent_text();
        assert_eq!(sent.len(), 2);
        assert_ne!(sent[0], sent[1]);
        assert!(sent[0].starts_with(r#"{"jsonrpc":"2.0","method":"m","id":""#));
        assert_eq!(t.pending_count(c.key()), 2);
    }
}
