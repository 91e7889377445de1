//! The `redis-cluster` engine: nodes meet on Redis Cluster sharded Pub/Sub (SSUBSCRIBE /
//! SPUBLISH), so traffic spreads over the masters instead of every message reaching every shard.
//!
//! Everything brokers share (membership, per-stream sequence numbers, gap counting and resync,
//! the publish queue) is in `cluster::broker`; this folder holds only Redis
//! Cluster's side: the channel names with their hash tags ([`names`]), one cluster connection
//! that subscribes and keeps the subscriptions whole (`subscriber`), a writer task that publishes
//! queued envelopes slot by slot (`publisher`), and fast detection of a killed peer (`prober`,
//! `PUBSUB SHARDNUMSUB` on the master of the control slot).
//!
//! The client is `redis`'s cluster client (RESP3): it keeps the slot map, follows MOVED and ASK,
//! reconnects each node on its own and puts sharded subscriptions back after a reconnection. The
//! engine does not trust that blindly: a lost node connection, a subscription the server dropped
//! (its slot moved) or a failed publish makes the subscriber subscribe again to everything, slot
//! by slot, and only the control slot (the shared channel and this node's own) decides
//! readiness: a master that carries only partitions can be away without the node being declared
//! dead by its peers; what its partitions carried meanwhile is lost and counted.
//!
//! - [`config`]: the options.

pub mod config;
pub mod names;
mod prober;
mod publisher;
mod subscriber;

use std::collections::HashSet;
use std::sync::Arc;

use ::redis::cluster_async::ClusterConnection;
use parking_lot::Mutex;
use tokio::sync::Notify;

pub use config::{RedisClusterConfig, RedisClusterConfigError};

use super::ClusterConfig;
use super::broker::engine::BrokerEngine;
use super::broker::interest::Subscriptions;
use super::broker::{BrokerCore, BrokerSettings};
use super::engine::{Engine, EngineStart};
use super::envelope::Origin;
use super::redis::RedisRouting;
use crate::error::{Error, Result};
use names::Names;

/// Counters of the Redis Cluster engine (the counters every broker engine keeps).
pub type RedisClusterStats = super::broker::stats::BrokerStats;

/// A running Redis Cluster engine. Cheap to clone.
#[derive(Clone)]
pub struct RedisClusterEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RedisClusterEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisClusterEngine")
            .field("node", &self.shared.core.origin().node_id)
            .field("seeds", &self.shared.cfg.display_address())
            .finish()
    }
}

/// What the engine's tasks share.
pub(crate) struct Shared {
    core: Arc<BrokerCore>,
    cfg: RedisClusterConfig,
    names: Names,
    /// The sgc channels with local subscribers (per-channel routing), kept by the cluster.
    keys: Arc<Mutex<HashSet<Arc<str>>>>,
    subscriptions: Subscriptions,
    /// The cluster connection while the control subscription is up (publishing and probing
    /// share it).
    connection: Mutex<Option<ClusterConnection>>,
    /// The writer saw a failure: the subscriber checks every subscription again.
    trouble: Notify,
}

impl Shared {
    /// The connection, while the control subscription is up.
    fn connection(&self) -> Option<ClusterConnection> {
        self.connection.lock().clone()
    }
}

/// Whether a Redis error message means "wrong credentials".
fn is_auth_error(error: &str) -> bool {
    error.contains("WRONGPASS")
        || error.contains("NOAUTH")
        || error.contains("AuthenticationFailed")
        || error.contains("invalid password")
        || error.contains("invalid username-password")
}

/// Starts the Redis Cluster engine for the cluster (registered in `cluster::engines`).
pub(crate) async fn start(config: &ClusterConfig, start: EngineStart) -> Result<Arc<dyn Engine>> {
    let before = start.before_start;
    let engine = RedisClusterEngine::start_with(
        config.redis_cluster_settings(),
        start.origin,
        start.handler,
        start.channels,
        |r| before(Arc::new(r.clone())),
    )
    .await?;
    Ok(Arc::new(engine))
}

