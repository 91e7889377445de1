//! How one protocol plugs into the cluster: its relay events become envelopes (the adapter owns the
//! payload codec), envelopes from other nodes are applied to it, and it offers the snapshot a newly
//! seen peer needs. Engines never see inside a payload; protocols never see an envelope.

use std::sync::Arc;

use super::Outlet;
use super::envelope::{Envelope, Kind, Origin};

/// One protocol's side of the seam.
pub trait Adapter: Send + Sync + 'static {
    /// The protocol's subprotocol token (used by `Cluster::detach`).
    fn protocol_name(&self) -> &'static str;

    /// Starts relaying: the protocol's events go out through `outlet` from now on.
    fn attach(&self, outlet: Arc<Outlet>);

    /// Stops relaying; the protocol forgets what other nodes told it.
    fn detach(&self);

    /// Whether envelopes of `kind` are this protocol's.
    fn handles(&self, kind: Kind) -> bool;

    /// Applies an envelope from another node.
    fn on_remote(&self, envelope: &Envelope);

    /// A peer (this incarnation of it) is live; called before [`Adapter::send_snapshot`] is sent to it.
    fn peer_up(&self, peer: &Origin) {
        let _ = peer;
    }

    /// A peer is gone, for `reason`: called on every adapter before any [`Adapter::peer_down`],
    /// while the adapters still hold what the peer owned. `live` are the peers live now (the
    /// departed one excluded); `connected` is false when this node itself is cut off from its
    /// backplane (Redis lost), so it cannot tell a dead peer from its own isolation.
    fn before_peer_down(
        &self,
        peer: &Origin,
        reason: super::membership::DownReason,
        live: &[Origin],
        connected: bool,
    ) {
        let _ = (peer, reason, live, connected);
    }

    /// A peer is gone: purge what it owned (its Presence members).
    fn peer_down(&self, peer: &Origin);

    /// The peers whose snapshot this adapter has awaited for longer than `after` (each is then
    /// asked again, and its wait starts over).
    fn overdue_snapshots(&self, after: std::time::Duration) -> Vec<Arc<str>> {
        let _ = after;
        Vec::new()
    }

    /// Sends `node` what a newly seen peer needs from this node (Presence members, retained
    /// queues, channel interest), through `outlet`. It must be ordered with the adapter's own
    /// events: an event sent before the snapshot is in it or older than it, and an event emitted
    /// after the snapshot was taken is sent after it (the receiver relies on that order).
    fn send_snapshot(&self, outlet: &Outlet, node: &str);
}
