//! Real `wscluster` processes for multi-process cluster tests.
//!
//! - [`NodeArgs`]: the command line of one cluster node (loopback, ephemeral ports, fast
//!   heartbeats, JSON logs so the tests can read what the node logged).
//! - [`NodeProcess`]: a running node, killed when dropped (and its log printed when a test fails),
//!   with its WebSocket and mesh addresses, its log lines, SIGKILL / SIGTERM / SIGSTOP, and its exit
//!   status.
//! - [`wait_linked`]: polls the nodes' logs until every node has every other one as a live peer.
//! - [`Syncer`]: one sgc client per node subscribed to a private channel. A publish from node X's
//!   client reaches the others through X's links, which are FIFO per peer and shared by every
//!   protocol: once it arrived on node Y, everything X relayed to Y before it has been applied on
//!   Y. That is how the tests order steps across processes without sleeping. (Every node has a
//!   subscriber of the sync channel, so interest routing sends its publishes to every node; a new
//!   sync client's S3 also waits until the peers acknowledged that interest.)
//!
//! Every wait has a deadline; nothing sleeps to synchronise. Starting whole clusters on any
//! engine, [`wait_linked`] and [`Syncer`] are in `cluster.rs`; starting the binary ([`spawn`]) in
//! `spawn.rs`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod cluster;
mod spawn;
// Each test crate uses a part of the support code; an unused re-export is not a mistake.
#[allow(unused_imports)]
pub use cluster::*;
#[allow(unused_imports)]
pub use spawn::*;

/// How long a process may take to start, announce itself, link, or exit.
pub const PROCESS_WAIT: Duration = Duration::from_secs(15);

/// The cluster secret the test nodes share unless told otherwise.
pub const SECRET: &str = "process-test-secret";

/// The command line of one cluster node.
#[derive(Debug, Clone)]
pub struct NodeArgs {
    name: String,
    listen: String,
    cluster_port: u16,
    secret: String,
    peers: Vec<String>,
    sets: Vec<String>,
    log_level: String,
    /// Redis port and routing, when the node uses the Redis engine.
    redis: Option<(u16, String)>,
    /// Redis Cluster seeds, channel prefix and routing, when the node uses the Redis Cluster
    /// engine.
    redis_cluster: Option<(Vec<String>, String, String)>,
    /// NATS URL, port and routing, when the node uses the NATS engine.
    nats: Option<(String, u16, String)>,
    hosts_file: Option<PathBuf>,
    /// Given, the secret comes from this file (`--cluster-secret-file`) instead of the flag.
    secret_file: Option<String>,
    resolver: Option<PathBuf>,
    extra: Vec<String>,
}

