//! The local hub: this node's connections of one protocol, the channels they subscribed to, and
//! fan-out of already-encoded frames.
//!
//! The hub knows nothing of frame formats: a protocol encodes a frame once into [`Bytes`] and asks
//! the hub to queue that same buffer to every subscriber (`Connection::send_text(frame.clone())`,
//! a reference-count increment and a short outbox push, never a copy or a parse).
//!
//! ## Structure and locking
//!
//! - `members`: connection GUID → [`Member`] (the connection, the protocol's per-connection data,
//!   and the set of channels it subscribed to). Written on connect and disconnect only.
//! - `channels`: channel name → `Channel`, whose subscriber list is a dense `Vec<Connection>` with a
//!   key → slot index, so subscribe and unsubscribe are O(1) (swap-remove) and fan-out is a plain
//!   iteration.
//! - Each channel has its own lock: fan-out to one channel holds only that channel's read lock
//!   (the map lock is held just long enough to clone an `Arc`), so subscribes to other channels and
//!   fan-outs elsewhere proceed in parallel. A flood of subscribes costs each one a short write on
//!   one channel and, for a new channel, a short write on the map.
//! - Lock order: member's channel set → channel map → one channel. Nothing awaits or calls out
//!   while holding a lock; removing an emptied channel uses `try_write` so it never waits for a
//!   fan-out in progress (an empty channel left behind is reused or removed by the next leave).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::transport::Connection;

pub mod roster;

/// Channels → local subscribers, plus every connection of the protocol. `D` is the protocol's
/// per-connection data, kept next to the connection so one lookup finds both.
pub(crate) struct Hub<D> {
    members: RwLock<HashMap<Arc<str>, Arc<Member<D>>>>,
    channels: RwLock<HashMap<Arc<str>, Arc<Channel>>>,
}

impl<D> std::fmt::Debug for Hub<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("members", &self.members.read().len())
            .field("channels", &self.channels.read().len())
            .finish()
    }
}

/// One connection in the hub: the connection, the protocol's data for it, and its channels.
pub(crate) struct Member<D> {
    conn: Connection,
    data: D,
    /// The channels this connection subscribed to; `left` once it left the hub (no new
    /// subscriptions after that). Lives as long as the member.
    channels: Mutex<MemberChannels>,
}

#[derive(Default)]
struct MemberChannels {
    set: HashSet<Arc<str>>,
    left: bool,
}

impl<D> Member<D> {
    /// The connection.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The protocol's data for this connection.
    pub(crate) fn data(&self) -> &D {
        &self.data
    }

    /// The channels this connection is subscribed to (a snapshot, sorted).
    pub(crate) fn subscriptions(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .channels
            .lock()
            .set
            .iter()
            .map(|c| c.to_string())
            .collect();
        v.sort_unstable();
        v
    }

    /// How many channels this connection is subscribed to.
    #[cfg(test)]
    pub(crate) fn subscription_count(&self) -> usize {
        self.channels.lock().set.len()
    }
}

/// One channel's subscribers.
struct Channel {
    name: Arc<str>,
    subs: RwLock<Subscribers>,
}

#[derive(Default)]
struct Subscribers {
    /// Dense list for fan-out.
    conns: Vec<Connection>,
    /// `Connection::key` → index in `conns`.
    slots: HashMap<u64, usize>,
    /// Set when the channel was removed from the map: a subscriber holding a stale `Arc` retries.
    dead: bool,
}

impl Subscribers {
    fn add(&mut self, conn: &Connection) -> bool {
        if self.slots.contains_key(&conn.key()) {
            return false;
        }
        self.slots.insert(conn.key(), self.conns.len());
        self.conns.push(conn.clone());
        true
    }

    fn remove(&mut self, key: u64) -> bool {
        let Some(i) = self.slots.remove(&key) else {
            return false;
        };
        self.conns.swap_remove(i);
        if let Some(moved) = self.conns.get(i) {
            self.slots.insert(moved.key(), i);
        }
        true
    }
}

