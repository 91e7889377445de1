//! Who is in the cluster, sans I/O: engines report what they observe (a frame heard from a node, a
//! link closed, a bye, the passing of time) and get back the peer changes to act on. No sockets, no
//! clocks of its own: `now` is passed in, so tests play crashes and restarts without sleeping.
//!
//! Rules (see `docs/cluster.md`, "Guarantees and how they are kept"):
//! - the first frame heard from a node (or from a new incarnation of it) makes it a live peer;
//! - a new incarnation of a known node means the old process is gone: the old one is reported down
//!   at once, before the new one is reported up;
//! - a closed link (mesh), a bye, or silence longer than `peer_timeout` report the peer down;
//! - frames from an incarnation reported down are ignored afterwards (late frames of a dead process
//!   never resurrect it).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::envelope::Origin;

/// Why a peer is considered gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownReason {
    /// Its link closed or reset (mesh): the process is gone or unreachable.
    LinkClosed,
    /// Nothing heard from it for `peer_timeout`.
    Timeout,
    /// It said bye (graceful stop).
    Bye,
    /// A new incarnation of the same node id appeared: the old process restarted.
    Restarted,
    /// This node stopped its backplane: every peer is out of reach.
    LocalStop,
    /// A broker engine: its subscription to its own stream is gone (the process died, or lost
    /// the broker).
    Unsubscribed,
}

impl DownReason {
    /// The `reason` label of the peer-down metrics.
    pub fn metric(self) -> crate::metrics::PeerDown {
        use crate::metrics::PeerDown;
        match self {
            DownReason::LinkClosed => PeerDown::LinkClosed,
            DownReason::Timeout => PeerDown::Timeout,
            DownReason::Bye => PeerDown::Bye,
            DownReason::Restarted => PeerDown::Restarted,
            DownReason::LocalStop => PeerDown::LocalStop,
            DownReason::Unsubscribed => PeerDown::Unsubscribed,
        }
    }
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DownReason::LinkClosed => "link closed",
            DownReason::Timeout => "peer timeout",
            DownReason::Bye => "bye",
            DownReason::Restarted => "restarted with a new incarnation",
            DownReason::LocalStop => "local backplane stopped",
            DownReason::Unsubscribed => "its broker subscription is gone",
        })
    }
}

/// A change in the set of live peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    /// A peer (this incarnation of it) is live.
    Up(Origin),
    /// A peer (this incarnation of it) is gone; everything it owned must be purged.
    Down(Origin, DownReason),
}

#[derive(Debug)]
struct Peer {
    incarnation: u64,
    last_heard: Instant,
}

/// How many retired incarnations are remembered, so late frames of dead processes are ignored.
const RETIRED_MEMORY: usize = 4096;

/// The live peers of one node and the rules that change them.
#[derive(Debug)]
pub struct Membership {
    me: Arc<str>,
    peer_timeout: Duration,
    live: HashMap<Arc<str>, Peer>,
    retired: HashSet<(Arc<str>, u64)>,
    retired_order: VecDeque<(Arc<str>, u64)>,
}

impl Membership {
    /// Membership for node `me`, declaring peers dead after `peer_timeout` of silence.
    pub fn new(me: Arc<str>, peer_timeout: Duration) -> Self {
        Self {
            me,
            peer_timeout,
            live: HashMap::new(),
            retired: HashSet::new(),
            retired_order: VecDeque::new(),
        }
    }

