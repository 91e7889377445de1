//! The connections every node holds, as the others know them, sans I/O: so a survivor can report
//! `connection_closed` for a crashed node's connections. Each node sends its own opens and closes
//! and, to a new peer, the whole list ([`Notice`]); the replica of the others is capped in bytes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// What a node says about its connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Notice {
    /// A connection opened.
    Opened(String),
    /// A connection closed.
    Closed(String),
    /// Every connection open now (replaces what was known).
    All(Vec<String>),
}

impl Notice {
    /// The notice as an envelope payload.
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// A payload as a notice; `None` when it is not one.
    pub(crate) fn decode(payload: &[u8]) -> Option<Self> {
        postcard::from_bytes(payload).ok()
    }
}

/// Bytes one kept connection id is counted for (its text and the set's overhead).
fn cost(id: &str) -> usize {
    id.len() + 32
}

struct Held {
    incarnation: u64,
    ids: BTreeSet<Arc<str>>,
}

/// The other nodes' open connections.
pub(crate) struct Replica {
    nodes: HashMap<Arc<str>, Held>,
    bytes: usize,
    cap_bytes: usize,
}

impl Replica {
    /// An empty replica holding at most `cap_bytes`.
    pub(crate) fn new(cap_bytes: usize) -> Self {
        Self {
            nodes: HashMap::new(),
            bytes: 0,
            cap_bytes,
        }
    }

    /// Applies `notice` from `node` (incarnation `incarnation`; a new one replaces the old
    /// list); returns how many ids were not kept for lack of room.
    pub(crate) fn apply(&mut self, node: &Arc<str>, incarnation: u64, notice: Notice) -> usize {
        if self
            .nodes
            .get(node)
            .is_some_and(|h| h.incarnation != incarnation)
        {
            self.forget(node);
        }
        let held = self.nodes.entry(node.clone()).or_insert_with(|| Held {
            incarnation,
            ids: BTreeSet::new(),
        });
        let mut refused = 0;
        let mut add = |held: &mut Held, bytes: &mut usize, id: String| {
            if held.ids.contains(id.as_str()) {
                return;
            }
            if *bytes + cost(&id) > self.cap_bytes {
                refused += 1;
                return;
            }
            *bytes += cost(&id);
            held.ids.insert(Arc::from(id));
        };
        match notice {
            Notice::Opened(id) => add(held, &mut self.bytes, id),
            Notice::Closed(id) => {
                if held.ids.remove(id.as_str()) {
                    self.bytes -= cost(&id);
                }
            }
            Notice::All(ids) => {
                for id in std::mem::take(&mut held.ids) {
                    self.bytes -= cost(&id);
                }
                for id in ids {
                    add(held, &mut self.bytes, id);
                }
            }
        }
        refused
    }

    /// The connections of `node` (sorted).
    pub(crate) fn of(&self, node: &str) -> Vec<Arc<str>> {
        self.nodes
            .get(node)
            .map(|h| h.ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets `node` (it is gone).
    pub(crate) fn forget(&mut self, node: &str) {
        if let Some(h) = self.nodes.remove(node) {
            for id in h.ids {
                self.bytes -= cost(&id);
            }
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str) -> Arc<str> {
        Arc::from(n)
    }

    #[test]
    fn opens_closes_and_full_lists_per_node_and_incarnation() {
        let mut r = Replica::new(1 << 20);
        r.apply(&node("b"), 1, Notice::Opened("G1".into()));
        r.apply(&node("b"), 1, Notice::Opened("G2".into()));
        r.apply(&node("b"), 1, Notice::Closed("G1".into()));
        r.apply(&node("c"), 1, Notice::All(vec!["G9".into(), "G8".into()]));
        assert_eq!(r.of("b"), [node("G2")]);
        assert_eq!(r.of("c"), [node("G8"), node("G9")]);
        r.apply(&node("c"), 1, Notice::All(vec!["G7".into()]));
        assert_eq!(r.of("c"), [node("G7")]);
        // A new incarnation starts from nothing.
        r.apply(&node("b"), 2, Notice::Opened("G3".into()));
        assert_eq!(r.of("b"), [node("G3")]);
        r.forget("b");
        r.forget("c");
        assert!(r.of("b").is_empty());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn the_replica_is_capped_in_bytes() {
        let mut r = Replica::new(cost("G1") * 2);
        assert_eq!(
            r.apply(
                &node("b"),
                1,
                Notice::All(vec!["G1".into(), "G2".into(), "G3".into()])
            ),
            1
        );
        assert_eq!(r.of("b").len(), 2);
        assert_eq!(r.apply(&node("b"), 1, Notice::Opened("G4".into())), 1);
        r.apply(&node("b"), 1, Notice::Closed("G1".into()));
        assert_eq!(r.apply(&node("b"), 1, Notice::Opened("G4".into())), 0);
    }

    #[test]
    fn notices_round_trip() {
        for n in [
            Notice::Opened("a".into()),
            Notice::Closed("b".into()),
            Notice::All(vec!["c".into()]),
        ] {
            assert_eq!(Notice::decode(&n.encode()), Some(n));
        }
        assert_eq!(Notice::decode(b"\xff"), None);
    }
}
