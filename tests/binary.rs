//! The real `wscluster` binary as a separate process: the address line it prints, the sgc endpoint
//! it serves, configuration precedence (file < environment < flags), bad configurations, and a
//! clean exit on SIGTERM and SIGINT.
//!
//! Every child is killed when its guard drops, and every wait has a deadline.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;

/// How long the binary may take to print its address or to exit.
const PROCESS_WAIT: Duration = Duration::from_secs(15);

/// A running `wscluster` process, killed on drop.
struct Node {
    child: Child,
    /// Lines of standard output, read by a thread so the pipe never fills.
    stdout: mpsc::Receiver<String>,
    /// Standard error (the logs and error messages) goes to this file.
    stderr: tempfile::NamedTempFile,
}

impl Node {
    /// Starts the binary with `args` and, of the `WSCLUSTER_…` variables, only `env`. The cluster
    /// port is an ephemeral loopback one, so tests never collide on the default 5410.
    fn start(args: &[&str], env: &[(&str, &str)]) -> Node {
        let mut all = vec![
            "--set",
            "cluster.mesh.bind=127.0.0.1",
            "--set",
            "cluster.mesh.port=0",
        ];
        all.extend_from_slice(args);
        let (child, rx, stderr) = support::process::spawn(&all, env);
        Node {
            child,
            stdout: rx,
            stderr,
        }
    }

    /// What the process wrote to standard error so far.
    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// The `wscluster listening on ws://ADDR (node NAME)` line: the address and the node name.
    fn listening(&self) -> (SocketAddr, String) {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match self.stdout.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => panic!(
                    "no 'listening on' line within {PROCESS_WAIT:?} ({e}); stderr:\n{}",
                    self.stderr()
                ),
            };
            if let Some(parsed) = parse_listening(&line) {
                return parsed;
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) with the shell's `kill` builtin.
    fn signal(&self, name: &str) {
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$1\" \"$2\"", "sh", name])
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Waits for the process to exit.
    fn exit_status(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PROCESS_WAIT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() > deadline => panic!(
                    "wscluster did not exit within {PROCESS_WAIT:?}; stderr:\n{}",
                    self.stderr()
                ),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for wscluster: {e}"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Parses `wscluster listening on ws://127.0.0.1:4000 (node alpha)`.
fn parse_listening(line: &str) -> Option<(SocketAddr, String)> {
    let rest = line.strip_prefix("wscluster listening on ws://")?;
    let (addr, rest) = rest.split_once(' ')?;
    let name = rest.strip_prefix("(node ")?.strip_suffix(')')?;
    Some((addr.parse().ok()?, name.to_owned()))
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".toml")
        .tempfile()
        .unwrap_or_else(|e| panic!("{e}"));
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    f
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 temp path"))
}

#[tokio::test]
async fn prints_its_real_address_and_serves_sgc() {
    let mut node = Node::start(&["--listen", "127.0.0.1:0", "--log-level", "warn"], &[]);
    let (addr, name) = node.listening();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the line must carry the bound port");
    assert!(
        name.ends_with(&format!(":{}", addr.port())),
        "derived name: {name}"
    );
    let c = WsClient::connect(addr, "/", &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.protocol.as_deref(), Some("esegece.com"));
    c.close().await;
    node.signal("TERM");
    assert_eq!(node.exit_status().code(), Some(0));
}

