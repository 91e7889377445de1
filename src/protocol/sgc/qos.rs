//! Per-connection QoS state (docs/wire.md §2.6): server frames waiting for the client's acknowledgment
//! (QoS 1, resent by the protocol's sweeper), and client messages held between PubRec and PubRel
//! (QoS 2). Pure state, with time passed in, so the rules are tested without clocks or sockets.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::inbound::Inbound;

/// Server frames with an id (S1, S9, S10) not yet acknowledged by the client.
#[derive(Debug, Default)]
pub struct Unacked {
    /// id → (frame, first sent, order of arrival).
    frames: HashMap<String, (Bytes, Instant, u64)>,
    next_seq: u64,
    /// Bytes held: each tracked frame and its id.
    bytes: usize,
}

impl Unacked {
    /// Tracks `frame` sent now under `id`, replacing an earlier frame with the same id. While
    /// `cap` frames or `max_bytes` bytes (frames and ids) are already tracked, the oldest is
    /// forgotten; returns whether any was forgotten for the bytes.
    pub fn track(
        &mut self,
        id: &str,
        frame: Bytes,
        now: Instant,
        cap: usize,
        max_bytes: usize,
    ) -> bool {
        if let Some((old, _, _)) = self.frames.remove(id) {
            self.bytes -= old.len() + id.len();
        }
        let size = frame.len() + id.len();
        let mut by_bytes = false;
        while !self.frames.is_empty()
            && (self.frames.len() >= cap.max(1) || self.bytes + size > max_bytes)
        {
            by_bytes |= self.frames.len() < cap.max(1);
            let Some(oldest) = self
                .frames
                .iter()
                .min_by_key(|(_, (_, _, seq))| *seq)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            tracing::debug!(
                id = oldest,
                "too many unacknowledged frames: oldest forgotten"
            );
            self.ack(&oldest);
        }
        self.next_seq += 1;
        self.bytes += size;
        self.frames
            .insert(id.to_owned(), (frame, now, self.next_seq));
        by_bytes
    }

    /// The client acknowledged `id`. Returns whether it was tracked.
    pub fn ack(&mut self, id: &str) -> bool {
        match self.frames.remove(id) {
            Some((f, _, _)) => {
                self.bytes -= f.len() + id.len();
                true
            }
            None => false,
        }
    }

    /// Bytes held by the tracked frames and their ids.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The frames to resend at `now`: those first sent at least `timeout` ago, in the order they
    /// were first sent. Their timestamps are not refreshed (the reference resends at every scan).
    pub fn due(&self, now: Instant, timeout: Duration) -> Vec<Bytes> {
        let mut due: Vec<(&u64, &Bytes)> = self
            .frames
            .values()
            .filter(|(_, at, _)| now.saturating_duration_since(*at) >= timeout)
            .map(|(f, _, seq)| (seq, f))
            .collect();
        due.sort_by_key(|(seq, _)| **seq);
        due.into_iter().map(|(_, f)| f.clone()).collect()
    }

    /// How many frames wait for an acknowledgment.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing waits for an acknowledgment.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// QoS-2 messages received (PubRec sent) and waiting for the client's PubRel.
#[derive(Debug, Default)]
pub struct Qos2Inbox {
    held: HashMap<String, Inbound>,
    bytes: usize,
}

/// What [`Qos2Inbox::hold`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Stored (or replaced a duplicate): send PubRec.
    Held,
    /// Over the per-connection caps: not stored, send nothing.
    Full,
}

impl Qos2Inbox {
    /// Holds `msg` under `id` until released. A duplicate id replaces the stored copy.
    pub fn hold(&mut self, id: &str, msg: Inbound, max_count: usize, max_bytes: usize) -> Hold {
        let existing = self.held.get(id).map(|m| m.size);
        let replaced = existing.unwrap_or(0);
        let count_after = self.held.len() + usize::from(existing.is_none());
        let bytes_after = self.bytes - replaced + msg.size;
        if count_after > max_count || bytes_after > max_bytes {
            return Hold::Full;
        }
        self.bytes = bytes_after;
        self.held.insert(id.to_owned(), msg);
        Hold::Held
    }

