//! The mesh engine on its own, over real TCP on loopback: links, authentication, delivery order,
//! gossip, failure detection and replay.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use wscluster::cluster::engine::EngineHandler;
use wscluster::cluster::envelope::{Envelope, Kind, Origin};
use wscluster::cluster::membership::DownReason;
use wscluster::cluster::mesh::{MeshConfig, MeshEngine};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Msg(String, Vec<u8>),
    Up(String),
    Down(String, DownReason),
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl EngineHandler for Recorder {
    fn on_envelope(&self, e: Envelope) {
        self.seen
            .lock()
            .push(Seen::Msg(e.origin.node_id.to_string(), e.payload.to_vec()));
    }
    fn on_peer_up(&self, p: &Origin, _: Option<&str>) {
        self.seen.lock().push(Seen::Up(p.node_id.to_string()));
    }
    fn on_peer_down(&self, p: &Origin, r: DownReason) {
        self.seen.lock().push(Seen::Down(p.node_id.to_string(), r));
    }
}

impl Recorder {
    fn msgs_from(&self, node: &str) -> Vec<Vec<u8>> {
        self.seen
            .lock()
            .iter()
            .filter_map(|s| match s {
                Seen::Msg(n, p) if n == node => Some(p.clone()),
                _ => None,
            })
            .collect()
    }
    fn has(&self, s: &Seen) -> bool {
        self.seen.lock().contains(s)
    }
}

fn cfg(peers: Vec<String>, secret: &str) -> MeshConfig {
    MeshConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        peers,
        secret: secret.into(),
        peer_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
        ..MeshConfig::default()
    }
}

async fn node(name: &str, peers: Vec<String>, secret: &str) -> (MeshEngine, Arc<Recorder>) {
    support::init_logs();
    let rec = Arc::new(Recorder::default());
    let origin = Origin {
        node_id: Arc::from(name),
        incarnation: fastrand::u64(..),
    };
    let e = MeshEngine::start(cfg(peers, secret), origin, rec.clone())
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    (e, rec)
}

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test]
async fn three_nodes_learn_each_other_from_one_seed_and_deliver_in_order_without_echo() {
    let (a, ra) = node("a", vec![], "s").await;
    let seed = a.local_addr().to_string();
    let (b, rb) = node("b", vec![seed.clone()], "s").await;
    let (c, rc) = node("c", vec![seed], "s").await;
    assert!(
        support::eventually(WAIT, || a.connected_peer_count() == 2
            && b.connected_peer_count() == 2
            && c.connected_peer_count() == 2)
        .await,
        "full mesh from one seed: a={} b={} c={}",
        a.connected_peer_count(),
        b.connected_peer_count(),
        c.connected_peer_count()
    );
    assert!(a.ready() && b.ready() && c.ready());
    for i in 0..200u32 {
        a.send_all(Kind::SgcPublish, Bytes::from(i.to_be_bytes().to_vec()));
    }
    let expected: Vec<Vec<u8>> = (0..200u32).map(|i| i.to_be_bytes().to_vec()).collect();
    assert!(
        support::eventually(WAIT, || rb.msgs_from("a") == expected
            && rc.msgs_from("a") == expected)
        .await
    );
    assert!(ra.msgs_from("a").is_empty(), "never echoed to the origin");
    // Targeted send reaches only its target.
    b.send_to("c", Kind::PresenceDelta, Bytes::from_static(b"only-c"));
    assert!(support::eventually(WAIT, || rc.msgs_from("b") == vec![b"only-c".to_vec()]).await);
    // A round trip from b to a that must arrive after anything b sent before: a saw nothing of b.
    b.send_to("a", Kind::PresenceDelta, Bytes::from_static(b"barrier"));
    assert!(support::eventually(WAIT, || ra.msgs_from("b") == vec![b"barrier".to_vec()]).await);
    b.stop().await;
    assert!(
        support::eventually(WAIT, || ra.has(&Seen::Down("b".into(), DownReason::Bye))
            && rc.has(&Seen::Down("b".into(), DownReason::Bye)))
        .await
    );
    a.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn wrong_secret_is_refused_and_counted() {
    let (a, _ra) = node("a", vec![], "right").await;
    let (b, rb) = node("b", vec![a.local_addr().to_string()], "wrong").await;
    assert!(
        support::eventually(WAIT, || b.ready()).await,
        "the failed first dial settles readiness"
    );
    assert!(
        support::eventually(WAIT, || a
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0)
        .await
    );
    assert_eq!(a.connected_peer_count(), 0);
    assert_eq!(b.connected_peer_count(), 0);
    assert!(!rb.seen.lock().iter().any(|s| matches!(s, Seen::Up(_))));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_vanished_peer_is_down_and_a_new_incarnation_replaces_it() {
    let (a, ra) = node("a", vec![], "s").await;
    let (b, _rb) = node("b", vec![a.local_addr().to_string()], "s").await;
    assert!(support::eventually(WAIT, || a.connected_peer_count() == 1).await);
    // Abrupt loss: drop b without a bye (its links close when the runtime drops its tasks).
    let b_addr = b.local_addr();
    drop(b);
    // Simulate a crash by starting a fresh incarnation of "b" at another port dialing a.
    let (b2, _rb2) = node("b", vec![a.local_addr().to_string()], "s").await;
    assert!(
        support::eventually(WAIT, || ra
            .has(&Seen::Down("b".into(), DownReason::Restarted)))
        .await,
        "a new incarnation purges the old at once: {:?}",
        ra.seen.lock()
    );
    let _ = b_addr;
    a.stop().await;
    b2.stop().await;
}
