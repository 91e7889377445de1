//! The `redis` engine: nodes meet on Redis Pub/Sub instead of linking to each other.
//!
//! Every node publishes its envelopes (the same codec as the mesh) to the shared Redis channel,
//! or to one node's own channel for what only that node needs (snapshots), or, with per-channel
//! routing, to an sgc channel's own Redis channel. Each node subscribes to the shared channel, its
//! own channel and the channels it has local subscribers for; it drops its own envelopes.
//!
//! Membership: a node announces itself (hello) when its subscription is ready and answers the
//! hello of a node it has not seen; every node heartbeats on the shared channel; a node unseen for
//! `peer_timeout` is dead (its Presence members are purged), a bye is a departure at once.
//!
//! Redis Pub/Sub is at-most-once: per-stream sequence numbers ([`streams`]) reveal lost
//! envelopes, which are counted and logged, and a loss on a control stream makes this node
//! resynchronise with the origin (snapshots both ways).
//!
//! - [`config`]: the options; [`streams`]: channel names and sequence numbers (sans I/O);
//! - `publisher`: the writer task; `subscriber`: the Pub/Sub task; `prober`: fast detection of a
//!   peer whose Redis subscription is gone (a killed process).

pub mod config;
mod prober;
mod publisher;
mod stats;
pub mod streams;
mod subscriber;

use crate::log_text::Printable;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

pub use config::{RedisConfig, RedisConfigError, RedisRouting};

use super::engine::EngineHandler;
use super::envelope::{Envelope, Kind, Origin};
use super::membership::{DownReason, Membership, PeerChange};
use crate::error::{Error, Result};
use crate::metrics::PeerCounters;
use crate::relay::InterestReady;
use publisher::{Outgoing, PublishQueue, QueueError};
use streams::{InboundSequences, Names, OutboundSequences, StreamKind};
use subscriber::{Command, ReadyOnce};

use stats::EngineMetrics;
pub use stats::RedisStats;

/// How long a first local subscriber waits for Redis to confirm the channel's subscription
/// before it is confirmed anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(1);

/// Least time between two resynchronisations with the same node.
const RESYNC_SPACING: Duration = Duration::from_secs(1);

/// How often silence is checked (peers are declared dead at most this late after `peer_timeout`).
const TICK: Duration = Duration::from_millis(100);

/// A running Redis engine. Cheap to clone.
#[derive(Clone)]
pub struct RedisEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node", &self.shared.me.node_id)
            .field("redis", &self.shared.cfg.display_address())
            .finish()
    }
}

/// Something the handler must hear, queued in the order it was decided.
enum Report {
    Change(PeerChange),
    Resync(Origin, u64),
    Envelope(Envelope),
}

struct State {
    membership: Membership,
    inbound: InboundSequences,
    reports: VecDeque<Report>,
    last_resync: HashMap<Arc<str>, Instant>,
    pending_resync: HashMap<Arc<str>, (Origin, u64)>,
    stopped: bool,
    /// The last Redis error, for `ready` diagnostics and logs.
    last_error: Option<String>,
    /// When the last gap warning was logged (they are aggregated, at most one a second).
    gap_log: Option<Instant>,
    gaps_unlogged: u64,
    /// Per-origin metric handles (made at an origin's first envelope).
    peer_metrics: HashMap<Arc<str>, PeerCounters>,
}

pub(crate) struct Shared {
    me: Origin,
    cfg: RedisConfig,
    client: redis::Client,
    names: Names,
    handler: Arc<dyn EngineHandler>,
    /// The sgc channels with local subscribers (per-channel routing), kept by the cluster.
    keys: Arc<Mutex<HashSet<Arc<str>>>>,
    state: Mutex<State>,
    /// Sequence numbering and queueing happen under this lock, so numbers leave in order.
    outbound: Mutex<OutboundSequences>,
    queue: PublishQueue,
    commands: mpsc::UnboundedSender<Command>,
    subscriber_up: AtomicBool,
    /// Signalled when the subscription comes up (the writer waits for it).
    subscribed: tokio::sync::Notify,
    publisher_up: AtomicBool,
    overflow_logged: AtomicBool,
    stop: watch::Sender<bool>,
    report_lock: Mutex<()>,
    stats: RedisStats,
    /// A clone of the publishing connection while it is up (the prober's queries share it).
    probe_connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    metrics: EngineMetrics,
}

