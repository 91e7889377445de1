//! A Presence member and where it lives: on this node (bound to a connection) or on another node
//! of the cluster (a replica held by the roster).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;

/// A Presence member: `{id, name, info}` (docs/wire.md §3.1). Ids are opaque strings (docs/wire.md §1.2).
///
/// Cheap to clone (shared strings). It memoises one encoded form of itself (see
/// [`Member::entry_with`]) so large member lists are served by copying bytes, not re-encoding.
pub struct Member {
    /// The member id chosen by the client (a connection GUID for Delphi clients).
    pub id: Arc<str>,
    /// The display name (`Presence.Name`).
    pub name: Arc<str>,
    /// Free text (`Presence.Info`); Delphi clients send it with a trailing CRLF.
    pub info: Arc<str>,
    /// The memoised encoding; filled on first use and kept for the member's life.
    entry: OnceLock<Bytes>,
}

impl Member {
    /// A member with these fields.
    pub fn new(
        id: impl Into<Arc<str>>,
        name: impl Into<Arc<str>>,
        info: impl Into<Arc<str>>,
    ) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            info: info.into(),
            entry: OnceLock::new(),
        }
    }

    /// A member with only an id (name and info empty), as clients write themselves in requests.
    pub fn with_id(id: impl Into<Arc<str>>) -> Self {
        Self::new(id, "", "")
    }

    /// The member's encoded form, computed by `encode` the first time and memoised. The owner of the
    /// roster must always pass the same encoder (the Presence protocol passes its member-entry
    /// writer).
    pub fn entry_with(&self, encode: impl FnOnce(&Member) -> Bytes) -> Bytes {
        self.entry.get_or_init(|| encode(self)).clone()
    }
}

impl Clone for Member {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            name: self.name.clone(),
            info: self.info.clone(),
            entry: self.entry.clone(),
        }
    }
}

impl PartialEq for Member {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.name == other.name && self.info == other.info
    }
}
impl Eq for Member {}

impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("info", &self.info)
            .finish()
    }
}

/// A node of the cluster, as the origin of replicated members.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteOrigin {
    /// The node's name in the cluster.
    pub node_id: Arc<str>,
    /// The node process's random start value; a new one means the old process is gone.
    pub incarnation: u64,
}

/// Where a member lives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Origin {
    /// On this node, bound to the connection with this key ([`crate::Connection::key`]).
    Local(u64),
    /// On another node: this roster holds a replica.
    Remote(RemoteOrigin),
}