/// A member that left the hub, and the channels it was subscribed to.
pub(crate) type Left<D> = (Arc<Member<D>>, Vec<Arc<str>>);

/// What [`Hub::subscribe`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Subscribed {
    /// Newly subscribed.
    Added,
    /// It was subscribed already; nothing changed.
    Already,
    /// The connection's subscription limit is reached; nothing changed.
    LimitReached,
    /// The connection already left the hub; nothing changed.
    Gone,
}

impl<D> Default for Hub<D> {
    fn default() -> Self {
        Self {
            members: RwLock::new(HashMap::new()),
            channels: RwLock::new(HashMap::new()),
        }
    }
}

impl<D: Send + Sync> Hub<D> {
    /// An empty hub.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Adds a connection with its protocol data. A connection already there (same GUID) is
    /// replaced; its subscriptions are dropped.
    pub(crate) fn join(&self, conn: &Connection, data: D) -> Arc<Member<D>> {
        let member = Arc::new(Member {
            conn: conn.clone(),
            data,
            channels: Mutex::new(MemberChannels::default()),
        });
        let old = self.members.write().insert(conn.id_arc(), member.clone());
        if let Some(old) = old {
            self.drop_subscriptions(&old);
        }
        member
    }

    /// Removes a connection and all its subscriptions. Returns the member and the channels it
    /// was subscribed to (for unsubscribe events), or `None` when it was not in the hub.
    pub(crate) fn leave(&self, id: &str) -> Option<Left<D>> {
        let member = self.members.write().remove(id)?;
        let channels = self.drop_subscriptions(&member);
        Some((member, channels))
    }

    fn drop_subscriptions(&self, member: &Member<D>) -> Vec<Arc<str>> {
        let mut mine = member.channels.lock();
        mine.left = true;
        let names: Vec<Arc<str>> = mine.set.drain().collect();
        for name in &names {
            self.detach(name, member.conn.key());
        }
        names
    }

    /// The member with this connection GUID.
    pub(crate) fn member(&self, id: &str) -> Option<Arc<Member<D>>> {
        self.members.read().get(id).cloned()
    }

    /// Every member (a snapshot).
    pub(crate) fn members(&self) -> Vec<Arc<Member<D>>> {
        self.members.read().values().cloned().collect()
    }

    /// How many connections are in the hub.
    pub(crate) fn member_count(&self) -> usize {
        self.members.read().len()
    }

    /// Subscribes `member` to `channel`; `limit` caps its subscriptions (0 = unlimited).
    pub(crate) fn subscribe(&self, member: &Member<D>, channel: &str, limit: usize) -> Subscribed {
        let mut mine = member.channels.lock();
        if mine.left {
            return Subscribed::Gone;
        }
        if mine.set.contains(channel) {
            return Subscribed::Already;
        }
        if limit > 0 && mine.set.len() >= limit {
            return Subscribed::LimitReached;
        }
        loop {
            let ch = self.channel_or_create(channel);
            let mut subs = ch.subs.write();
            if subs.dead {
                continue;
            }
            subs.add(&member.conn);
            drop(subs);
            mine.set.insert(ch.name.clone());
            return Subscribed::Added;
        }
    }

    /// Unsubscribes `member` from `channel`; false when it was not subscribed.
    pub(crate) fn unsubscribe(&self, member: &Member<D>, channel: &str) -> bool {
        let mut mine = member.channels.lock();
        let Some(name) = mine.set.take(channel) else {
            return false;
        };
        self.detach(&name, member.conn.key());
        true
    }

    /// Unsubscribes `member` from everything; returns the channels it left.
    pub(crate) fn unsubscribe_all(&self, member: &Member<D>) -> Vec<Arc<str>> {
        let mut mine = member.channels.lock();
        let names: Vec<Arc<str>> = mine.set.drain().collect();
        for name in &names {
            self.detach(name, member.conn.key());
        }
        names
    }

