//! Options of the Redis Cluster engine (`[cluster.redis_cluster]`) and how they become a Redis
//! Cluster client.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::cluster::redis::RedisRouting;

/// Most partitions: one per Redis Cluster hash slot.
pub const MAX_PARTITIONS: u32 = 16_384;

/// How a node reaches a Redis Cluster (the `[cluster.redis_cluster]` section). The fields marked
/// "from `[cluster]`" are filled by the cluster from its engine-independent options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisClusterConfig {
    /// Seed nodes, `HOST:PORT` each: any reachable one tells the client the whole cluster.
    pub nodes: Vec<String>,
    /// ACL user name (empty: the default user).
    pub username: String,
    /// Password (empty: none).
    pub password: String,
    /// Connect with TLS.
    pub tls: bool,
    /// A PEM file of CA certificates trusted for the TLS connections (empty: the system's roots).
    pub ca_file: PathBuf,
    /// The prefix of every Redis channel of the cluster (no `{` or `}`: the engine adds the hash
    /// tags).
    pub prefix: String,
    /// How many partitions sgc channels are hashed to; each partition's Redis channels carry one
    /// hash tag, so each lives in one slot, and partitions spread over the masters.
    pub partitions: u32,
    /// `shared` (each node receives every partition) or `channel` (a Redis channel per sgc
    /// channel, subscribed to by the nodes with local subscribers only).
    pub routing: RedisRouting,
    /// Time allowed to connect to a node (TCP, TLS, AUTH), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed for a reply (SPUBLISH, SSUBSCRIBE, PING), in milliseconds.
    pub response_timeout_ms: u64,
    /// First delay before trying again after the cluster (or one master) was lost, in
    /// milliseconds (doubles up to the maximum).
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Cap, in bytes, of envelopes waiting to be published; beyond it new envelopes are dropped
    /// and counted (the receivers count the gap too).
    pub queue_bytes: usize,
    /// Largest envelope accepted from Redis, in bytes; larger ones are dropped and counted.
    pub max_message_bytes: usize,
    /// How often the master owning the control slot is asked whether each live peer still has
    /// its subscription (`PUBSUB SHARDNUMSUB`), in milliseconds: a peer without one on two probes
    /// in a row (a killed process) is down at once. 0 turns probing off.
    pub probe_interval_ms: u64,
    /// A node silent this long is dead, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub heartbeat_interval_ms: u64,
}

impl Default for RedisClusterConfig {
    fn default() -> Self {
        Self {
            nodes: Vec::new(),
            username: String::new(),
            password: String::new(),
            tls: false,
            ca_file: PathBuf::new(),
            prefix: "wscluster".into(),
            partitions: 64,
            routing: RedisRouting::Shared,
            connect_timeout_ms: 2_000,
            response_timeout_ms: 2_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            queue_bytes: 64 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            probe_interval_ms: 200,
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
        }
    }
}

/// Why the Redis Cluster options cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum RedisClusterConfigError {
    /// A key has a value that cannot work.
    #[error("{key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The client refused the options.
    #[error("cluster.redis_cluster.nodes: invalid redis cluster address: {0}")]
    Client(#[source] ::redis::RedisError),
    /// The CA file could not be read.
    #[error("cannot read cluster.redis_cluster.ca_file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn invalid(key: &'static str, message: impl Into<String>) -> RedisClusterConfigError {
    RedisClusterConfigError::Invalid {
        key,
        message: message.into(),
    }
}

impl RedisClusterConfig {
    /// A Redis Cluster reached through `nodes` (`HOST:PORT`), with `prefix` and `routing`: what
    /// tests use.
    pub fn local(nodes: Vec<String>, prefix: &str, routing: RedisRouting) -> Self {
        Self {
            nodes,
            prefix: prefix.into(),
            routing,
            ..Self::default()
        }
    }

    /// How sgc traffic is addressed: always by channel (a channel's traffic goes to its
    /// partition), whether every node subscribes to every partition (`shared`) or only to the
    /// channels it has subscribers for (`channel`).
    pub fn channel_routing(&self) -> crate::cluster::ChannelRouting {
        crate::cluster::ChannelRouting::Engine
    }

    /// Checks what would make the engine unusable; errors name the key.
    pub fn validate(&self) -> Result<(), RedisClusterConfigError> {
        if self.nodes.is_empty() {
            return Err(invalid(
                "cluster.redis_cluster.nodes",
                "name at least one seed node, HOST:PORT (or --redis-cluster-node HOST:PORT)",
            ));
        }
        for node in &self.nodes {
            split_host_port(node).ok_or_else(|| {
                invalid(
                    "cluster.redis_cluster.nodes",
                    format!(
                        "\"{}\" is not HOST:PORT",
                        crate::log_text::Printable(node.as_str())
                    ),
                )
            })?;
        }
        if self.prefix.is_empty() || self.prefix.contains(['{', '}']) {
            return Err(invalid(
                "cluster.redis_cluster.prefix",
                "must be non-empty, without { or } (the engine adds the hash tags)",
            ));
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return Err(invalid(
                "cluster.redis_cluster.partitions",
                format!("must be 1 to {MAX_PARTITIONS}"),
            ));
        }
        if self.max_message_bytes < 1024 {
            return Err(invalid(
                "cluster.redis_cluster.max_message_bytes",
                "must be at least 1024",
            ));
        }
        self.client(None).map(|_| ())
    }

