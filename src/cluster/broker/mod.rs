//! What every engine on a broker (Redis, Redis Cluster, NATS) shares, written once: nodes meet on
//! the broker's Pub/Sub instead of linking to each other.
//!
//! Every node publishes its envelopes (the same codec as the mesh) to the shared stream, or to one
//! node's own stream for what only that node needs (snapshots), or, with per-channel routing, to an
//! sgc channel's own stream. Each node subscribes to the shared stream, its own stream and the
//! channels it has local subscribers for; it drops its own envelopes.
//!
//! Membership: a node announces itself (hello) when its subscription is ready and answers the
//! hello of a node it has not seen; every node heartbeats on the shared stream; a node unseen for
//! `peer_timeout` is dead (its Presence members are purged), a bye is a departure at once, and an
//! engine that can ask its broker whether a peer's subscription still exists declares a killed
//! peer down sooner ([`probe`]).
//!
//! Broker Pub/Sub is at-most-once: per-stream sequence numbers ([`streams`]) reveal lost
//! envelopes, which are counted and logged, and a loss on a control stream makes this node
//! resynchronise with the origin (snapshots both ways).
//!
//! The [`BrokerCore`] holds all of that; an engine adds only its broker's I/O: a writer task that
//! takes [`queue::Outgoing`] envelopes from the core's queue and publishes them, a subscriber task
//! that hands every message to [`BrokerCore::on_message`] and carries out
//! [`interest::Command`]s, and optionally a prober.

pub(crate) mod engine;
pub(crate) mod interest;
pub(crate) mod probe;
pub(crate) mod queue;
pub(crate) mod stats;
pub(crate) mod streams;
mod ticker;

use crate::log_text::Printable;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use super::engine::{EngineHandler, Report, Reports, ResyncCause};
use super::envelope::{Envelope, Kind, Origin};
use super::membership::{DownReason, Membership, PeerChange};
use crate::metrics::PeerCounters;
use crate::tasks::Tasks;
use queue::{Outgoing, PublishQueue, QueueError};
use stats::{BrokerStats, EngineMetrics};
use streams::{InboundSequences, OutboundSequences, StreamKind, StreamNames};

/// Least time between two resynchronisations with the same node.
const RESYNC_SPACING: Duration = Duration::from_secs(1);

/// How long `stop` lets the engine's tasks end by themselves before cancelling them.
const STOP_GRACE: Duration = Duration::from_millis(200);

/// How long the stream numbers of a peer reported down are kept (see `State::departed`).
const FORGET_DEPARTED_AFTER: Duration = Duration::from_secs(60);

/// How often silence is checked (peers are declared dead at most this late after `peer_timeout`).
const TICK: Duration = Duration::from_millis(100);

/// What the shared part of a broker engine needs to know of its engine.
#[derive(Debug, Clone)]
pub(crate) struct BrokerSettings {
    /// The engine's name (`redis`, `redis-cluster`, `nats`): logs and the `peer` label of the
    /// engine's own counters.
    pub engine: &'static str,
    /// Where the broker is, for logs (no password).
    pub address: String,
    /// The config keys to check when the broker refuses our credentials (for the error log).
    pub credentials_hint: &'static str,
    /// A node silent this long is dead.
    pub peer_timeout: Duration,
    /// Interval between heartbeats.
    pub heartbeat_interval: Duration,
    /// Cap, in bytes, of envelopes waiting to be published.
    pub queue_bytes: usize,
    /// Largest envelope accepted from the broker, in bytes.
    pub max_message_bytes: usize,
    /// The broker's response timeout: how long `stop` waits for the bye to leave, and how long a
    /// channel's first subscriber waits for the broker to confirm its subscription.
    pub flush_timeout: Duration,
    /// Whether a broker error message means "wrong credentials".
    pub is_auth_error: fn(&str) -> bool,
}

