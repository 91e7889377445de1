//! The `redis` engine: nodes meet on Redis Pub/Sub instead of linking to each other.
//!
//! Everything brokers share (membership by hello, heartbeat and silence, per-stream sequence
//! numbers, gap counting and resync, the publish queue) is in `cluster::broker`;
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
pub(crate) mod publisher;
mod subscriber;

use std::collections::HashSet;
use std::sync::Arc;

use parking_lot::Mutex;

pub use config::{RedisConfig, RedisConfigError, RedisRouting};

use super::ClusterConfig;
use super::broker::engine::BrokerEngine;
use super::broker::interest::Subscriptions;
use super::broker::{BrokerCore, BrokerSettings};
use super::engine::{Engine, EngineStart};
use super::envelope::Origin;
use crate::error::{Error, Result};
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

    /// The last error Redis gave, if the engine is not ready because of it.
    pub fn last_error(&self) -> Option<String> {
        self.shared.core.last_error()
    }

    /// Counters.
    pub fn stats(&self) -> &RedisStats {
        self.shared.core.stats()
    }
}

impl BrokerEngine for RedisEngine {
    const NAME: &'static str = "redis";
    fn core(&self) -> &BrokerCore {
        &self.shared.core
    }
    fn subscriptions(&self) -> &Subscriptions {
        &self.shared.subscriptions
    }
    fn channel_streams(&self) -> bool {
        self.shared.cfg.routing == RedisRouting::Channel
    }
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
            "redis at {} on channel {} ({routing} routing)",
            cfg.display_address(),
            cfg.channel
        )
    }
}
