//! Options of the cluster (`[cluster]`): which engine, the cluster's name and secret, failure
//! detection timing, and each engine's own section.

use serde::{Deserialize, Serialize};

use super::mesh::MeshConfig;
use super::nats::NatsConfig;
use super::redis::RedisConfig;
use super::redis_cluster::RedisClusterConfig;

/// Which backplane links the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// No backplane: the node runs alone.
    None,
    /// TCP links between nodes, no infrastructure.
    #[default]
    Mesh,
    /// Redis Pub/Sub.
    Redis,
    /// Redis Cluster sharded Pub/Sub.
    #[serde(rename = "redis-cluster")]
    RedisCluster,
    /// Core NATS Pub/Sub.
    Nats,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(EngineKind::None),
            "mesh" => Ok(EngineKind::Mesh),
            "redis" => Ok(EngineKind::Redis),
            "redis-cluster" => Ok(EngineKind::RedisCluster),
            "nats" => Ok(EngineKind::Nats),
            other => Err(format!(
                "unknown cluster engine {other:?} (expected none, mesh, redis, redis-cluster or nats)"
            )),
        }
    }
}

/// The `[cluster]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `none` (a single node), `mesh` (default), `redis`, `redis-cluster` or `nats`.
    pub engine: EngineKind,
    /// The cluster's name: nodes of another cluster are refused.
    pub name: String,
    /// The shared secret every node must prove (never sent), at least
    /// [`MIN_SECRET_LEN`](super::mesh::MIN_SECRET_LEN) bytes. Empty: the mesh binds to loopback
    /// only. Better given by `secret_file` or `WSCLUSTER_CLUSTER__SECRET` than by a flag (which
    /// shows in the process list).
    pub secret: String,
    /// A file holding the cluster secret (one trailing newline is ignored); read by
    /// [`Config::load`](crate::Config::load) (or [`ClusterConfig::load_secret_file`]). Not
    /// together with `secret`.
    pub secret_file: String,
    /// The secret read from `secret_file`.
    #[serde(skip)]
    pub secret_from_file: Option<String>,
    /// A peer silent for this long (milliseconds) is dead and its Presence members are purged.
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Mesh: send a channel's live sgc traffic only to nodes with subscribers for it (off: to
    /// every node; kept for comparison and for clusters where every node subscribes to
    /// everything). The Redis engine has its own choice: `cluster.redis.routing`.
    pub interest_routing: bool,
    /// The mesh engine (`[cluster.mesh]`).
    pub mesh: MeshConfig,
    /// The Redis engine (`[cluster.redis]`).
    pub redis: RedisConfig,
    /// The Redis Cluster engine (`[cluster.redis_cluster]`).
    pub redis_cluster: RedisClusterConfig,
    /// The NATS engine (`[cluster.nats]`).
    pub nats: NatsConfig,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            engine: EngineKind::Mesh,
            name: "wscluster".into(),
            secret: String::new(),
            secret_file: String::new(),
            secret_from_file: None,
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
            interest_routing: true,
            mesh: MeshConfig::default(),
            redis: RedisConfig::default(),
            redis_cluster: RedisClusterConfig::default(),
            nats: NatsConfig::default(),
        }
    }
}

impl ClusterConfig {
    /// A mesh cluster on loopback (ephemeral port) dialing `peers`, with this secret.
    pub fn loopback_mesh(peers: Vec<String>, secret: &str) -> Self {
        Self {
            secret: secret.into(),
            mesh: MeshConfig {
                peers,
                ..MeshConfig::loopback()
            },
            ..Self::default()
        }
    }

    /// The secret in force: the one read from `secret_file`, else `secret`.
    pub fn effective_secret(&self) -> &str {
        self.secret_from_file.as_deref().unwrap_or(&self.secret)
    }

    /// Reads `secret_file` (when set) into `secret_from_file`: the file's text without one
    /// trailing newline (`\n` or `\r\n`). Errors name the key.
    pub fn load_secret_file(&mut self) -> Result<(), (&'static str, String)> {
        if self.secret_file.is_empty() {
            self.secret_from_file = None;
            return Ok(());
        }
        if !self.secret.is_empty() {
            return Err((
                "cluster.secret_file",
                "cluster.secret and cluster.secret_file are both set: keep one (the file)".into(),
            ));
        }
        let text = std::fs::read_to_string(&self.secret_file).map_err(|e| {
            (
                "cluster.secret_file",
                format!("cannot read {:?}: {e}", self.secret_file),
            )
        })?;
        let text = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        self.secret_from_file = Some(text.to_owned());
        Ok(())
    }

