//! In-process nodes on the NATS engine for the NATS tests: sgc and Presence attached, fast
//! heartbeats and reconnects, each on the test's own `nats-server`.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::support::nats::NatsServer;
use crate::support::{WsClient, eventually};
use wscluster::internals::cluster::nats::{NatsEngine, NatsRouting};
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
    pub fn engine(&self) -> NatsEngine {
        self.cluster
            .running_as::<NatsEngine>()
            .unwrap_or_else(|| panic!("not running on nats"))
    }

    pub async fn client(&self, channel: &str) -> WsClient {
        let (mut c, _) = WsClient::sgc(self.server.local_addr()).await;
        c.subscribe(channel).await;
        c
    }
}

/// The subject prefix of the tests on `nats`.
pub fn prefix(nats: &NatsServer) -> String {
    format!("t{}", nats.port())
}

pub fn config(nats: &NatsServer, routing: NatsRouting) -> ClusterConfig {
    let mut c = ClusterConfig::local_nats(nats.port(), &prefix(nats));
    c.nats.urls = vec![nats.url()];
    c.heartbeat_interval_ms = 100;
    c.peer_timeout_ms = 2_000;
    c.nats.routing = routing;
    c.nats.reconnect_min_ms = 50;
    c.nats.reconnect_max_ms = 300;
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

pub async fn nodes(nats: &NatsServer, routing: NatsRouting, names: &[&str]) -> Vec<Node> {
    let mut v = Vec::new();
    for n in names {
        v.push(node_with(n, config(nats, routing)).await);
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
        "nodes did not meet through nats"
    );
}

pub fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
