//! The `mesh` engine: nodes link to each other over TCP, with no infrastructure.
//!
//! Each node listens on its cluster port and dials every peer it knows (configured, or learned
//! from peers' gossip), keeping one authenticated link per pair (when both dial, the link dialled
//! by the smaller node id stays). Frames to a peer are numbered per link and kept in a replay
//! window until acknowledged, so a blip loses nothing; a closed link or silence past
//! `peer_timeout` reports the peer down; a new incarnation of a node reports the old one down.
//!
//! - [`auth`]: challenge-response proofs of the shared secret;
//! - [`wire`]: length-prefixed frames and handshake messages;
//! - [`replay`]: the replay window and inbound sequence (sans I/O);
//! - `handshake`: the authenticated link handshake; `link`: the reader/writer of one link;
//!   `queue`: its bounded send queue; `dialer`: redial with backoff; `discovery`: peers found by
//!   resolving DNS names (`peers_dns`); `own`: the node's own addresses (never dialled or listed);
//!   `reach`: when to say that a configured peer cannot be reached.

pub mod auth;
mod config;
mod dialer;
mod discovery;
mod guard;
mod handshake;
mod link;
mod link_core;
#[cfg(test)]
mod link_core_tests;
mod own;
mod peers;
mod queue;
mod reach;
pub(crate) mod registration;
pub mod replay;
pub mod wire;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

pub use config::{MIN_SECRET_LEN, MeshConfig};
pub use peers::ConfiguredPeer;

use super::engine::{EngineHandler, Report, Reports};
use super::envelope::{Envelope, Kind, Origin};
use super::membership::{DownReason, Membership, PeerChange};
use crate::error::{Error, Result};
use crate::log_text::Printable;
use crate::metrics::PeerCounters;
use crate::tasks::Tasks;

/// How long `stop` lets links flush their byes before cancelling what is left.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
use queue::{LinkQueue, QueueClosed};
use replay::{InboundSequence, ReplayWindow};
use wire::WireFrame;

/// Counters of the mesh, for logs (at stop) and tests. The same events are counted per peer through
/// the metrics facade ([`PeerCounters`], `docs/metrics.md`).
#[derive(Debug, Default)]
pub struct MeshStats {
    /// Envelopes received from peers.
    pub frames_in: AtomicU64,
    /// Envelopes queued to peers (replays included).
    pub frames_out: AtomicU64,
    /// Bytes received on links (length prefixes included).
    pub bytes_in: AtomicU64,
    /// Bytes written to links (length prefixes included).
    pub bytes_out: AtomicU64,
    /// Links established after the first one to the same peer.
    pub reconnects: AtomicU64,
    /// Frames replayed after a reconnect.
    pub replayed: AtomicU64,
    /// Frames lost beyond the replay window (each loss also logged).
    pub lost: AtomicU64,
    /// Links refused during the handshake (wrong secret, wrong cluster, ...).
    pub refused: AtomicU64,
    /// Links reset because their send queue passed its cap.
    pub overflows: AtomicU64,
}

/// A running mesh engine. Cheap to clone.
#[derive(Clone)]
pub struct MeshEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MeshEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshEngine")
            .field("node", &self.shared.me.node_id)
            .field("local_addr", &self.shared.local_addr)
            .finish()
    }
}

pub(crate) struct Shared {
    pub(crate) me: Origin,
    pub(crate) cfg: MeshConfig,
    pub(crate) handler: Arc<dyn EngineHandler>,
    pub(crate) state: Mutex<State>,
    pub(crate) local_addr: SocketAddr,
    pub(crate) stop: watch::Sender<bool>,
    /// Signalled whenever a link comes or goes (dialers wait on it).
    pub(crate) link_changed: Notify,
    pub(crate) next_link_id: AtomicU64,
    pub(crate) stats: MeshStats,
    /// Peer changes decided and not yet told to the handler.
    pub(crate) reports: Reports,
    /// New addresses to dial; a spawner task starts one dial loop per address (a channel, so
    /// that links never spawn dial loops themselves, which would make the futures recursive).
    pub(crate) dial_tx: tokio::sync::mpsc::UnboundedSender<String>,
    /// TLS on every link (`[cluster.mesh.tls]`), when enabled.
    pub(crate) tls: Option<crate::tls::MeshTls>,
    /// The source IP and reason of the last TLS refusal logged at warn (repeats go to debug).
    pub(crate) last_tls_refusal: Mutex<Option<(std::net::IpAddr, String)>>,
    /// Failed handshakes per source IP (`cluster.mesh.max_failed_handshakes_per_ip`).
    pub(crate) guard: guard::HandshakeGuard,
    /// Every task of the engine (accept loop, dialers, links, ticker, DNS watch): `stop` waits
    /// for them.
    pub(crate) tasks: Tasks,
}

