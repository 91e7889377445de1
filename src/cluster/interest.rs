//! Interest routing for sgc, sans I/O: which channels each peer has subscribers for, which peers
//! a publish must cross to, and the gates that hold a first local subscription until every live
//! peer has acknowledged the new interest (see [`crate::relay::InterestGate`]).
//!
//! The owner (the sgc adapter) keeps this behind one mutex and sends while holding it, so that a
//! peer's interest acknowledgment and the publishes routed by what it learned leave in that order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::relay::InterestReady;

/// What nodes tell each other about their channels (envelope kind `Interest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InterestMsg {
    /// Every channel the sender has local subscribers for (sent when a peer comes up).
    Full(Vec<String>),
    /// The sender's first local subscriber of `channel` is waiting for `token` to be acknowledged.
    Add {
        /// The channel.
        channel: String,
        /// Echoed in the acknowledgment.
        token: u64,
    },
    /// The sender's last local subscriber of a channel left.
    Remove(String),
    /// The receiver of an `Add` applied it.
    Ack(u64),
}

/// How long a peer that went down keeps receiving (into the engine's replay window) the traffic
/// it would get if it came back: as long as a mesh replay window can hold it.
const DOWN_PEER_KEPT: Duration = Duration::from_secs(60);

struct Gate {
    waiting: HashSet<Arc<str>>,
    ready: InterestReady,
}

/// Interest state of one node.
#[derive(Default)]
pub(crate) struct InterestTable {
    /// Peers that may need our publishes: `None` until their full set arrives (send them all).
    peers: HashMap<Arc<str>, Option<HashSet<String>>>,
    /// Adds and removes received from a peer while its full set is awaited, in order: the set
    /// may have been taken before some of them were sent, so they are applied on top of it.
    early: HashMap<Arc<str>, Vec<(String, bool)>>,
    /// Peers that went down and when: they still get everything (the engine keeps it for replay
    /// should the link come back), are never waited for, and are forgotten after a while.
    down: HashMap<Arc<str>, Instant>,
    gates: HashMap<u64, Gate>,
    next_token: u64,
}

impl std::fmt::Debug for InterestTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterestTable")
            .field("peers", &self.peers.len())
            .field("gates", &self.gates.len())
            .finish()
    }
}

impl InterestTable {
    /// A peer came up: its interest is unknown until its `Full` arrives.
    pub(crate) fn peer_up(&mut self, peer: &Arc<str>) {
        self.down.remove(peer);
        self.early.remove(peer);
        self.peers.insert(peer.clone(), None);
    }

    /// A peer is gone: it is no longer waited for. Returns the gates that opened.
    pub(crate) fn peer_down(&mut self, peer: &str) -> Vec<InterestReady> {
        let now = Instant::now();
        self.early.remove(peer);
        if let Some((name, _)) = self.peers.remove_entry(peer) {
            self.down.insert(name, now);
        }
        self.down
            .retain(|_, since| now.duration_since(*since) < DOWN_PEER_KEPT);
        let open: Vec<u64> = self
            .gates
            .iter_mut()
            .filter_map(|(t, g)| {
                g.waiting.remove(peer);
                g.waiting.is_empty().then_some(*t)
            })
            .collect();
        open.into_iter()
            .filter_map(|t| self.gates.remove(&t).map(|g| g.ready))
            .collect()
    }

    /// The peers a channel publish must reach: those interested, and those whose interest is not
    /// known yet.
    /// Peers that went down recently are included: what they miss is replayed if they return.
    pub(crate) fn route(&self, channel: &str) -> Vec<Arc<str>> {
        self.peers
            .iter()
            .filter(|(_, i)| i.as_ref().is_none_or(|set| set.contains(channel)))
            .map(|(p, _)| p.clone())
            .chain(self.down.keys().cloned())
            .collect()
    }

    /// Every live peer.
    pub(crate) fn peers(&self) -> Vec<Arc<str>> {
        self.peers.keys().cloned().collect()
    }