struct State {
    membership: Membership,
    inbound: InboundSequences,
    last_resync: HashMap<Arc<str>, Instant>,
    pending_resync: HashMap<Arc<str>, (Origin, u64)>,
    stopped: bool,
    /// The last broker error, for `ready` diagnostics and logs.
    last_error: Option<String>,
    /// When the last gap warning was logged (they are aggregated, at most one a second).
    gap_log: Option<Instant>,
    gaps_unlogged: u64,
    /// Per-origin metric handles (made at an origin's first envelope).
    peer_metrics: HashMap<Arc<str>, PeerCounters>,
    /// Peers reported down, and when: their stream numbers are kept for
    /// [`FORGET_DEPARTED_AFTER`], so that the same incarnation heard again (it had only lost the
    /// broker, or a probe missed it) has what it sent meanwhile counted as lost instead of taken
    /// as a new baseline. A new incarnation starts fresh anyway.
    departed: HashMap<Arc<str>, Instant>,
}

/// The shared part of a running broker engine: membership, sequences, gaps and resyncs, the
/// publish queue, readiness and counters.
pub(crate) struct BrokerCore {
    me: Origin,
    settings: BrokerSettings,
    names: Arc<dyn StreamNames>,
    reports: Reports,
    state: Mutex<State>,
    /// Sequence numbering and queueing happen under this lock, so numbers leave in order.
    outbound: Mutex<OutboundSequences>,
    queue: PublishQueue,
    subscriber_up: AtomicBool,
    /// Signalled when the subscription comes up (the writer waits for it).
    subscribed: Notify,
    publisher_up: AtomicBool,
    overflow_logged: AtomicBool,
    stop: watch::Sender<bool>,
    stats: BrokerStats,
    metrics: EngineMetrics,
    /// Every task of the engine (the core's ticker, the engine's writer, subscriber and prober,
    /// subscription waits): `stop` waits for them.
    tasks: Tasks,
}

impl std::fmt::Debug for BrokerCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerCore")
            .field("engine", &self.settings.engine)
            .field("node", &self.me.node_id)
            .field("broker", &self.settings.address)
            .finish()
    }
}

impl BrokerCore {
    /// The core of node `me`'s engine, and the receiving end of its publish queue (for the
    /// engine's writer task).
    pub(crate) fn new(
        me: Origin,
        settings: BrokerSettings,
        names: Arc<dyn StreamNames>,
        handler: Arc<dyn EngineHandler>,
    ) -> (Arc<Self>, queue::QueueReceiver) {
        let (queue, rx) = PublishQueue::new(settings.queue_bytes);
        let (stop, _) = watch::channel(false);
        let core = Arc::new(Self {
            state: Mutex::new(State {
                membership: Membership::new(me.node_id.clone(), settings.peer_timeout),
                inbound: InboundSequences::default(),
                last_resync: HashMap::new(),
                pending_resync: HashMap::new(),
                stopped: false,
                last_error: None,
                gap_log: None,
                gaps_unlogged: 0,
                peer_metrics: HashMap::new(),
                departed: HashMap::new(),
            }),
            metrics: EngineMetrics::new(settings.engine),
            me,
            settings,
            names,
            reports: Reports::new(handler),
            outbound: Mutex::new(OutboundSequences::default()),
            queue,
            subscriber_up: AtomicBool::new(false),
            subscribed: Notify::new(),
            publisher_up: AtomicBool::new(false),
            overflow_logged: AtomicBool::new(false),
            stop,
            stats: BrokerStats::default(),
            tasks: Tasks::new(),
        });
        (core, rx)
    }

    /// This node.
    pub(crate) fn origin(&self) -> &Origin {
        &self.me
    }

    /// The stream names.
    pub(crate) fn names(&self) -> &dyn StreamNames {
        &*self.names
    }

    /// Counters.
    pub(crate) fn stats(&self) -> &BrokerStats {
        &self.stats
    }