    /// A frame (any frame) was heard from `origin` at `now`.
    pub fn heard(&mut self, origin: &Origin, now: Instant) -> Vec<PeerChange> {
        if origin.node_id == self.me || self.is_retired(origin) {
            return Vec::new();
        }
        let mut changes = Vec::new();
        match self.live.get_mut(&origin.node_id) {
            Some(p) if p.incarnation == origin.incarnation => {
                p.last_heard = now;
            }
            Some(p) => {
                let old = Origin {
                    node_id: origin.node_id.clone(),
                    incarnation: p.incarnation,
                };
                p.incarnation = origin.incarnation;
                p.last_heard = now;
                self.retire(&old);
                changes.push(PeerChange::Down(old, DownReason::Restarted));
                changes.push(PeerChange::Up(origin.clone()));
            }
            None => {
                self.live.insert(
                    origin.node_id.clone(),
                    Peer {
                        incarnation: origin.incarnation,
                        last_heard: now,
                    },
                );
                changes.push(PeerChange::Up(origin.clone()));
            }
        }
        changes
    }

    /// The link to `node_id` closed (mesh): it is down at once.
    pub fn link_closed(&mut self, node_id: &str) -> Vec<PeerChange> {
        self.down(node_id, None, DownReason::LinkClosed)
    }

    /// `origin` (this incarnation) is gone for `reason`, as an engine observed it; it comes back
    /// when it is heard again.
    pub fn departed(&mut self, origin: &Origin, reason: DownReason) -> Vec<PeerChange> {
        self.down(&origin.node_id, Some(origin.incarnation), reason)
    }

    /// `origin` said bye: it is down at once and that incarnation never comes back.
    pub fn bye(&mut self, origin: &Origin) -> Vec<PeerChange> {
        let changes = self.down(&origin.node_id, Some(origin.incarnation), DownReason::Bye);
        self.retire(origin);
        changes
    }

