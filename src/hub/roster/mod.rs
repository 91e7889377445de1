//! The Presence roster: members, channels and memberships, for local and remote members alike.
//!
//! Pure state (no I/O, no tokio): every change returns who must hear about it, as the connection
//! keys of local members, so the protocol can build a frame once and queue it to exactly those
//! connections. Every member has an [`Origin`]: a local connection, or a node of the cluster (a
//! replica). Queries answer with the union of both. A channel exists while it has members: it is
//! created by the first join and freed by the last leave (docs/wire.md §5.3 item 25).
//!
//! Costs: join, leave, member lookups, add and remove are O(1) or O(log n) (hash maps, plus ordered
//! maps that keep join order for member lists). Removing a member costs O(its channels); listing a
//! channel costs O(its members).
//!
//! Tests: `tests/presence_roster.rs` (examples, and a proptest model check of every operation).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

mod member;

pub use member::{Member, Origin, RemoteOrigin};

/// Why a member could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddError {
    /// A member with this id exists (anywhere in the union).
    Exists,
    /// The connection already has a member (this id); one member per connection.
    ConnectionHasMember(Arc<str>),
}

/// Why a member could not join a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// No member with this id.
    UnknownMember,
    /// The member is already in the channel.
    AlreadyJoined,
}

/// Why a member could not leave a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveError {
    /// No member with this id.
    UnknownMember,
    /// No channel with this name.
    UnknownChannel,
    /// The member is not in the channel.
    NotJoined,
}

/// A successful join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The channel did not exist and was created by this join.
    pub created: bool,
    /// Local connections of the channel's members, the joiner included when local.
    pub recipients: Vec<u64>,
}

/// A successful leave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    /// The channel became empty and was freed.
    pub freed: bool,
    /// Local connections of the channel's remaining members (the leaver is not among them).
    pub recipients: Vec<u64>,
}

/// What local clients must hear after a removal, in the order they must hear it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RosterEvent {
    /// `member` left `channel` (a `channel@member@remove` frame).
    ChannelMemberRemoved {
        /// The member, as the roster knew it.
        member: Arc<Member>,
        /// The channel.
        channel: Arc<str>,
        /// The channel became empty and was freed.
        freed: bool,
        /// Local connections of the channel's remaining members.
        recipients: Vec<u64>,
    },
    /// `member` is gone (a `member@remove` frame).
    MemberRemoved {
        /// The member, as the roster knew it.
        member: Arc<Member>,
        /// Where it lived.
        origin: Origin,
        /// Local connections of all remaining members.
        recipients: Vec<u64>,
    },
}

struct Entry {
    member: Arc<Member>,
    origin: Origin,
    /// Position in the all-members order.
    seq: u64,
    /// Channels this member is in (ordered so removals emit events deterministically).
    channels: BTreeSet<Arc<str>>,
}

#[derive(Default)]
struct Channel {
    /// Members in join order (join sequence → member).
    members: BTreeMap<u64, Arc<Member>>,
    /// Member id → its join sequence in `members`.
    seqs: HashMap<Arc<str>, u64>,
    /// Connection keys of the local members, for fan-out.
    local: HashSet<u64>,
}

struct NodeReplicas {
    incarnation: u64,
    members: HashSet<Arc<str>>,
}

/// Members, channels and memberships of the whole cluster as this node sees it.
#[derive(Default)]
pub struct Roster {
    /// Source of join-order sequence numbers (members and channel joins).
    next_seq: u64,
    members: HashMap<Arc<str>, Entry>,
    /// All members in arrival order.
    order: BTreeMap<u64, Arc<str>>,
    /// Local connection key → its member id.
    by_conn: HashMap<u64, Arc<str>>,
    /// Remote node → its replicated members.
    nodes: HashMap<Arc<str>, NodeReplicas>,
    channels: HashMap<Arc<str>, Channel>,
}

impl std::fmt::Debug for Roster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Roster")
            .field("members", &self.members.len())
            .field("local", &self.by_conn.len())
            .field("channels", &self.channels.len())
            .finish()
    }
}