pub(crate) struct State {
    pub(crate) membership: Membership,
    pub(crate) peers: HashMap<Arc<str>, Peer>,
    pub(crate) targets: HashMap<String, DialTarget>,
    pub(crate) stopped: bool,
    /// `peers_dns` names are configured and their first resolution is not done (not `ready`).
    pub(crate) dns_pending: bool,
    /// `cluster.mesh.max_known_addresses` was hit and logged (once until an address fits again).
    pub(crate) addresses_full: bool,
    /// Addresses that turned out to be this node (its handshake answered): never dialled again.
    pub(crate) own: HashSet<String>,
    /// The IPs of this host's interfaces (read at start), for [`Shared::is_own`].
    pub(crate) local_ips: Vec<IpAddr>,
}

/// An address this node dials.
#[derive(Debug, Default)]
pub(crate) struct DialTarget {
    /// The node found there, once known.
    pub(crate) node: Option<Arc<str>>,
    /// Given in the configuration (counts for `ready`).
    pub(crate) configured: bool,
    /// The first dial finished (linked or failed).
    pub(crate) settled: bool,
    /// Found through `peers_dns`: forgotten when no name resolves to it any more, never gossiped.
    pub(crate) dns: bool,
    /// Whether it can be reached, and when to say so: kept for the addresses the operator gave
    /// (configured and `peers_dns`), which are logged at warn while unreachable and have a gauge.
    pub(crate) reach: Option<reach::Reach>,
}

/// What this node keeps about one peer, across its links.
pub(crate) struct Peer {
    pub(crate) incarnation: u64,
    pub(crate) window: ReplayWindow,
    pub(crate) inbound: InboundSequence,
    pub(crate) link: Option<LinkSlot>,
    pub(crate) listen: Option<String>,
    pub(crate) ever_linked: bool,
    pub(crate) unlinked_since: Option<Instant>,
    /// Its metric handles (made once per peer, incremented per envelope).
    pub(crate) counters: PeerCounters,
}

/// The current link to a peer.
#[derive(Clone)]
pub(crate) struct LinkSlot {
    pub(crate) id: u64,
    pub(crate) dialer: Arc<str>,
    pub(crate) queue: Arc<LinkQueue>,
}

impl MeshEngine {
    /// Binds the cluster port and starts linking to the configured peers.
    pub async fn start(
        cfg: MeshConfig,
        me: Origin,
        handler: Arc<dyn EngineHandler>,
    ) -> Result<Self> {
        Self::start_with(cfg, me, handler, |_| {}).await
    }

    /// Like [`MeshEngine::start`], calling `before_links(&engine)` once the port is bound and
    /// before any link can form: whatever the handler needs to answer a peer (e.g. the outlet it
    /// sends through) must exist before the first peer shows up.
    pub async fn start_with(
        cfg: MeshConfig,
        me: Origin,
        handler: Arc<dyn EngineHandler>,
        before_links: impl FnOnce(&MeshEngine),
    ) -> Result<Self> {
        let tls = crate::tls::MeshTls::from_config(&cfg.tls)
            .map_err(|e| Error::Config(format!("cluster.mesh.tls: {e}")))?;
        cfg.bind_ip().map_err(Error::Config)?;
        let listener = TcpListener::bind(cfg.listen())
            .await
            .map_err(|source| Error::Bind {
                addr: cfg.listen().to_string(),
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let (shared, mut dial_rx, first_dials) = Shared::new(cfg, me, handler, local_addr, tls);
        let spawner = shared.clone();
        shared.tasks.spawn(async move {
            let mut stop = spawner.stop.subscribe();
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    a = dial_rx.recv() => match a {
                        Some(addr) => spawner.tasks.spawn(dialer::dial_loop(spawner.clone(), addr)),
                        None => return,
                    },
                }
            }
        });
        let engine = Self {
            shared: shared.clone(),
        };
        before_links(&engine);
        shared
            .tasks
            .spawn(link::accept_loop(shared.clone(), listener));
        shared.tasks.spawn(ticker(shared.clone()));
        for addr in first_dials {
            let _ = shared.dial_tx.send(addr);
        }
        if !shared.cfg.peers_dns.is_empty() {
            shared.tasks.spawn(discovery::watch(shared.clone()));
        }
        let local_addr = shared.local_addr;
        if shared.cfg.loopback_for_lack_of_secret() {
            tracing::warn!(
                node = %Printable(&shared.me.node_id),
                %local_addr,
                "mesh listening on loopback only: no cluster.secret (nor mesh TLS with client certificates) protects the cluster port. To link nodes of other machines, set a secret (`wscluster gen-secret`, then cluster.secret_file, --cluster-secret-file or WSCLUSTER_CLUSTER__SECRET)"
            );
        } else {
            tracing::info!(node = %Printable(&shared.me.node_id), %local_addr, "mesh listening");
        }
        Ok(engine)
    }

