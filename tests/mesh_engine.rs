//! The mesh engine on its own, over real TCP on loopback: links, authentication, delivery order,
//! gossip, failure detection and replay.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use wscluster::internals::cluster::engine::EngineHandler;
use wscluster::internals::cluster::envelope::{Envelope, Kind, Origin};
use wscluster::internals::cluster::membership::DownReason;
use wscluster::internals::cluster::mesh::{MeshConfig, MeshEngine};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Msg(String, Vec<u8>),
    Up(String),
    Down(String, DownReason),
    Resync(String, u64),
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
    fn on_resync_needed(&self, p: &Origin, lost: u64) {
        self.seen
            .lock()
            .push(Seen::Resync(p.node_id.to_string(), lost));
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

/// Engines a and b that reach each other only through a proxy in each direction (each advertises
/// the proxy in front of it), so cutting both proxies really separates them. `a_cfg` adjusts a's
/// options. Returns once they are linked.
struct ProxiedPair {
    a: MeshEngine,
    b: MeshEngine,
    rec_a: Arc<Recorder>,
    rec_b: Arc<Recorder>,
    to_a: proxy::Proxy,
    to_b: proxy::Proxy,
}

impl ProxiedPair {
    async fn start(a_cfg: impl FnOnce(&mut MeshConfig)) -> Self {
        support::init_logs();
        // Proxies first (their ports are held), engines on ephemeral ports advertising them.
        let rec_a = Arc::new(Recorder::default());
        let rec_b = Arc::new(Recorder::default());
        let to_a = proxy::Proxy::start_deferred().await;
        let to_b = proxy::Proxy::start_deferred().await;
        let mut cfg_a = cfg(vec![], "s");
        cfg_a.advertise = to_a.addr().to_string();
        a_cfg(&mut cfg_a);
        let mut cfg_b = cfg(vec![to_a.addr().to_string()], "s");
        cfg_b.advertise = to_b.addr().to_string();
        let origin = |id: &str, incarnation| Origin {
            node_id: Arc::from(id),
            incarnation,
        };
        let a = MeshEngine::start(cfg_a, origin("a", 1), rec_a.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        to_a.set_target(a.local_addr());
        let b = MeshEngine::start(cfg_b, origin("b", 2), rec_b.clone())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        to_b.set_target(b.local_addr());
        assert!(
            support::eventually(WAIT, || a.connected_peer_count() == 1
                && b.connected_peer_count() == 1)
            .await
        );
        Self {
            a,
            b,
            rec_a,
            rec_b,
            to_a,
            to_b,
        }
    }

    async fn cut(&self) {
        self.to_a.cut();
        self.to_b.cut();
        assert!(
            support::eventually(WAIT, || self.a.connected_peer_count() == 0
                && self.b.connected_peer_count() == 0)
            .await,
            "the cut separates them"
        );
    }

    fn restore(&self) {
        self.to_a.restore();
        self.to_b.restore();
    }
}

#[tokio::test]
async fn a_cut_link_restored_within_the_window_loses_and_duplicates_nothing() {
    let ProxiedPair {
        a,
        b,
        rec_b,
        to_a,
        to_b,
        ..
    } = ProxiedPair::start(|_| {}).await;
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

#[tokio::test]
async fn frames_past_the_replay_window_are_a_counted_loss_and_a_resync_never_a_duplicate() {
    // a keeps at most 4 KiB of unacknowledged frames for b.
    let pair = ProxiedPair::start(|c| c.replay_window_bytes = 4 * 1024).await;
    let (a, b) = (&pair.a, &pair.b);
    let frame = |i: u32| i.to_be_bytes().to_vec();
    for i in 0..100u32 {
        a.send_all(Kind::SgcPublish, Bytes::from(frame(i)));
    }
    assert!(support::eventually(WAIT, || pair.rec_b.msgs_from("a").len() == 100).await);
    pair.cut().await;
    // About 40 bytes a frame on the wire: 2 000 frames are far past the 4 KiB window.
    let total = 2_100u32;
    for i in 100..total {
        a.send_all(Kind::SgcPublish, Bytes::from(frame(i)));
    }
    pair.restore();
    assert!(
        support::eventually(Duration::from_secs(10), || pair
            .rec_a
            .seen
            .lock()
            .iter()
            .any(|s| matches!(s, Seen::Resync(p, _) if p == "b")))
        .await,
        "a asks the cluster layer to resynchronise b"
    );
    let lost_out = a.stats().lost.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        lost_out > 0,
        "the frames dropped from the window are counted"
    );
    let resync_lost: u64 = pair
        .rec_a
        .seen
        .lock()
        .iter()
        .filter_map(|s| match s {
            Seen::Resync(p, n) if p == "b" => Some(*n),
            _ => None,
        })
        .sum();
    assert_eq!(resync_lost, lost_out, "the resync reports what was lost");
    // b gets what the window still held: the newest frames, after the gap, in order, once.
    let last = frame(total - 1);
    assert!(
        support::eventually(Duration::from_secs(10), || pair.rec_b.msgs_from("a").last()
            == Some(&last))
        .await,
        "the frames still in the window are replayed"
    );
    let got: Vec<u32> = pair
        .rec_b
        .msgs_from("a")
        .iter()
        .map(|m| u32::from_be_bytes([m[0], m[1], m[2], m[3]]))
        .collect();
    let (before, after) = got.split_at(100);
    assert_eq!(before, (0..100).collect::<Vec<_>>().as_slice());
    let first_after = after[0];
    assert!(first_after > 100, "a gap where the window overflowed");
    assert_eq!(
        after,
        (first_after..total).collect::<Vec<_>>().as_slice(),
        "after the gap: every remaining frame once, in order"
    );
    assert_eq!(
        u64::from(first_after - 100),
        lost_out,
        "exactly the frames counted lost are missing"
    );
    // b counts the same gap on its side.
    assert!(
        support::eventually(WAIT, || b
            .stats()
            .lost
            .load(std::sync::atomic::Ordering::Relaxed)
            == lost_out)
        .await,
        "b saw a gap of {lost_out}: {}",
        b.stats().lost.load(std::sync::atomic::Ordering::Relaxed)
    );
    a.stop().await;
    b.stop().await;
}

/// A peer that completes the link handshake honestly and then never reads again, until told to
/// (`drain`): then it reads what is left and reports whether its socket reached its end (closed
/// or reset by the other side) within [`WAIT`].
async fn stuck_peer(
    secret: &'static str,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<Result<u64, String>>,
) {
    let (drain, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    use wscluster::internals::cluster::mesh::auth::{self, Role, Transcript};
    use wscluster::internals::cluster::mesh::wire::{self, HandshakeMsg, WireFrame};
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
        let challenge = HandshakeMsg::Challenge {
            node_id: "stuck".into(),
            incarnation: 9,
            nonce: mine,
        };
        let _ = wire::write_frames(&mut wr, [WireFrame::whole(challenge.encode())]).await;
        let _ = wire::read_frame(&mut rd, 1 << 16).await;
        let welcome = HandshakeMsg::Welcome {
            proof: auth::proof(secret.as_bytes(), Role::Acceptor, &t),
            listen: None,
            resume: None,
        };
        let _ = wire::write_frames(&mut wr, [WireFrame::whole(welcome.encode())]).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut wr).await;
        // Never read again until told to; keep the socket open.
        if tokio::time::timeout(Duration::from_secs(30), drain_rx)
            .await
            .is_err()
        {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        let end = tokio::time::timeout(WAIT, async {
            loop {
                match tokio::io::AsyncReadExt::read(&mut rd, &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => read += n as u64,
                }
            }
        })
        .await;
        let _ = ended_tx.send(match end {
            Ok(()) => Ok(read),
            Err(_) => Err(format!(
                "still open after reading {read} bytes for {WAIT:?}"
            )),
        });
        drop(wr);
    });
    (addr, drain, ended)
}

#[tokio::test]
async fn a_peer_that_stops_reading_gets_its_link_reset_without_slowing_the_sender() {
    support::init_logs();
    let (stuck, drain, ended) = stuck_peer("s").await;
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
    // The reset is real: the stuck peer's socket was closed (reading what is left reaches its end;
    // a link still open would keep it waiting for more).
    let _ = drain.send(());
    let end = tokio::time::timeout(WAIT * 2, ended)
        .await
        .unwrap_or_else(|_| panic!("the stuck peer never reported"))
        .unwrap_or_else(|e| panic!("the stuck peer is gone: {e}"));
    assert!(end.is_ok(), "the stuck link was not closed: {end:?}");
    assert!(
        a.stats()
            .overflows
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    a.stop().await;
}
