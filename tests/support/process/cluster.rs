//! Clusters of real processes: [`wait_linked`], the engine a test runs on ([`Backplane`] and
//! [`on_every_backplane!`](crate::on_every_backplane)), starting whole clusters, and the
//! [`Syncer`] that orders steps across processes.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{NodeArgs, NodeProcess};
use crate::support::WsClient;
use crate::support::sgc::{delphi, s5};

/// Waits until every node's log shows every other node (and only those) as a live peer.
pub async fn wait_linked(nodes: &[&NodeProcess]) {
    for n in nodes {
        let want: BTreeSet<String> = nodes
            .iter()
            .filter(|o| o.name != n.name)
            .map(|o| o.name.clone())
            .collect();
        n.wait_log(&format!("peers {want:?} connected"), |n| {
            n.live_peers() == want
        })
        .await;
    }
}

/// The peer timeout of test nodes on a broker engine, Redis, Redis Cluster or NATS (a SIGKILLed
/// node is noticed by its vanished subscription or its silence there, not by a closed link): long
/// enough for a loaded machine, short enough for the tests.
pub const REDIS_PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// Which engine a test's nodes use.
#[derive(Clone)]
pub enum Backplane {
    /// TCP mesh links (the default engine).
    Mesh,
    /// A `redis-server` of the test's own, with a routing (`shared` or `channel`).
    Redis(
        std::sync::Arc<crate::support::redis::RedisServer>,
        &'static str,
    ),
    /// A three-master Redis Cluster of the test's own, with a routing (`shared` or `channel`).
    RedisCluster(
        std::sync::Arc<crate::support::redis_cluster::RedisCluster>,
        &'static str,
    ),
    /// A `nats-server` of the test's own, with a routing (`shared` or `channel`).
    Nats(
        std::sync::Arc<crate::support::nats::NatsServer>,
        &'static str,
    ),
}

impl Backplane {
    /// The Redis engine on a fresh `redis-server`, with `routing`.
    pub async fn redis(routing: &'static str) -> Self {
        Backplane::Redis(
            std::sync::Arc::new(crate::support::redis::RedisServer::start().await),
            routing,
        )
    }

    /// The Redis Cluster engine on a fresh three-master Redis Cluster, with `routing`.
    pub async fn redis_cluster(routing: &'static str) -> Self {
        Backplane::RedisCluster(
            std::sync::Arc::new(crate::support::redis_cluster::RedisCluster::start().await),
            routing,
        )
    }

    /// The NATS engine on a fresh `nats-server`, with `routing`.
    pub async fn nats(routing: &'static str) -> Self {
        Backplane::Nats(
            std::sync::Arc::new(crate::support::nats::NatsServer::start().await),
            routing,
        )
    }

    /// Node `name`'s arguments on this engine; `seed` is a node to dial (mesh only).
    pub fn args(&self, name: &str, seed: Option<&NodeProcess>) -> NodeArgs {
        match self {
            Backplane::Mesh => {
                let a = NodeArgs::new(name);
                match seed {
                    Some(s) => a.peer(s.mesh),
                    None => a,
                }
            }
            Backplane::Redis(server, routing) => NodeArgs::new(name)
                .redis(server.port(), routing)
                .set(&format!(
                    "cluster.peer_timeout_ms={}",
                    REDIS_PEER_TIMEOUT.as_millis()
                )),
            Backplane::RedisCluster(cluster, routing) => NodeArgs::new(name)
                .redis_cluster(
                    &cluster.seeds(),
                    &format!("wsc-test-{}", cluster.port(0)),
                    routing,
                )
                .set(&format!(
                    "cluster.peer_timeout_ms={}",
                    REDIS_PEER_TIMEOUT.as_millis()
                )),
            Backplane::Nats(server, routing) => NodeArgs::new(name)
                .nats(&server.url(), server.port(), routing)
                .set(&format!(
                    "cluster.peer_timeout_ms={}",
                    REDIS_PEER_TIMEOUT.as_millis()
                )),
        }
    }
}

