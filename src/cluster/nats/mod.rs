//! The `nats` engine: nodes meet on core NATS Pub/Sub instead of linking to each other.
//!
//! Everything brokers share (membership by hello, heartbeat and silence, per-stream sequence
//! numbers, gap counting and resync, the publish queue) is in `cluster::broker`;
//! this folder holds only NATS's side: the subjects ([`names`]), one client connection that
//! async-nats keeps up (it reconnects and subscribes again by itself) with a task that subscribes
//! to the shared subject, this node's own subject and (per-channel routing) the subjects of the
//! channels with local subscribers (`subscriber`), a writer task that publishes queued envelopes
//! in order (`publisher`), and fast detection of a killed peer (`prober`): a request on each live
//! peer's own subject that the server answers "no responders" once its subscription is gone.
//!
//! - [`config`]: the options.

pub mod config;
pub mod names;
mod prober;
mod publisher;
mod subscriber;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

pub use config::{NatsConfig, NatsConfigError, NatsRouting};

use super::ClusterConfig;
use super::broker::engine::BrokerEngine;
use super::broker::interest::Subscriptions;
use super::broker::{BrokerCore, BrokerSettings};
use super::engine::{Engine, EngineHandler, EngineStart};
use super::envelope::Origin;
use crate::error::{Error, Result};
use names::Names;

/// Counters of the NATS engine (the counters every broker engine keeps).
pub type NatsStats = super::broker::stats::BrokerStats;

/// A running NATS engine. Cheap to clone.
#[derive(Clone)]
pub struct NatsEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for NatsEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsEngine")
            .field("node", &self.shared.core.origin().node_id)
            .field("nats", &self.shared.cfg.display_address())
            .finish()
    }
}

/// What the NATS tasks share.
pub(crate) struct Shared {
    core: Arc<BrokerCore>,
    cfg: NatsConfig,
    /// The client options (files already read), cloned for each new connection.
    options: async_nats::ConnectOptions,
    servers: Vec<async_nats::ServerAddr>,
    names: Names,
    /// The sgc channels with local subscribers (per-channel routing), kept by the cluster.
    keys: Arc<Mutex<HashSet<Arc<str>>>>,
    subscriptions: Subscriptions,
    /// The client while it is connected and subscribed (the writer and the prober use it).
    client: Mutex<Option<async_nats::Client>>,
    /// When the connection last came back up after a loss: probes wait for the peers, which
    /// may have lost the server too, to subscribe again.
    reconnected_at: Mutex<Option<Instant>>,
}

/// Whether a NATS error message means "wrong credentials".
fn is_auth_error(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("authorization violation")
        || e.contains("authentication")
        || e.contains("user authentication expired")
        || e.contains("failed signing nonce")
}

/// Starts the NATS engine for the cluster (registered in `cluster::engines`).
pub(crate) async fn start(config: &ClusterConfig, start: EngineStart) -> Result<Arc<dyn Engine>> {
    let before = start.before_start;
    let engine = NatsEngine::start_with(
        config.nats_settings(),
        start.origin,
        start.handler,
        start.channels,
        |n| before(Arc::new(n.clone())),
    )
    .await?;
    Ok(Arc::new(engine))
}

impl NatsEngine {
    /// Starts publishing and subscribing for node `me` (NATS need not be up: the engine keeps
    /// trying, with `ready` false meanwhile and the reason in `last_error`). `keys` are the sgc
    /// channels with local subscribers (per-channel routing; the cluster keeps the set).
    /// `before_start(&engine)` runs before any envelope can arrive.
    pub async fn start_with(
        cfg: NatsConfig,
        me: Origin,
        handler: Arc<dyn EngineHandler>,
        keys: Arc<Mutex<HashSet<Arc<str>>>>,
        before_start: impl FnOnce(&NatsEngine),
    ) -> Result<Self> {
        let options = cfg
            .connect_options()
            .map_err(|e| Error::Config(e.to_string()))?
            // The server's monitoring (`connz`) names each connection by its node.
            .name(&*me.node_id);
        let servers = cfg
            .server_addrs()
            .map_err(|e| Error::Config(e.to_string()))?;
        let names = Names::new(&cfg.subject_prefix);
        let settings = BrokerSettings {
            engine: "nats",
            address: cfg.display_address(),
            credentials_hint: "cluster.nats.token, username/password, nkey_seed_file or creds_file",
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
            options,
            servers,
            names,
            keys,
            subscriptions,
            client: Mutex::new(None),
            reconnected_at: Mutex::new(None),
        });
        let engine = Self {
            shared: shared.clone(),
        };
        before_start(&engine);
        // Every task is the core's: `stop` ends them and waits for them.
        core.spawn(publisher::writer(shared.clone(), queue_rx));
        core.spawn(subscriber::subscriber(shared.clone(), commands_rx));
        core.spawn_ticker();
        if shared.cfg.probe_interval_ms > 0 {
            core.spawn(super::broker::probe::prober(
                core.clone(),
                shared.cfg.probe_interval(),
                prober::Requests(shared.clone()),
            ));
        }
        tracing::info!(
            node = %core.origin().node_id,
            nats = %shared.cfg.display_address(),
            prefix = %shared.cfg.subject_prefix,
            routing = ?shared.cfg.routing,
            "nats engine started"
        );
        Ok(engine)
    }

    /// This node.
    pub fn origin(&self) -> &Origin {
        self.shared.core.origin()
    }

    /// Why the engine is not ready (the connection's last error), when it knows.
    pub fn last_error(&self) -> Option<String> {
        self.shared.core.last_error()
    }

    /// Counters.
    pub fn stats(&self) -> &NatsStats {
        self.shared.core.stats()
    }
}

impl BrokerEngine for NatsEngine {
    const NAME: &'static str = "nats";
    fn core(&self) -> &BrokerCore {
        &self.shared.core
    }
    fn subscriptions(&self) -> &Subscriptions {
        &self.shared.subscriptions
    }
    fn channel_streams(&self) -> bool {
        self.shared.cfg.routing == NatsRouting::Channel
    }
    fn subscribes_per_channel(&self) -> bool {
        self.shared.cfg.routing == NatsRouting::Channel
    }
    fn describe(&self) -> String {
        let cfg = &self.shared.cfg;
        let routing = match cfg.routing {
            NatsRouting::Shared => "shared",
            NatsRouting::Channel => "per-channel",
        };
        format!(
            "nats at {} on subjects {}.* ({routing} routing)",
            cfg.display_address(),
            cfg.subject_prefix
        )
    }
    fn release(&self) {
        self.shared.client.lock().take();
    }
}