    /// Time passed: peers silent for longer than `peer_timeout` are down.
    pub fn tick(&mut self, now: Instant) -> Vec<PeerChange> {
        let expired: Vec<Arc<str>> = self
            .live
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_heard) > self.peer_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .into_iter()
            .flat_map(|id| self.down(&id, None, DownReason::Timeout))
            .collect()
    }

    /// Reports every live peer down (the backplane stopped).
    pub fn clear(&mut self, reason: DownReason) -> Vec<PeerChange> {
        let ids: Vec<Arc<str>> = self.live.keys().cloned().collect();
        ids.into_iter()
            .flat_map(|id| self.down(&id, None, reason))
            .collect()
    }

    /// The live peers.
    pub fn live_peers(&self) -> impl Iterator<Item = Origin> + '_ {
        self.live.iter().map(|(id, p)| Origin {
            node_id: id.clone(),
            incarnation: p.incarnation,
        })
    }

    /// How many peers are live.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Whether this exact incarnation of a node is live.
    pub fn is_live(&self, origin: &Origin) -> bool {
        self.live
            .get(&origin.node_id)
            .is_some_and(|p| p.incarnation == origin.incarnation)
    }

    fn down(
        &mut self,
        node_id: &str,
        incarnation: Option<u64>,
        reason: DownReason,
    ) -> Vec<PeerChange> {
        let matches = self
            .live
            .get(node_id)
            .is_some_and(|p| incarnation.is_none_or(|i| i == p.incarnation));
        if !matches {
            return Vec::new();
        }
        let Some((id, p)) = self.live.remove_entry(node_id) else {
            return Vec::new();
        };
        let origin = Origin {
            node_id: id,
            incarnation: p.incarnation,
        };
        if matches!(reason, DownReason::Bye | DownReason::Restarted) {
            self.retire(&origin);
        }
        vec![PeerChange::Down(origin, reason)]
    }

    fn is_retired(&self, origin: &Origin) -> bool {
        self.retired
            .contains(&(origin.node_id.clone(), origin.incarnation))
    }

    fn retire(&mut self, origin: &Origin) {
        let key = (origin.node_id.clone(), origin.incarnation);
        if self.retired.insert(key.clone()) {
            self.retired_order.push_back(key);
            while self.retired_order.len() > RETIRED_MEMORY {
                if let Some(old) = self.retired_order.pop_front() {
                    self.retired.remove(&old);
                }
            }
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

    fn m() -> Membership {
        Membership::new(Arc::from("me"), Duration::from_secs(3))
    }

    #[test]
    fn first_frame_brings_a_peer_up_once() {
        let mut m = m();
        let t = Instant::now();
        assert_eq!(m.heard(&o("b", 1), t), vec![PeerChange::Up(o("b", 1))]);
        assert!(m.heard(&o("b", 1), t).is_empty());
        assert!(
            m.heard(&o("me", 9), t).is_empty(),
            "own frames are not a peer"
        );
        assert_eq!(m.live_count(), 1);
    }

    #[test]
    fn new_incarnation_purges_the_old_at_once_and_old_frames_stay_ignored() {
        let mut m = m();
        let t = Instant::now();
        m.heard(&o("b", 1), t);
        assert_eq!(
            m.heard(&o("b", 2), t),
            vec![
                PeerChange::Down(o("b", 1), DownReason::Restarted),
                PeerChange::Up(o("b", 2))
            ]
        );
        assert!(
            m.heard(&o("b", 1), t).is_empty(),
            "a late frame must not resurrect"
        );
        assert!(m.is_live(&o("b", 2)));
    }

    #[test]
    fn silence_past_timeout_is_death() {
        let mut m = m();
        let t = Instant::now();
        m.heard(&o("b", 1), t);
        assert!(m.tick(t + Duration::from_secs(2)).is_empty());
        assert_eq!(
            m.tick(t + Duration::from_secs(4)),
            vec![PeerChange::Down(o("b", 1), DownReason::Timeout)]
        );
        // A partition that heals: the same incarnation comes back and is announced again.
        assert_eq!(
            m.heard(&o("b", 1), t + Duration::from_secs(5)),
            vec![PeerChange::Up(o("b", 1))]
        );
    }

    #[test]
    fn bye_retires_the_incarnation() {
        let mut m = m();
        let t = Instant::now();
        m.heard(&o("b", 1), t);
        assert_eq!(
            m.bye(&o("b", 1)),
            vec![PeerChange::Down(o("b", 1), DownReason::Bye)]
        );
        assert!(m.heard(&o("b", 1), t).is_empty());
        assert_eq!(m.heard(&o("b", 2), t), vec![PeerChange::Up(o("b", 2))]);
    }

    #[test]
    fn link_close_is_death_but_the_incarnation_may_return() {
        let mut m = m();
        let t = Instant::now();
        m.heard(&o("b", 1), t);
        assert_eq!(
            m.link_closed("b"),
            vec![PeerChange::Down(o("b", 1), DownReason::LinkClosed)]
        );
        assert!(m.link_closed("b").is_empty());
        assert_eq!(m.heard(&o("b", 1), t), vec![PeerChange::Up(o("b", 1))]);
    }

    proptest! {
        /// Whatever happens, every Up is matched by at most one Down before the next Up of that
        /// node, and the live set equals Ups minus Downs.
        #[test]
        fn ups_and_downs_balance(ops in proptest::collection::vec((0u8..5, 0u8..3, 0u64..3, 0u64..5), 0..200)) {
            let mut m = m();
            let start = Instant::now();
            let mut now = start;
            let mut live: HashMap<String, u64> = HashMap::new();
            for (op, node, inc, dt) in ops {
                now += Duration::from_secs(dt);
                let id = format!("n{node}");
                let changes = match op {
                    0 | 1 => m.heard(&o(&id, inc), now),
                    2 => m.link_closed(&id),
                    3 => m.bye(&o(&id, inc)),
                    _ => m.tick(now),
                };
                for c in changes {
                    match c {
                        PeerChange::Up(p) => { prop_assert!(live.insert(p.node_id.to_string(), p.incarnation).is_none()); }
                        PeerChange::Down(p, _) => { prop_assert_eq!(live.remove(&*p.node_id), Some(p.incarnation)); }
                    }
                }
                prop_assert_eq!(live.len(), m.live_count());
            }
        }
    }
}