impl NodeArgs {
    /// Node `name`: WebSocket and mesh on loopback ephemeral ports, the shared [`SECRET`],
    /// heartbeats every 100 ms and a 5 s peer timeout (long enough that a purge within a second
    /// can only come from a closed link, a bye or a new incarnation).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            listen: "127.0.0.1:0".to_owned(),
            cluster_port: 0,
            secret: SECRET.to_owned(),
            peers: Vec::new(),
            sets: vec![
                "cluster.heartbeat_interval_ms=100".to_owned(),
                "cluster.peer_timeout_ms=5000".to_owned(),
            ],
            log_level: "info".to_owned(),
            redis: None,
            redis_cluster: None,
            nats: None,
            hosts_file: None,
            secret_file: None,
            resolver: None,
            extra: Vec::new(),
        }
    }

    /// Uses the Redis engine through `redis-server` on 127.0.0.1:`port`, with `routing` (`shared`
    /// or `channel`); the Redis channel is unique per server, so tests never share one.
    pub fn redis(mut self, port: u16, routing: &str) -> Self {
        self.redis = Some((port, routing.to_owned()));
        self
    }

    /// Uses the Redis Cluster engine through `seeds` (`HOST:PORT`), with channel prefix `prefix`
    /// and `routing` (`shared` or `channel`).
    pub fn redis_cluster(mut self, seeds: &[String], prefix: &str, routing: &str) -> Self {
        self.redis_cluster = Some((seeds.to_vec(), prefix.to_owned(), routing.to_owned()));
        self
    }

    /// Uses the NATS engine through `nats-server` at `url` (port `port`), with `routing`
    /// (`shared` or `channel`); the subject prefix is unique per server, so tests never share one.
    pub fn nats(mut self, url: &str, port: u16, routing: &str) -> Self {
        self.nats = Some((url.to_owned(), port, routing.to_owned()));
        self
    }

    /// Adds raw command-line arguments (after the others), e.g. `["--peers-dns", "name:5410"]`.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// Runs the node in a private mount namespace where `/etc/hosts` is `path` (bind-mounted over
    /// it for this process only; the machine's file is not touched), so its resolver sees the
    /// test's names. Needs `unshare` and the right to mount (root); see [`hosts_override_works`].
    pub fn hosts_file(mut self, path: &Path) -> Self {
        self.hosts_file = Some(path.to_owned());
        self
    }

    /// With [`NodeArgs::hosts_file`]: `path` over `/etc/resolv.conf` too (e.g. a file holding
    /// [`LOOPBACK_RESOLVER`]), so that unknown names fail with no query leaving the machine.
    pub fn resolver(mut self, path: &Path) -> Self {
        self.resolver = Some(path.to_owned());
        self
    }

    /// Dials `addr` (a mesh address) at start.
    pub fn peer(mut self, addr: impl ToString) -> Self {
        self.peers.push(addr.to_string());
        self
    }

    /// Uses another cluster secret.
    pub fn secret(mut self, secret: &str) -> Self {
        secret.clone_into(&mut self.secret);
        self
    }

    /// Reads the cluster secret from `path` (`--cluster-secret-file`) instead of the flag.
    pub fn secret_file(mut self, path: &Path) -> Self {
        self.secret_file = Some(path.to_string_lossy().into_owned());
        self
    }

    /// Listens for WebSocket clients on `addr`.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr.to_string();
        self
    }

    /// Binds the mesh to this port.
    pub fn cluster_port(mut self, port: u16) -> Self {
        self.cluster_port = port;
        self
    }

    /// Adds `--set key=value`.
    pub fn set(mut self, key_value: &str) -> Self {
        self.sets.push(key_value.to_owned());
        self
    }

    /// Logs at `level` (default `info`, which includes peer and refusal events).
    pub fn log_level(mut self, level: &str) -> Self {
        level.clone_into(&mut self.log_level);
        self
    }

    fn to_args(&self) -> Vec<String> {
        let mut a: Vec<String> = [
            "--listen",
            &self.listen,
            "--node-name",
            &self.name,
            "--cluster-port",
            &self.cluster_port.to_string(),
            "--set",
            "cluster.mesh.bind=127.0.0.1",
            match self.secret_file {
                Some(_) => "--cluster-secret-file",
                None => "--cluster-secret",
            },
            self.secret_file.as_deref().unwrap_or(&self.secret),
            "--log-format",
            "json",
            "--log-level",
            &self.log_level,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in &self.peers {
            a.push("--peer".into());
            a.push(p.clone());
        }
        if let Some((port, routing)) = &self.redis {
            for x in [
                "--cluster-engine",
                "redis",
                "--redis-port",
                &port.to_string(),
                "--redis-channel",
                &format!("wsc-test-{port}"),
                "--redis-routing",
                routing,
                "--set",
                "cluster.redis.reconnect_max_ms=500",
            ] {
                a.push(x.to_owned());
            }
        }
        if let Some((seeds, prefix, routing)) = &self.redis_cluster {
            a.extend(["--cluster-engine".to_owned(), "redis-cluster".to_owned()]);
            for seed in seeds {
                a.extend(["--redis-cluster-node".to_owned(), seed.clone()]);
            }
            for s in [
                format!("cluster.redis_cluster.prefix={prefix}"),
                format!("cluster.redis_cluster.routing={routing}"),
                "cluster.redis_cluster.reconnect_max_ms=500".to_owned(),
            ] {
                a.extend(["--set".to_owned(), s]);
            }
        }
        if let Some((url, port, routing)) = &self.nats {
            for x in [
                "--cluster-engine",
                "nats",
                "--nats-url",
                url,
                "--nats-subject-prefix",
                &format!("wsc-test-{port}"),
                "--nats-routing",
                routing,
                "--set",
                "cluster.nats.reconnect_max_ms=500",
            ] {
                a.push(x.to_owned());
            }
        }
        for s in &self.sets {
            a.push("--set".into());
            a.push(s.clone());
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// What a node logged about a peer (`peer connected` / `peer disconnected`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEvent {
    /// True for `peer connected`.
    pub up: bool,
    /// The peer's node id.
    pub peer: String,
    /// The peer's incarnation.
    pub incarnation: u64,
    /// Why it went down (empty for `up`).
    pub reason: String,
}

/// A running `wscluster` node, killed on drop.
pub struct NodeProcess {
    /// The node's name.
    pub name: String,
    child: Child,
    stdout: mpsc::Receiver<String>,
    stderr: tempfile::NamedTempFile,
    /// The WebSocket address it printed.
    pub ws: SocketAddr,
    /// The mesh address it printed (0.0.0.0:0 on a broker engine).
    pub mesh: SocketAddr,
    /// The TLS (`wss://`) address it printed, when `server.tls.listen` is set.
    pub wss: Option<SocketAddr>,
}

impl NodeProcess {
    /// Starts a node and waits until it printed both its WebSocket and its mesh address (or, on
    /// the Redis engine, its Redis line).
    pub async fn start(args: NodeArgs) -> Self {
        let (child, stdout, stderr) = match (&args.hosts_file, &args.resolver) {
            (None, _) => spawn(&args.to_args(), &[]),
            (Some(hosts), None) => spawn_with_hosts(hosts, &args.to_args()),
            (Some(hosts), Some(r)) => spawn_with_hosts_and_resolver(hosts, r, &args.to_args()),
        };
        let mut node = Self {
            name: args.name.clone(),
            child,
            stdout,
            stderr,
            ws: SocketAddr::from(([0, 0, 0, 0], 0)),
            mesh: SocketAddr::from(([0, 0, 0, 0], 0)),
            wss: None,
        };
        let deadline = Instant::now() + PROCESS_WAIT;
        let (mut ws, mut mesh) = (None, None);
        let broker_line = if args.redis.is_some() {
            Some("wscluster cluster redis at ")
        } else if args.redis_cluster.is_some() {
            Some("wscluster cluster redis-cluster at ")
        } else if args.nats.is_some() {
            Some("wscluster cluster nats at ")
        } else {
            None
        };
        if broker_line.is_some() {
            mesh = Some(SocketAddr::from(([0, 0, 0, 0], 0)));
        }
        let mut redis_line = broker_line.is_none();
        while ws.is_none() || mesh.is_none() || !redis_line {
            match node.stdout.try_recv() {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("wscluster listening on ws://") {
                        ws = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("wscluster listening on wss://") {
                        node.wss = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("wscluster cluster mesh on ") {
                        mesh = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if broker_line.is_some_and(|b| line.starts_with(b)) {
                        redis_line = true;
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("node {} exited before announcing itself", node.name)
                }
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "node {} did not announce its addresses within {PROCESS_WAIT:?}",
                        node.name
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        node.ws = ws.unwrap_or_else(|| unreachable!());
        node.mesh = mesh.unwrap_or_else(|| unreachable!());
        node
    }

    /// The next line of standard output starting with `prefix` (other lines are skipped), within
    /// [`PROCESS_WAIT`].
    pub async fn stdout_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            match self.stdout.try_recv() {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(mpsc::TryRecvError::Disconnected) => {
                    panic!("node {} exited before printing {prefix:?}", self.name)
                }
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(
                        Instant::now() < deadline,
                        "node {} printed no {prefix:?} line within {PROCESS_WAIT:?}",
                        self.name
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }

    /// What the process wrote to standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Its JSON log lines so far (lines that are not JSON are skipped).
    pub fn logs(&self) -> Vec<Value> {
        self.stderr()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Log lines whose message is `message`, as their `fields` objects.
    pub fn logged(&self, message: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|v| v["fields"]["message"] == message)
            .map(|v| v["fields"].clone())
            .collect()
    }

    /// Every `peer connected` / `peer disconnected` it logged, in order.
    pub fn peer_events(&self) -> Vec<PeerEvent> {
        self.logs()
            .into_iter()
            .filter_map(|v| {
                let f = &v["fields"];
                let up = match f["message"].as_str()? {
                    "peer connected" => true,
                    "peer disconnected" => false,
                    _ => return None,
                };
                Some(PeerEvent {
                    up,
                    peer: f["peer"].as_str()?.to_owned(),
                    // JSON logs write 64-bit integers as strings.
                    incarnation: f["incarnation"].as_str()?.parse().ok()?,
                    reason: f["reason"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect()
    }

    /// The peers it currently considers live, by its log.
    pub fn live_peers(&self) -> BTreeSet<String> {
        let mut live = std::collections::BTreeMap::new();
        for e in self.peer_events() {
            if e.up {
                live.insert(e.peer, e.incarnation);
            } else if live.get(&e.peer) == Some(&e.incarnation) {
                live.remove(&e.peer);
            }
        }
        live.into_keys().collect()
    }

    /// Polls this node's log until `cond` holds; fails the test (with the log) after
    /// [`PROCESS_WAIT`].
    pub async fn wait_log(&self, what: &str, mut cond: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + PROCESS_WAIT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "node {}: {what} not logged within {PROCESS_WAIT:?}; log:\n{}",
                self.name,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `STOP`, `CONT`), see [`send_signal`](super::send_signal).
    pub fn signal(&self, name: &str) {
        super::send_signal(self.pid(), name);
    }

    /// Whether the process has not exited yet.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        self.child
            .kill()
            .unwrap_or_else(|e| panic!("cannot kill node {}: {e}", self.name));
        let _ = self.child.wait();
    }

    /// Waits (polling, deadline [`PROCESS_WAIT`]) for the process to exit.
    pub async fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) => {
                    assert!(
                        Instant::now() < deadline,
                        "node {} did not exit within {PROCESS_WAIT:?}; log:\n{}",
                        self.name,
                        self.stderr()
                    );
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => panic!("waiting for node {}: {e}", self.name),
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- log of node {} ----\n{}", self.name, self.stderr());
        }
    }
}
