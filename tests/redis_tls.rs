//! The Redis engine over `rediss://` against a real `redis-server` started with TLS
//! (`--tls-port`): nodes trusting the CA that signed Redis's certificate meet through it; a node
//! trusting another CA fails with a clear error and still serves its own clients.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::redis::RedisServer;
use support::sgc::*;
use support::tls::TestCa;
use support::{WsClient, eventually};
use wscluster::internals::cluster::{Cluster, ClusterConfig, SgcAdapter};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

const WAIT: Duration = Duration::from_secs(10);

struct Node {
    server: ServerHandle,
    cluster: Cluster,
}

async fn node(name: &str, redis: &RedisServer, ca_file: &str) -> Node {
    support::init_logs();
    let port = redis
        .tls_port()
        .unwrap_or_else(|| panic!("redis without TLS"));
    let mut c = ClusterConfig::local_redis(port, &format!("tls{port}"));
    c.redis.url = format!("rediss://127.0.0.1:{port}/");
    c.redis.ca_file = ca_file.into();
    c.heartbeat_interval_ms = 100;
    c.peer_timeout_ms = 2_000;
    c.redis.reconnect_min_ms = 50;
    c.redis.reconnect_max_ms = 300;
    let sgc = SgcProtocol::new(SgcConfig::default());
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(name, c);
    cluster.attach(SgcAdapter::new(sgc));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node { server, cluster }
}

async fn subscriber(n: &Node, channel: &str) -> WsClient {
    let (mut c, _) = WsClient::sgc(n.server.local_addr()).await;
    c.subscribe(channel).await;
    c
}

#[tokio::test]
async fn nodes_meet_over_rediss_and_a_node_trusting_another_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "redis");
    let cert = ca.issue(dir.path(), "redis-server", 1);
    let redis = RedisServer::start_tls(&cert.cert(), &cert.key(), &ca.ca()).await;

    let a = node("a", &redis, &ca.ca()).await;
    let b = node("b", &redis, &ca.ca()).await;
    assert!(
        eventually(WAIT, || {
            [&a, &b]
                .iter()
                .all(|n| n.cluster.ready() && n.cluster.connected_peer_count() == 1)
        })
        .await,
        "nodes did not meet over rediss: {:?} {:?}",
        a.cluster.redis().and_then(|r| r.last_error()),
        b.cluster.redis().and_then(|r| r.last_error())
    );
    let mut sub_b = subscriber(&b, "news").await;
    let (mut publisher, _) = WsClient::sgc(a.server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"over rediss\"", "news", "queueLevel0"))
        .await;
    sub_b.expect(&s5("news", "\"over rediss\"")).await;
    sub_b.barrier().await;

    // A node trusting another CA cannot connect: a clear error, and it still serves locally.
    let other = TestCa::new(dir.path(), "other");
    let c = node("c", &redis, &other.ca()).await;
    assert!(
        eventually(WAIT, || c
            .cluster
            .redis()
            .and_then(|r| r.last_error())
            .is_some_and(|e| e.to_lowercase().contains("certificate")))
        .await,
        "last error: {:?}",
        c.cluster.redis().and_then(|r| r.last_error())
    );
    assert!(!c.cluster.ready());
    assert_eq!(a.cluster.connected_peer_count(), 1, "c never joined");
    let mut local = subscriber(&c, "local").await;
    let (mut p, _) = WsClient::sgc(c.server.local_addr()).await;
    p.send(&delphi::publish("\"still served\"", "local", "queueLevel0"))
        .await;
    local.expect(&s5("local", "\"still served\"")).await;
}
