//! Retained messages (docs/wire.md §2.7): what `queueLevel1` and `queueLevel2` publishes leave behind for
//! later subscribers. The store keeps the exact S5 frames, so a replay is a clone of shared bytes.
//!
//! What it keeps is capped in bytes, per channel and for the node: past either cap the oldest
//! frames go first (for the node-wide cap, the oldest of the node whatever its channel), and a
//! frame bigger than the per-channel cap is not kept at all. Messages from other nodes and from
//! snapshots go through the same caps.
//!
//! Pure state: the protocol wraps it in a lock and does the sending.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::frame;
use super::inbound::QueueLevel;
use crate::metrics::{self, Limit};

/// What one stored frame costs beyond its bytes (its place in the channel's queue and in the
/// node's eviction order, the allocation's header), counted against the byte caps so that many
/// tiny messages cannot hold much more than the caps say.
pub const ENTRY_OVERHEAD: usize = 96;

/// What `frame` counts against the byte caps.
fn cost(frame: &Bytes) -> usize {
    frame.len() + ENTRY_OVERHEAD
}

/// The caps of a [`RetainedQueues`].
#[derive(Debug, Clone, Copy)]
pub struct RetainedCaps {
    /// Most frames a channel keeps under `queueLevel2`.
    pub level2_cap: usize,
    /// Most channels with stored frames.
    pub max_channels: usize,
    /// Most bytes of frames one channel keeps.
    pub max_bytes_per_channel: usize,
    /// Most bytes of frames every channel keeps together.
    pub max_bytes: usize,
}

/// The retained messages of every channel.
#[derive(Debug)]
pub struct RetainedQueues {
    /// Channel → its stored S5 frames, oldest first. Channels with nothing stored are absent.
    channels: HashMap<Arc<str>, Stored>,
    /// Every stored frame by the order it was stored in (its sequence number) → its channel:
    /// the node-wide eviction order.
    order: BTreeMap<u64, Arc<str>>,
    /// Bytes of every stored frame.
    bytes: usize,
    /// The sequence number of the next stored frame.
    next_seq: u64,
    caps: RetainedCaps,
}

/// The frames of one channel, oldest first, and their bytes.
#[derive(Debug, Default)]
struct Stored {
    frames: VecDeque<(u64, Bytes)>,
    bytes: usize,
}

/// The retained messages of every channel, as handed to (or taken from) another node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainedSnapshot {
    /// One entry per channel that has retained messages.
    pub channels: Vec<RetainedChannel>,
}

/// The retained messages of one channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetainedChannel {
    /// The concrete channel name.
    pub channel: String,
    /// The message values as written JSON (see [`super::SgcPublish::message`]), oldest first.
    pub messages: Vec<Bytes>,
}

/// The frames a new subscriber is sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replay {
    /// The newest frames that fit the budget, oldest first.
    pub frames: Vec<Bytes>,
    /// How many older frames did not fit and are not sent.
    pub skipped: usize,
}

impl RetainedQueues {
    /// An empty store with these caps.
    pub fn new(caps: RetainedCaps) -> Self {
        Self {
            channels: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            next_seq: 0,
            caps: RetainedCaps {
                level2_cap: caps.level2_cap.max(1),
                ..caps
            },
        }
    }