impl RedisEngine {
    /// Starts publishing and subscribing for node `me` (Redis need not be up: the engine keeps
    /// trying, with `ready` false meanwhile). `keys` are the sgc channels with local subscribers
    /// (per-channel routing; the cluster keeps the set). `before_start(&engine)` runs before any
    /// envelope can arrive.
    pub async fn start_with(
        cfg: RedisConfig,
        me: Origin,
        handler: Arc<dyn EngineHandler>,
        keys: Arc<Mutex<HashSet<Arc<str>>>>,
        before_start: impl FnOnce(&RedisEngine),
    ) -> Result<Self> {
        let client = cfg.client().map_err(|e| Error::Config(e.to_string()))?;
        let names = Names::new(&cfg.channel);
        let (queue, queue_rx) = PublishQueue::new(cfg.queue_bytes);
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                membership: Membership::new(me.node_id.clone(), cfg.peer_timeout()),
                inbound: InboundSequences::default(),
                reports: VecDeque::new(),
                last_resync: HashMap::new(),
                pending_resync: HashMap::new(),
                stopped: false,
                last_error: None,
                gap_log: None,
                gaps_unlogged: 0,
                peer_metrics: HashMap::new(),
            }),
            me,
            cfg,
            client,
            names,
            handler,
            keys,
            outbound: Mutex::new(OutboundSequences::default()),
            queue,
            commands,
            subscriber_up: AtomicBool::new(false),
            subscribed: tokio::sync::Notify::new(),
            publisher_up: AtomicBool::new(false),
            overflow_logged: AtomicBool::new(false),
            stop,
            report_lock: Mutex::new(()),
            stats: RedisStats::default(),
            probe_connection: Mutex::new(None),
            metrics: EngineMetrics::new(),
        });
        let engine = Self {
            shared: shared.clone(),
        };
        before_start(&engine);
        tokio::spawn(publisher::writer(shared.clone(), queue_rx));
        tokio::spawn(subscriber::subscriber(shared.clone(), commands_rx));
        tokio::spawn(ticker(shared.clone()));
        if shared.cfg.probe_interval_ms > 0 {
            tokio::spawn(prober::prober(shared.clone()));
        }
        tracing::info!(
            node = %shared.me.node_id,
            redis = %shared.cfg.display_address(),
            channel = %shared.cfg.channel,
            routing = ?shared.cfg.routing,
            "redis engine started"
        );
        Ok(engine)
    }

    /// This node.
    pub fn origin(&self) -> &Origin {
        &self.shared.me
    }

    /// Publishes an envelope for every other node (the shared channel).
    pub fn send_all(&self, kind: Kind, payload: Bytes) {
        let stream = self.shared.names.shared().clone();
        self.shared.publish(stream, kind, payload);
    }

    /// Publishes an envelope for one node (its own channel).
    pub fn send_to(&self, node_id: &str, kind: Kind, payload: Bytes) {
        let stream: Arc<str> = Arc::from(self.shared.names.node(node_id));
        self.shared.publish(stream, kind, payload);
    }

    /// Publishes an envelope for the nodes subscribed to sgc channel `channel` (per-channel
    /// routing; on the shared channel otherwise).
    pub fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        if self.shared.cfg.routing == RedisRouting::Shared {
            return self.send_all(kind, payload);
        }
        let stream: Arc<str> = Arc::from(self.shared.names.channel(channel));
        self.shared.publish(stream, kind, payload);
    }

    /// Subscribes to sgc channel `channel`'s Redis channel; `ready` runs once Redis confirmed it
    /// (at once while Redis is away, at most [`SUBSCRIBE_WAIT`] later in any case).
    pub fn subscribe_channel(&self, channel: &str, ready: InterestReady) {
        let ready = ReadyOnce::new(ready);
        if !self.shared.subscriber_up.load(Ordering::SeqCst) {
            ready.fire();
        } else if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let later = ready.clone();
            rt.spawn(async move {
                tokio::time::sleep(SUBSCRIBE_WAIT).await;
                later.fire();
            });
        }
        let name = Arc::from(self.shared.names.channel(channel));
        if self
            .shared
            .commands
            .send(Command::Subscribe(name, ready.clone()))
            .is_err()
        {
            ready.fire();
        }
    }

    /// Leaves sgc channel `channel`'s Redis channel.
    pub fn unsubscribe_channel(&self, channel: &str) {
        let name = Arc::from(self.shared.names.channel(channel));
        let _ = self.shared.commands.send(Command::Unsubscribe(name));
    }

    /// The live nodes seen through Redis.
    pub fn live_peers(&self) -> Vec<Origin> {
        self.shared.state.lock().membership.live_peers().collect()
    }

    /// How many other nodes are live (heard within `peer_timeout`).
    pub fn connected_peer_count(&self) -> usize {
        self.shared.state.lock().membership.live_count()
    }

    /// Subscribed (subscription confirmed) and able to publish.
    pub fn ready(&self) -> bool {
        !self.shared.state.lock().stopped
            && self.shared.subscriber_up.load(Ordering::SeqCst)
            && self.shared.publisher_up.load(Ordering::SeqCst)
    }

    /// The last error Redis gave, if the engine is not ready because of it.
    pub fn last_error(&self) -> Option<String> {
        self.shared.state.lock().last_error.clone()
    }

    /// Counters.
    pub fn stats(&self) -> &RedisStats {
        &self.shared.stats
    }

    /// Says bye (when Redis is reachable), stops publishing and subscribing, and reports every
    /// peer down.
    pub async fn stop(&self) {
        let s = &self.shared;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            envelopes_in = get(&s.stats.envelopes_in),
            envelopes_out = get(&s.stats.envelopes_out),
            bytes_in = get(&s.stats.bytes_in),
            bytes_out = get(&s.stats.bytes_out),
            gaps = get(&s.stats.gaps),
            publish_errors = get(&s.stats.publish_errors),
            overflows = get(&s.stats.overflows),
            reconnects = get(&s.stats.reconnects),
            resyncs = get(&s.stats.resyncs),
            "redis stats"
        );
        if s.publisher_up.load(Ordering::SeqCst) && s.subscriber_up.load(Ordering::SeqCst) {
            s.publish(s.names.shared().clone(), Kind::Bye, Bytes::new());
            if let Some(flushed) = s.queue.flush() {
                let _ = tokio::time::timeout(s.cfg.response_timeout(), flushed).await;
            }
        }
        s.state.lock().stopped = true;
        let _ = s.stop.send(true);
        s.subscriber_up.store(false, Ordering::SeqCst);
        s.publisher_up.store(false, Ordering::SeqCst);
        {
            let mut st = s.state.lock();
            let changes = st.membership.clear(DownReason::LocalStop);
            st.reports.extend(changes.into_iter().map(Report::Change));
        }
        s.drain_reports();
    }
}

