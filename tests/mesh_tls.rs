//! Mesh links over TLS, real TCP on loopback: TLS and mutual TLS links carry frames; a node whose
//! certificate is not signed by the cluster CA, or that does not speak TLS, never links.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use support::tls::{Issued, TestCa};
use wscluster::internals::cluster::engine::EngineHandler;
use wscluster::internals::cluster::envelope::{Envelope, Kind, Origin};
use wscluster::internals::cluster::membership::DownReason;
use wscluster::internals::cluster::mesh::{MeshConfig, MeshEngine};
use wscluster::internals::tls::MeshTlsConfig;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Recorder {
    msgs: Mutex<Vec<(String, Vec<u8>)>>,
    up: Mutex<Vec<String>>,
}

impl EngineHandler for Recorder {
    fn on_envelope(&self, e: Envelope) {
        self.msgs
            .lock()
            .push((e.origin.node_id.to_string(), e.payload.to_vec()));
    }
    fn on_peer_up(&self, p: &Origin, _: Option<&str>) {
        self.up.lock().push(p.node_id.to_string());
    }
    fn on_peer_down(&self, _: &Origin, _: DownReason) {}
}

fn tls(cert: &Issued, ca: &TestCa, mutual: bool) -> MeshTlsConfig {
    MeshTlsConfig {
        enabled: true,
        cert_file: cert.cert(),
        key_file: cert.key(),
        ca_file: ca.ca(),
        require_client_cert: mutual,
    }
}

async fn node(name: &str, peers: Vec<String>, tls: MeshTlsConfig) -> (MeshEngine, Arc<Recorder>) {
    support::init_logs();
    let rec = Arc::new(Recorder::default());
    let origin = Origin {
        node_id: Arc::from(name),
        incarnation: fastrand::u64(..),
    };
    let cfg = MeshConfig {
        peers,
        secret: "s".into(),
        peer_timeout_ms: 1_000,
        heartbeat_interval_ms: 100,
        tls,
        ..MeshConfig::loopback()
    };
    let e = MeshEngine::start(cfg, origin, rec.clone())
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"));
    (e, rec)
}

fn refused(e: &MeshEngine) -> u64 {
    e.stats().refused.load(Ordering::Relaxed)
}

/// `from` sends a frame to all; `rec` (a peer of `from`) must receive it.
async fn carries(from: &MeshEngine, from_name: &str, rec: &Recorder, payload: &[u8]) {
    from.send_all(Kind::SgcPublish, Bytes::copy_from_slice(payload));
    assert!(
        support::eventually(WAIT, || rec
            .msgs
            .lock()
            .contains(&(from_name.to_owned(), payload.to_vec())))
        .await,
        "frame from {from_name} not delivered"
    );
}

#[tokio::test]
async fn tls_links_carry_frames_both_ways() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let (ca_cert, cb_cert) = (ca.issue(dir.path(), "a", 1), ca.issue(dir.path(), "b", 2));
    let (a, ra) = node("a", vec![], tls(&ca_cert, &ca, false)).await;
    let (b, rb) = node(
        "b",
        vec![a.local_addr().to_string()],
        tls(&cb_cert, &ca, false),
    )
    .await;
    assert!(
        support::eventually(WAIT, || a.connected_peer_count() == 1
            && b.connected_peer_count() == 1)
        .await
    );
    carries(&a, "a", &rb, b"from a").await;
    carries(&b, "b", &ra, b"from b").await;
    assert_eq!(refused(&a) + refused(&b), 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_node_signed_by_another_ca() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let rogue_ca = TestCa::new(dir.path(), "rogue");
    let a_cert = ca.issue(dir.path(), "a", 1);
    let (a, ra) = node("a", vec![], tls(&a_cert, &ca, true)).await;
    let seed = vec![a.local_addr().to_string()];
    // The rogue node trusts the cluster CA (so it would accept a's certificate) but its own
    // certificate comes from another CA: a refuses it during the TLS handshake.
    let rogue_cert = rogue_ca.issue(dir.path(), "rogue", 9);
    let (rogue, rrogue) = node("rogue", seed.clone(), tls(&rogue_cert, &ca, false)).await;
    assert!(
        support::eventually(WAIT, || refused(&a) > 0 && refused(&rogue) > 0).await,
        "both sides count the refusal: a {} rogue {}",
        refused(&a),
        refused(&rogue)
    );
    // A legitimate node links (so a's listener works) and the rogue is still not a peer.
    let c_cert = ca.issue(dir.path(), "c", 3);
    let (c, rc) = node("c", seed, tls(&c_cert, &ca, true)).await;
    assert!(
        support::eventually(WAIT, || a.connected_peer_count() == 1
            && c.connected_peer_count() == 1)
        .await
    );
    carries(&c, "c", &ra, b"from c").await;
    carries(&a, "a", &rc, b"from a").await;
    assert_eq!(*ra.up.lock(), vec!["c".to_owned()]);
    assert!(rrogue.up.lock().is_empty());
    assert_eq!(rogue.connected_peer_count(), 0);
    a.stop().await;
    c.stop().await;
    rogue.stop().await;
}

