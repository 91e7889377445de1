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
        peers,
        secret: secret.into(),
        peer_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
        ..MeshConfig::loopback()
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
async fn a_new_incarnation_of_a_node_reports_the_old_one_down_at_once() {
    let (a, ra) = node("a", vec![], "s").await;
    let (b, _rb) = node("b", vec![a.local_addr().to_string()], "s").await;
    assert!(support::eventually(WAIT, || a.connected_peer_count() == 1).await);
    // A second process calling itself "b" (a restart elsewhere) dials a.
    let (b2, _rb2) = node("b", vec![a.local_addr().to_string()], "s").await;
    assert!(
        support::eventually(WAIT, || ra
            .has(&Seen::Down("b".into(), DownReason::Restarted)))
        .await,
        "a new incarnation purges the old at once: {:?}",
        ra.seen.lock()
    );
    a.stop().await;
    b.stop().await;
    b2.stop().await;
}

#[path = "support/proxy.rs"]
mod proxy;

#[tokio::test]
async fn a_cut_link_restored_within_the_window_loses_and_duplicates_nothing() {
    support::init_logs();
    // a <-> b only through proxies in both directions (each advertises the proxy in front of
    // it), so a cut really separates them.
    // Proxies first (their ports are held), engines on ephemeral ports advertising them.
    let rec_a = Arc::new(Recorder::default());
    let rec_b = Arc::new(Recorder::default());
    let to_a = proxy::Proxy::start_deferred().await;
    let to_b = proxy::Proxy::start_deferred().await;
    let mut a_cfg = cfg(vec![], "s");
    a_cfg.advertise = to_a.addr().to_string();
    let mut b_cfg = cfg(vec![to_a.addr().to_string()], "s");
    b_cfg.advertise = to_b.addr().to_string();
    let a = MeshEngine::start(
        a_cfg,
        Origin {
            node_id: Arc::from("a"),
            incarnation: 1,
        },
        rec_a.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    to_a.set_target(a.local_addr());
    let b = MeshEngine::start(
        b_cfg,
        Origin {
            node_id: Arc::from("b"),
            incarnation: 2,
        },
        rec_b.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    to_b.set_target(b.local_addr());
    assert!(
        support::eventually(WAIT, || a.connected_peer_count() == 1
            && b.connected_peer_count() == 1)
        .await
    );
    let total = 3_000u32;
    for i in 0..total / 2 {
        a.send_all(Kind::SgcPublish, Bytes::from(i.to_be_bytes().to_vec()));
    }
    to_a.cut();
    to_b.cut();
    assert!(
        support::eventually(WAIT, || a.connected_peer_count() == 0
            && b.connected_peer_count() == 0)
        .await,
        "the cut separates them"
    );
    for i in total / 2..total {
        a.send_all(Kind::SgcPublish, Bytes::from(i.to_be_bytes().to_vec()));
    }
    to_a.restore();
    to_b.restore();
    let expected: Vec<Vec<u8>> = (0..total).map(|i| i.to_be_bytes().to_vec()).collect();
    assert!(
        support::eventually(Duration::from_secs(10), || rec_b.msgs_from("a").len()
            >= expected.len())
        .await,
        "replayed after reconnect: got {}",
        rec_b.msgs_from("a").len()
    );
    assert_eq!(
        rec_b.msgs_from("a"),
        expected,
        "every frame exactly once, in order"
    );
    assert_eq!(a.stats().lost.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert!(
        rec_b.has(&Seen::Down("a".into(), DownReason::LinkClosed)),
        "a closed link is a dead peer at once"
    );
    assert!(
        a.stats()
            .replayed
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    a.stop().await;
    b.stop().await;
}

/// A peer that completes the link handshake honestly and then never reads again.
async fn stuck_peer(secret: &'static str) -> std::net::SocketAddr {
    use wscluster::cluster::mesh::auth::{self, Role, Transcript};
    use wscluster::cluster::mesh::wire::{self, HandshakeMsg, WireFrame};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (mut rd, mut wr) = stream.into_split();
        let Ok(Some(hello)) = wire::read_frame(&mut rd, 1 << 16).await else {
            return;
        };
        let Some(HandshakeMsg::Hello {
            node_id,
            nonce: their,
            cluster,
            ..
        }) = HandshakeMsg::decode(&hello)
        else {
            return;
        };
        let mine = auth::new_nonce();
        let t = Transcript {
            cluster: &cluster,
            dialer_id: &node_id,
            acceptor_id: "stuck",
            dialer_nonce: &their,
            acceptor_nonce: &mine,
        };
        let welcome = HandshakeMsg::Welcome {
            node_id: "stuck".into(),
            incarnation: 9,
            listen: None,
            nonce: mine,
            proof: auth::proof(secret.as_bytes(), Role::Acceptor, &t),
            resume: None,
        };
        let _ = wire::write_frames(&mut wr, [WireFrame::whole(welcome.encode())]).await;
        let _ = wire::read_frame(&mut rd, 1 << 16).await;
        let _ = wire::write_frames(&mut wr, [WireFrame::whole(HandshakeMsg::Ready.encode())]).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut wr).await;
        // Never read again; keep the socket open.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop((rd, wr));
    });
    addr
}

#[tokio::test]
async fn a_peer_that_stops_reading_gets_its_link_reset_without_slowing_the_sender() {
    support::init_logs();
    let stuck = stuck_peer("s").await;
    let rec = Arc::new(Recorder::default());
    let mut c = cfg(vec![stuck.to_string()], "s");
    c.link_queue_bytes = 256 * 1024;
    c.peer_timeout_ms = 60_000;
    let a = MeshEngine::start(
        c,
        Origin {
            node_id: Arc::from("a"),
            incarnation: 1,
        },
        rec.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(support::eventually(WAIT, || a.connected_peer_count() == 1).await);
    let chunk = Bytes::from(vec![7u8; 16 * 1024]);
    let t0 = std::time::Instant::now();
    for _ in 0..2_000 {
        a.send_all(Kind::SgcPublish, chunk.clone());
    }
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "sending never waits for the peer: {:?}",
        t0.elapsed()
    );
    assert!(
        support::eventually(WAIT, || rec
            .has(&Seen::Down("stuck".into(), DownReason::LinkClosed)))
        .await,
        "the stuck link is reset"
    );
    assert!(
        a.stats()
            .overflows
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    a.stop().await;
}
