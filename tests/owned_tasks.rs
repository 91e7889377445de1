//! Every background task of a node has an owner that stops it and waits for it: three in-process
//! nodes (WebSocket server with sgc and Presence, mesh cluster with the sgc and Presence adapters)
//! with clients connected, subscribed and a publish delivered across nodes; after the cluster's
//! stop and the server's shutdown, no owner has a task left. The admin HTTP listener too.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::sgc::{delphi, s5};
use support::{WsClient, eventually};
use wscluster::internals::ops::{AdminConfig, HttpConfig};
use wscluster::internals::protocol::presence::{AckConfig, PresenceConfig};
use wscluster::internals::protocol::sgc::SgcConfig;
use wscluster::{
    Cluster, ClusterConfig, HttpServer, Listener, Ops, PresenceAdapter, PresenceProtocol, Protocol,
    Server, ServerHandle, SgcAdapter, SgcProtocol,
};

struct Node {
    server: ServerHandle,
    sgc: SgcProtocol,
    presence: PresenceProtocol,
    cluster: Cluster,
}

fn mesh_config(peers: Vec<String>) -> ClusterConfig {
    ClusterConfig {
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 1_000,
        ..ClusterConfig::loopback_mesh(peers, "test-secret-0123456789")
    }
}

/// A node whose protocols both run their resend sweepers (sgc QoS 1, Presence acknowledgments).
async fn node(name: &str, peers: Vec<String>) -> Node {
    support::init_logs();
    let sgc = SgcProtocol::new(SgcConfig {
        qos_level: 1,
        ..SgcConfig::default()
    });
    let presence = PresenceProtocol::new(PresenceConfig {
        acknowledgment: AckConfig {
            enabled: true,
            ..AckConfig::default()
        },
        ..PresenceConfig::default()
    });
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(presence.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(name, mesh_config(peers));
    cluster.attach(SgcAdapter::new(sgc.clone()));
    cluster.attach(PresenceAdapter::new(presence.clone()));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node {
        server,
        sgc,
        presence,
        cluster,
    }
}

fn seed(n: &Node) -> String {
    n.cluster
        .mesh()
        .map(|m| m.local_addr().to_string())
        .unwrap_or_default()
}

/// An sgc client of `n` subscribed to `channel` (the confirmation comes once the other nodes
/// acknowledged the new interest).
async fn subscriber(n: &Node, channel: &str) -> WsClient {
    let (mut c, _) = WsClient::sgc(n.server.local_addr()).await;
    c.send(&delphi::subscribe(channel)).await;
    let confirmed = c.recv_json().await;
    assert_eq!(
        confirmed["result"]["method"], "sgc@subscribe",
        "subscription confirmed: {confirmed}"
    );
    assert_eq!(confirmed["result"]["channel"], channel);
    c
}

/// The tasks each owner of `n` has running, by owner.
fn tasks(n: &Node) -> Vec<(&'static str, usize)> {
    vec![
        ("server", n.server.task_count()),
        ("sgc", n.sgc.task_count()),
        ("presence", n.presence.task_count()),
        ("cluster", n.cluster.task_count()),
        (
            "engine",
            n.cluster.running_engine().map_or(0, |e| e.task_count()),
        ),
    ]
}

#[tokio::test]
async fn no_task_of_a_node_is_left_after_its_shutdown() {
    let a = node("a", vec![]).await;
    let b = node("b", vec![seed(&a)]).await;
    let c = node("c", vec![seed(&a)]).await;
    let nodes = [a, b, c];
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.cluster.connected_peer_count() == 2))
        .await,
        "full mesh"
    );
    let mut orders = subscriber(&nodes[0], "orders").await;
    let mut other = subscriber(&nodes[2], "other").await;
    // A Presence client on every node (its session frame starts the acknowledgment sweeper).
    let mut members = Vec::new();
    for n in &nodes {
        let mut m = WsClient::connect(n.server.local_addr(), "/", &["presence.esegece.com"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let session = m.recv_json().await;
        assert_eq!(session["method"], "sgc@presence@session", "{session}");
        members.push(m);
    }
    let (mut publisher, _) = WsClient::sgc(nodes[1].server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"m1\"", "orders", "queueLevel0"))
        .await;
    orders.expect(&s5("orders", "\"m1\"")).await;
    // Exactly once, and nothing for the other channel's subscriber.
    orders.barrier().await;
    other.barrier().await;

    let engines: Vec<_> = nodes
        .iter()
        .map(|n| {
            n.cluster
                .running_engine()
                .unwrap_or_else(|| panic!("{} has no engine running", n.cluster.node_id()))
        })
        .collect();
    for n in &nodes {
        let running = tasks(n);
        for (owner, count) in &running {
            assert!(
                *count > 0 || *owner == "cluster",
                "{}: {owner} has tasks while serving: {running:?}",
                n.cluster.node_id()
            );
        }
    }
    for (n, engine) in nodes.iter().zip(&engines) {
        n.cluster.shutdown().await;
        n.server.shutdown().await;
        let left: Vec<_> = tasks(n)
            .into_iter()
            .chain([("stopped engine", engine.task_count())])
            .filter(|(_, count)| *count > 0)
            .collect();
        assert!(
            left.is_empty(),
            "{}: tasks left after shutdown: {left:?}",
            n.cluster.node_id()
        );
    }
    drop((orders, other, publisher, members));
}

#[tokio::test]
async fn no_task_of_the_admin_listener_is_left_after_its_shutdown() {
    support::init_logs();
    let ops = Arc::new(Ops::new(HttpConfig::default(), AdminConfig::default()));
    let admin = HttpServer::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        ops.handler(Listener::Admin),
    )
    .await
    .unwrap_or_else(|e| panic!("bind: {e}"));
    let answer = support::raw_http(
        admin.local_addr(),
        "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // A client that connected and sent nothing: its request task is running.
    let _silent = tokio::net::TcpStream::connect(admin.local_addr())
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    assert!(
        eventually(Duration::from_secs(5), || admin.task_count() == 2).await,
        "accept loop and the silent client's request: {}",
        admin.task_count()
    );
    admin.shutdown().await;
    assert_eq!(
        admin.task_count(),
        0,
        "admin listener tasks left after shutdown"
    );
}