/// Declares, for each listed `async fn name(bp: Backplane)` scenario, one test per engine:
/// `mesh::name`, `redis_shared::name`, `redis_channel::name`, `redis_cluster_shared::name`,
/// `redis_cluster_channel::name`, `nats_shared::name` and `nats_channel::name`.
#[macro_export]
macro_rules! on_every_backplane {
    ($($name:ident),* $(,)?) => {
        mod mesh {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::Mesh).await } )*
        }
        mod redis_shared {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::redis("shared").await).await } )*
        }
        mod redis_channel {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::redis("channel").await).await } )*
        }
        mod redis_cluster_shared {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::redis_cluster("shared").await).await } )*
        }
        mod redis_cluster_channel {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::redis_cluster("channel").await).await } )*
        }
        mod nats_shared {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::nats("shared").await).await } )*
        }
        mod nats_channel {
            $( #[tokio::test] async fn $name() { super::$name($crate::support::process::Backplane::nats("channel").await).await } )*
        }
    };
}

/// Starts nodes `names` on `bp` (mesh: the first one is the seed the others dial), each node's
/// arguments adjusted by `adjust`, and waits until every node sees every other.
pub async fn start_cluster_on(
    bp: &Backplane,
    names: &[&str],
    adjust: impl Fn(NodeArgs) -> NodeArgs,
) -> Vec<NodeProcess> {
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for name in names {
        let args = adjust(bp.args(name, nodes.first()));
        nodes.push(NodeProcess::start(args).await);
    }
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    nodes
}

/// Starts nodes `names` (the first one is the seed the others dial) and waits for the full mesh.
pub async fn start_cluster(names: &[&str]) -> Vec<NodeProcess> {
    start_cluster_with(names, |args| args).await
}

/// Like [`start_cluster`], with each node's arguments adjusted by `adjust` first.
pub async fn start_cluster_with(
    names: &[&str],
    adjust: impl Fn(NodeArgs) -> NodeArgs,
) -> Vec<NodeProcess> {
    let mut nodes: Vec<NodeProcess> = Vec::new();
    for name in names {
        let mut args = adjust(NodeArgs::new(name));
        if let Some(seed) = nodes.first() {
            args = args.peer(seed.mesh);
        }
        nodes.push(NodeProcess::start(args).await);
    }
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    nodes
}

/// The channel the [`Syncer`]'s clients use; no test publishes there.
pub const SYNC_CHANNEL: &str = "test-sync";

/// One sgc client per node, subscribed to [`SYNC_CHANNEL`], to order steps across processes.
pub struct Syncer {
    clients: Vec<(String, WsClient)>,
    next: u32,
}

impl Syncer {
    /// A sync client on each of `nodes`.
    pub async fn new(nodes: &[&NodeProcess]) -> Self {
        let mut s = Self {
            clients: Vec::new(),
            next: 1,
        };
        for n in nodes {
            s.add(n).await;
        }
        s
    }

    /// Adds a sync client on `node`.
    pub async fn add(&mut self, node: &NodeProcess) {
        let (mut c, _) = WsClient::sgc(node.ws).await;
        c.subscribe(SYNC_CHANNEL).await;
        self.clients.push((node.name.clone(), c));
    }

    /// Forgets the client on node `name` (the node is gone).
    pub fn remove(&mut self, name: &str) {
        self.clients.retain(|(n, _)| n != name);
    }

    /// The sync client on node `name` (it also receives broadcasts to every connection).
    pub fn client(&mut self, name: &str) -> &mut WsClient {
        self.clients
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("no sync client on {name}"))
    }

    /// Publishes a fresh sync message from node `from`'s client and waits until every sync client
    /// (the sender's included) received it as its very next frame. Afterwards, everything `from`
    /// relayed before has been applied on every node.
    pub async fn flush_from(&mut self, from: &str) {
        let message = format!("\"sync-{}\"", self.next);
        self.next += 1;
        self.client(from)
            .send(&delphi::publish(&message, SYNC_CHANNEL, "queueLevel0"))
            .await;
        let expected = s5(SYNC_CHANNEL, &message);
        for (name, c) in &mut self.clients {
            let got = c.recv().await;
            assert_eq!(
                got, expected,
                "sync client on {name}: unexpected frame while flushing from {from}"
            );
        }
    }

    /// [`Syncer::flush_from`] every node in turn.
    pub async fn flush_all(&mut self) {
        let names: Vec<String> = self.clients.iter().map(|(n, _)| n.clone()).collect();
        for n in names {
            self.flush_from(&n).await;
        }
    }
}
