//! The backplane a running cluster uses, and the [`Outlet`] adapters send through: it forwards
//! to the running engine (or drops while stopped) and says how per-channel traffic is addressed.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use super::envelope::{Kind, Origin};
use super::mesh::MeshEngine;
use super::redis::RedisEngine;
use crate::relay::InterestReady;

/// The backplane a running cluster uses.
#[derive(Clone, Debug)]
pub(crate) enum Backplane {
    Mesh(MeshEngine),
    Redis(RedisEngine),
}

impl Backplane {
    pub(super) fn send_all(&self, kind: Kind, payload: Bytes) {
        match self {
            Backplane::Mesh(m) => m.send_all(kind, payload),
            Backplane::Redis(r) => r.send_all(kind, payload),
        }
    }
    pub(super) fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        match self {
            Backplane::Mesh(m) => m.send_to(node, kind, payload),
            Backplane::Redis(r) => r.send_to(node, kind, payload),
        }
    }
    pub(super) fn live_peers(&self) -> Vec<Origin> {
        match self {
            Backplane::Mesh(m) => m.live_peers(),
            Backplane::Redis(r) => r.live_peers(),
        }
    }
    pub(super) fn ready(&self) -> bool {
        match self {
            Backplane::Mesh(m) => m.ready(),
            Backplane::Redis(r) => r.ready(),
        }
    }
    pub(super) fn connected_peer_count(&self) -> usize {
        match self {
            Backplane::Mesh(m) => m.connected_peer_count(),
            Backplane::Redis(r) => r.connected_peer_count(),
        }
    }
    pub(super) async fn stop(&self) {
        match self {
            Backplane::Mesh(m) => m.stop().await,
            Backplane::Redis(r) => r.stop().await,
        }
    }
}

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

/// Where adapters send: the running backplane, or nothing while stopped.
#[derive(Debug)]
pub struct Outlet {
    pub(super) backplane: RwLock<Option<Backplane>>,
    routing: ChannelRouting,
    /// The channels with local subscribers, when the engine routes by channel (kept across
    /// stops and starts: a started engine subscribes to all of them).
    pub(super) channels: Arc<Mutex<HashSet<Arc<str>>>>,
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
            backplane: RwLock::new(None),
            routing,
            channels: Arc::default(),
        }
    }

    /// How per-channel traffic should be addressed.
    pub fn channel_routing(&self) -> ChannelRouting {
        self.routing
    }

    /// Sends to the nodes that want channel `channel`'s traffic (all of them unless the engine
    /// routes by channel); dropped while the cluster is stopped.
    pub fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        match &*self.backplane.read() {
            Some(Backplane::Redis(r)) => r.send_channel(channel, kind, payload),
            Some(b) => b.send_all(kind, payload),
            None => {}
        }
    }

    /// This node has its first local subscriber for `channel` (engine routing): `ready` runs once
    /// the engine delivers the channel's traffic here (at once when stopped).
    pub fn channel_added(&self, channel: &str, ready: InterestReady) {
        if self.routing != ChannelRouting::Engine {
            return ready();
        }
        self.channels.lock().insert(Arc::from(channel));
        match &*self.backplane.read() {
            Some(Backplane::Redis(r)) => r.subscribe_channel(channel, ready),
            _ => ready(),
        }
    }

    /// This node's last local subscriber for `channel` left (engine routing).
    pub fn channel_removed(&self, channel: &str) {
        if self.routing != ChannelRouting::Engine {
            return;
        }
        self.channels.lock().remove(channel);
        if let Some(Backplane::Redis(r)) = &*self.backplane.read() {
            r.unsubscribe_channel(channel);
        }
    }

    /// Sends to every other node; dropped while the cluster is stopped.
    pub fn send_all(&self, kind: Kind, payload: Bytes) {
        if let Some(b) = &*self.backplane.read() {
            b.send_all(kind, payload);
        }
    }

    /// Sends to one node; dropped while the cluster is stopped.
    pub fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        if let Some(b) = &*self.backplane.read() {
            b.send_to(node, kind, payload);
        }
    }
}
