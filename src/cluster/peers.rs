//! What a node knows about each peer, for operators (`GET /admin/peers`, the status page): a
//! snapshot taken from the running engine, the same shape whatever the engine.

use std::sync::Arc;

/// The state of one peer as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerState {
    /// Live, with a working link.
    Linked,
    /// Live, but its link is down for now (a blip: frames are kept for replay until the peer
    /// times out).
    Unlinked,
    /// Reported down (timed out, said bye, link closed); remembered for a while for replay.
    Down,
    /// An address this node dials where no node has answered yet.
    Unreached,
}

impl PeerState {
    /// Its name in JSON and on the status page: `linked`, `unlinked`, `down`, `unreached`.
    pub fn as_str(self) -> &'static str {
        match self {
            PeerState::Linked => "linked",
            PeerState::Unlinked => "unlinked",
            PeerState::Down => "down",
            PeerState::Unreached => "unreached",
        }
    }
}

/// One peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// Its node id (`None` for an address that never answered).
    pub node_id: Option<Arc<str>>,
    /// Where it is reached (its announced listen address, or the address dialled).
    pub address: Option<String>,
    /// The process start value of the incarnation this node knows (`None` when unreached).
    pub incarnation: Option<u64>,
    /// Its state.
    pub state: PeerState,
    /// Frames sent to it and not yet acknowledged (kept for replay).
    pub unacked_frames: usize,
    /// Bytes of those frames.
    pub unacked_bytes: usize,
}