    /// The address the cluster port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    /// This node.
    pub fn origin(&self) -> &Origin {
        &self.shared.me
    }

    /// Sends a sequenced envelope to every known peer (kept for replay while a peer is away).
    pub fn send_all(&self, kind: Kind, payload: Bytes) {
        let mut st = self.shared.state.lock();
        let ids: Vec<Arc<str>> = st.peers.keys().cloned().collect();
        for id in ids {
            self.shared.send_locked(&mut st, &id, kind, payload.clone());
        }
    }

    /// Sends a sequenced envelope to one peer; unknown peers are skipped.
    pub fn send_to(&self, node_id: &str, kind: Kind, payload: Bytes) {
        let mut st = self.shared.state.lock();
        self.shared.send_locked(&mut st, node_id, kind, payload);
    }

    /// The live peers (authenticated and not reported down).
    pub fn live_peers(&self) -> Vec<Origin> {
        self.shared.state.lock().membership.live_peers().collect()
    }

    /// Live authenticated links.
    pub fn connected_peer_count(&self) -> usize {
        let st = self.shared.state.lock();
        st.peers
            .values()
            .filter(|p| p.link.as_ref().is_some_and(|l| !l.queue.is_closed()))
            .count()
    }

    /// Listening, every `peers_dns` name resolved once (or failed to), and every configured peer
    /// (and every address those names gave at first) either linked or its first dial settled.
    pub fn ready(&self) -> bool {
        let st = self.shared.state.lock();
        !st.stopped && !st.dns_pending && st.targets.values().all(|t| !t.configured || t.settled)
    }

    /// How many of the engine's tasks are running (none once `stop` returned).
    pub fn task_count(&self) -> usize {
        self.shared.tasks.len()
    }

    /// Counters.
    pub fn stats(&self) -> &MeshStats {
        &self.shared.stats
    }

    /// Says bye to every peer, closes every link and stops listening and dialing.
    pub async fn stop(&self) {
        let st = &self.shared.stats;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            frames_in = get(&st.frames_in),
            frames_out = get(&st.frames_out),
            bytes_in = get(&st.bytes_in),
            bytes_out = get(&st.bytes_out),
            reconnects = get(&st.reconnects),
            replayed = get(&st.replayed),
            lost = get(&st.lost),
            refused = get(&st.refused),
            overflows = get(&st.overflows),
            "mesh stats"
        );
        let links: Vec<LinkSlot> = {
            let mut st = self.shared.state.lock();
            st.stopped = true;
            let ids: Vec<Arc<str>> = st.peers.keys().cloned().collect();
            for id in &ids {
                self.shared
                    .send_locked(&mut st, id, Kind::Bye, Bytes::new());
            }
            st.peers.values().filter_map(|p| p.link.clone()).collect()
        };
        for l in &links {
            l.queue.close();
        }
        let _ = self.shared.stop.send(true);
        // Links flush their byes and end; what is still running after a second is cancelled.
        self.shared.tasks.stop(STOP_GRACE).await;
        {
            let mut st = self.shared.state.lock();
            let changes = st.membership.clear(DownReason::LocalStop);
            self.shared.queue_changes(&st, changes);
        }
        self.shared.drain_reports();
        self.shared.link_changed.notify_waiters();
    }
}

/// What [`Shared::new`] returns besides the state: the receiving end of the dial channel and the
/// configured addresses to dial first.
type NewShared = (
    Arc<Shared>,
    tokio::sync::mpsc::UnboundedReceiver<String>,
    Vec<String>,
);