/// LEAD: fails until the sgc protocol (another helper's branch) sends S1 on connect; verify after
/// merge. Expected frame: docs/wire.md §2 S1,
/// `{"jsonrpc":"2.0","result":{"method":"sgc@session","message":"<GUID>"},"qos":"qosLevel0","id":"<GUID>"}`.
#[tokio::test]
async fn first_sgc_frame_is_the_session() {
    let node = Node::start(&["--listen", "127.0.0.1:0", "--log-level", "warn"], &[]);
    let (addr, _) = node.listening();
    let mut c = WsClient::connect(addr, "/", &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let raw = c.recv().await;
    assert!(
        raw.starts_with(r#"{"jsonrpc":"2.0","result":{"method":"sgc@session","#),
        "first frame must be S1: {raw}"
    );
    let s1: serde_json::Value = serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}"));
    let guid = s1["result"]["message"].as_str().unwrap_or_default();
    assert_eq!(guid.len(), 32, "{raw}");
    assert_eq!(s1["id"], guid, "{raw}");
    assert_eq!(s1["qos"], "qosLevel0", "{raw}");
}

#[test]
fn defaults_listen_on_all_interfaces_port_8080() {
    // --print-config shows the effective configuration without binding 8080 (which may be taken).
    let mut node = Node::start(&["--print-config"], &[]);
    assert_eq!(node.exit_status().code(), Some(0), "{}", node.stderr());
    let mut text = String::new();
    while let Ok(line) = node.stdout.recv_timeout(PROCESS_WAIT) {
        text.push_str(&line);
        text.push('\n');
    }
    let printed: wscluster::Config =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(printed.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(printed.node.log_level, "info");
}

/// The file sets one address and name, the environment another, flags a third: each layer wins
/// over the one below. Distinct loopback addresses (port 0) tell which layer the node used.
#[tokio::test]
async fn flags_win_over_env_which_wins_over_the_file() {
    let file = write_config(
        "[node]\nname = \"file-node\"\nlog_level = \"warn\"\n[server]\nlisten = \"127.0.0.2:0\"\n",
    );
    let config = path_str(file.path());
    let env = [
        ("WSCLUSTER_LISTEN", "127.0.0.3:0"),
        ("WSCLUSTER_NODE_NAME", "env-node"),
    ];

    // (args, environment, expected listen IP, expected node name)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case<'_>; 4] = [
        (&["--config", config], &[], "127.0.0.2", "file-node"),
        (&["--config", config], &env, "127.0.0.3", "env-node"),
        (
            &[
                "--config",
                config,
                "--listen",
                "127.0.0.4:0",
                "--node-name",
                "flag-node",
            ],
            &env,
            "127.0.0.4",
            "flag-node",
        ),
        // The file named by the environment, the systematic variable names.
        (
            &[],
            &[
                ("WSCLUSTER_CONFIG", config),
                ("WSCLUSTER_SERVER__LISTEN", "127.0.0.5:0"),
            ],
            "127.0.0.5",
            "file-node",
        ),
    ];
    for (args, env, ip, name) in cases {
        let mut node = Node::start(args, env);
        let (addr, got_name) = node.listening();
        assert_eq!(addr.ip().to_string(), ip, "args {args:?} env {env:?}");
        assert_eq!(got_name, name, "args {args:?} env {env:?}");
        // The printed address is the one really bound.
        let c = WsClient::connect(addr, "/", &["esegece.com"])
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        c.close().await;
        node.signal("TERM");
        assert_eq!(node.exit_status().code(), Some(0), "{}", node.stderr());
    }
}

#[test]
fn bad_configuration_exits_2_with_a_clear_message() {
    let unknown_key = write_config("[server]\nlisten = \"127.0.0.1:0\"\nmax_mesage_size = 5\n");
    let bad_toml = write_config("[server\nlisten = \"127.0.0.1:0\"\n");
    let unknown_path = path_str(unknown_key.path()).to_owned();
    let bad_path = path_str(bad_toml.path()).to_owned();
    // (args, environment, words the error message must contain)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);
    let cases: [Case<'_>; 6] = [
        (
            vec!["--config", &unknown_path],
            vec![],
            vec![&unknown_path, "unknown field `max_mesage_size`", "line 3"],
        ),
        (
            vec!["--config", &bad_path],
            vec![],
            vec![&bad_path, "TOML parse error", "line 1"],
        ),
        (
            vec!["--config", "/no/such/file.toml"],
            vec![],
            vec!["cannot read config file /no/such/file.toml"],
        ),
        (
            vec!["--listen", "127.0.0.1:0"],
            vec![("WSCLUSTER_SERVER__MAX_MESAGE_SIZE", "5")],
            vec!["WSCLUSTER_SERVER__MAX_MESAGE_SIZE", "unknown field"],
        ),
        (
            vec!["--listen", "nowhere"],
            vec![],
            vec!["--listen", "nowhere", "invalid socket address"],
        ),
        (
            vec!["--listen", "127.0.0.1:0", "--log-level", "verbose"],
            vec![],
            vec!["node.log_level", "verbose"],
        ),
    ];
    for (args, env, expected) in cases {
        let mut node = Node::start(&args, &env);
        let status = node.exit_status();
        let stderr = node.stderr();
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        for e in expected {
            assert!(
                stderr.contains(e),
                "{args:?} {env:?}: {e:?} not in: {stderr}"
            );
        }
        assert!(
            node.stdout.try_recv().is_err(),
            "{args:?}: must not announce an address"
        );
    }
}

#[tokio::test]
async fn sigterm_closes_clients_with_1001_and_exits_0() {
    let mut node = Node::start(&["--listen", "127.0.0.1:0", "--log-level", "warn"], &[]);
    let (addr, _) = node.listening();
    let mut c = WsClient::connect(addr, "/", &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    node.signal("TERM");
    let (code, _) = c.expect_closed_within(PROCESS_WAIT).await;
    assert_eq!(code, Some(1001));
    assert_eq!(node.exit_status().code(), Some(0), "{}", node.stderr());
}

#[test]
fn sigint_exits_0() {
    let mut node = Node::start(&["--listen", "127.0.0.1:0", "--log-format", "json"], &[]);
    let _ = node.listening();
    node.signal("INT");
    assert_eq!(node.exit_status().code(), Some(0), "{}", node.stderr());
    // JSON logs: every line of standard error is one JSON object.
    let logs = node.stderr();
    assert!(logs.contains("shutting down"), "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
    }
}