impl Roster {
    /// An empty roster.
    pub fn new() -> Self {
        Self::default()
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Adds `member` living at `origin`. Returns the local connections that must hear
    /// `member@new`: every local member, the new one included (docs/wire.md §3.4).
    pub fn add_member(
        &mut self,
        member: Arc<Member>,
        origin: Origin,
    ) -> Result<Vec<u64>, AddError> {
        if self.members.contains_key(&member.id) {
            return Err(AddError::Exists);
        }
        if let Origin::Local(key) = origin
            && let Some(existing) = self.by_conn.get(&key)
        {
            return Err(AddError::ConnectionHasMember(existing.clone()));
        }
        let id = member.id.clone();
        match &origin {
            Origin::Local(key) => {
                self.by_conn.insert(*key, id.clone());
            }
            Origin::Remote(r) => {
                let node = self
                    .nodes
                    .entry(r.node_id.clone())
                    .or_insert_with(|| NodeReplicas {
                        incarnation: r.incarnation,
                        members: HashSet::new(),
                    });
                node.incarnation = r.incarnation;
                node.members.insert(id.clone());
            }
        }
        let seq = self.seq();
        self.order.insert(seq, id.clone());
        self.members.insert(
            id,
            Entry {
                member,
                origin,
                seq,
                channels: BTreeSet::new(),
            },
        );
        Ok(self.local_connections())
    }

    /// Adds member `id` to `channel`, creating the channel when it does not exist.
    pub fn join(&mut self, id: &str, channel: &str) -> Result<Joined, JoinError> {
        let seq = self.next_seq + 1;
        let entry = self.members.get_mut(id).ok_or(JoinError::UnknownMember)?;
        if entry.channels.contains(channel) {
            return Err(JoinError::AlreadyJoined);
        }
        let name: Arc<str> = match self.channels.get_key_value(channel) {
            Some((k, _)) => k.clone(),
            None => Arc::from(channel),
        };
        entry.channels.insert(name.clone());
        let member = entry.member.clone();
        let local = match entry.origin {
            Origin::Local(k) => Some(k),
            Origin::Remote(_) => None,
        };
        self.next_seq = seq;
        let created = !self.channels.contains_key(channel);
        let ch = self.channels.entry(name).or_default();
        ch.seqs.insert(member.id.clone(), seq);
        ch.members.insert(seq, member);
        if let Some(k) = local {
            ch.local.insert(k);
        }
        Ok(Joined {
            created,
            recipients: ch.local.iter().copied().collect(),
        })
    }

    /// Removes member `id` from `channel`, freeing the channel when it becomes empty.
    pub fn leave(&mut self, id: &str, channel: &str) -> Result<Left, LeaveError> {
        let entry = self.members.get_mut(id).ok_or(LeaveError::UnknownMember)?;
        let ch = self
            .channels
            .get_mut(channel)
            .ok_or(LeaveError::UnknownChannel)?;
        if !entry.channels.remove(channel) {
            return Err(LeaveError::NotJoined);
        }
        if let Some(seq) = ch.seqs.remove(id) {
            ch.members.remove(&seq);
        }
        if let Origin::Local(k) = entry.origin {
            ch.local.remove(&k);
        }
        let recipients = ch.local.iter().copied().collect();
        let freed = ch.members.is_empty();
        if freed {
            self.channels.remove(channel);
        }
        Ok(Left { freed, recipients })
    }

    /// Removes member `id` and all its memberships. Returns the events local clients must hear:
    /// one `ChannelMemberRemoved` per channel it was in, then `MemberRemoved`. Empty when unknown.
    pub fn remove_member(&mut self, id: &str) -> Vec<RosterEvent> {
        let Some(entry) = self.members.remove(id) else {
            return Vec::new();
        };
        self.order.remove(&entry.seq);
        match &entry.origin {
            Origin::Local(k) => {
                self.by_conn.remove(k);
            }
            Origin::Remote(r) => {
                if let Some(node) = self.nodes.get_mut(&r.node_id) {
                    node.members.remove(id);
                    if node.members.is_empty() {
                        self.nodes.remove(&r.node_id);
                    }
                }
            }
        }
        let mut events = Vec::with_capacity(entry.channels.len() + 1);
        for channel in &entry.channels {
            let Some(ch) = self.channels.get_mut(channel) else {
                continue;
            };
            if let Some(seq) = ch.seqs.remove(id) {
                ch.members.remove(&seq);
            }
            if let Origin::Local(k) = entry.origin {
                ch.local.remove(&k);
            }
            let freed = ch.members.is_empty();
            let recipients = ch.local.iter().copied().collect();
            if freed {
                self.channels.remove(channel);
            }
            events.push(RosterEvent::ChannelMemberRemoved {
                member: entry.member.clone(),
                channel: channel.clone(),
                freed,
                recipients,
            });
        }
        events.push(RosterEvent::MemberRemoved {
            member: entry.member,
            origin: entry.origin,
            recipients: self.local_connections(),
        });
        events
    }

    /// Removes the member bound to the local connection `key`, if any (see [`Roster::remove_member`]).
    pub fn remove_connection(&mut self, key: u64) -> Vec<RosterEvent> {
        match self.by_conn.get(&key).cloned() {
            Some(id) => self.remove_member(&id),
            None => Vec::new(),
        }
    }

    /// Removes every replica of `node_id`, returning the same events their disconnection would
    /// have produced, member by member in arrival order.
    pub fn purge_node(&mut self, node_id: &str) -> Vec<RosterEvent> {
        self.node_members(node_id)
            .into_iter()
            .flat_map(|id| self.remove_member(&id))
            .collect()
    }

    /// The incarnation most recently seen for `node_id`, while this roster holds replicas of it.
    pub fn node_incarnation(&self, node_id: &str) -> Option<u64> {
        self.nodes.get(node_id).map(|n| n.incarnation)
    }

    /// The member with this id.
    pub fn member(&self, id: &str) -> Option<&Arc<Member>> {
        self.members.get(id).map(|e| &e.member)
    }

    /// Where the member with this id lives.
    pub fn origin(&self, id: &str) -> Option<&Origin> {
        self.members.get(id).map(|e| &e.origin)
    }

    /// The member bound to the local connection `key`.
    pub fn member_of_connection(&self, key: u64) -> Option<&Arc<Member>> {
        self.by_conn.get(&key).and_then(|id| self.member(id))
    }

    /// Whether a channel with this name exists.
    pub fn has_channel(&self, channel: &str) -> bool {
        self.channels.contains_key(channel)
    }

    /// Whether member `id` is in `channel`.
    pub fn is_joined(&self, id: &str, channel: &str) -> bool {
        self.members
            .get(id)
            .is_some_and(|e| e.channels.contains(channel))
    }

    /// The channels member `id` is in, by name.
    pub fn channels_of(&self, id: &str) -> Vec<Arc<str>> {
        self.members
            .get(id)
            .map(|e| e.channels.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The number of channels member `id` is in (0 when unknown).
    pub fn member_channel_count(&self, id: &str) -> usize {
        self.members.get(id).map_or(0, |e| e.channels.len())
    }

    /// The members of `channel` in join order; `None` when the channel does not exist.
    pub fn channel_members(&self, channel: &str) -> Option<Vec<Arc<Member>>> {
        self.channels
            .get(channel)
            .map(|ch| ch.members.values().cloned().collect())
    }

    /// The number of members in `channel` (0 when it does not exist).
    pub fn channel_len(&self, channel: &str) -> usize {
        self.channels.get(channel).map_or(0, |ch| ch.members.len())
    }

    /// Every member, local and remote, in arrival order.
    pub fn members(&self) -> Vec<Arc<Member>> {
        self.order
            .values()
            .filter_map(|id| self.member(id).cloned())
            .collect()
    }

    /// The number of members, local and remote.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Every channel with its member count, sorted by name.
    pub fn channels(&self) -> Vec<(Arc<str>, usize)> {
        let mut v: Vec<_> = self
            .channels
            .iter()
            .map(|(name, ch)| (name.clone(), ch.members.len()))
            .collect();
        v.sort_unstable();
        v
    }

    /// The number of channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The local connections that have a member (the "all members" broadcast scope).
    pub fn local_connections(&self) -> Vec<u64> {
        self.by_conn.keys().copied().collect()
    }

    /// The local connections of `channel`'s members (the channel broadcast scope).
    pub fn channel_connections(&self, channel: &str) -> Vec<u64> {
        self.channels
            .get(channel)
            .map(|ch| ch.local.iter().copied().collect())
            .unwrap_or_default()
    }

    /// The local members with their channels, in arrival order: what other nodes need to rebuild
    /// this node's part of the union.
    pub fn local_snapshot(&self) -> Vec<(Arc<Member>, Vec<Arc<str>>)> {
        self.order
            .values()
            .filter_map(|id| self.members.get(id))
            .filter(|e| matches!(e.origin, Origin::Local(_)))
            .map(|e| (e.member.clone(), e.channels.iter().cloned().collect()))
            .collect()
    }

    /// The ids of the replicas of `node_id`, in arrival order.
    pub fn node_members(&self, node_id: &str) -> Vec<Arc<str>> {
        let Some(node) = self.nodes.get(node_id) else {
            return Vec::new();
        };
        let mut ids: Vec<(u64, Arc<str>)> = node
            .members
            .iter()
            .filter_map(|id| self.members.get(id).map(|e| (e.seq, id.clone())))
            .collect();
        ids.sort_unstable_by_key(|(seq, _)| *seq);
        ids.into_iter().map(|(_, id)| id).collect()
    }

    /// Checks every internal index against the others; `Err` names the first inconsistency.
    /// For tests: the property tests call it after every step.
    pub fn check_consistency(&self) -> Result<(), String> {
        if self.order.len() != self.members.len() {
            return Err("order and members differ in size".into());
        }
        for (seq, id) in &self.order {
            let e = self.members.get(id).ok_or(format!("ordered ghost {id}"))?;
            if e.seq != *seq {
                return Err(format!("{id} has a stale seq"));
            }
        }
        for (key, id) in &self.by_conn {
            match self.members.get(id).map(|e| &e.origin) {
                Some(Origin::Local(k)) if k == key => {}
                _ => return Err(format!("connection {key} bound to ghost {id}")),
            }
        }
        for (node, reps) in &self.nodes {
            if reps.members.is_empty() {
                return Err(format!("empty node entry {node}"));
            }
            for id in &reps.members {
                match self.members.get(id).map(|e| &e.origin) {
                    Some(Origin::Remote(r)) if &r.node_id == node => {}
                    _ => return Err(format!("node {node} lists ghost {id}")),
                }
            }
        }
        for (id, e) in &self.members {
            match &e.origin {
                Origin::Local(k) if self.by_conn.get(k) != Some(id) => {
                    return Err(format!("{id} not indexed by connection"));
                }
                Origin::Remote(r)
                    if !self
                        .nodes
                        .get(&r.node_id)
                        .is_some_and(|n| n.members.contains(id)) =>
                {
                    return Err(format!("{id} not indexed by node"));
                }
                _ => {}
            }
            for c in &e.channels {
                if !self
                    .channels
                    .get(c)
                    .is_some_and(|ch| ch.seqs.contains_key(id))
                {
                    return Err(format!("{id} thinks it is in {c}"));
                }
            }
        }
        for (name, ch) in &self.channels {
            if ch.members.is_empty() {
                return Err(format!("empty channel {name} kept"));
            }
            if ch.members.len() != ch.seqs.len() {
                return Err(format!("channel {name} indexes differ"));
            }
            let mut local = HashSet::new();
            for (seq, m) in &ch.members {
                let e = self
                    .members
                    .get(&m.id)
                    .ok_or(format!("ghost {} in {name}", m.id))?;
                if ch.seqs.get(&m.id) != Some(seq) || !e.channels.contains(name) {
                    return Err(format!("{} half-joined to {name}", m.id));
                }
                if let Origin::Local(k) = e.origin {
                    local.insert(k);
                }
            }
            if local != ch.local {
                return Err(format!("channel {name} local set is stale"));
            }
        }
        Ok(())
    }
}
