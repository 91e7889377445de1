//! The `redis` engine: nodes meet on Redis Pub/Sub instead of linking to each other.
//!
//! Everything brokers share (membership by hello, heartbeat and silence, per-stream sequence
//! numbers, gap counting and resync, the publish queue) is in [`broker`](crate::cluster::broker);
//! this folder holds only Redis's side: the channel names ([`names`]), a writer task that publishes
//! queued envelopes in pipelined batches (`publisher`), one Pub/Sub connection subscribed to the
//! shared channel, this node's own channel and (per-channel routing) the channels with local
//! subscribers (`subscriber`), and fast detection of a peer whose Redis subscription is gone, a
//! killed process (`prober`, `PUBSUB NUMSUB`).
//!
//! - [`config`]: the options.

pub mod config;
pub mod names;
mod prober;
mod publisher;
mod subscriber;

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

pub use config::{RedisConfig, RedisConfigError, RedisRouting};

use super::ClusterConfig;
use super::broker::interest::Subscriptions;
use super::broker::{BrokerCore, BrokerSettings};
use super::engine::{Engine, EngineFuture, EngineStart};
use super::envelope::{Kind, Origin};
use crate::error::{Error, Result};
use crate::relay::InterestReady;
use names::Names;

/// Counters of the Redis engine (the counters every broker engine keeps).
pub type RedisStats = super::broker::stats::BrokerStats;

/// A running Redis engine. Cheap to clone.
#[derive(Clone)]
pub struct RedisEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine")
            .field("node", &self.shared.core.origin().node_id)
            .field("redis", &self.shared.cfg.display_address())
            .finish()
    }
}

/// What the Redis tasks share.
pub(crate) struct Shared {
    core: Arc<BrokerCore>,
    cfg: RedisConfig,
    client: redis::Client,
    names: Names,
    /// The sgc channels with local subscribers (per-channel routing), kept by the cluster.
    keys: Arc<Mutex<HashSet<Arc<str>>>>,
    subscriptions: Subscriptions,
    /// A clone of the publishing connection while it is up (the prober's queries share it).
    probe_connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
}

/// Whether a Redis error message means "wrong credentials".
fn is_auth_error(error: &str) -> bool {
    error.contains("WRONGPASS")
        || error.contains("NOAUTH")
        || error.contains("AuthenticationFailed")
        || error.contains("invalid password")
}

/// Starts the Redis engine for the cluster (registered in `cluster::engines`).
pub(crate) async fn start(config: &ClusterConfig, start: EngineStart) -> Result<Arc<dyn Engine>> {
    let before = start.before_start;
    let engine = RedisEngine::start_with(
        config.redis_settings(),
        start.origin,
        start.handler,
        start.channels,
        |r| before(Arc::new(r.clone())),
    )
    .await?;
    Ok(Arc::new(engine))
}

impl RedisEngine {
    /// Starts publishing and subscribing for node `me` (Redis need not be up: the engine keeps
    /// trying, with `ready` false meanwhile). `keys` are the sgc channels with local subscribers
    /// (per-channel routing; the cluster keeps the set). `before_start(&engine)` runs before any
    /// envelope can arrive.
    pub async fn start_with(
        cfg: RedisConfig,
        me: Origin,
        handler: Arc<dyn super::engine::EngineHandler>,
        keys: Arc<Mutex<HashSet<Arc<str>>>>,
        before_start: impl FnOnce(&RedisEngine),
    ) -> Result<Self> {
        let client = cfg.client().map_err(|e| Error::Config(e.to_string()))?;
        let names = Names::new(&cfg.channel);
        let settings = BrokerSettings {
            engine: "redis",
            address: cfg.display_address(),
            credentials_hint: "cluster.redis.username and password",
            peer_timeout: cfg.peer_timeout(),
            heartbeat_interval: cfg.heartbeat_interval(),
            queue_bytes: cfg.queue_bytes,
            max_message_bytes: cfg.max_message_bytes,
            flush_timeout: cfg.response_timeout(),
            is_auth_error,
        };
        let (core, queue_rx) = BrokerCore::new(me, settings, Arc::new(names.clone()), handler);
        let (subscriptions, commands_rx) = Subscriptions::new();
        let shared = Arc::new(Shared {
            core: core.clone(),
            cfg,
            client,
            names,
            keys,
            subscriptions,
            probe_connection: Mutex::new(None),
        });
        let engine = Self {
            shared: shared.clone(),
        };
        before_start(&engine);
        core.spawn(publisher::writer(shared.clone(), queue_rx));
        core.spawn(subscriber::subscriber(shared.clone(), commands_rx));
        core.spawn_ticker();
        if shared.cfg.probe_interval_ms > 0 {
            core.spawn(super::broker::probe::prober(
                core.clone(),
                shared.cfg.probe_interval(),
                prober::NumSub(shared.clone()),
            ));
        }
        tracing::info!(
            node = %core.origin().node_id,
            redis = %shared.cfg.display_address(),
            channel = %shared.cfg.channel,
            routing = ?shared.cfg.routing,
            "redis engine started"
        );
        Ok(engine)
    }

