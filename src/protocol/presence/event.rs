//! Relay events: the Presence changes other nodes must replay, and the snapshot a late joiner
//! needs. Emitted through the protocol's [`crate::relay::RelaySlot`] after they were applied
//! locally; accepted from other nodes by `PresenceProtocol::apply_remote`.

use std::sync::Arc;

use crate::hub::roster::Member;
use crate::protocol::json::Payload;

/// A Presence change on one node that every other node must apply to its replica.
///
/// A member removal carries no channel removals: receivers derive them from their replica (the
/// member's channels), exactly as for a local disconnect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// A member was created on the origin node.
    MemberNew {
        /// The member.
        member: Member,
    },
    /// A member of the origin node was removed (explicitly or by disconnect).
    MemberRemove {
        /// The member.
        member: Member,
    },
    /// A member of the origin node joined a channel.
    ChannelMemberNew {
        /// The member.
        member: Member,
        /// The channel.
        channel: Arc<str>,
    },
    /// A member of the origin node left a channel explicitly.
    ChannelMemberRemove {
        /// The member.
        member: Member,
        /// The channel.
        channel: Arc<str>,
    },
    /// A message was published on the origin node (by a member or by the server API).
    Publish {
        /// The channel; empty for every member.
        channel: Arc<str>,
        /// The message.
        message: Payload,
        /// The publisher as written in the frame.
        member: Member,
    },
    /// A member of the origin node invited a member living on another node. One event per
    /// invitee; route it to `target_node`.
    Invitation {
        /// The channel.
        channel: Arc<str>,
        /// The inviter, as sent.
        inviter: Member,
        /// The invitee's member id.
        target: Arc<str>,
        /// The node the invitee lives on.
        target_node: Arc<str>,
    },
    /// Every local member of the origin node with its channels, for a node that joins late or
    /// after a partition: the receiver makes its replica of the origin match it exactly.
    Snapshot {
        /// The origin's members in arrival order.
        members: Vec<SnapshotMember>,
    },
}

/// What one node holds in this node's replica: its members with their channels, and the channels
/// only its members are in (the ones its purge frees).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeHoldings {
    /// The incarnation of the node the replicas belong to, when any are held.
    pub incarnation: Option<u64>,
    /// Its members, in arrival order, each with its channels.
    pub members: Vec<SnapshotMember>,
    /// The channels whose every member is one of its members, sorted by name.
    pub sole_channels: Vec<Arc<str>>,
}

/// One member in a [`PresenceEvent::Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMember {
    /// The member.
    pub member: Member,
    /// The channels it is in.
    pub channels: Vec<Arc<str>>,
}
