//! Streams and per-stream sequence numbers, sans I/O.
//!
//! Broker Pub/Sub (Redis, Redis Cluster, core NATS) is at-most-once, so every envelope a node
//! publishes carries a sequence number of its *stream*: the broker channel or subject it goes to.
//! A receiver subscribed to a stream sees every number of it in order unless the broker (or the
//! sender's connection) lost some; each skipped number is a lost envelope, counted, and on a
//! control stream a reason to resynchronise.
//!
//! Streams: the shared stream (control, Presence, retained sgc traffic), one per node (what is
//! meant for one node, e.g. snapshots) and, in per-channel routing, one per sgc channel. Each
//! engine names them its own way ([`StreamNames`]).

use std::collections::HashMap;
use std::sync::Arc;

use crate::cluster::envelope::Origin;

/// What a stream (a broker channel or subject) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamKind {
    /// The shared stream every node subscribes to.
    Shared,
    /// A node's own stream.
    Node,
    /// An sgc channel's own stream (per-channel routing).
    Channel,
    /// Not one of this cluster's streams.
    Foreign,
}

/// How an engine names its streams on its broker (each broker has its own rules: Redis channels
/// are any bytes, NATS subjects are dot-separated tokens, Redis Cluster names carry hash tags).
pub(crate) trait StreamNames: Send + Sync + 'static {
    /// The shared stream (control, Presence, retained sgc traffic; sgc traffic in shared routing).
    fn shared(&self) -> &Arc<str>;
    /// The stream of node `id`.
    fn node(&self, id: &str) -> String;
    /// The stream of sgc channel `name` (per-channel routing).
    fn channel(&self, name: &str) -> String;
    /// What stream `name` carries.
    fn kind_of(&self, name: &str) -> StreamKind;
}

/// How many per-stream counters a sender keeps before starting over (a receiver takes a number
/// that goes back as a restarted stream, not as a loss).
const MAX_OUTBOUND_STREAMS: usize = 65_536;

/// The next sequence number of each stream this node publishes to.
#[derive(Debug, Default)]
pub(crate) struct OutboundSequences {
    next: HashMap<Arc<str>, u64>,
}

impl OutboundSequences {
    /// The number of the next envelope published to `stream` (starting at 1).
    pub(crate) fn next(&mut self, stream: &Arc<str>) -> u64 {
        if let Some(n) = self.next.get_mut(stream) {
            *n += 1;
            return *n;
        }
        if self.next.len() >= MAX_OUTBOUND_STREAMS {
            self.next.clear();
        }
        self.next.insert(stream.clone(), 1);
        1
    }

    /// Forgets a stream (a node that left): its numbers start over if it is used again.
    pub(crate) fn forget(&mut self, stream: &str) {
        self.next.remove(stream);
    }
}

#[derive(Debug)]
struct OriginStreams {
    incarnation: u64,
    last: HashMap<Box<str>, u64>,
}

/// The last sequence number seen from each origin on each stream, and the losses they reveal.
#[derive(Debug, Default)]
pub(crate) struct InboundSequences {
    origins: HashMap<Arc<str>, OriginStreams>,
}

impl InboundSequences {
    /// Takes envelope number `seq` of `origin` on `stream`; returns how many envelopes of that
    /// stream were lost before it. The first number seen on a stream (or from a new incarnation)
    /// is the baseline; a number that does not go forward means the sender started the stream
    /// over; 0 means "unsequenced".
    pub(crate) fn accept(&mut self, origin: &Origin, stream: &str, seq: u64) -> u64 {
        if seq == 0 {
            return 0;
        }
        let streams = match self.origins.get_mut(&origin.node_id) {
            Some(s) if s.incarnation == origin.incarnation => s,
            _ => {
                self.origins.insert(
                    origin.node_id.clone(),
                    OriginStreams {
                        incarnation: origin.incarnation,
                        last: HashMap::new(),
                    },
                );
                match self.origins.get_mut(&origin.node_id) {
                    Some(s) => s,
                    None => return 0,
                }
            }
        };
        match streams.last.get_mut(stream) {
            Some(last) => {
                let lost = if seq > *last { seq - *last - 1 } else { 0 };
                *last = seq;
                lost
            }
            None => {
                streams.last.insert(stream.into(), seq);
                0
            }
        }
    }

    /// Forgets an origin (it left): its next incarnation starts fresh.
    pub(crate) fn forget_origin(&mut self, node_id: &str) {
        self.origins.remove(node_id);
    }

    /// Forgets a stream for every origin (this node unsubscribed from it: what it misses while
    /// away is not a loss).
    pub(crate) fn forget_stream(&mut self, stream: &str) {
        for o in self.origins.values_mut() {
            o.last.remove(stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn o(id: &str, inc: u64) -> Origin {
        Origin {
            node_id: Arc::from(id),
            incarnation: inc,
        }
    }

    #[test]
    fn outbound_numbers_each_stream_from_one() {
        let mut out = OutboundSequences::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert_eq!([out.next(&a), out.next(&a), out.next(&b)], [1, 2, 1]);
        out.forget("a");
        assert_eq!(out.next(&a), 1);
    }

    #[test]
    fn gaps_are_counted_per_stream_and_restarts_are_not_losses() {
        let mut seen = InboundSequences::default();
        let x = o("x", 1);
        assert_eq!(seen.accept(&x, "s", 5), 0, "baseline");
        assert_eq!(seen.accept(&x, "s", 6), 0);
        assert_eq!(seen.accept(&x, "s", 9), 2);
        assert_eq!(
            seen.accept(&x, "t", 1),
            0,
            "another stream has its own numbers"
        );
        assert_eq!(seen.accept(&x, "s", 1), 0, "the sender started over");
        assert_eq!(seen.accept(&x, "s", 2), 0);
        assert_eq!(seen.accept(&x, "s", 0), 0, "unsequenced");
        assert_eq!(
            seen.accept(&o("x", 2), "s", 7),
            0,
            "a new incarnation starts fresh"
        );
        seen.forget_stream("s");
        assert_eq!(seen.accept(&o("x", 2), "s", 20), 0);
        seen.forget_origin("x");
        assert_eq!(seen.accept(&o("x", 2), "s", 30), 0);
    }

    proptest! {
        /// Whatever subset of a stream arrives (in order), the losses counted are exactly the
        /// numbers missing between the first and the last that arrived.
        #[test]
        fn counted_losses_are_the_missing_numbers(keep in proptest::collection::vec(any::<bool>(), 1..200)) {
            let mut seen = InboundSequences::default();
            let x = o("x", 1);
            let arrived: Vec<u64> = keep.iter().enumerate().filter(|(_, k)| **k).map(|(i, _)| i as u64 + 1).collect();
            let lost: u64 = arrived.iter().map(|s| seen.accept(&x, "s", *s)).sum();
            if let (Some(first), Some(last)) = (arrived.first(), arrived.last()) {
                prop_assert_eq!(lost, last - first + 1 - arrived.len() as u64);
            }
        }
    }
}
