//! Loss-free delivery across link blips, sans I/O.
//!
//! The sender numbers what it sends to one peer (per-link sequence numbers, from 1) and keeps the
//! frames in a [`ReplayWindow`] until the peer acknowledges them cumulatively, bounded by age and
//! bytes. After a reconnect the peer says what it last received; the sender replays the tail, or,
//! when the tail has been dropped from the window, reports a gap so the engine resynchronises
//! (snapshots) and counts the loss. The receiver's [`InboundSequence`] drops duplicates.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::wire::WireFrame;

/// Frames sent to one peer and not yet acknowledged.
#[derive(Debug)]
pub struct ReplayWindow {
    max_age: Duration,
    max_bytes: usize,
    next_seq: u64,
    frames: VecDeque<(u64, Instant, WireFrame)>,
    bytes: usize,
    /// Highest sequence number dropped from the window without an ack (0: none).
    dropped_through: u64,
    /// Highest sequence number already counted lost by [`ReplayWindow::newly_lost`] (0: none).
    counted_through: u64,
}

/// The frames to replay after a reconnect could not all be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first sequence number the peer is missing.
    pub from: u64,
    /// The last sequence number lost (the window starts after it).
    pub through: u64,
}

impl ReplayWindow {
    /// A window keeping unacknowledged frames at most `max_age` and `max_bytes`.
    pub fn new(max_age: Duration, max_bytes: usize) -> Self {
        Self {
            max_age,
            max_bytes,
            next_seq: 1,
            frames: VecDeque::new(),
            bytes: 0,
            dropped_through: 0,
            counted_through: 0,
        }
    }

    /// Numbers `frame` and keeps it; returns its sequence number.
    pub fn push(&mut self, frame: WireFrame, now: Instant) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += frame.len();
        self.frames.push_back((seq, now, frame));
        self.trim(now);
        seq
    }

    /// The peer has everything up to and including `seq`.
    pub fn ack(&mut self, seq: u64) {
        while let Some((s, _, f)) = self.frames.front() {
            if *s > seq {
                break;
            }
            self.bytes -= f.len();
            self.frames.pop_front();
        }
    }

    /// Drops frames past the age or byte bound.
    pub fn trim(&mut self, now: Instant) {
        while let Some((s, at, f)) = self.frames.front() {
            let too_old = now.saturating_duration_since(*at) > self.max_age;
            if !too_old && self.bytes <= self.max_bytes {
                break;
            }
            self.dropped_through = *s;
            self.bytes -= f.len();
            self.frames.pop_front();
        }
    }

    /// What to resend to a peer that last received `last_received`: the frames after it, or the
    /// gap when some of them were dropped (the frames still kept follow in the `Ok` of a later
    /// call after the engine resynchronised and acknowledged through the gap).
    pub fn replay_after(&self, last_received: u64) -> Result<Vec<(u64, WireFrame)>, Gap> {
        if last_received < self.dropped_through {
            return Err(Gap {
                from: last_received + 1,
                through: self.dropped_through,
            });
        }
        Ok(self
            .frames
            .iter()
            .filter(|(s, _, _)| *s > last_received)
            .map(|(s, _, f)| (*s, f.clone()))
            .collect())
    }

    /// How many of `gap`'s sequence numbers are lost news: a peer that reconnects twice before
    /// the first replay reached it reports the same last frame, so the same gap, twice; it is
    /// counted (and resynchronised) once.
    pub fn newly_lost(&mut self, gap: Gap) -> u64 {
        let from = gap.from.max(self.counted_through + 1);
        self.counted_through = self.counted_through.max(gap.through);
        if gap.through >= from {
            gap.through - from + 1
        } else {
            0
        }
    }

    /// The sequence number the next frame will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Bytes kept for replay.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Frames kept for replay.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// What a receiver should do with a sequenced frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The next expected frame: deliver it.
    InOrder,
    /// Already delivered (a replay overlapping what arrived before the blip): drop it.
    Duplicate,
    /// Frames are missing before this one (only after a resync); deliver it and count `missing`.
    AfterGap {
        /// How many sequence numbers were skipped.
        missing: u64,
    },
}

