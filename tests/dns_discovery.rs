//! Peers found through DNS (`--peers-dns NAME:PORT`) with real `wscluster` processes that are given
//! no peer address at all: they find each other only by resolving a name.
//!
//! - `localhost:PORT` through the machine's own resolver (any machine);
//! - the Kubernetes shape: one name with several addresses, every node on the same cluster port of
//!   its own loopback address (127.0.0.2, .3, .4). The name lives in a hosts file bind-mounted over
//!   `/etc/hosts` inside a private mount namespace of each node process (`unshare -m`), so the nodes'
//!   system resolver (getaddrinfo, as in production) answers it while the machine's `/etc/hosts` is
//!   untouched. A third node that knows nobody joins once the name also resolves to it: found only
//!   because the others resolve the name again.

mod support;

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use support::process::*;

/// Log lines of `node` saying how `name` resolved (`peer DNS name resolved`).
fn resolutions(node: &NodeProcess) -> Vec<serde_json::Value> {
    node.logged("peer DNS name resolved")
}

#[tokio::test]
async fn a_node_finds_its_peer_through_localhost() {
    let a = NodeProcess::start(NodeArgs::new("a")).await;
    let target = format!("localhost:{}", a.mesh.port());
    let b = NodeProcess::start(NodeArgs::new("b").args(&[
        "--peers-dns",
        &target,
        "--set",
        "cluster.mesh.dns_refresh_ms=100",
    ]))
    .await;
    wait_linked(&[&a, &b]).await;
    let resolved = resolutions(&b);
    assert_eq!(resolved.len(), 1, "{resolved:?}");
    assert_eq!(resolved[0]["name"], target.as_str());
    assert!(
        resolved[0]["addresses"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("127.0.0.1:{}", a.mesh.port()))),
        "{resolved:?}"
    );
}

/// A port free on 127.0.0.2, .3 and .4 (checked by binding each; a race with another process
/// taking it before the nodes do is possible but would fail loudly, not silently).
fn common_free_port() -> u16 {
    for _ in 0..50 {
        let probe = TcpListener::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.2: {e}"));
        let port = probe.local_addr().map(|a| a.port()).unwrap_or(0);
        let others: Vec<_> = [3, 4]
            .iter()
            .filter_map(|last| TcpListener::bind((Ipv4Addr::new(127, 0, 0, *last), port)).ok())
            .collect();
        if port != 0 && others.len() == 2 {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2-4");
}

fn dns_node(name: &str, ip: u8, port: u16, hosts: &std::path::Path, dns: Option<&str>) -> NodeArgs {
    let mut args = NodeArgs::new(name)
        .cluster_port(port)
        .set(&format!("cluster.mesh.bind=127.0.0.{ip}"))
        .set("cluster.mesh.dns_refresh_ms=100")
        .hosts_file(hosts);
    if let Some(target) = dns {
        args = args.args(&["--peers-dns", target]);
    }
    args
}

#[tokio::test]
async fn nodes_find_each_other_through_one_name_and_a_new_address_is_found_by_re_resolving() {
    // Never a silent pass: where the nodes cannot be given their own hosts file this test cannot
    // check anything, so it fails and says what it needs (the project's machines and CI run it as
    // root, where it works).
    assert!(
        hosts_override_works(),
        "this test needs `unshare -m` and the right to bind-mount over /etc/hosts (run as root): \
         `unshare -m sh -c 'mount --bind FILE /etc/hosts'` failed here"
    );
    let port = common_free_port();
    let target = format!("wscluster-peers:{port}");
    let mut hosts = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    hosts
        .write_all(b"127.0.0.1 localhost\n127.0.0.2 wscluster-peers\n127.0.0.3 wscluster-peers\n")
        .unwrap_or_else(|e| panic!("{e}"));
    hosts.flush().unwrap_or_else(|e| panic!("{e}"));

    let a = NodeProcess::start(dns_node("a", 2, port, hosts.path(), Some(&target))).await;
    let b = NodeProcess::start(dns_node("b", 3, port, hosts.path(), Some(&target))).await;
    assert_eq!(a.mesh, SocketAddr::from(([127, 0, 0, 2], port)));
    assert_eq!(b.mesh, SocketAddr::from(([127, 0, 0, 3], port)));
    wait_linked(&[&a, &b]).await;

    // c is given no peer and no name: only a and b can find it, by resolving the name again once
    // it also stands for c's address. The line is appended (one write), so a resolver reading the
    // file meanwhile sees the old content or the new one, never an empty file.
    let c = NodeProcess::start(dns_node("c", 4, port, hosts.path(), None)).await;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(hosts.path())
        .unwrap_or_else(|e| panic!("{e}"));
    file.write_all(b"127.0.0.4 wscluster-peers\n")
        .unwrap_or_else(|e| panic!("{e}"));
    wait_linked(&[&a, &b, &c]).await;

    // Each node logged the name's first answer and its one change, nothing for the dozens of
    // unchanged refreshes in between and since.
    let three = format!("127.0.0.2:{port},127.0.0.3:{port},127.0.0.4:{port}");
    for n in [&a, &b] {
        let r = resolutions(n);
        assert_eq!(r.len(), 2, "{}: {r:#?}", n.name);
        assert_eq!(r[0]["added"], "2", "{}: {r:#?}", n.name);
        assert_eq!(r[1]["added"], "1", "{}: {r:#?}", n.name);
        assert_eq!(r[1]["removed"], "0", "{}: {r:#?}", n.name);
        assert_eq!(r[1]["addresses"], three.as_str(), "{}: {r:#?}", n.name);
        assert!(n.logged("mesh link refused").is_empty(), "{}", n.stderr());
    }
    assert!(resolutions(&c).is_empty());
}