impl Shared {
    /// Numbers one envelope of `stream` and queues it for publishing.
    fn publish(&self, stream: Arc<str>, kind: Kind, payload: Bytes) {
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
            channel: stream,
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
                self.metrics.redis.overflows.increment(1);
                if !self.overflow_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        cap = self.cfg.queue_bytes,
                        "redis publish queue full: envelopes dropped until it drains"
                    );
                }
            }
            Err(QueueError::Closed) => {}
        }
    }

    /// Hello on the shared channel: "this incarnation is here".
    fn announce(&self) {
        self.publish(self.names.shared().clone(), Kind::Hello, Bytes::new());
    }

    fn set_subscriber_up(&self, up: bool, error: Option<String>) {
        let was = self.subscriber_up.swap(up, Ordering::SeqCst);
        if up {
            self.subscribed.notify_waiters();
        }
        self.note(was, up, error, "redis subscription");
    }

    fn set_publisher_up(&self, up: bool, error: Option<String>) {
        let was = self.publisher_up.swap(up, Ordering::SeqCst);
        self.note(was, up, error, "redis publishing connection");
    }

    /// Logs a connection's change of state once (and a new kind of error once).
    fn note(&self, was: bool, up: bool, error: Option<String>, what: &str) {
        let redis = self.cfg.display_address();
        let mut st = self.state.lock();
        if up {
            st.last_error = None;
            if !was {
                tracing::info!(%redis, "{what} ready");
            }
            return;
        }
        let Some(mut error) = error else { return };
        let auth = error.contains("WRONGPASS")
            || error.contains("NOAUTH")
            || error.contains("AuthenticationFailed")
            || error.contains("invalid password");
        if auth {
            error = format!("redis authentication failed: {error}");
        }
        let new_kind = st.last_error.as_deref() != Some(error.as_str());
        if was || new_kind {
            if auth {
                tracing::error!(%redis, error = %Printable(&error), "{what} refused: check cluster.redis.username and password; serving local clients only, retrying");
            } else {
                let state = if was { "lost" } else { "unavailable" };
                tracing::warn!(%redis, error = %Printable(&error), "{what} {state}: serving local clients only, reconnecting with backoff");
            }
        }
        st.last_error = Some(error);
    }

    fn forget_stream(&self, name: &str) {
        self.state.lock().inbound.forget_stream(name);
    }

    /// One message from Redis.
    fn on_message(&self, channel: &str, payload: &[u8]) {
        let stream_kind = self.names.kind_of(channel);
        if stream_kind == StreamKind::Foreign {
            return;
        }
        if payload.len() > self.cfg.max_message_bytes {
            self.add_malformed();
            tracing::debug!(
                channel,
                len = payload.len(),
                "oversize envelope from redis dropped"
            );
            return;
        }
        let envelope = match Envelope::decode(Bytes::copy_from_slice(payload)) {
            Ok(e) => e,
            Err(e) => {
                self.add_malformed();
                tracing::debug!(channel, error = %e, "undecodable envelope from redis dropped");
                return;
            }
        };
        if envelope.origin.node_id == self.me.node_id {
            if envelope.origin.incarnation != self.me.incarnation && envelope.kind == Kind::Hello {
                tracing::warn!(node = %self.me.node_id, "another process uses this node id on the same redis channel");
            }
            return;
        }
        self.stats.envelopes_in.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_in
            .fetch_add(payload.len() as u64, Ordering::Relaxed);
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
                }
            }
            st.reports.extend(changes.into_iter().map(Report::Change));
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
            counters.bytes_in.increment(payload.len() as u64);
            let lost = st.inbound.accept(&envelope.origin, channel, envelope.seq);
            if lost > 0 {
                if let Some(c) = st.peer_metrics.get(&envelope.origin.node_id) {
                    c.lost_in.increment(lost);
                }
                self.lost(&mut st, &envelope.origin, lost, stream_kind, now);
            }
            match envelope.kind {
                Kind::Bye => {
                    let changes = st.membership.bye(&envelope.origin);
                    st.reports.extend(changes.into_iter().map(Report::Change));
                }
                Kind::Hello | Kind::Heartbeat => {}
                _ => st.reports.push_back(Report::Envelope(envelope)),
            }
        }
        // A node seen for the first time learns of this one before anything else from it.
        for node in greet {
            let stream: Arc<str> = Arc::from(self.names.node(&node));
            self.publish(stream, Kind::Hello, Bytes::new());
        }
        self.drain_reports();
    }

    /// Counts and logs `lost` envelopes of `origin`; a control-stream loss resynchronises.
    fn lost(&self, st: &mut State, origin: &Origin, lost: u64, kind: StreamKind, now: Instant) {
        self.stats.gaps.fetch_add(lost, Ordering::Relaxed);
        st.gaps_unlogged += lost;
        if st
            .gap_log
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
        {
            tracing::warn!(peer = %Printable(&origin.node_id), lost = st.gaps_unlogged, "envelopes lost on redis (sequence gap)");
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
            self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
            st.reports.push_back(Report::Resync(origin.clone(), lost));
        }
    }

    /// Tells the handler what was queued, in order, one drainer at a time (never with the
    /// state lock held).
    fn drain_reports(&self) {
        let _one_at_a_time = self.report_lock.lock();
        loop {
            let next = self.state.lock().reports.pop_front();
            let Some(report) = next else {
                return;
            };
            match report {
                Report::Change(PeerChange::Up(o)) => {
                    tracing::info!(peer = %Printable(&o.node_id), incarnation = o.incarnation, "peer connected");
                    self.handler.on_peer_up(&o, None);
                }
                Report::Change(PeerChange::Down(o, reason)) => {
                    tracing::info!(peer = %Printable(&o.node_id), incarnation = o.incarnation, %reason, "peer disconnected");
                    {
                        let mut st = self.state.lock();
                        st.inbound.forget_origin(&o.node_id);
                        st.last_resync.remove(&o.node_id);
                        st.pending_resync.remove(&o.node_id);
                    }
                    self.outbound.lock().forget(&self.names.node(&o.node_id));
                    self.handler.on_peer_down(&o, reason);
                }
                Report::Resync(o, lost) => {
                    tracing::info!(peer = %Printable(&o.node_id), lost, "resynchronising with a node after lost envelopes");
                    self.handler.on_resync_needed(&o, lost);
                }
                Report::Envelope(e) => self.handler.on_envelope(e),
            }
        }
    }
}

