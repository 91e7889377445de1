//! The seam between protocols and the cluster.
//!
//! A protocol that has a relay attached hands it every event other nodes must replay (a publish, a
//! broadcast, a Presence change), after applying it locally. Events that arrive from other nodes go
//! the other way through the protocol's own `apply_remote` method. Protocols never learn which
//! engine (if any) carries their events; engines never learn what the events mean.

use std::sync::Arc;

use parking_lot::RwLock;

/// Receives the events of one protocol that must reach other nodes.
pub trait Relay<E>: Send + Sync + 'static {
    /// Called once per event, after the event was applied on this node. Must not block.
    fn relay(&self, event: &E);
}

/// A protocol's slot for its relay: empty when the node runs alone or the protocol is detached.
pub(crate) struct RelaySlot<E> {
    inner: RwLock<Option<Arc<dyn Relay<E>>>>,
}

impl<E> Default for RelaySlot<E> {
    fn default() -> Self {
        Self {
            inner: RwLock::new(None),
        }
    }
}

impl<E: 'static> std::fmt::Debug for RelaySlot<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelaySlot")
            .field("attached", &self.is_attached())
            .finish()
    }
}

impl<E: 'static> RelaySlot<E> {
    /// Attaches `relay`, replacing any earlier one.
    pub(crate) fn attach(&self, relay: Arc<dyn Relay<E>>) {
        *self.inner.write() = Some(relay);
    }

    /// Detaches the relay: the protocol behaves as a single node again.
    pub(crate) fn detach(&self) {
        *self.inner.write() = None;
    }

    /// Whether a relay is attached.
    pub(crate) fn is_attached(&self) -> bool {
        self.inner.read().is_some()
    }

    /// Hands `event` to the attached relay, if any. `make` runs only when a relay is attached, so a
    /// single node never pays for building relay events.
    pub(crate) fn emit_with(&self, make: impl FnOnce() -> E) {
        let relay = self.inner.read().clone();
        if let Some(r) = relay {
            r.relay(&make());
        }
    }
}

/// Called once every other node knows about a new local channel (see [`InterestGate`]).
pub(crate) type InterestReady = Box<dyn FnOnce() + Send + 'static>;

/// Interest routing: the cluster learns which channels have subscribers on this node, so that
/// publishes cross only to nodes that need them.
///
/// To never lose a message, the first local subscription of a channel is confirmed to its client
/// only once every live peer has learned the new interest: `channel_added` calls `ready` then
/// (or after a timeout, or at once when there are no peers), and the protocol sends the
/// subscription confirmation from `ready`. Anything a peer publishes after it learned the interest
/// reaches this node after the learning was acknowledged, hence after the confirmation.
pub trait InterestGate: Send + Sync + 'static {
    /// `channel` has its first local subscriber (pending its confirmation); call `ready` when
    /// every live peer knows. May call `ready` before returning.
    fn channel_added(&self, channel: &str, ready: InterestReady);

    /// `channel` lost its last local subscriber.
    fn channel_removed(&self, channel: &str);
}
