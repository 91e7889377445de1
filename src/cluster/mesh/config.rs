//! Options of the mesh engine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The shortest cluster secret accepted, in bytes (`wscluster gen-secret` makes 64).
pub const MIN_SECRET_LEN: usize = 16;

/// How a node links to its peers over TCP (the `[cluster.mesh]` section). The fields marked
/// "from `[cluster]`" are filled by the cluster from its engine-independent options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeshConfig {
    /// IP address the cluster port is bound to. Unset (the default): every interface
    /// (`0.0.0.0`) when the port is protected (a `cluster.secret`, or mesh TLS with client
    /// certificates required), else `127.0.0.1` only. Set to an address other than loopback
    /// without that protection, the node refuses to start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// The cluster port (0 picks a free port).
    pub port: u16,
    /// The `host:port` other nodes should dial to reach this one; empty means the bound address
    /// (an unspecified IP is replaced by the address a peer sees this node from).
    pub advertise: String,
    /// Peers to dial at start (`host:port`); more are learned from peers.
    pub peers: Vec<String>,
    /// How long unacknowledged frames are kept for replay after a blip (milliseconds).
    pub replay_window_ms: u64,
    /// How many bytes of unacknowledged frames are kept per peer for replay.
    pub replay_window_bytes: usize,
    /// Largest frame accepted on a link, in bytes.
    pub max_frame_bytes: usize,
    /// Cap of a link's send queue, in bytes; a link that falls further behind is reset (and
    /// resynchronised after it reconnects), never allowed to grow memory.
    pub link_queue_bytes: usize,
    /// Control frames (heartbeats, acks, address gossip) a peer may send per second on one link,
    /// with a burst of as many; a peer past it is flooding and its link is reset. A healthy peer
    /// sends one heartbeat per interval and one ack per 64 data frames. 0 turns the check off.
    pub max_control_frames_per_sec: u32,
    /// Time allowed for a link's TCP connect plus handshake (milliseconds).
    pub handshake_timeout_ms: u64,
    /// DNS names whose addresses are peers (`name:port`, e.g. a Kubernetes headless Service): every
    /// address they resolve to is dialled; re-resolved every `dns_refresh_ms`.
    pub peers_dns: Vec<String>,
    /// How often `peers_dns` names are resolved again (milliseconds).
    pub dns_refresh_ms: u64,
    /// Failed link handshakes one source IP may have within `failed_handshake_window_ms`; past
    /// it, its connections to the cluster port are closed before anything is read, until the
    /// window ends. 0 turns the check off.
    pub max_failed_handshakes_per_ip: u32,
    /// The window of `max_failed_handshakes_per_ip`, in milliseconds.
    pub failed_handshake_window_ms: u64,
    /// Most peer addresses this node keeps to dial (configured, learned from authenticated peers,
    /// found through DNS); a learned address past it is not kept. Each is at most 255 bytes.
    pub max_known_addresses: usize,
    /// TLS (optionally mutual) on every link (`[cluster.mesh.tls]`).
    pub tls: crate::tls::MeshTlsConfig,
    /// The shared cluster secret (from `[cluster]`).
    #[serde(skip)]
    pub secret: String,
    /// The cluster name (from `[cluster]`).
    #[serde(skip)]
    pub cluster_name: String,
    /// A peer silent this long is dead, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats on each link, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub heartbeat_interval_ms: u64,
}

impl Default for MeshConfig {
    fn default() -> Self {
        Self {
            bind: None,
            port: 5410,
            advertise: String::new(),
            peers: Vec::new(),
            replay_window_ms: 30_000,
            replay_window_bytes: 64 * 1024 * 1024,
            max_frame_bytes: 16 * 1024 * 1024,
            link_queue_bytes: 64 * 1024 * 1024,
            max_control_frames_per_sec: 10_000,
            handshake_timeout_ms: 5_000,
            peers_dns: Vec::new(),
            dns_refresh_ms: 5_000,
            max_failed_handshakes_per_ip: 10,
            failed_handshake_window_ms: 60_000,
            max_known_addresses: 1024,
            tls: crate::tls::MeshTlsConfig::default(),
            secret: String::new(),
            cluster_name: "wscluster".into(),
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
        }
    }
}

impl MeshConfig {
    /// Loopback on an ephemeral port: what tests and embedded clusters on one machine use. An
    /// empty secret is allowed there (only processes of this machine reach the port).
    pub fn loopback() -> Self {
        Self {
            bind: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            port: 0,
            ..Self::default()
        }
    }

    /// Whether strangers cannot link through the cluster port: a cluster secret is set, or mesh
    /// TLS requires a client certificate signed by the cluster CA.
    pub fn protected(&self) -> bool {
        !self.secret.is_empty() || (self.tls.enabled && self.tls.require_client_cert)
    }

    /// The IP the cluster port is bound to: `bind`, or when unset every interface if the port is
    /// [protected](Self::protected), else `127.0.0.1`. An error (naming the keys and the fix) when
    /// `bind` is an address other than loopback and the port is not protected.
    pub fn bind_ip(&self) -> Result<IpAddr, String> {
        match self.bind {
            None if self.protected() => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            None => Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Some(ip) if ip.is_loopback() || self.protected() => Ok(ip),
            Some(ip) => Err(format!(
                "cluster.mesh.bind = {ip} opens the cluster port to the network without \
                 cluster.secret: anyone reaching it could join the cluster. Set a secret of at \
                 least {MIN_SECRET_LEN} bytes (make one with `wscluster gen-secret`; give it by \
                 cluster.secret_file, --cluster-secret-file or WSCLUSTER_CLUSTER__SECRET), or \
                 enable cluster.mesh.tls with require_client_cert, or bind to 127.0.0.1"
            )),
        }
    }

    /// Whether the port is on loopback only because nothing protects it (`bind` unset).
    pub fn loopback_for_lack_of_secret(&self) -> bool {
        self.bind.is_none() && !self.protected()
    }

    /// The address the cluster port is bound to (see [`bind_ip`](Self::bind_ip); an unusable
    /// `bind` falls back to `127.0.0.1`, and [`MeshEngine::start`](super::MeshEngine::start)
    /// refuses it).
    pub fn listen(&self) -> SocketAddr {
        SocketAddr::new(
            self.bind_ip().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            self.port,
        )
    }

    pub(crate) fn failed_handshake_window(&self) -> Duration {
        Duration::from_millis(self.failed_handshake_window_ms.max(1))
    }

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
    pub(crate) fn dns_refresh(&self) -> Duration {
        Duration::from_millis(self.dns_refresh_ms.max(1))
    }

    /// Checks `peers_dns` (each `NAME:PORT`) and `dns_refresh_ms` (> 0).
    pub(crate) fn validate_dns(&self) -> Result<(), String> {
        for t in &self.peers_dns {
            if super::discovery::parse_target(t.trim()).is_none() {
                return Err(format!(
                    "cluster.mesh.peers_dns: {t:?} is not NAME:PORT (a port from 1 to 65535)"
                ));
            }
        }
        self.tls.validate()?;
        if self.dns_refresh_ms == 0 {
            return Err("cluster.mesh.dns_refresh_ms must be greater than 0".into());
        }
        if self.failed_handshake_window_ms == 0 {
            return Err("cluster.mesh.failed_handshake_window_ms must be greater than 0".into());
        }
        if self.max_known_addresses == 0 {
            return Err("cluster.mesh.max_known_addresses must be greater than 0".into());
        }
        Ok(())
    }
}
