//! Who sends the lifecycle events of a crashed node, sans I/O.
//!
//! When a node dies every survivor computes the same events for what it held (same ids, see
//! [`super::event::IdSource::Takeover`]) and keeps them. The survivor with the lowest node id among
//! the live nodes (itself included) sends them; when they are delivered it tells the others, who
//! drop their copies. If the sender dies first, the next lowest takes over every set still kept.
//! Two survivors that disagree about who is live may both send: the ids make the repeat harmless.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One crashed node incarnation: the key of the events computed for it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SetKey {
    /// The dead node.
    pub node: Arc<str>,
    /// Its incarnation.
    pub incarnation: u64,
}

/// Sets remembered as delivered, so a late death notice does not revive one.
const DONE_REMEMBERED: usize = 1024;

struct Pending {
    key: SetKey,
    /// The events' JSON.
    events: Vec<String>,
    bytes: usize,
    handed: bool,
    expires: Instant,
}

/// The event sets of crashed nodes this node keeps, and who sends them.
pub(crate) struct Takeover {
    me: Arc<str>,
    cap_bytes: usize,
    bytes: usize,
    pending: Vec<Pending>,
    done: VecDeque<SetKey>,
}

/// What a death notice decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Decision {
    /// Sets this node must send now (it is the sender; each set once).
    pub send: Vec<(SetKey, Vec<String>)>,
    /// Events not kept because the cap was reached.
    pub dropped: usize,
}

/// The node that sends: the lowest id among `me` and `live`.
pub(crate) fn sender<'a>(me: &'a Arc<str>, live: &'a [Arc<str>]) -> &'a Arc<str> {
    live.iter().fold(me, |low, n| if n < low { n } else { low })
}

impl Takeover {
    /// Nothing kept yet, for node `me`; the kept events are capped at `cap_bytes` of JSON.
    pub(crate) fn new(me: Arc<str>, cap_bytes: usize) -> Self {
        Self {
            me,
            cap_bytes,
            bytes: 0,
            pending: Vec::new(),
            done: VecDeque::new(),
        }
    }

    /// Node `key` died holding what `events` (each event's JSON) describe; `live` are the other
    /// nodes live now. The
    /// events are kept until delivered (or until `now + keep_for`); every kept set this node must
    /// now send (its own, or those of a sender that died) is returned once.
    pub(crate) fn node_died(
        &mut self,
        key: SetKey,
        events: Vec<String>,
        live: &[Arc<str>],
        now: Instant,
        keep_for: Duration,
    ) -> Decision {
        let mut decision = Decision::default();
        self.expire(now);
        let known = self.done.contains(&key) || self.pending.iter().any(|p| p.key == key);
        if !known && !events.is_empty() {
            let bytes: usize = events.iter().map(String::len).sum();
            if self.bytes + bytes > self.cap_bytes {
                decision.dropped = events.len();
            } else {
                self.bytes += bytes;
                self.pending.push(Pending {
                    key,
                    events,
                    bytes,
                    handed: false,
                    expires: now + keep_for,
                });
            }
        }
        if sender(&self.me, live) == &self.me {
            for p in self.pending.iter_mut().filter(|p| !p.handed) {
                p.handed = true;
                decision.send.push((p.key.clone(), p.events.clone()));
            }
        }
        decision
    }

    /// The events of `key` were delivered (by this node or another): drop them.
    pub(crate) fn delivered(&mut self, key: &SetKey) {
        if let Some(i) = self.pending.iter().position(|p| &p.key == key) {
            let p = self.pending.remove(i);
            self.bytes -= p.bytes;
        }
        if !self.done.contains(key) {
            if self.done.len() == DONE_REMEMBERED {
                self.done.pop_front();
            }
            self.done.push_back(key.clone());
        }
    }