#[tokio::test]
async fn a_dialer_refuses_a_peer_whose_certificate_is_not_from_the_cluster_ca() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let rogue_ca = TestCa::new(dir.path(), "rogue");
    // The acceptor is the impostor: its certificate is not from the CA the dialer trusts.
    let rogue_cert = rogue_ca.issue(dir.path(), "rogue", 9);
    let (rogue, rrogue) = node("rogue", vec![], tls(&rogue_cert, &rogue_ca, false)).await;
    let b_cert = ca.issue(dir.path(), "b", 2);
    let (b, rb) = node(
        "b",
        vec![rogue.local_addr().to_string()],
        tls(&b_cert, &ca, false),
    )
    .await;
    assert!(support::eventually(WAIT, || refused(&b) > 0).await);
    assert!(b.ready(), "a failed first dial settles readiness");
    assert_eq!(b.connected_peer_count(), 0);
    assert!(rb.up.lock().is_empty() && rrogue.up.lock().is_empty());
    rogue.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_plain_node_cannot_link_to_a_tls_node_nor_a_tls_node_to_a_plain_one() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let a_cert = ca.issue(dir.path(), "a", 1);
    let (a, ra) = node("a", vec![], tls(&a_cert, &ca, false)).await;
    let (plain, rplain) = node(
        "plain",
        vec![a.local_addr().to_string()],
        MeshTlsConfig::default(),
    )
    .await;
    assert!(
        support::eventually(WAIT, || refused(&a) > 0).await,
        "the TLS node refuses plain TCP"
    );
    let b_cert = ca.issue(dir.path(), "b", 2);
    let (b, _rb) = node(
        "b",
        vec![plain.local_addr().to_string()],
        tls(&b_cert, &ca, false),
    )
    .await;
    assert!(
        support::eventually(WAIT, || refused(&b) > 0).await,
        "a TLS dialer fails on a plain node"
    );
    assert_eq!(
        a.connected_peer_count() + plain.connected_peer_count() + b.connected_peer_count(),
        0
    );
    assert!(ra.up.lock().is_empty() && rplain.up.lock().is_empty());
    a.stop().await;
    plain.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn enabled_mesh_tls_with_a_missing_file_does_not_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let a_cert = ca.issue(dir.path(), "a", 1);
    let mut cfg = tls(&a_cert, &ca, true);
    cfg.ca_file = dir.path().join("missing.pem").display().to_string();
    let origin = Origin {
        node_id: Arc::from("a"),
        incarnation: 1,
    };
    let e = MeshEngine::start(
        MeshConfig {
            tls: cfg,
            ..MeshConfig::loopback()
        },
        origin,
        Arc::new(Recorder::default()),
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("started without its CA"));
    assert!(e.to_string().contains("missing.pem"), "{e}");
}
