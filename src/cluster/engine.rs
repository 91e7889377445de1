//! The one interface every engine implements ([`Engine`]), what an engine hands back to the
//! cluster component ([`EngineHandler`]), and the report driver every engine tells its handler
//! through (`Reports`).
//!
//! An engine moves [`Envelope`]s between nodes and tracks who is alive; it never looks inside a
//! payload. It never loops a node's own envelopes back to it.

use std::any::Any;
use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::envelope::{Envelope, Kind, Origin};
use super::membership::{DownReason, PeerChange};
use super::peers::{PeerState, PeerStatus};
use crate::log_text::Printable;
use crate::relay::InterestReady;

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

/// A future an engine returns from a trait method (the trait is used as `dyn Engine`).
pub type EngineFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A running engine, as the cluster component sees it. Every engine (mesh, Redis, Redis
/// Cluster, NATS) implements it; the cluster registers one start function per engine
/// (`cluster::engines`) and knows nothing else of them.
///
/// Sends never block and never fail: what cannot be sent is dropped and counted by the engine
/// (and, on brokers, seen by its receivers as a sequence gap).
pub trait Engine: Send + Sync + 'static {
    /// The engine's name, as in `cluster.engine`.
    fn name(&self) -> &'static str;

    /// Where the engine is, for the line the binary prints at start (`mesh on 127.0.0.1:5410
    /// (cluster wscluster)`, `redis at redis://… on channel …`).
    fn describe(&self) -> String;

    /// Sends an envelope to every other node.
    fn send_all(&self, kind: Kind, payload: Bytes);

    /// Sends an envelope to node `node` only.
    fn send_to(&self, node: &str, kind: Kind, payload: Bytes);

    /// Sends an envelope to the nodes with local subscribers for sgc channel `channel`, for an
    /// engine that routes by channel (`ChannelRouting::Engine`); to
    /// every node otherwise.
    fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        let _ = channel;
        self.send_all(kind, payload);
    }

    /// This node has its first local subscriber for `channel` (engine routing): `ready` runs once
    /// the engine delivers the channel's traffic here.
    fn subscribe_channel(&self, channel: &str, ready: InterestReady) {
        let _ = channel;
        ready();
    }

    /// This node's last local subscriber for `channel` left (engine routing).
    fn unsubscribe_channel(&self, channel: &str) {
        let _ = channel;
    }

    /// The live peers.
    fn live_peers(&self) -> Vec<Origin>;

    /// How many peers are live.
    fn connected_peer_count(&self) -> usize {
        self.live_peers().len()
    }

    /// Able to carry traffic (what "ready" means is the engine's to say in its docs).
    fn ready(&self) -> bool;

    /// Whether this node can hear the cluster at all. A broker engine that lost its broker
    /// cannot: every peer then looks gone at once, and nothing should be concluded about them
    /// (their departures are not reported as crashes). The mesh loses links one by one: true.
    fn reaches_cluster(&self) -> bool {
        true
    }

    /// Why the engine is not ready, when it knows (the broker's last error, say).
    fn last_error(&self) -> Option<String> {
        None
    }

    /// Every peer the engine knows, with its state. A broker engine knows only live peers.
    fn peer_statuses(&self) -> Vec<PeerStatus> {
        self.live_peers()
            .into_iter()
            .map(|o| PeerStatus {
                node_id: Some(o.node_id),
                address: None,
                incarnation: Some(o.incarnation),
                state: PeerState::Linked,
                unacked_frames: 0,
                unacked_bytes: 0,
            })
            .collect()
    }

    /// Says bye to the peers, stops every task of the engine (and waits for them) and reports
    /// every peer down.
    fn stop(&self) -> EngineFuture<'_, ()>;

    /// How many of the engine's tasks are running (none once `stop` returned).
    fn task_count(&self) -> usize;

    /// The engine itself, for callers that need its own API (its counters, its address).
    fn as_any(&self) -> &dyn Any;
}

