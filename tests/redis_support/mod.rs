//! In-process nodes on the Redis engine for the Redis tests: sgc and Presence attached, fast
//! heartbeats and reconnects, each on the test's own `redis-server`.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::redis::RedisServer;
use crate::support::{WsClient, eventually};
use wscluster::internals::cluster::redis::{RedisEngine, RedisRouting};
use wscluster::internals::cluster::{Cluster, ClusterConfig, PresenceAdapter, SgcAdapter};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

/// Long enough for any wait on a loaded machine.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Node {
    pub server: ServerHandle,
    pub cluster: Cluster,
}

impl Node {
    pub fn engine(&self) -> RedisEngine {
        self.cluster
            .redis()
            .unwrap_or_else(|| panic!("not running on redis"))
    }

    pub async fn client(&self, channel: &str) -> WsClient {
        let (mut c, _) = WsClient::sgc(self.server.local_addr()).await;
        c.subscribe(channel).await;
        c
    }
}

pub fn config(redis: &RedisServer, routing: RedisRouting) -> ClusterConfig {
    let mut c = ClusterConfig::local_redis(redis.port(), &format!("t{}", redis.port()));
    c.heartbeat_interval_ms = 100;
    c.peer_timeout_ms = 2_000;
    c.redis.routing = routing;
    c.redis.reconnect_min_ms = 50;
    c.redis.reconnect_max_ms = 300;
    c
}

pub async fn node_with(name: &str, config: ClusterConfig) -> Node {
    crate::support::init_logs();
    let sgc = SgcProtocol::new(SgcConfig::default());
    let presence = PresenceProtocol::new(PresenceConfig::default());
    let server = Server::new(crate::support::test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(presence.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(name, config);
    cluster.attach(SgcAdapter::new(sgc));
    cluster.attach(PresenceAdapter::new(presence));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node { server, cluster }
}

pub async fn nodes(redis: &RedisServer, routing: RedisRouting, names: &[&str]) -> Vec<Node> {
    let mut v = Vec::new();
    for n in names {
        v.push(node_with(n, config(redis, routing)).await);
    }
    meet(&v).await;
    v
}

/// Waits until every node is ready and sees every other.
pub async fn meet(nodes: &[Node]) {
    let want = nodes.len() - 1;
    assert!(
        eventually(WAIT, || nodes.iter().all(
            |n| n.cluster.ready() && n.cluster.connected_peer_count() == want
        ))
        .await,
        "nodes did not meet through redis"
    );
}

pub fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
