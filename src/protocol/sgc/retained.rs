//! Retained messages (spec §2.7): what `queueLevel1` and `queueLevel2` publishes leave behind for
//! later subscribers. The store keeps the exact S5 frames, so a replay is a clone of shared bytes.
//!
//! Pure state: the protocol wraps it in a lock and does the sending.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;

use super::frame;
use super::inbound::QueueLevel;

/// The retained messages of every channel.
#[derive(Debug)]
pub struct RetainedQueues {
    /// Channel → its stored S5 frames, oldest first. Channels with nothing stored are absent.
    channels: HashMap<Arc<str>, VecDeque<Bytes>>,
    /// Most frames a channel keeps under `queueLevel2`.
    level2_cap: usize,
    /// Most channels with stored frames.
    max_channels: usize,
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

impl RetainedQueues {
    /// An empty store with these limits.
    pub fn new(level2_cap: usize, max_channels: usize) -> Self {
        Self {
            channels: HashMap::new(),
            level2_cap: level2_cap.max(1),
            max_channels,
        }
    }

    /// Applies a publish of `frame` (an S5 frame) to `channel` at `level`. Returns whether the
    /// frame was stored (level 0 and a full store of channels store nothing).
    pub fn store(&mut self, channel: &str, level: QueueLevel, frame: &Bytes) -> bool {
        if level == QueueLevel::Level0 {
            return false;
        }
        let queue = match self.channels.get_mut(channel) {
            Some(q) => q,
            None => {
                if self.channels.len() >= self.max_channels {
                    tracing::debug!(channel, "retained store full: message not kept");
                    return false;
                }
                self.channels.entry(Arc::from(channel)).or_default()
            }
        };
        if level == QueueLevel::Level1 {
            queue.clear();
        }
        queue.push_back(frame.clone());
        while queue.len() > self.level2_cap {
            queue.pop_front();
        }
        true
    }

    /// The frames to replay to a new subscriber of `channel`, oldest first.
    pub fn replay(&self, channel: &str) -> Vec<Bytes> {
        self.channels
            .get(channel)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets everything stored for `channel` (`ClearQueue`). Returns whether there was anything.
    pub fn clear(&mut self, channel: &str) -> bool {
        self.channels.remove(channel).is_some()
    }

    /// How many frames `channel` keeps.
    pub fn len(&self, channel: &str) -> usize {
        self.channels.get(channel).map_or(0, VecDeque::len)
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
            .map(|(name, q)| RetainedChannel {
                channel: name.to_string(),
                messages: q.iter().map(frame::event_message).collect(),
            })
            .collect();
        channels.sort_by(|a, b| a.channel.cmp(&b.channel));
        RetainedSnapshot { channels }
    }

    /// Takes another node's snapshot: each channel in it replaces this node's store for that
    /// channel (frames encoded once here); channels absent from it are kept.
    pub fn import(&mut self, snapshot: &RetainedSnapshot) {
        for ch in &snapshot.channels {
            self.channels.remove(ch.channel.as_str());
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

    #[test]
    fn levels() {
        let mut r = RetainedQueues::new(3, 10);
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
        let mut r = RetainedQueues::new(3, 1);
        assert!(r.store("a", QueueLevel::Level1, &f("a", "x")));
        assert!(!r.store("b", QueueLevel::Level1, &f("b", "x")));
        assert!(r.store("a", QueueLevel::Level2, &f("a", "y")));
    }

    #[test]
    fn snapshot_round_trip() {
        let mut r = RetainedQueues::new(10, 10);
        r.store("a", QueueLevel::Level2, &f("a", "1"));
        r.store("a", QueueLevel::Level2, &frame::event("a", b"{\"k\":[1]}"));
        r.store("b\"q", QueueLevel::Level1, &f("b\"q", "2"));
        let snap = r.snapshot();
        assert_eq!(
            snap.channels[0].messages[1],
            Bytes::from_static(b"{\"k\":[1]}")
        );
        let mut other = RetainedQueues::new(10, 10);
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
            let mut r = RetainedQueues::new(cap, 10);
            for i in 0..n {
                r.store("c", QueueLevel::Level2, &f("c", &i.to_string()));
            }
            let got = r.replay("c");
            let want: Vec<Bytes> = (n.saturating_sub(cap)..n).map(|i| f("c", &i.to_string())).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
