//! What an engine hands back to the cluster component.
//!
//! An engine moves [`Envelope`]s between nodes and tracks who is alive; it never looks inside a
//! payload. It never loops a node's own envelopes back to it.

use super::envelope::{Envelope, Origin};
use super::membership::DownReason;

/// Receives what an engine observes. Called from engine tasks; must not block.
pub trait EngineHandler: Send + Sync + 'static {
    /// An envelope from another node, in the order its origin sent it, never one of ours.
    fn on_envelope(&self, envelope: Envelope);

    /// A peer (this incarnation of it) is live: send it what a late joiner needs (snapshots).
    fn on_peer_up(&self, peer: &Origin, address: Option<&str>);

    /// A peer is gone: purge everything it owned.
    fn on_peer_down(&self, peer: &Origin, reason: DownReason);

    /// Frames to `peer` were lost beyond the replay window: it needs snapshots again.
    fn on_resync_needed(&self, peer: &Origin, lost: u64) {
        let _ = (peer, lost);
    }
}