    /// A message from `peer`; returns the acknowledgment to send back, if any, and the gates
    /// that opened.
    pub(crate) fn receive(
        &mut self,
        peer: &Arc<str>,
        msg: InterestMsg,
    ) -> (Option<InterestMsg>, Vec<InterestReady>) {
        match msg {
            InterestMsg::Full(channels) => {
                let mut set: HashSet<String> = channels.into_iter().collect();
                for (channel, added) in self.early.remove(peer).unwrap_or_default() {
                    if added {
                        set.insert(channel);
                    } else {
                        set.remove(&channel);
                    }
                }
                self.peers.insert(peer.clone(), Some(set));
                (None, Vec::new())
            }
            InterestMsg::Add { channel, token } => {
                self.change(peer, channel, true);
                (Some(InterestMsg::Ack(token)), Vec::new())
            }
            InterestMsg::Remove(channel) => {
                self.change(peer, channel, false);
                (None, Vec::new())
            }
            InterestMsg::Ack(token) => {
                let done = self.gates.get_mut(&token).is_some_and(|g| {
                    g.waiting.remove(peer);
                    g.waiting.is_empty()
                });
                let opened = if done {
                    self.gates
                        .remove(&token)
                        .map(|g| vec![g.ready])
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                (None, opened)
            }
        }
    }

    fn change(&mut self, peer: &Arc<str>, channel: String, added: bool) {
        match self.peers.get_mut(peer) {
            Some(Some(set)) => {
                if added {
                    set.insert(channel);
                } else {
                    set.remove(&channel);
                }
            }
            Some(None) => {
                let early = self.early.entry(peer.clone()).or_default();
                if early.len() < 100_000 {
                    early.push((channel, added));
                }
            }
            None => {}
        }
    }

    /// A first local subscriber of `channel`: returns the `Add` to send to every known peer and
    /// its token, or gives `ready` back when there is no peer to wait for.
    pub(crate) fn open_gate(
        &mut self,
        channel: &str,
        ready: InterestReady,
    ) -> Result<(InterestMsg, u64), InterestReady> {
        if self.peers.is_empty() {
            return Err(ready);
        }
        self.next_token += 1;
        let token = self.next_token;
        self.gates.insert(
            token,
            Gate {
                waiting: self.peers.keys().cloned().collect(),
                ready,
            },
        );
        Ok((
            InterestMsg::Add {
                channel: channel.to_owned(),
                token,
            },
            token,
        ))
    }

    /// Gives up waiting for `token` (timeout); returns its `ready` if it was still waiting.
    pub(crate) fn expire(&mut self, token: u64) -> Option<InterestReady> {
        self.gates.remove(&token).map(|g| g.ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn counter() -> (Arc<AtomicUsize>, impl Fn() -> InterestReady) {
        let c = Arc::new(AtomicUsize::new(0));
        let c2 = c.clone();
        (c, move || {
            let c = c2.clone();
            Box::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
            }) as InterestReady
        })
    }

    #[test]
    fn unknown_peers_get_everything_until_their_full_set_arrives() {
        let mut t = InterestTable::default();
        let b: Arc<str> = Arc::from("b");
        t.peer_up(&b);
        assert_eq!(t.route("x"), vec![b.clone()]);
        t.receive(&b, InterestMsg::Full(vec!["y".into()]));
        assert!(t.route("x").is_empty());
        assert_eq!(t.route("y"), vec![b.clone()]);
        let (ack, _) = t.receive(
            &b,
            InterestMsg::Add {
                channel: "x".into(),
                token: 7,
            },
        );
        assert_eq!(ack, Some(InterestMsg::Ack(7)));
        assert_eq!(t.route("x"), vec![b.clone()]);
        t.receive(&b, InterestMsg::Remove("x".into()));
        assert!(t.route("x").is_empty());
        // Down, it gets everything again (kept for replay), until it comes back and says.
        t.peer_down("b");
        assert_eq!(t.route("x"), vec![b.clone()]);
        assert!(t.peers().is_empty(), "never waited for while down");
        t.peer_up(&b);
        t.receive(&b, InterestMsg::Full(vec![]));
        assert!(t.route("x").is_empty());
    }

    #[test]
    fn changes_received_before_a_stale_full_set_are_applied_on_top_of_it() {
        let mut t = InterestTable::default();
        let b: Arc<str> = Arc::from("b");
        t.peer_up(&b);
        // The set was taken before "x" was added and "y" removed, but arrives after both.
        t.receive(
            &b,
            InterestMsg::Add {
                channel: "x".into(),
                token: 1,
            },
        );
        t.receive(&b, InterestMsg::Remove("y".into()));
        t.receive(&b, InterestMsg::Full(vec!["y".into(), "z".into()]));
        assert_eq!(t.route("x"), vec![b.clone()]);
        assert!(t.route("y").is_empty());
        assert_eq!(t.route("z"), vec![b.clone()]);
    }

    #[test]
    fn a_gate_opens_when_every_peer_acked_or_left() {
        let (fired, make) = counter();
        let mut t = InterestTable::default();
        assert!(t.open_gate("x", make()).is_err(), "no peers: ready at once");
        let (b, c): (Arc<str>, Arc<str>) = (Arc::from("b"), Arc::from("c"));
        t.peer_up(&b);
        t.peer_up(&c);
        let Ok((_, token)) = t.open_gate("x", make()) else {
            panic!("gate")
        };
        let (_, opened) = t.receive(&b, InterestMsg::Ack(token));
        assert!(opened.is_empty());
        let opened = t.peer_down("c");
        assert_eq!(opened.len(), 1);
        opened.into_iter().for_each(|r| r());
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert!(t.expire(token).is_none());
    }
}