    /// A receiver that changes to `true` when the engine stops (every engine task selects on it).
    pub(crate) fn stopping(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Publishes an envelope for every other node (the shared stream).
    pub(crate) fn send_all(&self, kind: Kind, payload: Bytes) {
        self.publish(self.names.shared().clone(), kind, payload);
    }

    /// Publishes an envelope for one node (its own stream).
    pub(crate) fn send_to(&self, node_id: &str, kind: Kind, payload: Bytes) {
        self.publish(Arc::from(self.names.node(node_id)), kind, payload);
    }

    /// Publishes an envelope on sgc channel `channel`'s own stream (per-channel routing).
    pub(crate) fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        self.publish(Arc::from(self.names.channel(channel)), kind, payload);
    }

    /// The live peers.
    pub(crate) fn live_peers(&self) -> Vec<Origin> {
        self.state.lock().membership.live_peers().collect()
    }

    /// How many other nodes are live (heard within `peer_timeout`).
    pub(crate) fn connected_peer_count(&self) -> usize {
        self.state.lock().membership.live_count()
    }

    /// Subscribed (subscription confirmed) and able to publish.
    /// How long a channel's first subscriber waits for the broker to confirm the subscription.
    pub(crate) fn subscribe_wait(&self) -> Duration {
        self.settings.flush_timeout
    }

