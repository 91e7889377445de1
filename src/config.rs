//! Every option of a node, with its default. The library takes a [`Config`] value; the binary builds
//! one from a TOML file, `WSCLUSTER_…` environment variables and flags (see `src/main.rs` and
//! `wscluster.example.toml`, which documents each option).

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::protocol::presence::PresenceConfig;
pub use crate::protocol::sgc::SgcConfig;
pub use crate::transport::auth::AuthConfig;

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The node itself: its name and logging.
    pub node: NodeConfig,
    /// The WebSocket listener and per-connection limits.
    pub server: ServerConfig,
    /// Authentication of WebSocket upgrades (spec §1.6).
    pub auth: AuthConfig,
    /// The sgc protocol (`esegece.com`).
    pub sgc: SgcConfig,
    /// The Presence protocol (`presence.esegece.com`).
    pub presence: PresenceConfig,
}

/// Identity and logging of the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in the cluster; empty means "derived from host name and port".
    pub name: String,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a `tracing` filter directive).
    pub log_level: String,
    /// Log format: `human` or `json`.
    pub log_format: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            log_level: "info".into(),
            log_format: "human".into(),
        }
    }
}

/// The WebSocket listener and what every connection is allowed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest message (and frame) a client may send, in bytes; bigger closes with 1009.
    pub max_message_size: usize,
    /// Cap of a connection's outbound queue, in bytes; a client that falls further behind is closed
    /// with 1008 "slow consumer".
    pub max_outbox_bytes: usize,
    /// Interval between WebSocket pings, in milliseconds; 0 disables the heartbeat.
    pub heartbeat_interval_ms: u64,
    /// A connection whose last pong is older than this (milliseconds) after a ping is closed.
    pub heartbeat_timeout_ms: u64,
    /// Time a client has to complete the HTTP upgrade, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// Largest HTTP request head accepted during the handshake, in bytes.
    pub max_request_head: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            max_message_size: 1024 * 1024,
            max_outbox_bytes: 4 * 1024 * 1024,
            heartbeat_interval_ms: 30_000,
            heartbeat_timeout_ms: 30_000,
            handshake_timeout_ms: 10_000,
            max_request_head: 16 * 1024,
        }
    }
}

impl ServerConfig {
    /// The heartbeat interval, `None` when disabled.
    pub fn heartbeat_interval(&self) -> Option<Duration> {
        (self.heartbeat_interval_ms > 0).then(|| Duration::from_millis(self.heartbeat_interval_ms))
    }

    /// How long a pong may lag behind its ping.
    pub fn heartbeat_timeout(&self) -> Duration {
        Duration::from_millis(self.heartbeat_timeout_ms.max(1))
    }

    /// How long the HTTP upgrade may take.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }
}
