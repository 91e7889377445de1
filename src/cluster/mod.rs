//! The cluster: relays what the protocols do to every other node, through an engine.
//!
//! - [`Cluster`]: the component an application (or the binary) creates: `attach` protocols,
//!   `start`/`stop` the backplane without stopping the WebSocket server, `ready`,
//!   `connected_peer_count`, and [`ClusterEvent`]s.
//! - [`envelope`]: the versioned binary frame every engine carries.
//! - [`membership`]: who is alive, sans I/O.
//! - [`engine`]: what an engine hands back; [`mesh`]: the TCP mesh engine; [`redis`]: the Redis
//!   Pub/Sub engine; [`redis_cluster`]: the Redis Cluster sharded Pub/Sub engine; [`nats`]: the
//!   NATS engine. [`broker`]: what the broker engines share.
//! - `adapter`: how one protocol's relay events become envelopes and back.

mod adapter;
mod backplane;
pub(crate) mod broker;
mod config;
pub mod engine;
mod engines;
pub mod envelope;
#[doc(hidden)]
pub mod fuzzing;
mod gate_timer;
pub(crate) mod interest;
pub mod membership;
pub mod mesh;
pub mod nats;
pub(crate) mod peers;
mod presence_adapter;
pub(crate) mod query;
pub mod redis;
pub mod redis_cluster;
mod sgc_adapter;

use crate::log_text::Printable;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::broadcast;

pub(crate) use adapter::Adapter;
pub(crate) use backplane::{ChannelRouting, Outlet};
pub use config::{ClusterConfig, EngineKind};
use engine::{Engine, EngineHandler, EngineStart};
use envelope::{Envelope, Kind, Origin};
use membership::DownReason;
use mesh::MeshEngine;
pub use peers::PeerState;
pub(crate) use peers::PeerStatus;
pub use presence_adapter::PresenceAdapter;
pub(crate) use query::QueryOutcome;
pub(crate) use query::QueryResponder;
use redis::RedisEngine;
pub use sgc_adapter::SgcAdapter;

use crate::error::Result;

/// Something observable about the cluster (also logged by the binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A peer node is linked and live.
    PeerConnected {
        /// Its node id.
        node_id: Arc<str>,
        /// Where it was reached, when known.
        address: Option<String>,
    },
    /// A peer node is gone; its Presence members were purged.
    PeerDisconnected {
        /// Its node id.
        node_id: Arc<str>,
        /// Why.
        reason: DownReason,
    },
    /// A relayed message arrived from another node.
    Message {
        /// The node it came from.
        origin: Arc<str>,
        /// What it carries.
        kind: Kind,
        /// Payload size in bytes.
        size: usize,
    },
}

struct Inner {
    config: ClusterConfig,
    node_id: Arc<str>,
    outlet: Arc<Outlet>,
    running: Mutex<Option<Arc<dyn Engine>>>,
    adapters: RwLock<Vec<Arc<dyn Adapter>>>,
    events: broadcast::Sender<ClusterEvent>,
    /// Set by `shutdown`: a local stop does not purge remote members locally.
    quiet_stop: std::sync::atomic::AtomicBool,
    /// The running backplane's incarnation (0 while stopped).
    incarnation: std::sync::atomic::AtomicU64,
    /// Questions to other nodes in flight, and this node's responder.
    queries: query::Queries,
}

/// The cluster component. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node_id", &self.inner.node_id)
            .field("engine", &self.inner.config.engine)
            .finish()
    }
}

