//! [`ServerConfig`]: the `[server]` section, the WebSocket listener and what every connection is
//! allowed. The transport owns it; [`crate::config::Config`] carries it as `server`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// On SIGTERM/SIGINT, how long (milliseconds, from the signal) the node may take to say bye
    /// to its peers and let its clients receive what is queued for them and their 1001 close;
    /// connections still open then are closed without waiting.
    pub shutdown_timeout_ms: u64,
    /// Browser origins allowed to open WebSocket connections: exact origins or masks with `*`
    /// (`https://*.example.com`), compared ignoring case. Empty allows every origin; an upgrade
    /// without an `Origin` header (a non-browser client) is always allowed. Refused: 403.
    pub allowed_origins: Vec<String>,
    /// The TLS (`wss://`) listener next to the plain one (`[server.tls]`).
    pub tls: crate::tls::TlsConfig,
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
            shutdown_timeout_ms: 5_000,
            allowed_origins: Vec::new(),
            tls: crate::tls::TlsConfig::default(),
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

    /// How long a graceful shutdown may take before the remaining connections are closed.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}