    /// Applies a publish of `frame` (an S5 frame) to `channel` at `level`. Returns whether the
    /// frame was stored (level 0, a full store of channels and a frame bigger than the
    /// per-channel cap store nothing).
    pub fn store(&mut self, channel: &str, level: QueueLevel, frame: &Bytes) -> bool {
        if level == QueueLevel::Level0 {
            return false;
        }
        let len = cost(frame);
        if len > self.caps.max_bytes_per_channel || len > self.caps.max_bytes {
            metrics::limit_refused(Limit::RetainedChannelBytes);
            tracing::debug!(
                channel,
                len,
                "retained message bigger than the cap: not kept"
            );
            if level == QueueLevel::Level1 {
                // It still replaces what the channel kept: a later subscriber must not get an
                // older "last" message.
                self.clear(channel);
            }
            return false;
        }
        let name = match self.channels.get_key_value(channel) {
            Some((name, _)) => name.clone(),
            None => {
                if self.channels.len() >= self.caps.max_channels {
                    tracing::debug!(channel, "retained store full: message not kept");
                    return false;
                }
                Arc::from(channel)
            }
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let stored = self.channels.entry(name.clone()).or_default();
        let mut evicted = Vec::new();
        if level == QueueLevel::Level1 {
            evicted.extend(stored.frames.drain(..));
            stored.bytes = 0;
        }
        stored.frames.push_back((seq, frame.clone()));
        stored.bytes += len;
        let mut by_bytes = false;
        while stored.frames.len() > self.caps.level2_cap
            || stored.bytes > self.caps.max_bytes_per_channel
        {
            by_bytes |= stored.frames.len() <= self.caps.level2_cap;
            let Some(old) = stored.frames.pop_front() else {
                break;
            };
            stored.bytes -= cost(&old.1);
            evicted.push(old);
        }
        if by_bytes {
            metrics::limit_refused(Limit::RetainedChannelBytes);
        }
        for (old_seq, old) in evicted {
            self.order.remove(&old_seq);
            self.bytes -= cost(&old);
        }
        self.order.insert(seq, name);
        self.bytes += len;
        if self.bytes > self.caps.max_bytes {
            metrics::limit_refused(Limit::RetainedBytes);
            tracing::debug!(
                bytes = self.bytes,
                "retained store over its byte cap: oldest evicted"
            );
        }
        while self.bytes > self.caps.max_bytes {
            if !self.evict_oldest() {
                break;
            }
        }
        true
    }

    /// Drops the oldest frame of the node. Returns false when nothing is stored.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, channel)) = self.order.pop_first() else {
            return false;
        };
        if let Some(stored) = self.channels.get_mut(&channel) {
            if let Some((_, old)) = stored.frames.pop_front() {
                stored.bytes -= cost(&old);
                self.bytes -= cost(&old);
            }
            if stored.frames.is_empty() {
                self.channels.remove(&channel);
            }
        }
        true
    }

    /// The frames to replay to a new subscriber of `channel`, oldest first.
    pub fn replay(&self, channel: &str) -> Vec<Bytes> {
        self.replay_within(channel, usize::MAX).frames
    }

    /// The newest frames of `channel` whose bytes together fit in `budget`, oldest first, and
    /// how many older ones were left out.
    pub fn replay_within(&self, channel: &str, budget: usize) -> Replay {
        let Some(stored) = self.channels.get(channel) else {
            return Replay::default();
        };
        let mut used = 0usize;
        let fit = stored
            .frames
            .iter()
            .rev()
            .take_while(|(_, f)| {
                used = used.saturating_add(f.len());
                used <= budget
            })
            .count();
        let skipped = stored.frames.len() - fit;
        Replay {
            frames: stored
                .frames
                .iter()
                .skip(skipped)
                .map(|(_, f)| f.clone())
                .collect(),
            skipped,
        }
    }

    /// Forgets everything stored for `channel` (`ClearQueue`). Returns whether there was anything.
    pub fn clear(&mut self, channel: &str) -> bool {
        let Some(stored) = self.channels.remove(channel) else {
            return false;
        };
        for (seq, _) in &stored.frames {
            self.order.remove(seq);
        }
        self.bytes -= stored.bytes;
        true
    }

    /// How many frames `channel` keeps.
    pub fn len(&self, channel: &str) -> usize {
        self.channels.get(channel).map_or(0, |s| s.frames.len())
    }

    /// Bytes of the frames every channel keeps, each with its [`ENTRY_OVERHEAD`].
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether no channel keeps anything.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Everything stored, as message values (zero-copy slices of the frames).
    pub fn snapshot(&self) -> RetainedSnapshot {
        let mut channels: Vec<RetainedChannel> = self
            .channels
            .iter()
            .map(|(name, s)| RetainedChannel {
                channel: name.to_string(),
                messages: s
                    .frames
                    .iter()
                    .map(|(_, f)| frame::event_message(f))
                    .collect(),
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        RetainedSnapshot { channels }
    }

    /// Takes another node's snapshot: each channel in it replaces this node's store for that
    /// channel (frames encoded once here, under this node's caps); channels absent from it are
    /// kept.
    pub fn import(&mut self, snapshot: &RetainedSnapshot) {
        for ch in &snapshot.channels {
            self.clear(&ch.channel);
            for m in &ch.messages {
                self.store(
                    &ch.channel,
                    QueueLevel::Level2,
                    &frame::event(&ch.channel, m),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ch: &str, m: &str) -> Bytes {
        frame::event(ch, format!("\"{m}\"").as_bytes())
    }

    fn caps(level2_cap: usize, max_channels: usize) -> RetainedCaps {
        RetainedCaps {
            level2_cap,
            max_channels,
            max_bytes_per_channel: usize::MAX,
            max_bytes: usize::MAX,
        }
    }

    #[test]
    fn byte_caps_evict_the_oldest() {
        let one = f("a", "0").len() + ENTRY_OVERHEAD;
        let mut r = RetainedQueues::new(RetainedCaps {
            max_bytes_per_channel: 3 * one,
            max_bytes: 5 * one,
            ..caps(100, 100)
        });
        for m in ["0", "1", "2", "3"] {
            assert!(r.store("a", QueueLevel::Level2, &f("a", m)));
        }
        assert_eq!(r.replay("a"), vec![f("a", "1"), f("a", "2"), f("a", "3")]);
        assert_eq!(r.bytes(), 3 * one);
        // Node-wide: the oldest of the node goes first, whatever its channel.
        for m in ["4", "5", "6"] {
            assert!(r.store("b", QueueLevel::Level2, &f("b", m)));
        }
        assert_eq!(r.replay("a"), vec![f("a", "2"), f("a", "3")]);
        assert_eq!(r.len("b"), 3);
        assert!(r.store("b", QueueLevel::Level2, &f("b", "7")));
        assert_eq!(
            (r.len("a"), r.len("b")),
            (2, 3),
            "b's own cap evicted b's oldest"
        );
        assert!(r.store("c", QueueLevel::Level2, &f("c", "8")));
        assert_eq!(r.replay("a"), vec![f("a", "3")]);
        assert!(r.store("c", QueueLevel::Level2, &f("c", "9")));
        assert_eq!(r.len("a"), 0, "a's last frame was the oldest of the node");
        assert_eq!(r.bytes(), 5 * one);
        // Too big for a channel: not kept, and a level-1 one still replaces the channel's store.
        let big = frame::event("c", format!("\"{}\"", "x".repeat(4 * one)).as_bytes());
        assert!(!r.store("c", QueueLevel::Level2, &big));
        assert_eq!(r.len("c"), 2);
        assert!(!r.store("c", QueueLevel::Level1, &big));
        assert_eq!(r.len("c"), 0);
        assert!(r.clear("b"));
        assert!(r.is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn replay_within_keeps_the_newest_that_fit() {
        let one = f("a", "0").len();
        let mut r = RetainedQueues::new(caps(100, 100));
        for m in ["0", "1", "2", "3"] {
            r.store("a", QueueLevel::Level2, &f("a", m));
        }
        let got = r.replay_within("a", 2 * one + 1);
        assert_eq!(got.frames, vec![f("a", "2"), f("a", "3")]);
        assert_eq!(got.skipped, 2);
        assert_eq!(r.replay_within("a", one - 1).skipped, 4);
        assert_eq!(r.replay_within("none", 0), Replay::default());
    }

    #[test]
    fn import_obeys_the_caps() {
        let one = f("a", "0").len() + ENTRY_OVERHEAD;
        let mut src = RetainedQueues::new(caps(100, 100));
        for m in ["0", "1", "2", "3"] {
            src.store("a", QueueLevel::Level2, &f("a", m));
        }
        let mut r = RetainedQueues::new(RetainedCaps {
            max_bytes: 2 * one,
            ..caps(100, 100)
        });
        r.import(&src.snapshot());
        assert_eq!(r.replay("a"), vec![f("a", "2"), f("a", "3")]);
        assert_eq!(r.bytes(), 2 * one);
    }

    #[test]
    fn levels() {
        let mut r = RetainedQueues::new(caps(3, 10));
        assert!(!r.store("c", QueueLevel::Level0, &f("c", "0")));
        assert!(r.is_empty());
        r.store("c", QueueLevel::Level1, &f("c", "a"));
        r.store("c", QueueLevel::Level1, &f("c", "b"));
        assert_eq!(r.replay("c"), vec![f("c", "b")]);
        for m in ["1", "2", "3", "4"] {
            r.store("c", QueueLevel::Level2, &f("c", m));
        }
        assert_eq!(r.replay("c"), vec![f("c", "2"), f("c", "3"), f("c", "4")]);
        // A level-1 publish replaces everything, level-2 ones.
        r.store("c", QueueLevel::Level1, &f("c", "z"));
        assert_eq!(r.replay("c"), vec![f("c", "z")]);
        assert!(r.clear("c"));
        assert!(r.replay("c").is_empty());
    }

    #[test]
    fn channel_cap() {
        let mut r = RetainedQueues::new(caps(3, 1));
        assert!(r.store("a", QueueLevel::Level1, &f("a", "x")));
        assert!(!r.store("b", QueueLevel::Level1, &f("b", "x")));
        assert!(r.store("a", QueueLevel::Level2, &f("a", "y")));
    }

    #[test]
    fn snapshot_round_trip() {
        let mut r = RetainedQueues::new(caps(10, 10));
        r.store("a", QueueLevel::Level2, &f("a", "1"));
        r.store("a", QueueLevel::Level2, &frame::event("a", b"{\"k\":[1]}"));
        r.store("b\"q", QueueLevel::Level1, &f("b\"q", "2"));
        let snap = r.snapshot();
        assert_eq!(
            snap.channels[0].messages[1],
            Bytes::from_static(b"{\"k\":[1]}")
        );
        let mut other = RetainedQueues::new(caps(10, 10));
        other.store("a", QueueLevel::Level1, &f("a", "old"));
        other.store("keep", QueueLevel::Level1, &f("keep", "k"));
        other.import(&snap);
        assert_eq!(other.replay("a"), r.replay("a"));
        assert_eq!(other.replay("b\"q"), r.replay("b\"q"));
        assert_eq!(other.len("keep"), 1);
    }

    proptest::proptest! {
        #[test]
        fn level2_keeps_the_newest_cap(cap in 1usize..8, n in 0usize..30) {
            let mut r = RetainedQueues::new(caps(cap, 10));
            for i in 0..n {
                r.store("c", QueueLevel::Level2, &f("c", &i.to_string()));
            }
            let got = r.replay("c");
            let want: Vec<Bytes> = (n.saturating_sub(cap)..n).map(|i| f("c", &i.to_string())).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