    /// The seed nodes as `redis://` (or `rediss://`) URLs.
    fn node_urls(&self) -> Vec<String> {
        let scheme = if self.tls { "rediss" } else { "redis" };
        self.nodes
            .iter()
            .filter_map(|n| split_host_port(n))
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("{scheme}://[{host}]:{port}")
                } else {
                    format!("{scheme}://{host}:{port}")
                }
            })
            .collect()
    }

    /// The seeds, for logs (no password).
    pub fn display_address(&self) -> String {
        self.node_urls().join(",")
    }

    /// A Redis Cluster client for these options (RESP3, timeouts, credentials, TLS) whose pushes
    /// (sharded messages, subscription changes, lost connections) go to `pushes`; no connection
    /// is made.
    pub fn client(
        &self,
        pushes: Option<tokio::sync::mpsc::UnboundedSender<::redis::PushInfo>>,
    ) -> Result<::redis::cluster::ClusterClient, RedisClusterConfigError> {
        let mut b = ::redis::cluster::ClusterClientBuilder::new(self.node_urls())
            .use_protocol(::redis::ProtocolVersion::RESP3)
            .connection_timeout(self.connect_timeout())
            .response_timeout(self.response_timeout())
            // A command to a master that is away fails fast: the engine counts it and tries
            // again itself, rather than the client holding every later publish behind it.
            .retries(2)
            .min_retry_wait(10)
            .max_retry_wait(self.reconnect_min_ms.max(10));
        if !self.username.is_empty() {
            b = b.username(&self.username);
        }
        if !self.password.is_empty() {
            b = b.password(&self.password);
        }
        if self.tls && !self.ca_file.as_os_str().is_empty() {
            let root =
                std::fs::read(&self.ca_file).map_err(|source| RedisClusterConfigError::CaFile {
                    path: self.ca_file.clone(),
                    source,
                })?;
            b = b.certs(::redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root),
            });
        }
        if let Some(tx) = pushes {
            b = b.push_sender(tx);
        }
        b.build().map_err(RedisClusterConfigError::Client)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }
    pub(crate) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }
    pub(crate) fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms.max(1))
    }
    pub(crate) fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms.max(1))
    }
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }
    /// The delay before trying again after `failures` consecutive failures.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let min = self.reconnect_min_ms.max(1);
        let max = self.reconnect_max_ms.max(min);
        let ms = min.saturating_mul(1u64 << failures.min(20)).min(max);
        // Up to a quarter of jitter, so nodes that lost a master together do not return in step.
        Duration::from_millis(ms - fastrand::u64(0..=ms / 4))
    }
}

/// `HOST:PORT` (or `[V6]:PORT`) split, with a non-empty host and a non-zero port.
fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port != 0 && !host.contains(['/', '@', ' '])).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_nodes(nodes: &[&str]) -> RedisClusterConfig {
        RedisClusterConfig {
            nodes: nodes.iter().map(|n| (*n).to_owned()).collect(),
            ..RedisClusterConfig::default()
        }
    }

    #[test]
    fn seeds_are_required_and_checked() {
        let e = RedisClusterConfig::default().validate().unwrap_err();
        assert!(
            e.to_string().starts_with("cluster.redis_cluster.nodes:"),
            "{e}"
        );
        let e = with_nodes(&["nohost"]).validate().unwrap_err();
        assert!(e.to_string().contains("is not HOST:PORT"), "{e}");
        assert!(with_nodes(&["h:0"]).validate().is_err());
        with_nodes(&["10.0.0.1:7000", "[::1]:7001", "redis-0.svc:7002"])
            .validate()
            .unwrap();
    }

    #[test]
    fn urls_carry_the_scheme_and_no_password() {
        let mut c = with_nodes(&["a:1", "[::1]:2"]);
        c.password = "pw".into();
        assert_eq!(c.display_address(), "redis://a:1,redis://[::1]:2");
        c.tls = true;
        assert_eq!(c.display_address(), "rediss://a:1,rediss://[::1]:2");
    }

    #[test]
    fn prefix_and_partitions_are_checked() {
        let mut c = with_nodes(&["a:1"]);
        c.prefix = "x{y}".into();
        assert!(c.validate().unwrap_err().to_string().contains("prefix"));
        c.prefix = "x".into();
        c.partitions = 0;
        assert!(c.validate().unwrap_err().to_string().contains("partitions"));
        c.partitions = MAX_PARTITIONS + 1;
        assert!(c.validate().is_err());
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let c = RedisClusterConfig::default();
        assert!(c.backoff(0) <= Duration::from_millis(100));
        assert!(c.backoff(30) <= Duration::from_millis(5_000));
        assert!(c.backoff(30) >= Duration::from_millis(3_750));
    }
}
