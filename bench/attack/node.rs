//! A wscluster node started as a user would: the binary, a few flags, standard output read for the
//! addresses it prints, standard error kept (the log-injection attacks read it), its memory read
//! from `/proc`. Dropping a [`Node`] kills the process.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a node may take to print its start lines.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running node.
pub(crate) struct Node {
    child: Child,
    /// Where its WebSocket (and HTTP) listener is.
    pub(crate) ws: SocketAddr,
    /// Where its mesh cluster port is, when it printed one.
    pub(crate) mesh: Option<SocketAddr>,
    /// Where its separate admin listener is, when it has one.
    pub(crate) admin: Option<SocketAddr>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// What to wait for on standard output besides the WebSocket line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Expect {
    /// A `wscluster cluster mesh on ADDR` line.
    pub(crate) mesh: bool,
    /// A `wscluster admin on http://ADDR` line.
    pub(crate) admin: bool,
}

/// The first token after `prefix` on `line`, as a socket address.
fn addr_after(line: &str, prefix: &str) -> Option<SocketAddr> {
    let rest = line.strip_prefix(prefix)?;
    let token = rest.split_whitespace().next()?;
    token.trim_end_matches('/').parse().ok()
}

impl Node {
    /// Starts `bin` with `--listen 127.0.0.1:0` and `args`, with no `WSCLUSTER_*` variable from
    /// this process's environment, and waits for the lines `expect` names.
    pub(crate) fn start(bin: &Path, args: &[String], expect: Expect) -> Result<Node, String> {
        let mut cmd = Command::new(bin);
        cmd.arg("--listen").arg("127.0.0.1:0").args(args);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("WSCLUSTER_") {
                cmd.env_remove(k);
            }
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut stderr_pipe = child.stderr.take().ok_or("no stderr")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = sink.lock() {
                    s.extend_from_slice(&buf[..n]);
                }
            }
        });
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut node = Node {
            child,
            ws: SocketAddr::from(([127, 0, 0, 1], 0)),
            mesh: None,
            admin: None,
            stderr,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        let mut ws = None;
        loop {
            let done = ws.is_some()
                && (!expect.mesh || node.mesh.is_some())
                && (!expect.admin || node.admin.is_some());
            if done {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = addr_after(&line, "wscluster listening on ws://") {
                        ws = Some(a);
                    } else if let Some(a) = addr_after(&line, "wscluster cluster mesh on ") {
                        node.mesh = Some(a);
                    } else if let Some(a) = addr_after(&line, "wscluster admin on http://") {
                        node.admin = Some(a);
                    }
                }
                Err(_) => {
                    let status = node.child.try_wait().ok().flatten();
                    return Err(format!(
                        "the node did not print its start lines (exit: {status:?}; stderr: {})",
                        node.stderr_tail(400)
                    ));
                }
            }
        }
        node.ws = ws.unwrap_or(node.ws);
        Ok(node)
    }

    /// The node's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory (VmRSS) in bytes.
    pub(crate) fn rss(&self) -> Result<u64, String> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .map_err(|e| format!("cannot read the node's /proc status: {e}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| "no VmRSS line".to_owned())
    }

    /// Everything the node wrote on standard error so far.
    pub(crate) fn stderr(&self) -> Vec<u8> {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The last `n` bytes of standard error, lossily, for error messages.
    pub(crate) fn stderr_tail(&self, n: usize) -> String {
        let all = self.stderr();
        let from = all.len().saturating_sub(n);
        String::from_utf8_lossy(&all[from..])
            .escape_debug()
            .to_string()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `--print-config` of the binary as TOML, for the options it has and their defaults.
pub(crate) fn print_config(bin: &Path) -> Result<toml::Table, String> {
    let mut cmd = Command::new(bin);
    cmd.arg("--print-config");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {} --print-config: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.parse::<toml::Table>()
        .map_err(|e| format!("--print-config is not TOML: {e}"))
}

/// Every dotted key of a TOML table with its value.
pub(crate) fn flat_keys(t: &toml::Table) -> Vec<(String, toml::Value)> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<(String, toml::Value)>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(inner) => walk(&key, inner, out),
                other => out.push((key, other.clone())),
            }
        }
    }
    let mut out = Vec::new();
    walk("", t, &mut out);
    out
}

/// The path of the wscluster binary given on the command line, checked.
pub(crate) fn binary(path: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(path);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{path}: no such file"))
    }
}
