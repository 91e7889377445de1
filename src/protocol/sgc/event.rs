//! What the sgc protocol hands to the cluster ([`SgcEvent`], through its `RelaySlot`) and accepts
//! back from it (`SgcProtocol::apply_remote`), plus [`Targets`], the include/exclude connection
//! lists of server-side publishes and broadcasts.
//!
//! Message values travel as already-written JSON bytes: a remote node never parses them, and it
//! builds its client frame once per event, whatever its number of subscribers.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::inbound::QueueLevel;

/// An sgc event other nodes must replay on their own connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SgcEvent {
    /// A message published to one concrete channel (after mask expansion): deliver S5 to that
    /// channel's subscribers (everyone for `""`) and store it per its queue level.
    Publish(SgcPublish),
    /// A broadcast: deliver S6 to a channel's subscribers, or to everyone for `""`.
    Broadcast(SgcBroadcast),
    /// A server-side publish with an idempotency key (`SgcProtocol::publish_once`): delivered
    /// like [`SgcEvent::Publish`] unless this node already saw the key used by another publish.
    PublishOnce {
        /// The caller's idempotency key.
        key: Arc<str>,
        /// Random id of the publish that used the key (one per call, shared by its channels).
        id: u64,
        /// The publish itself.
        publish: SgcPublish,
    },
    /// `ClearQueue(channel)`: forget the channel's retained messages.
    ClearQueue {
        /// The channel whose retained messages are dropped.
        channel: Arc<str>,
    },
}

/// A publish to one concrete channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgcPublish {
    /// The concrete channel; `""` means every sgc connection.
    pub channel: Arc<str>,
    /// The message value as written JSON: an object or array as is, anything else as a JSON
    /// string literal (`"hello"`). Inserted verbatim into the S5 frame.
    pub message: Bytes,
    /// Whether (and how) the message is retained.
    pub queue: QueueLevel,
    /// Which connections may receive it (server-side publishes; empty lists for client ones).
    pub targets: Targets,
}

/// A broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgcBroadcast {
    /// The channel whose subscribers receive it; `""` means every sgc connection.
    pub channel: Arc<str>,
    /// The message value as written JSON (see [`SgcPublish::message`]).
    pub message: Bytes,
    /// The sender's `qos`, echoed in the frame (S6b), when a client's broadcast carried one.
    pub qos: Option<Arc<str>>,
    /// The sender's `id`, echoed in the frame (S6b), when a client's broadcast carried one.
    pub id: Option<Arc<str>>,
    /// Which connections may receive it.
    pub targets: Targets,
}

/// Which connections a server-side publish or broadcast may reach, by connection GUID (the
/// reference server's `Include`/`Exclude` lists). The default reaches everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    /// Only these connection GUIDs (empty: no restriction).
    pub include: Vec<String>,
    /// Never these connection GUIDs.
    pub exclude: Vec<String>,
}

impl Targets {
    /// Everyone (no restriction).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only these connections.
    pub fn only<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            include: ids.into_iter().map(Into::into).collect(),
            exclude: Vec::new(),
        }
    }

    /// Everyone but these connections.
    pub fn except<I, S>(ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            include: Vec::new(),
            exclude: ids.into_iter().map(Into::into).collect(),
        }
    }

    /// From the reference server's comma lists (`"GUID1,GUID2"`); blanks are ignored.
    pub fn from_lists(include: &str, exclude: &str) -> Self {
        let split = |s: &str| {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_owned)
                .collect()
        };
        Self {
            include: split(include),
            exclude: split(exclude),
        }
    }

    /// Whether there is no restriction at all.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether connection `id` may receive.
    pub fn allows(&self, id: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|i| i == id))
            && !self.exclude.iter().any(|e| e == id)
    }

    /// A matcher for fan-out: constant time per connection however long the lists are.
    pub(crate) fn matcher(&self) -> TargetMatcher<'_> {
        if self.is_all() {
            return TargetMatcher::All;
        }
        TargetMatcher::Sets {
            include: (!self.include.is_empty())
                .then(|| self.include.iter().map(String::as_str).collect()),
            exclude: self.exclude.iter().map(String::as_str).collect(),
        }
    }
}

/// [`Targets`] prepared for checking many connections.
#[derive(Debug)]
pub(crate) enum TargetMatcher<'a> {
    /// No restriction.
    All,
    /// Hashed include (if any) and exclude lists.
    Sets {
        include: Option<HashSet<&'a str>>,
        exclude: HashSet<&'a str>,
    },
}

impl TargetMatcher<'_> {
    /// Whether connection `id` may receive.
    pub(crate) fn allows(&self, id: &str) -> bool {
        match self {
            TargetMatcher::All => true,
            TargetMatcher::Sets { include, exclude } => {
                include.as_ref().is_none_or(|i| i.contains(id)) && !exclude.contains(id)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert!(Targets::all().allows("A"));
        let t = Targets::from_lists(" A, B ,", "B");
        assert_eq!(t.include, ["A", "B"]);
        assert!(t.allows("A") && !t.allows("B") && !t.allows("C"));
        assert!(t.matcher().allows("A") && !t.matcher().allows("B"));
        let t = Targets::except(["X"]);
        assert!(t.allows("Y") && !t.allows("X"));
        assert!(t.matcher().allows("Y") && !t.matcher().allows("X"));
        assert!(Targets::only(["Q"]).matcher().allows("Q"));
        assert!(TargetMatcher::All.allows("anything"));
    }
}