    fn channel_or_create(&self, name: &str) -> Arc<Channel> {
        if let Some(c) = self.channels.read().get(name) {
            return c.clone();
        }
        self.channels
            .write()
            .entry(Arc::from(name))
            .or_insert_with_key(|k| {
                Arc::new(Channel {
                    name: k.clone(),
                    subs: RwLock::new(Subscribers::default()),
                })
            })
            .clone()
    }

    fn detach(&self, name: &str, key: u64) {
        let Some(ch) = self.channels.read().get(name).cloned() else {
            return;
        };
        let now_empty = {
            let mut subs = ch.subs.write();
            subs.remove(key);
            subs.conns.is_empty()
        };
        if now_empty {
            let mut map = self.channels.write();
            if map.get(name).is_some_and(|cur| Arc::ptr_eq(cur, &ch))
                && let Some(mut subs) = ch.subs.try_write()
                && subs.conns.is_empty()
            {
                subs.dead = true;
                map.remove(name);
            }
        }
    }

    /// The channels that have at least one subscriber.
    pub(crate) fn channel_names(&self) -> Vec<Arc<str>> {
        let chans: Vec<Arc<Channel>> = self.channels.read().values().cloned().collect();
        chans
            .into_iter()
            .filter(|c| !c.subs.read().conns.is_empty())
            .map(|c| c.name.clone())
            .collect()
    }

    /// The names of channels with subscribers that `keep` accepts, at most `limit` of them. Runs
    /// under the map's read lock (no allocation per channel), so `keep` must be quick.
    pub(crate) fn channels_matching(
        &self,
        keep: impl Fn(&str) -> bool,
        limit: usize,
    ) -> Vec<String> {
        let map = self.channels.read();
        map.values()
            .filter(|c| keep(&c.name) && !c.subs.read().conns.is_empty())
            .take(limit)
            .map(|c| c.name.to_string())
            .collect()
    }