/// What a starting engine gets from the cluster component.
pub struct EngineStart {
    /// This node's incarnation.
    pub origin: Origin,
    /// Where the engine reports.
    pub handler: Arc<dyn EngineHandler>,
    /// The sgc channels with local subscribers (engine routing), kept by the cluster across stops
    /// and starts: a started engine subscribes to all of them.
    pub channels: Arc<Mutex<HashSet<Arc<str>>>>,
    /// Called with the engine before any envelope can arrive or any link can form, so that what
    /// the handler sends in answer already finds it.
    pub before_start: Box<dyn FnOnce(Arc<dyn Engine>) + Send>,
}

impl std::fmt::Debug for EngineStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineStart")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Why an engine resynchronises with a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResyncCause {
    /// A new link replaced the link to a peer that stayed live.
    Relinked,
    /// Envelopes from (or to) the peer were lost.
    Lost(u64),
}

/// Something an engine's handler must hear, queued in the order it was decided.
pub(crate) enum Report {
    /// A peer came up (with the address it was reached at, when known) or went down.
    Change(PeerChange, Option<String>),
    /// State must be exchanged with a live peer again.
    Resync(Origin, ResyncCause),
    /// An envelope from another node.
    Envelope(Envelope),
}

impl Report {
    /// The reports of membership changes (addresses unknown).
    pub(crate) fn changes(changes: Vec<PeerChange>) -> impl Iterator<Item = Report> {
        changes.into_iter().map(|c| Report::Change(c, None))
    }
}

/// The report driver: engines queue [`Report`]s where they decide them (under their own state
/// lock, so the order is the order of the decisions) and drain them here, one drainer at a time
/// and never with a state lock held, so the handler hears them in order even when several tasks
/// decide at once.
pub(crate) struct Reports {
    queue: Mutex<VecDeque<Report>>,
    one_drainer: Mutex<()>,
    handler: Arc<dyn EngineHandler>,
}

impl Reports {
    /// An empty queue in front of `handler`.
    pub(crate) fn new(handler: Arc<dyn EngineHandler>) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            one_drainer: Mutex::new(()),
            handler,
        }
    }

    /// Queues reports (call under the lock where they were decided).
    pub(crate) fn push(&self, reports: impl IntoIterator<Item = Report>) {
        self.queue.lock().extend(reports);
    }

    /// Queues one report.
    pub(crate) fn push_one(&self, report: Report) {
        self.queue.lock().push_back(report);
    }

    /// Tells the handler everything queued, in order; `on_down` runs for a peer that went down
    /// before the handler hears it (the engine forgets what it kept for the peer).
    pub(crate) fn drain(&self, on_down: impl Fn(&Origin)) {
        let _one_at_a_time = self.one_drainer.lock();
        loop {
            let next = self.queue.lock().pop_front();
            let Some(report) = next else {
                return;
            };
            match report {
                Report::Change(PeerChange::Up(o), addr) => {
                    tracing::info!(peer = %Printable(&o.node_id), incarnation = o.incarnation, addr = %Printable(addr.as_deref().unwrap_or("")), "peer connected");
                    self.handler.on_peer_up(&o, addr.as_deref());
                }
                Report::Change(PeerChange::Down(o, reason), _) => {
                    tracing::info!(peer = %Printable(&o.node_id), incarnation = o.incarnation, %reason, "peer disconnected");
                    on_down(&o);
                    self.handler.on_peer_down(&o, reason);
                }
                Report::Resync(o, ResyncCause::Relinked) => {
                    tracing::info!(peer = %Printable(&o.node_id), incarnation = o.incarnation, "link to a live peer replaced: resynchronising");
                    self.handler.on_resync_needed(&o, 0);
                }
                Report::Resync(o, ResyncCause::Lost(lost)) => {
                    tracing::info!(peer = %Printable(&o.node_id), lost, "resynchronising with a node after lost envelopes");
                    self.handler.on_resync_needed(&o, lost);
                }
                Report::Envelope(e) => self.handler.on_envelope(e),
            }
        }
    }
}