    /// This node.
    pub fn origin(&self) -> &Origin {
        self.shared.core.origin()
    }

    /// Publishes an envelope for every other node (the shared channel).
    pub fn send_all(&self, kind: Kind, payload: Bytes) {
        self.shared.core.send_all(kind, payload);
    }

    /// Publishes an envelope for one node (its own channel).
    pub fn send_to(&self, node_id: &str, kind: Kind, payload: Bytes) {
        self.shared.core.send_to(node_id, kind, payload);
    }

    /// Publishes an envelope for the nodes subscribed to sgc channel `channel` (per-channel
    /// routing; on the shared channel otherwise).
    pub fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        if self.shared.cfg.routing == RedisRouting::Shared {
            return self.send_all(kind, payload);
        }
        self.shared.core.send_channel(channel, kind, payload);
    }

    /// Subscribes to sgc channel `channel`'s Redis channel; `ready` runs once Redis confirmed it
    /// (at once while Redis is away, at most a second later in any case).
    pub fn subscribe_channel(&self, channel: &str, ready: InterestReady) {
        self.shared
            .subscriptions
            .subscribe(&self.shared.core, channel, ready);
    }

    /// Leaves sgc channel `channel`'s Redis channel.
    pub fn unsubscribe_channel(&self, channel: &str) {
        self.shared
            .subscriptions
            .unsubscribe(&self.shared.core, channel);
    }

    /// The live nodes seen through Redis.
    pub fn live_peers(&self) -> Vec<Origin> {
        self.shared.core.live_peers()
    }

    /// How many other nodes are live (heard within `peer_timeout`).
    pub fn connected_peer_count(&self) -> usize {
        self.shared.core.connected_peer_count()
    }

    /// Subscribed (subscription confirmed) and able to publish.
    pub fn ready(&self) -> bool {
        self.shared.core.ready()
    }

    /// The last error Redis gave, if the engine is not ready because of it.
    pub fn last_error(&self) -> Option<String> {
        self.shared.core.last_error()
    }

    /// Counters.
    pub fn stats(&self) -> &RedisStats {
        self.shared.core.stats()
    }

    /// Says bye (when Redis is reachable), stops publishing and subscribing, and reports every
    /// peer down.
    pub async fn stop(&self) {
        self.shared.core.stop().await;
    }
}

impl Engine for RedisEngine {
    fn name(&self) -> &'static str {
        "redis"
    }
    fn describe(&self) -> String {
        let cfg = &self.shared.cfg;
        let routing = match cfg.routing {
            RedisRouting::Shared => "shared",
            RedisRouting::Channel => "per-channel",
        };
        format!(
            "redis at {} on channel {} ({routing} routing)",
            cfg.display_address(),
            cfg.channel
        )
    }
    fn send_all(&self, kind: Kind, payload: Bytes) {
        RedisEngine::send_all(self, kind, payload);
    }
    fn send_to(&self, node: &str, kind: Kind, payload: Bytes) {
        RedisEngine::send_to(self, node, kind, payload);
    }
    fn send_channel(&self, channel: &str, kind: Kind, payload: Bytes) {
        RedisEngine::send_channel(self, channel, kind, payload);
    }
    fn subscribe_channel(&self, channel: &str, ready: InterestReady) {
        RedisEngine::subscribe_channel(self, channel, ready);
    }
    fn unsubscribe_channel(&self, channel: &str) {
        RedisEngine::unsubscribe_channel(self, channel);
    }
    fn live_peers(&self) -> Vec<Origin> {
        RedisEngine::live_peers(self)
    }
    fn connected_peer_count(&self) -> usize {
        RedisEngine::connected_peer_count(self)
    }
    fn ready(&self) -> bool {
        RedisEngine::ready(self)
    }
    fn last_error(&self) -> Option<String> {
        RedisEngine::last_error(self)
    }
    fn reaches_cluster(&self) -> bool {
        RedisEngine::ready(self)
    }
    fn stop(&self) -> EngineFuture<'_, ()> {
        Box::pin(RedisEngine::stop(self))
    }
    fn task_count(&self) -> usize {
        self.shared.core.task_count()
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}