impl Cluster {
    /// A stopped cluster for node `node_id` with these options.
    pub fn new(node_id: impl Into<Arc<str>>, config: ClusterConfig) -> Self {
        let (events, _) = broadcast::channel(1024);
        let outlet = Outlet::new(config.channel_routing());
        Self {
            inner: Arc::new(Inner {
                config,
                node_id: node_id.into(),
                outlet: Arc::new(outlet),
                running: Mutex::new(None),
                adapters: RwLock::new(Vec::new()),
                events,
                quiet_stop: std::sync::atomic::AtomicBool::new(false),
                incarnation: std::sync::atomic::AtomicU64::new(0),
                queries: query::Queries::default(),
            }),
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Relays a protocol's events through the cluster (also while running).
    pub fn attach(&self, adapter: Arc<dyn Adapter>) {
        adapter.attach(self.inner.outlet.clone());
        self.inner.adapters.write().push(adapter.clone());
        // Peers already live get this protocol's snapshot now.
        let running = self.inner.running.lock().clone();
        if let Some(b) = running {
            for peer in b.live_peers() {
                adapter.peer_up(&peer);
                adapter.send_snapshot(&self.inner.outlet, &peer.node_id);
                b.send_to(&peer.node_id, Kind::SnapshotRequest, Bytes::new());
            }
        }
    }

    /// Stops relaying a protocol: it behaves as a single node again.
    pub fn detach(&self, protocol_name: &str) {
        let removed: Vec<Arc<dyn Adapter>> = {
            let mut a = self.inner.adapters.write();
            let (gone, kept): (Vec<_>, Vec<_>) = a
                .drain(..)
                .partition(|x| x.protocol_name() == protocol_name);
            *a = kept;
            gone
        };
        for a in removed {
            a.detach();
        }
    }

    /// Starts the backplane (a new incarnation each time).
    pub async fn start(&self) -> Result<()> {
        if self.inner.running.lock().is_some() {
            return Ok(());
        }
        self.inner
            .quiet_stop
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let origin = Origin {
            node_id: self.inner.node_id.clone(),
            incarnation: fastrand::u64(1..),
        };
        let incarnation = origin.incarnation;
        let handler: Arc<dyn EngineHandler> = Arc::new(Handler {
            inner: Arc::downgrade(&self.inner),
        });
        // The outlet is set before any link can form or any envelope can arrive: a peer that
        // links at once must find it, or its snapshot request (and ours) would be dropped for
        // good.
        let outlet = self.inner.outlet.clone();
        let start = EngineStart {
            origin,
            handler,
            channels: self.inner.outlet.channels.clone(),
            before_start: Box::new(move |engine| *outlet.engine.write() = Some(engine)),
        };
        let Some(engine) = engines::start(&self.inner.config, start).await? else {
            return Ok(());
        };
        *self.inner.outlet.engine.write() = Some(engine.clone());
        *self.inner.running.lock() = Some(engine);
        self.inner
            .incarnation
            .store(incarnation, std::sync::atomic::Ordering::SeqCst);
        self.inner
            .outlet
            .tasks
            .lock()
            .spawn(ask_again_for_missing_snapshots(
                Arc::downgrade(&self.inner),
                incarnation,
            ));
        Ok(())
    }

    /// Stops the backplane for a node that is going away: bye to the peers, but remote Presence
    /// members are not purged locally (the node's clients are about to be closed anyway, and
    /// need not watch every remote member leave first).
    pub async fn shutdown(&self) {
        self.inner
            .quiet_stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // The flag stays set until the next `start`: links the peers close in answer to our bye
        // report "link closed" (not a local stop), possibly after `stop` has returned.
        self.stop().await;
    }

    /// Says bye to the peers and stops the backplane; the WebSocket server keeps serving as a
    /// single node (remote Presence members are purged locally).
    pub async fn stop(&self) {
        self.inner
            .incarnation
            .store(0, std::sync::atomic::Ordering::SeqCst);
        let running = self.inner.running.lock().take();
        *self.inner.outlet.engine.write() = None;
        if let Some(b) = running {
            b.stop().await;
        }
        // The cluster's own tasks of this run end with it (a new set for the next start).
        let tasks = std::mem::take(&mut *self.inner.outlet.tasks.lock());
        tasks.stop(std::time::Duration::ZERO).await;
    }

    /// How many background tasks of the cluster itself are running (none once `stop` returned;
    /// the engine's own are counted by [`Engine::task_count`]).
    pub fn task_count(&self) -> usize {
        self.inner.outlet.tasks.lock().len()
    }

    /// Mesh: listening and every configured peer linked or its first dial settled. Redis:
    /// subscription confirmed and publishing connection up. False when stopped or when the
    /// engine is `none`.
    pub fn ready(&self) -> bool {
        self.inner
            .running
            .lock()
            .as_ref()
            .is_some_and(|e| e.ready())
    }

    /// Live authenticated mesh links, or live nodes seen through Redis.
    pub fn connected_peer_count(&self) -> usize {
        self.inner
            .running
            .lock()
            .as_ref()
            .map_or(0, |e| e.connected_peer_count())
    }

    /// The mesh engine, when running with it (its address and counters).
    pub fn mesh(&self) -> Option<MeshEngine> {
        self.running_as::<MeshEngine>()
    }

    /// The Redis engine, when running with it (its counters and last error).
    pub fn redis(&self) -> Option<RedisEngine> {
        self.running_as::<RedisEngine>()
    }

    /// The Redis Cluster engine, when running with it (its counters and last error).
    pub fn redis_cluster(&self) -> Option<redis_cluster::RedisClusterEngine> {
        self.running_as::<redis_cluster::RedisClusterEngine>()
    }

    /// The live peers of the running backplane (none while stopped).
    pub fn live_peers(&self) -> Vec<Origin> {
        self.inner
            .running
            .lock()
            .as_ref()
            .map_or_else(Vec::new, |e| e.live_peers())
    }

    /// Subscribes to cluster events (peer connected/disconnected, messages).
    pub fn events(&self) -> broadcast::Receiver<ClusterEvent> {
        self.inner.events.subscribe()
    }

    /// The configured engine.
    pub fn engine(&self) -> EngineKind {
        self.inner.config.engine
    }

    /// Every peer the running engine knows, with its state (empty when stopped).
    pub fn peers(&self) -> Vec<PeerStatus> {
        let running = self.inner.running.lock().clone();
        running.map_or_else(Vec::new, |e| e.peer_statuses())
    }

    /// The running engine, when there is one.
    pub fn running_engine(&self) -> Option<Arc<dyn Engine>> {
        self.inner.running.lock().clone()
    }

    /// Why the running engine is not ready, when it knows (a broker's last error).
    pub fn last_error(&self) -> Option<String> {
        self.running_engine().and_then(|e| e.last_error())
    }

    /// The running engine as its own type `E`, when it is one (e.g.
    /// [`NatsEngine`](nats::NatsEngine), for its counters and last error).
    pub fn running_as<E: Engine + Clone>(&self) -> Option<E> {
        let running = self.inner.running.lock().clone()?;
        running.as_any().downcast_ref::<E>().cloned()
    }

    /// Sets what this node answers to other nodes' [`Cluster::query`] questions (`None`: empty
    /// answers).
    pub fn answer_queries(&self, responder: Option<QueryResponder>) {
        self.inner.queries.set_responder(responder);
    }

    /// Asks every live peer `question` and gathers the answers that arrive within `deadline`
    /// (see `cluster::query`). Answers at once when there is no peer.
    pub async fn query(&self, question: &[u8], deadline: std::time::Duration) -> QueryOutcome {
        let running = self.inner.running.lock().clone();
        let peers: Vec<Arc<str>> = running
            .map(|b| b.live_peers().into_iter().map(|o| o.node_id).collect())
            .unwrap_or_default();
        self.inner
            .queries
            .ask(&self.inner.outlet, peers, question, deadline)
            .await
    }
}

/// How long an adapter may wait for a peer's snapshot before it is asked for again.
const SNAPSHOT_RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// While the backplane of `incarnation` runs: asks again every peer whose snapshot an adapter has
/// awaited for longer than [`SNAPSHOT_RETRY`] (a request or its answer can be lost on Redis, and
/// an adapter must not wait forever). Snapshots replace what they cover, so an extra one is
/// harmless.
async fn ask_again_for_missing_snapshots(inner: Weak<Inner>, incarnation: u64) {
    let mut every = tokio::time::interval(SNAPSHOT_RETRY / 2);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.incarnation.load(std::sync::atomic::Ordering::SeqCst) != incarnation {
            return;
        }
        let adapters = inner.adapters.read().clone();
        let mut nodes: Vec<Arc<str>> = adapters
            .iter()
            .flat_map(|a| a.overdue_snapshots(SNAPSHOT_RETRY))
            .collect();
        nodes.sort();
        nodes.dedup();
        for node in nodes {
            tracing::info!(peer = %Printable(&node), "a peer's snapshot is overdue: asking again");
            inner
                .outlet
                .send_to(&node, Kind::SnapshotRequest, Bytes::new());
        }
    }
}

/// Sends every adapter's snapshot to `node`.
fn send_snapshots(inner: &Inner, adapters: &[Arc<dyn Adapter>], node: &str) {
    for a in adapters {
        a.send_snapshot(&inner.outlet, node);
    }
}

/// What the engine reports, routed to the adapters.
struct Handler {
    inner: Weak<Inner>,
}

impl EngineHandler for Handler {
    fn on_envelope(&self, envelope: Envelope) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if envelope.kind == Kind::SnapshotRequest {
            let adapters = inner.adapters.read().clone();
            send_snapshots(&inner, &adapters, &envelope.origin.node_id);
            return;
        }
        match envelope.kind {
            Kind::Query => return inner.queries.on_query(&inner.outlet, &envelope),
            Kind::QueryReply => return inner.queries.on_reply(&envelope),
            _ => {}
        }
        let _ = inner.events.send(ClusterEvent::Message {
            origin: envelope.origin.node_id.clone(),
            kind: envelope.kind,
            size: envelope.payload.len(),
        });
        let adapters = inner.adapters.read().clone();
        for a in adapters {
            if a.handles(envelope.kind) {
                a.on_remote(&envelope);
            }
        }
    }