    /// Every channel with its number of subscribers (channels without subscribers left out),
    /// sorted by name.
    pub(crate) fn channels(&self) -> Vec<(Arc<str>, usize)> {
        let chans: Vec<Arc<Channel>> = self.channels.read().values().cloned().collect();
        let mut v: Vec<(Arc<str>, usize)> = chans
            .into_iter()
            .map(|c| {
                let n = c.subs.read().conns.len();
                (c.name.clone(), n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// How many connections subscribed to `channel`.
    pub(crate) fn subscriber_count(&self, channel: &str) -> usize {
        let ch = self.channels.read().get(channel).cloned();
        ch.map_or(0, |c| c.subs.read().conns.len())
    }

    /// Queues `frame` to every subscriber of `channel` that `allow` accepts. Returns how many
    /// connections it was queued to.
    pub(crate) fn send_to_channel(
        &self,
        channel: &str,
        frame: &Bytes,
        allow: impl Fn(&Connection) -> bool,
    ) -> usize {
        let Some(ch) = self.channels.read().get(channel).cloned() else {
            return 0;
        };
        let subs = ch.subs.read();
        let mut sent = 0;
        for c in &subs.conns {
            if allow(c) && c.send_text(frame.clone()).is_ok() {
                sent += 1;
            }
        }
        sent
    }

    /// Queues `frame` to every connection in the hub that `allow` accepts. Returns how many
    /// connections it was queued to.
    pub(crate) fn send_to_all(&self, frame: &Bytes, allow: impl Fn(&Connection) -> bool) -> usize {
        let members = self.members.read();
        let mut sent = 0;
        for m in members.values() {
            if allow(&m.conn) && m.conn.send_text(frame.clone()).is_ok() {
                sent += 1;
            }
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str) -> Connection {
        Connection::detached(id, Some("test"))
    }

    #[test]
    fn subscribe_fan_out_unsubscribe() {
        let hub: Hub<()> = Hub::new();
        let (a, b, c) = (conn("A"), conn("B"), conn("C"));
        let ma = hub.join(&a, ());
        let mb = hub.join(&b, ());
        let _mc = hub.join(&c, ());
        assert_eq!(hub.subscribe(&ma, "x", 0), Subscribed::Added);
        assert_eq!(hub.subscribe(&ma, "x", 0), Subscribed::Already);
        assert_eq!(hub.subscribe(&mb, "x", 0), Subscribed::Added);
        let frame = Bytes::from_static(b"f");
        assert_eq!(hub.send_to_channel("x", &frame, |_| true), 2);
        assert_eq!(hub.send_to_channel("x", &frame, |c| c.id() != "A"), 1);
        assert_eq!(a.drain_sent_text(), ["f"]);
        assert_eq!(b.drain_sent_text(), ["f", "f"]);
        assert!(c.drain_sent_text().is_empty());
        assert_eq!(hub.send_to_all(&frame, |_| true), 3);
        assert_eq!(c.drain_sent_text(), ["f"]);
        assert_eq!(hub.channels(), vec![(Arc::from("x"), 2)]);
        assert!(hub.unsubscribe(&ma, "x"));
        assert!(!hub.unsubscribe(&ma, "x"));
        assert_eq!(hub.subscriber_count("x"), 1);
        let (_, left) = hub.leave("B").expect("member");
        assert_eq!(left, vec![Arc::from("x")]);
        assert!(hub.channels().is_empty());
        assert!(hub.channel_names().is_empty());
        assert_eq!(hub.send_to_channel("x", &frame, |_| true), 0);
    }

    #[test]
    fn limits_and_gone_members() {
        let hub: Hub<u8> = Hub::new();
        let a = conn("A");
        let m = hub.join(&a, 7);
        assert_eq!(*m.data(), 7);
        assert_eq!(hub.subscribe(&m, "1", 2), Subscribed::Added);
        assert_eq!(hub.subscribe(&m, "2", 2), Subscribed::Added);
        assert_eq!(hub.subscribe(&m, "3", 2), Subscribed::LimitReached);
        assert_eq!(m.subscriptions(), ["1", "2"]);
        assert_eq!(hub.unsubscribe_all(&m).len(), 2);
        assert_eq!(m.subscription_count(), 0);
        hub.leave("A");
        assert_eq!(hub.subscribe(&m, "1", 0), Subscribed::Gone);
        assert!(hub.channels().is_empty());
        assert_eq!(hub.member_count(), 0);
    }

    #[test]
    fn concurrent_subscribe_and_leave_keep_counts_exact() {
        let hub: Arc<Hub<()>> = Arc::new(Hub::new());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let hub = hub.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let c = conn(&format!("T{t}-{i}"));
                        let m = hub.join(&c, ());
                        hub.subscribe(&m, "shared", 0);
                        hub.subscribe(&m, &format!("own{}", i % 3), 0);
                        if i % 2 == 0 {
                            hub.leave(c.id());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread");
        }
        assert_eq!(hub.subscriber_count("shared"), 400);
        assert_eq!(hub.member_count(), 400);
        let total: usize = hub.channels().iter().map(|(_, n)| n).sum();
        assert_eq!(total, 800);
    }

    proptest::proptest! {
        /// The dense list and its index stay consistent through any add/remove sequence.
        #[test]
        fn subscribers_index_is_consistent(ops in proptest::collection::vec((proptest::bool::ANY, 0u8..12), 0..100)) {
            let conns: Vec<Connection> = (0..12).map(|i| conn(&format!("C{i}"))).collect();
            let mut s = Subscribers::default();
            let mut model = HashSet::new();
            for (add, i) in ops {
                let c = &conns[usize::from(i)];
                if add {
                    proptest::prop_assert_eq!(s.add(c), model.insert(c.key()));
                } else {
                    proptest::prop_assert_eq!(s.remove(c.key()), model.remove(&c.key()));
                }
                proptest::prop_assert_eq!(s.conns.len(), model.len());
                for (k, &i) in &s.slots {
                    proptest::prop_assert_eq!(s.conns[i].key(), *k);
                }
            }
        }
    }
}
