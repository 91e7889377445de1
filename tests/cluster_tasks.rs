//! Every task of the cluster and its engine has an owner: after `stop` none is left running, on
//! the mesh (three in-process nodes, linked and exchanging traffic), through Redis, through a
//! Redis Cluster and through NATS.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::eventually;
use support::nats::NatsServer;
use support::redis::RedisServer;
use support::redis_cluster::RedisCluster;
use wscluster::internals::cluster::envelope::Kind;
use wscluster::internals::cluster::{Cluster, ClusterConfig};

fn mesh_config(peers: Vec<String>) -> ClusterConfig {
    ClusterConfig {
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 1_000,
        ..ClusterConfig::loopback_mesh(peers, "test-secret-0123456789")
    }
}

async fn started(name: &str, config: ClusterConfig) -> Cluster {
    let c = Cluster::new(name, config);
    c.start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    c
}

/// Stops every cluster and checks that neither it nor its engine has a task left.
async fn stop_and_check(clusters: &[Cluster]) {
    let engines: Vec<_> = clusters
        .iter()
        .map(|c| {
            c.running_engine()
                .unwrap_or_else(|| panic!("{} has no engine running", c.node_id()))
        })
        .collect();
    for (c, e) in clusters.iter().zip(&engines) {
        assert!(
            e.task_count() > 0,
            "{}: a running engine has tasks",
            c.node_id()
        );
    }
    // Checked the moment the engine's `stop` returns: it must have waited for every task (the
    // cluster's own stop would give them time to end on their own).
    for (c, e) in clusters.iter().zip(&engines) {
        e.stop().await;
        assert_eq!(
            e.task_count(),
            0,
            "{}: engine tasks left after the engine's stop",
            c.node_id()
        );
        c.stop().await;
        assert_eq!(
            e.task_count(),
            0,
            "{}: engine tasks left after stop",
            c.node_id()
        );
        assert_eq!(
            c.task_count(),
            0,
            "{}: cluster tasks left after stop",
            c.node_id()
        );
    }
}

#[tokio::test]
async fn no_task_of_a_mesh_cluster_is_left_after_stop() {
    support::init_logs();
    let a = started("a", mesh_config(vec![])).await;
    let seed = a
        .mesh()
        .map(|m| m.local_addr().to_string())
        .unwrap_or_default();
    let b = started("b", mesh_config(vec![seed.clone()])).await;
    let c = started("c", mesh_config(vec![seed])).await;
    let nodes = [a, b, c];
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.connected_peer_count() == 2))
        .await,
        "full mesh"
    );
    // Some traffic on every link (the receivers have no adapter: it is dropped there).
    for n in &nodes {
        if let Some(e) = n.running_engine() {
            e.send_all(Kind::SgcBroadcast, Bytes::from_static(b"x"));
        }
    }
    stop_and_check(&nodes).await;
}

#[tokio::test]
async fn no_task_of_a_redis_cluster_is_left_after_stop() {
    support::init_logs();
    let redis = Arc::new(RedisServer::start().await);
    let config = || ClusterConfig {
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 1_000,
        ..ClusterConfig::local_redis(redis.port(), "tasks")
    };
    let a = started("a", config()).await;
    let b = started("b", config()).await;
    let nodes = [a, b];
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.connected_peer_count() == 1))
        .await,
        "both nodes see each other through redis"
    );
    stop_and_check(&nodes).await;
}

#[tokio::test]
async fn no_task_of_a_cluster_on_redis_cluster_is_left_after_stop() {
    use wscluster::internals::cluster::EngineKind;
    use wscluster::internals::cluster::redis::RedisRouting;
    use wscluster::internals::cluster::redis_cluster::RedisClusterConfig;
    support::init_logs();
    let rc = RedisCluster::start().await;
    let config = || {
        let mut c = ClusterConfig {
            engine: EngineKind::RedisCluster,
            heartbeat_interval_ms: 100,
            peer_timeout_ms: 1_000,
            ..ClusterConfig::default()
        };
        c.redis_cluster = RedisClusterConfig::local(rc.seeds(), "tasks", RedisRouting::Channel);
        c
    };
    let a = started("a", config()).await;
    let b = started("b", config()).await;
    let nodes = [a, b];
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.connected_peer_count() == 1))
        .await,
        "both nodes see each other through the redis cluster"
    );
    stop_and_check(&nodes).await;
}

#[tokio::test]
async fn no_task_of_a_nats_cluster_is_left_after_stop() {
    support::init_logs();
    let nats = NatsServer::start().await;
    let config = || ClusterConfig {
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 1_000,
        ..ClusterConfig::local_nats(nats.port(), "tasks")
    };
    let a = started("a", config()).await;
    let b = started("b", config()).await;
    let nodes = [a, b];
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.connected_peer_count() == 1))
        .await,
        "both nodes see each other through nats"
    );
    stop_and_check(&nodes).await;
}
