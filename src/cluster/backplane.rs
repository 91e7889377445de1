//! The [`Outlet`] adapters send through: it forwards to the running engine (or drops while
//! stopped) and says how per-channel traffic is addressed.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::engine::Engine;
use super::envelope::Kind;
use crate::relay::InterestReady;
use crate::tasks::Tasks;

/// How the backplane wants a protocol's per-channel traffic addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRouting {
    /// Peer by peer (`send_to`): the protocol may route by the interest peers declare (mesh).
    PerPeer,
    /// One send reaches every node cheaply (`send_all`): route nothing (Redis, shared channel).
    Broadcast,
    /// The engine routes by channel itself ([`Outlet::send_channel`]); the protocol declares the
    /// channels it has local subscribers for ([`Outlet::channel_added`]) (Redis, per-channel).
    Engine,
}

/// Where adapters send: the running engine, or nothing while stopped.
pub struct Outlet {
    pub(super) engine: RwLock<Option<Arc<dyn Engine>>>,
    routing: ChannelRouting,
    /// The channels with local subscribers, when the engine routes by channel (kept across
    /// stops and starts: a started engine subscribes to all of them).
    pub(super) channels: Arc<Mutex<HashSet<Arc<str>>>>,
    /// The cluster's own background tasks of the current run (a new set for each run; the
    /// cluster's stop stops them).
    pub(super) tasks: Mutex<Tasks>,
}

impl std::fmt::Debug for Outlet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outlet")
            .field("engine", &self.engine.read().as_ref().map(|e| e.name()))
            .field("routing", &self.routing)
            .finish()
    }
}

impl Default for Outlet {
    /// A stopped outlet with peer-by-peer routing.
    fn default() -> Self {
        Self::new(ChannelRouting::PerPeer)
    }
}

impl Outlet {
    pub(super) fn new(routing: ChannelRouting) -> Self {
        Self {
            engine: RwLock::new(None),
            routing,
            channels: Arc::default(),
            tasks: Mutex::default(),
        }
    }

    /// Runs `task` among the cluster's tasks of the current run (stopped with the cluster).
    /// False, and `task` dropped, while the cluster is stopped or outside a Tokio runtime.
    pub(crate) fn spawn<F>(&self, task: F) -> bool
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        if self.engine.read().is_none() {
            return false;
        }
        self.tasks.lock().try_spawn(task)
    }

    /// How per-channel traffic should be addressed.
    pub fn channel_routing(&self) -> ChannelRouting {
        self.routing
    }

    /// Sends to the nodes that want channel `channel`'s traffic (all of them unless the engine
    /// routes by channel); dropped while the cluster is stopped.
    pub fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        if let Some(e) = &*self.engine.read() {
            e.send_channel(channel, kind, payload);
        }
    }

    /// This node has its first local subscriber for `channel` (engine routing): `ready` runs once
    /// the engine delivers the channel's traffic here (at once when stopped).
    pub fn channel_added(&self, channel: &str, ready: InterestReady) {
        if self.routing != ChannelRouting::Engine {
            return ready();
        }
        self.channels.lock().insert(Arc::from(channel));
        match &*self.engine.read() {
            Some(e) => e.subscribe_channel(channel, ready),
            None => ready(),
        }
    }

    /// This node's last local subscriber for `channel` left (engine routing).
    pub fn channel_removed(&self, channel: &str) {
        if self.routing != ChannelRouting::Engine {
            return;
        }
        self.channels.lock().remove(channel);
        if let Some(e) = &*self.engine.read() {
            e.unsubscribe_channel(channel);
        }
    }

    /// Sends to every other node; dropped while the cluster is stopped.
    pub fn send_all(&self, kind: Kind, payload: Bytes) {
        if let Some(e) = &*self.engine.read() {
            e.send_all(kind, payload);
        }
    }

    /// Sends to one node; dropped while the cluster is stopped.
    pub fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        if let Some(e) = &*self.engine.read() {
            e.send_to(node, kind, payload);
        }
    }
}
