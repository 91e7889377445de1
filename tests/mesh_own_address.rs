//! A node never lists or dials itself, and shows its peers at an address one can dial, with real
//! `wscluster` processes bound to `0.0.0.0` (the default) and given each other by distinct
//! loopback addresses (127.0.0.2, 127.0.0.3): the way three hosts see each other, on one machine.
//!
//! Peers pass on the addresses they know (gossip); a node bound to `0.0.0.0` receives its own
//! address back (as its peers saw it) and must recognise it, and a peer that announces `0.0.0.0:PORT`
//! must be shown at the IP its link came from.

mod ops_support;
mod support;

use std::time::{Duration, Instant};

use ops_support::{TOKEN, request};
use serde_json::Value;
use support::process::*;

async fn peers(node: &NodeProcess) -> Value {
    let r = request(node.ws, "GET", "/admin/peers", Some(TOKEN), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// What is wrong with `node`'s peer list (its own cluster port is `own_port`), if anything. An
/// address learned a moment ago may be listed `unreached` while its first dial is on its way (a
/// second address of a known peer, passed on by another peer); never the node's own.
fn wrong(view: &Value, own_port: u16) -> Option<String> {
    for p in view["peers"].as_array().into_iter().flatten() {
        let addr = p["address"].as_str().unwrap_or_default();
        let parsed: Option<std::net::SocketAddr> = addr.parse().ok();
        match parsed {
            None => return Some(format!("an address one cannot dial: {p}")),
            Some(a) if a.ip().is_unspecified() => {
                return Some(format!("a bind address instead of a dialable one: {p}"));
            }
            Some(a) if a.port() == own_port => return Some(format!("itself: {p}")),
            Some(_) => {}
        }
    }
    None
}

#[tokio::test]
async fn nodes_bound_to_0_0_0_0_never_list_themselves_and_show_dialable_peers() {
    let args = |name: &str| {
        NodeArgs::new(name)
            .set("cluster.mesh.bind=0.0.0.0")
            .set(&format!("admin.token={TOKEN}"))
    };
    let a = NodeProcess::start(args("a")).await;
    let a_port = a.mesh.port();
    let b = NodeProcess::start(args("b").peer(format!("127.0.0.2:{a_port}"))).await;
    let c = NodeProcess::start(args("c").peer(format!("127.0.0.3:{a_port}"))).await;
    let nodes = [&a, &b, &c];

    // Everyone linked to everyone (c learns b through a).
    let deadline = Instant::now() + PROCESS_WAIT;
    loop {
        let mut linked = 0;
        for n in nodes {
            let v = peers(n).await;
            linked += v["peers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["state"] == "linked")
                .count();
        }
        if linked == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "not linked: {linked} of 6 links");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // From then on, for two seconds of gossip and redials, no node lists itself or a bind
    // address.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        for n in nodes {
            let v = peers(n).await;
            if let Some(w) = wrong(&v, n.mesh.port()) {
                panic!("node {} lists {w}\n{v}\nlog:\n{}", n.name, n.stderr());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And each settles on exactly its two peers, linked.
    let deadline = Instant::now() + PROCESS_WAIT;
    for n in nodes {
        loop {
            let v = peers(n).await;
            let list = v["peers"].as_array().cloned().unwrap_or_default();
            if list.len() == 2 && list.iter().all(|p| p["state"] == "linked") {
                break;
            }
            assert!(Instant::now() < deadline, "node {}: {v}", n.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // b dialled a at 127.0.0.2 and shows it there, or at 127.0.0.3 where c reaches it (c passes
    // that address on), or at 127.0.0.1 when the link that stayed is the one a dialled (its
    // source address, with a's port): a dialable address in every case, although a announced
    // 0.0.0.0.
    let v = peers(&b).await;
    let shown_a = v["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["node_id"] == "a")
        .and_then(|p| p["address"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        [
            format!("127.0.0.1:{a_port}"),
            format!("127.0.0.2:{a_port}"),
            format!("127.0.0.3:{a_port}")
        ]
        .contains(&shown_a),
        "{v}"
    );
    // a shows b at the IP b's link came from, with b's port.
    let v = peers(&a).await;
    let shown_b = v["peers"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["node_id"] == "b")
        .and_then(|p| p["address"].as_str())
        .unwrap_or_default()
        .to_owned();
    assert!(
        shown_b.ends_with(&format!(":{}", b.mesh.port())) && !shown_b.starts_with("0.0.0.0"),
        "{v}"
    );
}