    /// Takes the message held under `id` (PubRel), if any.
    pub fn release(&mut self, id: &str) -> Option<Inbound> {
        let m = self.held.remove(id)?;
        self.bytes -= m.size;
        Some(m)
    }

    /// How many messages are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sgc::inbound::parse;

    fn msg(id: &str, text: &str) -> Inbound {
        parse(&format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@publish","params":{{"message":"{text}","channel":"c","qos":"qosLevel2"}},"id":"{id}"}}"#
        ))
        .expect("parse")
    }

    #[test]
    fn unacked_resends_due_frames_in_order_until_acked() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
        u.track("b", Bytes::from_static(b"B"), t0, 10, usize::MAX);
        u.track(
            "a",
            Bytes::from_static(b"A"),
            t0 + Duration::from_millis(5),
            10,
            usize::MAX,
        );
        assert!(u.due(t0, Duration::from_millis(10)).is_empty());
        let later = t0 + Duration::from_millis(20);
        assert_eq!(u.due(later, Duration::from_millis(10)), vec!["B", "A"]);
        // Not refreshed: due again at the next scan.
        assert_eq!(u.due(later, Duration::from_millis(10)).len(), 2);
        assert!(u.ack("b"));
        assert!(!u.ack("b"));
        assert_eq!(u.due(later, Duration::from_millis(10)), vec!["A"]);
    }

    #[test]
    fn unacked_cap_forgets_the_oldest() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
        for id in ["1", "2", "3"] {
            u.track(id, Bytes::from(id.to_owned()), t0, 2, usize::MAX);
        }
        assert_eq!(u.len(), 2);
        assert_eq!(u.due(t0, Duration::ZERO), vec!["2", "3"]);
        // Re-tracking an id already there does not evict.
        u.track("3", Bytes::from_static(b"3'"), t0, 2, usize::MAX);
        assert_eq!(u.len(), 2);
    }

    #[test]
    fn unacked_byte_cap_forgets_the_oldest() {
        let t0 = Instant::now();
        let mut u = Unacked::default();
        // Each entry is 10 bytes of frame and 1 of id: two fit in 25.
        for id in ["1", "2", "3"] {
            let evicted = u.track(id, Bytes::from(id.repeat(10)), t0, 100, 25);
            assert_eq!(evicted, id == "3");
        }
        assert_eq!(u.due(t0, Duration::ZERO).len(), 2);
        assert_eq!(u.bytes(), 22);
        assert!(u.ack("2") && u.ack("3"));
        assert_eq!(u.bytes(), 0);
    }

    #[test]
    fn qos2_hold_replace_release() {
        let mut q = Qos2Inbox::default();
        assert_eq!(q.hold("x", msg("x", "one"), 2, 10_000), Hold::Held);
        assert_eq!(q.hold("x", msg("x", "two"), 2, 10_000), Hold::Held);
        assert_eq!(q.len(), 1);
        let m = q.release("x").expect("held");
        assert_eq!(m.message.as_text(), "two");
        assert!(q.release("x").is_none());
        assert!(q.is_empty());
    }

    #[test]
    fn qos2_caps() {
        let mut q = Qos2Inbox::default();
        assert_eq!(q.hold("a", msg("a", "1"), 1, 10_000), Hold::Held);
        assert_eq!(q.hold("b", msg("b", "2"), 1, 10_000), Hold::Full);
        // Replacing within the cap is fine.
        assert_eq!(q.hold("a", msg("a", "3"), 1, 10_000), Hold::Held);
        let big = msg("c", &"x".repeat(500));
        let mut q = Qos2Inbox::default();
        assert_eq!(q.hold("c", big, 10, 100), Hold::Full);
    }

    proptest::proptest! {
        #[test]
        fn qos2_byte_accounting(ops in proptest::collection::vec((0u8..4, proptest::bool::ANY, 0usize..50), 0..60)) {
            let mut q = Qos2Inbox::default();
            for (id, release, len) in ops {
                let id = id.to_string();
                if release {
                    q.release(&id);
                } else {
                    q.hold(&id, msg(&id, &"m".repeat(len)), 3, 400);
                }
                let sum: usize = q.held.values().map(|m| m.size).sum();
                proptest::prop_assert_eq!(sum, q.bytes);
                proptest::prop_assert!(q.len() <= 3 && q.bytes <= 400);
            }
        }
    }
}