    /// The engine's name (`redis`, `redis-cluster`, `nats`), for logs.
    pub(crate) fn engine_name(&self) -> &'static str {
        self.settings.engine
    }

    pub(crate) fn ready(&self) -> bool {
        !self.state.lock().stopped && self.subscriber_up() && self.publisher_up()
    }

    /// Whether the subscription is up.
    pub(crate) fn subscriber_up(&self) -> bool {
        self.subscriber_up.load(Ordering::SeqCst)
    }

    /// Whether the publishing side is up.
    pub(crate) fn publisher_up(&self) -> bool {
        self.publisher_up.load(Ordering::SeqCst)
    }

    /// The last error the broker gave, if the engine is not ready because of it.
    pub(crate) fn last_error(&self) -> Option<String> {
        self.state.lock().last_error.clone()
    }

    /// Numbers one envelope of `stream` and queues it for publishing.
    pub(crate) fn publish(&self, stream: Arc<str>, kind: Kind, payload: Bytes) {
        let mut out = self.outbound.lock();
        let seq = out.next(&stream);
        let head = match Envelope::encode_header(kind, &self.me, seq) {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode envelope header");
                return;
            }
        };
        let pushed = self.queue.push(Outgoing {
            stream,
            head,
            body: payload,
        });
        drop(out);
        match pushed {
            Ok(()) => {
                self.overflow_logged.store(false, Ordering::Relaxed);
            }
            Err(QueueError::Full) => {
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
                self.metrics.engine.overflows.increment(1);
                if !self.overflow_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        engine = self.settings.engine,
                        cap = self.settings.queue_bytes,
                        "publish queue full: envelopes dropped until it drains"
                    );
                }
            }
            Err(QueueError::Closed) => {}
        }
    }

    /// Hello on the shared stream: "this incarnation is here" (after every (re)subscription).
    pub(crate) fn announce(&self) {
        self.publish(self.names.shared().clone(), Kind::Hello, Bytes::new());
    }

    /// The subscription came up (`error` is `None`) or went down (with why, when known).
    pub(crate) fn set_subscriber_up(&self, up: bool, error: Option<String>) {
        let was = self.subscriber_up.swap(up, Ordering::SeqCst);
        if up {
            self.subscribed.notify_waiters();
        }
        self.note(was, up, error, "subscription");
    }

    /// The publishing side came up or went down.
    pub(crate) fn set_publisher_up(&self, up: bool, error: Option<String>) {
        let was = self.publisher_up.swap(up, Ordering::SeqCst);
        self.note(was, up, error, "publishing connection");
    }

    /// Waits until the subscription is up: nothing is published while it is down, because
    /// whoever hears an envelope from this node answers on this node's stream (snapshot
    /// requests, hellos), and those answers would be lost. Envelopes wait in the queue meanwhile
    /// (within its cap). False when the engine stops first.
    pub(crate) async fn until_subscribed(&self, stop: &mut watch::Receiver<bool>) -> bool {
        while !self.subscriber_up() {
            if *stop.borrow() {
                return false;
            }
            tokio::select! {
                _ = stop.changed() => return false,
                _ = self.subscribed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
        true
    }

    /// Logs a connection's change of state once (and a new kind of error once).
    fn note(&self, was: bool, up: bool, error: Option<String>, what: &str) {
        let engine = self.settings.engine;
        let broker = &self.settings.address;
        let mut st = self.state.lock();
        if up {
            st.last_error = None;
            if !was {
                tracing::info!(engine, %broker, "{engine} {what} ready");
            }
            return;
        }
        let Some(mut error) = error else { return };
        let auth = (self.settings.is_auth_error)(&error);
        if auth {
            error = format!("{engine} authentication failed: {error}");
        }
        let new_kind = st.last_error.as_deref() != Some(error.as_str());
        if was || new_kind {
            if auth {
                tracing::error!(engine, %broker, error = %Printable(&error), "{engine} {what} refused: check {}; serving local clients only, retrying", self.settings.credentials_hint);
            } else {
                let state = if was { "lost" } else { "unavailable" };
                tracing::warn!(engine, %broker, error = %Printable(&error), "{engine} {what} {state}: serving local clients only, reconnecting with backoff");
            }
        }
        st.last_error = Some(error);
    }

    /// This node left stream `name`: what it misses while away is not a loss.
    pub(crate) fn forget_stream(&self, name: &str) {
        self.state.lock().inbound.forget_stream(name);
    }

    /// Counts envelopes handed to the broker.
    pub(crate) fn add_out(&self, envelopes: u64, bytes: u64) {
        self.stats.add_out(&self.metrics, envelopes, bytes);
    }

    /// Counts envelopes dropped because the broker refused or failed them.
    pub(crate) fn add_publish_errors(&self, n: u64) {
        self.stats.add_publish_errors(&self.metrics, n);
    }

    /// Counts a subscription re-established after the first.
    pub(crate) fn add_reconnect(&self) {
        self.stats.add_reconnect(&self.metrics);
    }

    fn add_malformed(&self) {
        self.stats.add_malformed(&self.metrics);
    }

    /// One message from the broker on stream `stream`.
    pub(crate) fn on_message(&self, stream: &str, payload: Bytes) {
        let stream_kind = self.names.kind_of(stream);
        if stream_kind == StreamKind::Foreign {
            return;
        }
        let len = payload.len();
        if len > self.settings.max_message_bytes {
            self.add_malformed();
            tracing::debug!(stream = %Printable(stream), len, "oversize envelope dropped");
            return;
        }
        let envelope = match Envelope::decode(payload) {
            Ok(e) => e,
            Err(e) => {
                self.add_malformed();
                tracing::debug!(stream = %Printable(stream), error = %e, "undecodable envelope dropped");
                return;
            }
        };
        if envelope.origin.node_id == self.me.node_id {
            if envelope.origin.incarnation != self.me.incarnation && envelope.kind == Kind::Hello {
                tracing::warn!(node = %self.me.node_id, engine = self.settings.engine, "another process uses this node id on the same broker streams");
            }
            return;
        }
        self.stats.add_in(len as u64);
        let now = Instant::now();
        let mut greet = Vec::new();
        {
            let mut st = self.state.lock();
            if st.stopped {
                return;
            }
            let changes = st.membership.heard(&envelope.origin, now);
            for c in &changes {
                if let PeerChange::Up(o) = c {
                    greet.push(o.node_id.clone());
                    st.departed.remove(&o.node_id);
                }
            }
            self.reports.push(Report::changes(changes));
            if !st.membership.is_live(&envelope.origin) {
                drop(st);
                self.drain_reports();
                return;
            }
            let counters = st
                .peer_metrics
                .entry(envelope.origin.node_id.clone())
                .or_insert_with(|| PeerCounters::new(&envelope.origin.node_id));
            counters.envelopes_in.increment(1);
            counters.bytes_in.increment(len as u64);
            let lost = st.inbound.accept(&envelope.origin, stream, envelope.seq);
            if lost > 0 {
                if let Some(c) = st.peer_metrics.get(&envelope.origin.node_id) {
                    c.lost_in.increment(lost);
                }
                self.lost(&mut st, &envelope.origin, lost, stream_kind, now);
            }
            match envelope.kind {
                Kind::Bye => {
                    let changes = st.membership.bye(&envelope.origin);
                    self.reports.push(Report::changes(changes));
                }
                Kind::Hello | Kind::Heartbeat => {}
                _ => self.reports.push_one(Report::Envelope(envelope)),
            }
        }
        // A node seen for the first time learns of this one before anything else from it.
        for node in greet {
            self.send_to(&node, Kind::Hello, Bytes::new());
        }
        self.drain_reports();
    }

    /// Counts and logs `lost` envelopes of `origin`; a control-stream loss resynchronises.
    fn lost(&self, st: &mut State, origin: &Origin, lost: u64, kind: StreamKind, now: Instant) {
        self.stats.add_gaps(lost);
        st.gaps_unlogged += lost;
        if st
            .gap_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(engine = self.settings.engine, peer = %Printable(&origin.node_id), lost = st.gaps_unlogged, "envelopes lost on the broker (sequence gap)");
            st.gaps_unlogged = 0;
            st.gap_log = Some(now);
        }
        if kind == StreamKind::Channel {
            return;
        }
        let recent = st
            .last_resync
            .get(&origin.node_id)
            .is_some_and(|t| now.duration_since(*t) < RESYNC_SPACING);
        if recent {
            st.pending_resync
                .insert(origin.node_id.clone(), (origin.clone(), lost));
        } else {
            st.last_resync.insert(origin.node_id.clone(), now);
            self.stats.add_resync();
            self.reports
                .push_one(Report::Resync(origin.clone(), ResyncCause::Lost(lost)));
        }
    }

    /// Peers found gone by an engine's prober: down at once.
    pub(crate) fn departed(&self, peers: &[Origin], reason: DownReason) {
        {
            let st = &mut *self.state.lock();
            if st.stopped {
                return;
            }
            for peer in peers {
                let changes = st.membership.departed(peer, reason);
                self.reports.push(Report::changes(changes));
            }
        }
        self.drain_reports();
    }

    /// Tells the handler what was queued, in order, one drainer at a time (never with the
    /// state lock held).
    fn drain_reports(&self) {
        self.reports.drain(|o| {
            {
                let mut st = self.state.lock();
                st.departed.insert(o.node_id.clone(), Instant::now());
                st.last_resync.remove(&o.node_id);
                st.pending_resync.remove(&o.node_id);
            }
            self.outbound.lock().forget(&self.names.node(&o.node_id));
        });
    }

    /// Starts the ticker task (heartbeats, failure detection by silence, resynchronisations that
    /// had to wait); it ends when the engine stops.
    pub(crate) fn spawn_ticker(self: &Arc<Self>) {
        self.spawn(ticker::ticker(self.clone()));
    }

    /// Runs one of the engine's tasks (owned by the core: `stop` ends it and waits for it).
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// How many of the engine's tasks are running (none once `stop` returned).
    pub(crate) fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Says bye (when the broker is reachable), stops every engine task and reports every peer
    /// down.
    pub(crate) async fn stop(&self) {
        self.stats.log(self.settings.engine);
        if self.publisher_up() && self.subscriber_up() {
            self.send_all(Kind::Bye, Bytes::new());
            if let Some(flushed) = self.queue.flush() {
                let _ = tokio::time::timeout(self.settings.flush_timeout, flushed).await;
            }
        }
        self.state.lock().stopped = true;
        let _ = self.stop.send(true);
        // Every task watches the stop signal; one stuck on the broker is cancelled.
        self.tasks.stop(STOP_GRACE).await;
        self.subscriber_up.store(false, Ordering::SeqCst);
        self.publisher_up.store(false, Ordering::SeqCst);
        {
            let mut st = self.state.lock();
            let changes = st.membership.clear(DownReason::LocalStop);
            self.reports.push(Report::changes(changes));
        }
        self.drain_reports();
    }
}