    fn on_peer_up(&self, peer: &Origin, address: Option<&str>) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        crate::metrics::peer_up();
        let adapters = inner.adapters.read().clone();
        for a in adapters {
            a.peer_up(peer);
        }
        // Whatever it sent before was meant for a node it may have seen die: ask for its state.
        inner
            .outlet
            .send_to(&peer.node_id, Kind::SnapshotRequest, Bytes::new());
        let _ = inner.events.send(ClusterEvent::PeerConnected {
            node_id: peer.node_id.clone(),
            address: address.map(str::to_owned),
        });
    }

    fn on_peer_down(&self, peer: &Origin, reason: DownReason) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        crate::metrics::peer_down(reason.metric());
        let quiet = inner.quiet_stop.load(std::sync::atomic::Ordering::SeqCst);
        if !quiet {
            let started = std::time::Instant::now();
            let adapters = inner.adapters.read().clone();
            let running = inner.running.lock().clone();
            let live: Vec<Origin> = running
                .as_ref()
                .map_or_else(Vec::new, |e| e.live_peers())
                .into_iter()
                .filter(|o| o.node_id != peer.node_id)
                .collect();
            // Mesh links fail one by one; a node that lost its broker loses every peer at once.
            let connected = running.as_ref().is_none_or(|e| e.reaches_cluster());
            for a in &adapters {
                a.before_peer_down(peer, reason, &live, connected);
            }
            for a in &adapters {
                a.peer_down(peer);
            }
            crate::metrics::purge_took(reason.metric(), started.elapsed());
        }
        inner.queries.peer_gone(&peer.node_id);
        let _ = inner.events.send(ClusterEvent::PeerDisconnected {
            node_id: peer.node_id.clone(),
            reason,
        });
    }

    fn on_resync_needed(&self, peer: &Origin, _lost: u64) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        // Both directions: the peer may lack our state (frames lost, or it purged us while the
        // link was replaced), and we ask for its state again.
        let adapters = inner.adapters.read().clone();
        for a in &adapters {
            a.peer_up(peer);
        }
        send_snapshots(&inner, &adapters, &peer.node_id);
        inner
            .outlet
            .send_to(&peer.node_id, Kind::SnapshotRequest, Bytes::new());
    }
}
