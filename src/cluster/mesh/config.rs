//! Options of the mesh engine.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a node links to its peers over TCP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// Address and port the node accepts links on (the cluster port).
    pub listen: SocketAddr,
    /// The `host:port` other nodes should dial to reach this one; empty means the listen address
    /// (with an unspecified IP replaced by the address the peer sees us from).
    pub advertise: String,
    /// Peers to dial at start (`host:port`); more are learned from peers.
    pub peers: Vec<String>,
    /// The shared cluster secret; links whose peer cannot prove it are refused.
    pub secret: String,
    /// The cluster name; nodes of another cluster are refused.
    pub cluster_name: String,
    /// A peer silent for this long (milliseconds) is dead.
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats on each link (milliseconds).
    pub heartbeat_interval_ms: u64,
    /// How long unacknowledged frames are kept for replay after a blip (milliseconds).
    pub replay_window_ms: u64,
    /// How many bytes of unacknowledged frames are kept per peer for replay.
    pub replay_window_bytes: usize,
    /// Largest frame accepted on a link, in bytes.
    pub max_frame_bytes: usize,
    /// Cap of a link's send queue, in bytes; a link that falls further behind is reset (and
    /// resynchronised after it reconnects), never allowed to grow memory.
    pub link_queue_bytes: usize,
    /// Time allowed for a link's TCP connect plus handshake (milliseconds).
    pub handshake_timeout_ms: u64,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 5410)),
            advertise: String::new(),
            peers: Vec::new(),
            secret: String::new(),
            cluster_name: "wscluster".into(),
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
            replay_window_ms: 30_000,
            replay_window_bytes: 64 * 1024 * 1024,
            max_frame_bytes: 16 * 1024 * 1024,
            link_queue_bytes: 64 * 1024 * 1024,
            handshake_timeout_ms: 5_000,
        }
    }
}

impl MeshConfig {
    pub(crate) fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms.max(1))
    }
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }
    pub(crate) fn replay_window(&self) -> Duration {
        Duration::from_millis(self.replay_window_ms)
    }
    pub(crate) fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }
}