impl RedisClusterEngine {
    /// Starts publishing and subscribing for node `me` (the cluster need not be up: the engine
    /// keeps trying, with `ready` false meanwhile). `keys` are the sgc channels with local
    /// subscribers (per-channel routing; the cluster keeps the set). `before_start(&engine)` runs
    /// before any envelope can arrive.
    pub async fn start_with(
        cfg: RedisClusterConfig,
        me: Origin,
        handler: Arc<dyn super::engine::EngineHandler>,
        keys: Arc<Mutex<HashSet<Arc<str>>>>,
        before_start: impl FnOnce(&RedisClusterEngine),
    ) -> Result<Self> {
        cfg.validate().map_err(|e| Error::Config(e.to_string()))?;
        let names = Names::new(&cfg);
        let settings = BrokerSettings {
            engine: "redis-cluster",
            address: cfg.display_address(),
            credentials_hint: "cluster.redis_cluster.username and password",
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
            names,
            keys,
            subscriptions,
            connection: Mutex::new(None),
            trouble: Notify::new(),
        });
        let engine = Self {
            shared: shared.clone(),
        };
        before_start(&engine);
        // Every task is the core's: its `stop` ends them and waits for them.
        core.spawn(publisher::writer(shared.clone(), queue_rx));
        core.spawn(subscriber::subscriber(shared.clone(), commands_rx));
        core.spawn_ticker();
        if shared.cfg.probe_interval_ms > 0 {
            core.spawn(super::broker::probe::prober(
                core.clone(),
                shared.cfg.probe_interval(),
                prober::ShardNumSub(shared.clone()),
            ));
        }
        tracing::info!(
            node = %core.origin().node_id,
            seeds = %shared.cfg.display_address(),
            prefix = %shared.cfg.prefix,
            partitions = shared.cfg.partitions,
            routing = ?shared.cfg.routing,
            "redis-cluster engine started"
        );
        Ok(engine)
    }

    /// This node.
    pub fn origin(&self) -> &Origin {
        self.shared.core.origin()
    }

    /// The last error Redis gave, if the engine is not ready because of it.
    pub fn last_error(&self) -> Option<String> {
        self.shared.core.last_error()
    }

    /// Counters.
    pub fn stats(&self) -> &RedisClusterStats {
        self.shared.core.stats()
    }

    /// The Redis channel sgc channel `channel`'s traffic travels on.
    pub fn channel_stream(&self, channel: &str) -> String {
        use super::broker::streams::StreamNames;
        self.shared.names.channel(channel)
    }
}

impl BrokerEngine for RedisClusterEngine {
    const NAME: &'static str = "redis-cluster";
    fn core(&self) -> &BrokerCore {
        &self.shared.core
    }
    fn subscriptions(&self) -> &Subscriptions {
        &self.shared.subscriptions
    }
    /// sgc traffic always travels on its partition's stream, spread over the masters.
    fn channel_streams(&self) -> bool {
        true
    }
    /// With shared routing every partition is subscribed to already.
    fn subscribes_per_channel(&self) -> bool {
        self.shared.cfg.routing == RedisRouting::Channel
    }
    fn describe(&self) -> String {
        let cfg = &self.shared.cfg;
        let routing = match cfg.routing {
            RedisRouting::Shared => "shared",
            RedisRouting::Channel => "per-channel",
        };
        format!(
            "redis-cluster at {} with prefix {} ({} partitions, {routing} routing)",
            cfg.display_address(),
            cfg.prefix,
            cfg.partitions
        )
    }
    /// Readiness follows the control slot only, and the engine does not say whether it hears
    /// the rest of the cluster: always true, as before the engines shared this code.
    fn reaches_cluster(&self) -> bool {
        true
    }
    fn release(&self) {
        self.shared.connection.lock().take();
    }
}