    /// Drops the sets kept past their time (their sender gave up or never said).
    pub(crate) fn expire(&mut self, now: Instant) {
        let bytes = &mut self.bytes;
        self.pending.retain(|p| {
            let keep = p.expires > now;
            if !keep {
                *bytes -= p.bytes;
            }
            keep
        });
    }

    /// Bytes of JSON kept.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The sets kept.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> Vec<SetKey> {
        self.pending.iter().map(|p| p.key.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::roster::Member;
    use crate::webhooks::event::{Event, EventType, Subject};

    fn ev(id: &str) -> String {
        Event {
            id: id.into(),
            kind: EventType::MemberLeft,
            time_ms: 1,
            node: Arc::from("b"),
            reported_by: None,
            subject: Subject::Member(Member::new(id, "", "")),
        }
        .to_json()
    }

    fn key(n: &str) -> SetKey {
        SetKey {
            node: Arc::from(n),
            incarnation: 1,
        }
    }

    fn names(v: &[&str]) -> Vec<Arc<str>> {
        v.iter().map(|s| Arc::from(*s)).collect()
    }

    const KEEP: Duration = Duration::from_secs(60);

    #[test]
    fn the_lowest_live_node_sends_and_the_others_keep_until_told() {
        let now = Instant::now();
        let mut a = Takeover::new(Arc::from("a"), 1 << 20);
        let mut c = Takeover::new(Arc::from("c"), 1 << 20);
        let d = a.node_died(key("b"), vec![ev("m1")], &names(&["c"]), now, KEEP);
        assert_eq!(d.send, vec![(key("b"), vec![ev("m1")])]);
        let d = c.node_died(key("b"), vec![ev("m1")], &names(&["a"]), now, KEEP);
        assert!(d.send.is_empty(), "c is not the lowest");
        assert_eq!(c.kept(), [key("b")]);
        c.delivered(&key("b"));
        assert!(c.kept().is_empty());
        assert_eq!(c.bytes(), 0);
        // A second notice of the same death (a late one) does not revive the set.
        let d = c.node_died(key("b"), vec![ev("m1")], &[], now, KEEP);
        assert!(d.send.is_empty());
        assert!(c.kept().is_empty());
    }

    #[test]
    fn when_the_sender_dies_the_next_lowest_sends_what_it_kept_and_the_senders_own() {
        let now = Instant::now();
        let mut c = Takeover::new(Arc::from("c"), 1 << 20);
        assert!(
            c.node_died(key("b"), vec![ev("m1")], &names(&["a", "d"]), now, KEEP)
                .send
                .is_empty()
        );
        let d = c.node_died(key("a"), vec![ev("m2")], &names(&["d"]), now, KEEP);
        assert_eq!(
            d.send,
            vec![(key("b"), vec![ev("m1")]), (key("a"), vec![ev("m2")])]
        );
        // Each set is handed once.
        let d = c.node_died(key("x"), Vec::new(), &names(&["d"]), now, KEEP);
        assert!(d.send.is_empty());
    }

    #[test]
    fn kept_sets_are_bounded_in_bytes_and_in_time() {
        let now = Instant::now();
        let one = ev("m1").len();
        let mut c = Takeover::new(Arc::from("c"), one);
        c.node_died(key("b"), vec![ev("m1")], &names(&["a"]), now, KEEP);
        let d = c.node_died(
            key("d"),
            vec![ev("m2"), ev("m3")],
            &names(&["a"]),
            now,
            KEEP,
        );
        assert_eq!(d.dropped, 2);
        assert_eq!(c.kept(), [key("b")]);
        c.expire(now + KEEP);
        assert!(c.kept().is_empty());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn sender_is_the_lowest_id() {
        let me: Arc<str> = Arc::from("n2");
        assert_eq!(&**sender(&me, &names(&["n3", "n1"])), "n1");
        assert_eq!(&**sender(&me, &names(&["n3"])), "n2");
        assert_eq!(&**sender(&me, &[]), "n2");
    }
}
