//! A wscluster process started from a documented command line, for the documentation tests.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a node may take to start and print its addresses.
pub const WAIT: Duration = Duration::from_secs(20);

/// A node started from a README command, killed when dropped (its log printed if the test failed).
pub struct Node {
    pub command: String,
    pub child: Child,
    pub _stdout: mpsc::Receiver<String>,
    pub stderr: tempfile::NamedTempFile,
    pub ws: SocketAddr,
    pub mesh_port: Option<u16>,
}

impl Node {
    pub fn start(command: &str, args: &[String], mesh: bool) -> Node {
        let (child, stdout, stderr) = crate::support::process::spawn(args, &[]);
        let deadline = Instant::now() + WAIT;
        let (mut ws, mut mesh_port) = (None, None);
        while ws.is_none() || (mesh && mesh_port.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("wscluster listening on ws://") {
                        ws = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("wscluster cluster mesh on ") {
                        mesh_port = rest
                            .split(' ')
                            .next()
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                            .map(|a| a.port());
                    }
                }
                Err(e) => panic!(
                    "`{command}` did not announce its addresses ({e}); log:\n{}",
                    std::fs::read_to_string(stderr.path()).unwrap_or_default()
                ),
            }
        }
        Node {
            command: command.to_owned(),
            child,
            _stdout: stdout,
            stderr,
            ws: ws.unwrap_or_else(|| unreachable!()),
            mesh_port,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of `{}` ----\n{}",
                self.command,
                std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
            );
        }
    }
}