/// Heartbeats, failure detection by silence, and resynchronisations that had to wait.
async fn ticker(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut every = tokio::time::interval(TICK.min(shared.cfg.heartbeat_interval()));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeat = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let now = Instant::now();
        if now.duration_since(last_heartbeat) >= shared.cfg.heartbeat_interval() {
            last_heartbeat = now;
            if shared.subscriber_up.load(Ordering::SeqCst) {
                shared.publish(shared.names.shared().clone(), Kind::Heartbeat, Bytes::new());
            }
        }
        {
            let mut st = shared.state.lock();
            if st.stopped {
                return;
            }
            let changes = st.membership.tick(now);
            st.reports.extend(changes.into_iter().map(Report::Change));
            let due: Vec<Arc<str>> = st
                .pending_resync
                .keys()
                .filter(|id| {
                    st.last_resync
                        .get(*id)
                        .is_none_or(|t| now.duration_since(*t) >= RESYNC_SPACING)
                })
                .cloned()
                .collect();
            for id in due {
                if let Some((origin, lost)) = st.pending_resync.remove(&id) {
                    st.last_resync.insert(id, now);
                    shared.stats.resyncs.fetch_add(1, Ordering::Relaxed);
                    st.reports.push_back(Report::Resync(origin, lost));
                }
            }
        }
        shared.drain_reports();
    }
}