impl Shared {
    /// The state of node `me` listening on `local_addr` (nothing is bound, spawned or dialled
    /// here: tests build it without sockets).
    pub(crate) fn new(
        cfg: MeshConfig,
        me: Origin,
        handler: Arc<dyn EngineHandler>,
        local_addr: SocketAddr,
        tls: Option<crate::tls::MeshTls>,
    ) -> NewShared {
        let (stop, _) = watch::channel(false);
        let (dial_tx, dial_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        let local_ips = own::local_ips();
        let mut targets = HashMap::new();
        // The same peer list is often given to every node: its own entry is skipped.
        for p in cfg
            .peers
            .iter()
            .filter(|p| !own::is_own_str(p, local_addr, &cfg.advertise, &local_ips))
        {
            targets.insert(
                p.clone(),
                DialTarget {
                    configured: true,
                    reach: Some(reach::Reach::new()),
                    ..DialTarget::default()
                },
            );
        }
        let first_dials: Vec<String> = targets.keys().cloned().collect();
        let reports = Reports::new(handler.clone());
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                membership: Membership::new(me.node_id.clone(), cfg.peer_timeout()),
                peers: HashMap::new(),
                targets,
                stopped: false,
                dns_pending: !cfg.peers_dns.is_empty(),
                addresses_full: false,
                own: HashSet::new(),
                local_ips,
            }),
            guard: guard::HandshakeGuard::new(
                cfg.max_failed_handshakes_per_ip,
                cfg.failed_handshake_window(),
            ),
            me,
            cfg,
            handler,
            local_addr,
            stop,
            link_changed: Notify::new(),
            next_link_id: AtomicU64::new(1),
            stats: MeshStats::default(),
            reports,
            dial_tx,
            tls,
            last_tls_refusal: Mutex::new(None),
            tasks: Tasks::new(),
        });
        (shared, dial_rx, first_dials)
    }

    /// Whether `addr` is this node (see `own.rs`), or an address that answered as this node.
    pub(crate) fn is_own(&self, st: &State, addr: &str) -> bool {
        st.own.contains(addr)
            || own::is_own_str(addr, self.local_addr, &self.cfg.advertise, &st.local_ips)
    }

    /// Numbers, keeps and queues one envelope for peer `id` (state lock held).
    pub(crate) fn send_locked(&self, st: &mut State, id: &str, kind: Kind, payload: Bytes) {
        let Some(peer) = st.peers.get_mut(id) else {
            return;
        };
        let seq = peer.window.next_seq();
        let head = match Envelope::encode_header(kind, &self.me, seq) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode envelope header");
                return;
            }
        };
        let frame = WireFrame {
            head,
            body: payload,
        };
        peer.window.push(frame.clone(), Instant::now());
        if let Some(link) = &peer.link {
            self.stats.frames_out.fetch_add(1, Ordering::Relaxed);
            peer.counters.envelopes_out.increment(1);
            // A queue already closed (the link is going away) keeps the frame for replay only;
            // an overflow is logged once, when it closes the queue.
            if link.queue.push(frame) == Err(QueueClosed::Overflow) && !st.stopped {
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                peer.counters.overflows.increment(1);
                tracing::warn!(peer = %Printable(id), "mesh link send queue full: resetting the link");
            }
        }
    }

    /// Queues an unsequenced control envelope on a link.
    pub(crate) fn send_control(&self, link: &LinkSlot, kind: Kind, payload: Bytes) {
        if let Ok(head) = Envelope::encode_header(kind, &self.me, 0) {
            let _ = link.queue.push(WireFrame {
                head,
                body: payload,
            });
        }
    }

    /// Queues peer changes decided under the state lock `st` (a peer that came up with the
    /// address it listens on).
    pub(crate) fn queue_changes(&self, st: &State, changes: Vec<PeerChange>) {
        self.reports.push(changes.into_iter().map(|c| {
            let addr = match &c {
                PeerChange::Up(o) => st.peers.get(&o.node_id).and_then(|p| p.listen.clone()),
                PeerChange::Down(..) => None,
            };
            Report::Change(c, addr)
        }));
    }

    /// Tells the handler what was queued, in order (see [`Reports`]).
    pub(crate) fn drain_reports(&self) {
        self.reports.drain(|_| {});
    }
}

/// Heartbeats with acknowledgments, failure detection by silence, and window trimming
/// ([`link_core::on_tick`]).
async fn ticker(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut every = tokio::time::interval(shared.cfg.heartbeat_interval());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        if shared.state.lock().stopped {
            return;
        }
        link_core::on_tick(&shared, Instant::now());
    }
}
