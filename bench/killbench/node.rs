//! One `wscluster` node process on loopback: started (optionally pinned with `taskset`), its
//! WebSocket address read from its stdout, signalled with `kill(2)`, reaped, and killed when
//! dropped so that no node outlives the benchmark.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a node is started; the same for every incarnation of it.
#[derive(Debug, Clone)]
pub(crate) struct NodeSpec {
    /// `--node-name`.
    pub(crate) name: String,
    /// The `wscluster` binary.
    pub(crate) bin: PathBuf,
    /// `taskset -c` CPU list, if any.
    pub(crate) cpu: Option<String>,
    /// Fixed mesh port (a restarted node comes back where its peers dial it).
    pub(crate) cluster_port: u16,
    /// The other nodes' mesh ports.
    pub(crate) peer_ports: Vec<u16>,
    /// `--cluster-secret`.
    pub(crate) secret: String,
    /// Extra `--set key=value`.
    pub(crate) sets: Vec<String>,
    /// Where its standard error (logs) is appended.
    pub(crate) log: PathBuf,
}

impl NodeSpec {
    /// The full command: `[taskset -c CPU] wscluster …`.
    fn command(&self) -> Command {
        let mut cmd = match &self.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu).arg(&self.bin);
                c
            }
            None => Command::new(&self.bin),
        };
        cmd.args(["--listen", "127.0.0.1:0", "--node-name", &self.name])
            .args(["--cluster-port", &self.cluster_port.to_string()])
            .args(["--set", "cluster.mesh.bind=127.0.0.1"])
            .args(["--cluster-secret", &self.secret]);
        for p in &self.peer_ports {
            cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
        }
        for s in &self.sets {
            cmd.arg("--set").arg(s);
        }
        cmd
    }
}

/// A running node process (killed and reaped on drop).
pub(crate) struct Node {
    /// The process (`taskset` execs the node, so this is the node's PID).
    child: Child,
    /// Its WebSocket address, as it printed it.
    pub(crate) ws: SocketAddr,
}

impl Node {
    /// Starts a node and waits (until `deadline`) for `wscluster listening on ws://ADDR …` and
    /// `wscluster cluster mesh on …` (or `… redis at …`, `… redis-cluster at …`, `… nats at …`)
    /// on its stdout. Retries a node that exits at start (its fixed mesh port may still be held by
    /// its previous incarnation's sockets for a moment).
    pub(crate) async fn start(spec: &NodeSpec, deadline: Instant) -> Result<Self, String> {
        loop {
            match Self::start_once(spec, deadline).await {
                Ok(node) => return Ok(node),
                Err(e) if Instant::now() + Duration::from_millis(200) < deadline => {
                    eprintln!(
                        "killbench: node {} did not start ({e}); retrying",
                        spec.name
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(format!("node {}: {e}", spec.name)),
            }
        }
    }

    /// One attempt of [`Node::start`].
    async fn start_once(spec: &NodeSpec, deadline: Instant) -> Result<Self, String> {
        let log: File = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .map_err(|e| format!("{}: {e}", spec.log.display()))?;
        let mut child = spec
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", spec.bin.display()))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no stdout".to_owned());
        };
        // A thread reads stdout to its end (so the node never blocks on a full pipe) and hands
        // the lines over.
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut node = Self {
            child,
            ws: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let (mut ws, mut mesh) = (None, false);
        while ws.is_none() || !mesh {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return Err("did not announce its addresses in time".to_owned()),
                Ok(None) => return Err("exited at start (see its log)".to_owned()),
                Ok(Some(line)) => {
                    if let Some(rest) = line.strip_prefix("wscluster listening on ws://") {
                        ws = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if line.starts_with("wscluster cluster mesh on ")
                        || line.starts_with("wscluster cluster redis at ")
                        || line.starts_with("wscluster cluster redis-cluster at ")
                        || line.starts_with("wscluster cluster nats at ")
                    {
                        mesh = true;
                    }
                }
            }
        }
        node.ws = ws.unwrap_or(node.ws);
        Ok(node)
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`KILL` or `TERM`) with one `kill(2)` call.
    pub(crate) fn signal(&self, signal: &str) -> Result<(), String> {
        let sig = match signal {
            "KILL" => Signal::KILL,
            "TERM" => Signal::TERM,
            other => return Err(format!("unsupported signal {other} (KILL or TERM)")),
        };
        kill_process(Pid::from_child(&self.child), sig).map_err(|e| format!("kill: {e}"))
    }

    /// Waits until the process exited (polling until `deadline`), then SIGKILLs and reaps it
    /// anyway. True if it had exited by itself.
    pub(crate) async fn reap(mut self, deadline: Instant) -> bool {
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        false // Drop kills it.
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