    /// Checks the secret and the cluster port's exposure: a secret shorter than
    /// [`MIN_SECRET_LEN`](super::mesh::MIN_SECRET_LEN) bytes, or (mesh engine) a `bind` other than
    /// loopback with nothing protecting the port. Errors name the key and the fix.
    pub fn validate_security(&self) -> Result<(), (&'static str, String)> {
        let secret = self.effective_secret();
        let key = if self.secret_from_file.is_some() {
            "cluster.secret_file"
        } else {
            "cluster.secret"
        };
        let min = super::mesh::MIN_SECRET_LEN;
        if !secret.is_empty() && secret.len() < min {
            return Err((
                key,
                format!(
                    "the cluster secret is {} bytes, shorter than {min}: a short secret can be \
                     guessed. Make one with `wscluster gen-secret`",
                    secret.len()
                ),
            ));
        }
        if self.engine == EngineKind::Mesh
            && let Err(message) = self.mesh_settings().bind_ip()
        {
            return Err(("cluster.mesh.bind", message));
        }
        Ok(())
    }

    /// The mesh settings with the engine-independent options filled in.
    pub fn mesh_settings(&self) -> MeshConfig {
        MeshConfig {
            secret: self.effective_secret().to_owned(),
            cluster_name: self.name.clone(),
            peer_timeout_ms: self.peer_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            ..self.mesh.clone()
        }
    }

    /// A Redis cluster through `redis-server` on `127.0.0.1:port`, sharing Redis channel `channel`.
    pub fn local_redis(port: u16, channel: &str) -> Self {
        Self {
            engine: EngineKind::Redis,
            redis: RedisConfig::local(port, channel),
            ..Self::default()
        }
    }

    /// How the engine wants a protocol's per-channel traffic addressed.
    pub fn channel_routing(&self) -> super::ChannelRouting {
        match self.engine {
            EngineKind::Redis => self.redis.channel_routing(),
            EngineKind::RedisCluster => self.redis_cluster.channel_routing(),
            EngineKind::Nats => self.nats.channel_routing(),
            EngineKind::None | EngineKind::Mesh => super::ChannelRouting::PerPeer,
        }
    }

    /// The Redis settings with the engine-independent options filled in.
    pub fn redis_settings(&self) -> RedisConfig {
        RedisConfig {
            peer_timeout_ms: self.peer_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            ..self.redis.clone()
        }
    }

    /// The Redis Cluster settings with the engine-independent options filled in.
    pub fn redis_cluster_settings(&self) -> RedisClusterConfig {
        RedisClusterConfig {
            peer_timeout_ms: self.peer_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            ..self.redis_cluster.clone()
        }
    }

    /// A cluster through `nats-server` on `127.0.0.1:port`, under subject prefix `prefix`.
    pub fn local_nats(port: u16, prefix: &str) -> Self {
        Self {
            engine: EngineKind::Nats,
            nats: NatsConfig::local(port, prefix),
            ..Self::default()
        }
    }

    /// The NATS settings with the engine-independent options filled in.
    pub fn nats_settings(&self) -> NatsConfig {
        NatsConfig {
            peer_timeout_ms: self.peer_timeout_ms,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            ..self.nats.clone()
        }
    }

    /// Checks values that would make the cluster unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.len() > 255 {
            return Err("cluster.name must be 1 to 255 bytes".into());
        }
        if self.heartbeat_interval_ms == 0 || self.peer_timeout_ms <= self.heartbeat_interval_ms {
            return Err(
                "cluster.peer_timeout_ms must be greater than cluster.heartbeat_interval_ms > 0"
                    .into(),
            );
        }
        if self.mesh.max_frame_bytes < 1024 {
            return Err("cluster.mesh.max_frame_bytes must be at least 1024".into());
        }
        self.mesh.validate_dns()?;
        if self.engine == EngineKind::Redis {
            if self.redis.channel.is_empty() {
                return Err("cluster.redis.channel must not be empty".into());
            }
            if let Err(e) = self.redis.client() {
                return Err(e.to_string());
            }
        }
        if self.engine == EngineKind::RedisCluster {
            self.redis_cluster.validate().map_err(|e| e.to_string())?;
        }
        if self.engine == EngineKind::Nats {
            // Reads the login and CA files too, so a missing one is a configuration error.
            if let Err(e) = self.nats.connect_options() {
                return Err(e.to_string());
            }
        }
        Ok(())
    }
}
