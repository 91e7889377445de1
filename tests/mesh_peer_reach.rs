//! A configured peer that cannot be reached is said, with real `wscluster` processes at the
//! default log level: one warning per address with its error (then silence while it stays down),
//! its `wscluster_mesh_peer_up` gauge at 0, and its address in `GET /health`; a peer that links
//! gets one info line and its gauge at 1. The node stays ready (`/ready`).
//!
//! The unresolvable name is resolved inside a private mount namespace whose `/etc/resolv.conf`
//! points at loopback (`unshare -m`, as root): no query leaves the machine.

mod ops_support;
mod support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use ops_support::request;
use serde_json::Value;
use support::process::*;

/// A loopback port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    f.write_all(text.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    f
}

/// The warnings `node` logged about `peer`.
fn warnings(node: &NodeProcess, peer: &str) -> Vec<Value> {
    node.logs()
        .into_iter()
        .filter(|v| v["level"] == "WARN" && v["fields"]["peer"] == peer)
        .collect()
}

async fn health(node: &NodeProcess) -> Value {
    let r = request(node.ws, "GET", "/health", None, None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

async fn metrics(node: &NodeProcess) -> String {
    request(node.ws, "GET", "/metrics", None, None).await.body
}

#[tokio::test]
async fn an_unreachable_configured_peer_is_warned_once_gauged_and_named_in_health() {
    assert!(
        hosts_override_works(),
        "this test needs `unshare -m` and bind mounts (root): run it as root"
    );
    let closed = closed_port().to_string();
    let nowhere = "nowhere.wscluster.test:5410";
    let hosts = file("127.0.0.1 localhost\n");
    let resolver = file(LOOPBACK_RESOLVER);
    let linked = NodeProcess::start(NodeArgs::new("up")).await;
    let node = NodeProcess::start(
        NodeArgs::new("lone")
            .hosts_file(hosts.path())
            .resolver(resolver.path())
            .peer(&closed)
            .peer(nowhere)
            .peer(linked.mesh),
    )
    .await;
    let up = linked.mesh.to_string();

    node.wait_log("a warning for each unreachable peer", |n| {
        !warnings(n, &closed).is_empty() && !warnings(n, nowhere).is_empty()
    })
    .await;
    let refused = &warnings(&node, &closed)[0]["fields"];
    assert_eq!(
        refused["message"],
        "configured peer unreachable (retrying; reminded at most once a minute)"
    );
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{refused}"
    );
    node.wait_log("the linked peer said once", |n| {
        n.logged("configured peer linked")
            .iter()
            .any(|f| f["peer"] == up.as_str())
    })
    .await;

    // /health names both unreachable addresses (and not the linked one), the node stays ready.
    let h = health(&node).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["node"], "lone");
    let listed: Vec<&str> = h["unreachable_peers"]
        .as_array()
        .unwrap_or_else(|| panic!("{h}"))
        .iter()
        .filter_map(|p| p["address"].as_str())
        .collect();
    let mut want = vec![closed.as_str(), nowhere];
    want.sort_unstable();
    assert_eq!(listed, want, "{h}");
    for p in h["unreachable_peers"].as_array().into_iter().flatten() {
        assert!(p["error"].as_str().is_some_and(|e| !e.is_empty()), "{h}");
    }
    let deadline = Instant::now() + PROCESS_WAIT;
    while request(node.ws, "GET", "/ready", None, None).await.status != 200 {
        assert!(Instant::now() < deadline, "not ready: {h}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(h["peers"], 1, "{h}");

    let m = metrics(&node).await;
    assert!(m.contains("# TYPE wscluster_mesh_peer_up gauge"), "{m}");
    assert!(
        m.contains(&format!("wscluster_mesh_peer_up{{peer=\"{closed}\"}} 0\n")),
        "{m}"
    );
    assert!(
        m.contains(&format!("wscluster_mesh_peer_up{{peer=\"{nowhere}\"}} 0\n")),
        "{m}"
    );
    assert!(
        m.contains(&format!("wscluster_mesh_peer_up{{peer=\"{up}\"}} 1\n")),
        "{m}"
    );

    // The dialer retries every 100 ms to 5 s: within the next seconds it fails again several
    // times, and says nothing more (the reminder comes after a minute).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(warnings(&node, &closed).len(), 1, "{}", node.stderr());
    assert_eq!(warnings(&node, nowhere).len(), 1, "{}", node.stderr());
    assert_eq!(
        node.logged("configured peer linked").len(),
        1,
        "{}",
        node.stderr()
    );
}