/// The receiving side of one peer's sequence.
#[derive(Debug, Default, Clone)]
pub struct InboundSequence {
    last: u64,
}

impl InboundSequence {
    /// Classifies frame `seq` and advances.
    pub fn arrive(&mut self, seq: u64) -> Arrival {
        if seq <= self.last {
            return Arrival::Duplicate;
        }
        let missing = seq - self.last - 1;
        self.last = seq;
        if missing == 0 {
            Arrival::InOrder
        } else {
            Arrival::AfterGap { missing }
        }
    }

    /// The last sequence number delivered (what to acknowledge and what to resume from).
    pub fn last(&self) -> u64 {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn b(s: &str) -> WireFrame {
        WireFrame::whole(Bytes::copy_from_slice(s.as_bytes()))
    }

    #[test]
    fn replays_exactly_the_unacknowledged_tail() {
        let t = Instant::now();
        let mut w = ReplayWindow::new(Duration::from_secs(30), 1 << 20);
        for i in 0..5 {
            assert_eq!(w.push(b(&format!("m{i}")), t), i + 1);
        }
        w.ack(2);
        assert_eq!(w.len(), 3);
        let tail: Vec<u64> = w
            .replay_after(3)
            .expect("tail")
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(tail, vec![4, 5]);
    }

    #[test]
    fn beyond_the_window_is_a_gap() {
        let t = Instant::now();
        let mut w = ReplayWindow::new(Duration::from_secs(30), 10);
        for _ in 0..5 {
            w.push(b("12345"), t);
        }
        assert!(w.bytes() <= 10);
        assert_eq!(
            w.replay_after(0).err(),
            Some(Gap {
                from: 1,
                through: 3
            })
        );
        assert_eq!(w.replay_after(3).map(|v| v.len()), Ok(2));
        // The same gap reported again (a second reconnect from the same point) is no new loss;
        // a later, longer one counts only its new part.
        let gap = Gap {
            from: 1,
            through: 3,
        };
        assert_eq!(w.newly_lost(gap), 3);
        assert_eq!(w.newly_lost(gap), 0);
        assert_eq!(
            w.newly_lost(Gap {
                from: 2,
                through: 5
            }),
            2
        );
        let mut w = ReplayWindow::new(Duration::from_secs(1), 1 << 20);
        w.push(b("old"), t);
        w.trim(t + Duration::from_secs(2));
        assert_eq!(
            w.replay_after(0).err(),
            Some(Gap {
                from: 1,
                through: 1
            })
        );
    }

    #[test]
    fn receiver_drops_duplicates_and_counts_gaps() {
        let mut r = InboundSequence::default();
        assert_eq!(r.arrive(1), Arrival::InOrder);
        assert_eq!(r.arrive(2), Arrival::InOrder);
        assert_eq!(r.arrive(2), Arrival::Duplicate);
        assert_eq!(r.arrive(5), Arrival::AfterGap { missing: 2 });
        assert_eq!(r.last(), 5);
    }

    proptest! {
        /// A blip at any point, then a replay of what the window kept, delivers every frame exactly
        /// once and in order when nothing was dropped from the window.
        #[test]
        fn blip_then_replay_is_exactly_once(n in 1u64..60, cut in 0u64..60, acked in 0u64..60) {
            let t = Instant::now();
            let mut w = ReplayWindow::new(Duration::from_secs(30), 1 << 20);
            let mut r = InboundSequence::default();
            let mut delivered = Vec::new();
            for i in 1..=n {
                let seq = w.push(WireFrame::whole(Bytes::from(i.to_be_bytes().to_vec())), t);
                if seq <= cut && r.arrive(seq) == Arrival::InOrder { delivered.push(seq); }
            }
            w.ack(acked.min(r.last()));
            for (seq, _) in w.replay_after(r.last()).expect("kept") {
                if r.arrive(seq) == Arrival::InOrder { delivered.push(seq); }
            }
            prop_assert_eq!(delivered, (1..=n).collect::<Vec<_>>());
        }
    }
}
