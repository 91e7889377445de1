//! The cluster port against a stranger: what an unauthenticated process that reaches it learns
//! (nothing computed with the secret), how repeated failures from one address are cut off and
//! which addresses a node agrees to dial. Traffic goes only to loopback addresses. The binary's
//! own safe defaults (loopback, refused insecure configurations, secret files) are in
//! `mesh_secure_defaults.rs`.
//!
//! - a stranger's hello gets a challenge, never a proof; a wrong proof gets a refusal, never the
//!   acceptor's proof (library and real process);
//! - repeated failed handshakes from one address get its connections closed unread, counted on
//!   `/metrics` and logged once;
//! - the listen address a refused dialer announces is never dialled; addresses gossiped by an
//!   authenticated peer are capped by `cluster.mesh.max_known_addresses`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use wscluster::internals::cluster::PeerState;
use wscluster::internals::cluster::engine::EngineHandler;
use wscluster::internals::cluster::envelope::{Envelope, Kind, Origin};
use wscluster::internals::cluster::membership::DownReason;
use wscluster::internals::cluster::mesh::auth::{self, Role, Transcript};
use wscluster::internals::cluster::mesh::wire::{
    self, HandshakeMsg, LINK_PROTOCOL, NONCE_LEN, WireFrame,
};
use wscluster::internals::cluster::mesh::{MeshConfig, MeshEngine};

use support::process::*;

const WAIT: Duration = Duration::from_secs(5);
const GOOD_SECRET: &str = "a-good-long-cluster-secret";

struct Quiet;
impl EngineHandler for Quiet {
    fn on_envelope(&self, _: Envelope) {}
    fn on_peer_up(&self, _: &Origin, _: Option<&str>) {}
    fn on_peer_down(&self, _: &Origin, _: DownReason) {}
}

async fn engine(name: &str, cfg: MeshConfig) -> MeshEngine {
    support::init_logs();
    let origin = Origin {
        node_id: Arc::from(name),
        incarnation: fastrand::u64(1..),
    };
    MeshEngine::start(cfg, origin, Arc::new(Quiet))
        .await
        .unwrap_or_else(|e| panic!("start {name}: {e}"))
}

fn secured(secret: &str) -> MeshConfig {
    MeshConfig {
        secret: secret.into(),
        ..MeshConfig::loopback()
    }
}

async fn connect(addr: SocketAddr) -> (OwnedReadHalf, OwnedWriteHalf) {
    TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"))
        .into_split()
}

async fn send(wr: &mut OwnedWriteHalf, msg: &HandshakeMsg) {
    wire::write_frames(wr, [WireFrame::whole(msg.encode())])
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    wr.flush().await.unwrap_or_else(|e| panic!("flush: {e}"));
}

/// What arrives next within `wait`: a frame, the end of the stream (`Ok(None)`), or nothing yet
/// (`Err(())`, the deadline passed).
async fn next_frame(rd: &mut OwnedReadHalf, wait: Duration) -> Result<Option<Bytes>, ()> {
    match tokio::time::timeout(wait, wire::read_frame(rd, 1 << 16)).await {
        Ok(Ok(f)) => Ok(f),
        // A reset is an end too.
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(()),
    }
}

/// The next handshake message; panics on anything else.
async fn next_msg(rd: &mut OwnedReadHalf) -> HandshakeMsg {
    match next_frame(rd, WAIT).await {
        Ok(Some(f)) => HandshakeMsg::decode(&f)
            .unwrap_or_else(|| panic!("not a handshake message: {:?}", f.as_ref())),
        Ok(None) => panic!("the node closed the connection"),
        Err(()) => panic!("nothing within {WAIT:?}"),
    }
}

fn hello(cluster: &str, id: &str, listen: Option<String>) -> (HandshakeMsg, [u8; NONCE_LEN]) {
    let nonce = auth::new_nonce();
    (
        HandshakeMsg::Hello {
            protocol: LINK_PROTOCOL.into(),
            cluster: cluster.into(),
            node_id: id.into(),
            incarnation: 7,
            listen,
            nonce,
        },
        nonce,
    )
}

/// A dialer's handshake up to the challenge: the acceptor's id and nonce.
async fn hello_and_challenge(
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    cluster: &str,
    id: &str,
    listen: Option<String>,
) -> (String, [u8; NONCE_LEN], [u8; NONCE_LEN]) {
    let (h, mine) = hello(cluster, id, listen);
    send(wr, &h).await;
    match next_msg(rd).await {
        HandshakeMsg::Challenge { node_id, nonce, .. } => (node_id, mine, nonce),
        other => panic!("expected a challenge without proof, got {other:?}"),
    }
}

fn dialer_proof(
    secret: &str,
    cluster: &str,
    me: &str,
    them: &str,
    mine: &[u8; 32],
    theirs: &[u8; 32],
) -> Vec<u8> {
    let t = Transcript {
        cluster,
        dialer_id: me,
        acceptor_id: them,
        dialer_nonce: mine,
        acceptor_nonce: theirs,
    };
    auth::proof(secret.as_bytes(), Role::Dialer, &t)
}

/// Reads until the end of the stream (within `WAIT`), failing on any acceptor proof.
async fn rest_has_no_welcome(rd: &mut OwnedReadHalf) -> Vec<HandshakeMsg> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while let Ok(Some(f)) = next_frame(rd, deadline.saturating_duration_since(Instant::now())).await
    {
        let m = HandshakeMsg::decode(&f);
        assert!(
            !matches!(m, Some(HandshakeMsg::Welcome { .. })),
            "the acceptor sent its proof to an unauthenticated dialer: {m:?}"
        );
        seen.extend(m);
    }
    seen
}

fn refused_for_the_secret(msgs: &[HandshakeMsg]) -> bool {
    msgs.iter().any(
        |m| matches!(m, HandshakeMsg::Refuse { reason } if reason.contains("wrong cluster secret")),
    )
}

/// A real node: a stranger's valid hello gets a challenge (the node's id and nonce) and then
/// nothing until the stranger proves the secret; a made-up proof gets a refusal and the end of the
/// connection, never the node's own proof.
#[tokio::test]
async fn a_strangers_hello_to_a_real_node_gets_a_challenge_and_never_a_proof() {
    let a = NodeProcess::start(NodeArgs::new("a")).await;
    let (mut rd, mut wr) = connect(a.mesh).await;
    let (acceptor, _, _) =
        hello_and_challenge(&mut rd, &mut wr, "wscluster", "stranger", None).await;
    assert_eq!(acceptor, "a");
    assert_eq!(
        next_frame(&mut rd, Duration::from_millis(300)).await,
        Err(()),
        "the acceptor waits for the dialer's proof and sends nothing more"
    );
    send(
        &mut wr,
        &HandshakeMsg::Proof {
            proof: vec![0u8; 32],
            resume: None,
        },
    )
    .await;
    let rest = rest_has_no_welcome(&mut rd).await;
    assert!(refused_for_the_secret(&rest), "{rest:?}");
}

/// A dialer with the wrong secret (a real HMAC, wrong key) is refused, counted, never linked, and
/// never sees the acceptor's proof.
#[tokio::test]
async fn a_wrong_secret_dialer_is_refused_and_never_sees_the_acceptors_proof() {
    let a = engine("a", secured(GOOD_SECRET)).await;
    let (mut rd, mut wr) = connect(a.local_addr()).await;
    let (them, mine, theirs) =
        hello_and_challenge(&mut rd, &mut wr, "wscluster", "mallory", None).await;
    let proof = dialer_proof(
        "a-wrong-long-cluster-secret",
        "wscluster",
        "mallory",
        &them,
        &mine,
        &theirs,
    );
    send(
        &mut wr,
        &HandshakeMsg::Proof {
            proof,
            resume: None,
        },
    )
    .await;
    let rest = rest_has_no_welcome(&mut rd).await;
    assert!(refused_for_the_secret(&rest), "{rest:?}");
    assert!(
        support::eventually(WAIT, || a
            .stats()
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0)
        .await
    );
    assert_eq!(a.connected_peer_count(), 0);
    a.stop().await;
}

/// The same exchange with the right secret gets the acceptor's proof, and it checks out: the
/// order changed, mutual authentication did not.
#[tokio::test]
async fn the_right_secret_gets_the_acceptors_proof_after_the_dialers() {
    let a = engine("a", secured(GOOD_SECRET)).await;
    let (mut rd, mut wr) = connect(a.local_addr()).await;
    let (them, mine, theirs) =
        hello_and_challenge(&mut rd, &mut wr, "wscluster", "friend", None).await;
    let proof = dialer_proof(GOOD_SECRET, "wscluster", "friend", &them, &mine, &theirs);
    send(
        &mut wr,
        &HandshakeMsg::Proof {
            proof,
            resume: None,
        },
    )
    .await;
    let HandshakeMsg::Welcome { proof, .. } = next_msg(&mut rd).await else {
        panic!("expected the acceptor's proof");
    };
    let t = Transcript {
        cluster: "wscluster",
        dialer_id: "friend",
        acceptor_id: &them,
        dialer_nonce: &mine,
        acceptor_nonce: &theirs,
    };
    assert!(auth::verify(
        GOOD_SECRET.as_bytes(),
        Role::Acceptor,
        &t,
        &proof
    ));
    assert!(support::eventually(WAIT, || a.connected_peer_count() == 1).await);
    a.stop().await;
}

/// The first line of `/metrics` on `ws` that starts with `series`, as a number (0 when absent).
async fn metric(ws: SocketAddr, series: &str) -> u64 {
    let text = support::raw_http(
        ws,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// After `max_failed_handshakes_per_ip` failures, the node closes connections from that address
/// before reading anything: no challenge comes back. Each is counted on `/metrics`, and the cut
/// is logged once, not per attempt.
#[tokio::test]
async fn repeated_bad_handshakes_from_one_address_are_cut_off_counted_and_logged_once() {
    let a =
        NodeProcess::start(NodeArgs::new("a").set("cluster.mesh.max_failed_handshakes_per_ip=3"))
            .await;
    let series = "wscluster_limit_refusals_total{limit=\"mesh_handshake_failures\"}";
    for i in 0..3 {
        let (mut rd, mut wr) = connect(a.mesh).await;
        hello_and_challenge(&mut rd, &mut wr, "wscluster", &format!("guess-{i}"), None).await;
        send(
            &mut wr,
            &HandshakeMsg::Proof {
                proof: vec![i; 32],
                resume: None,
            },
        )
        .await;
        let rest = rest_has_no_welcome(&mut rd).await;
        assert!(refused_for_the_secret(&rest), "attempt {i}: {rest:?}");
    }
    assert_eq!(metric(a.ws, series).await, 0, "not cut off yet");
    for i in 0..2 {
        let (mut rd, mut wr) = connect(a.mesh).await;
        let (h, _) = hello("wscluster", "guess-more", None);
        // The node may close before or after this write lands.
        let _ = wire::write_frames(&mut wr, [WireFrame::whole(h.encode())]).await;
        assert_eq!(
            next_frame(&mut rd, WAIT).await,
            Ok(None),
            "connection {i} past the limit is closed without an answer"
        );
    }
    assert_eq!(metric(a.ws, series).await, 2);
    let cut = a.logged(
        "mesh handshakes from this address keep failing (cluster.mesh.max_failed_handshakes_per_ip): its connections are closed unread until the window ends",
    );
    assert_eq!(cut.len(), 1, "{cut:?}");
}

/// Whether anything connects to `trap` within `wait`.
async fn connected_within(trap: &tokio::net::TcpListener, wait: Duration) -> bool {
    tokio::time::timeout(wait, trap.accept()).await.is_ok()
}

/// The listen address in the hello of a dialer that fails to authenticate is neither kept nor
/// dialled (the dial backoff starts at 100 ms; the trap waits 1 s).
#[tokio::test]
async fn the_listen_address_of_an_unauthenticated_dialer_is_not_dialled() {
    let a = engine("a", secured(GOOD_SECRET)).await;
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let trap_addr = trap
        .local_addr()
        .unwrap_or_else(|e| panic!("{e}"))
        .to_string();
    let (mut rd, mut wr) = connect(a.local_addr()).await;
    hello_and_challenge(
        &mut rd,
        &mut wr,
        "wscluster",
        "mallory",
        Some(trap_addr.clone()),
    )
    .await;
    send(
        &mut wr,
        &HandshakeMsg::Proof {
            proof: vec![1; 32],
            resume: None,
        },
    )
    .await;
    assert!(refused_for_the_secret(&rest_has_no_welcome(&mut rd).await));
    assert!(
        !a.peer_statuses()
            .iter()
            .any(|p| p.address.as_deref() == Some(trap_addr.as_str())),
        "{:?}",
        a.peer_statuses()
    );
    assert!(!connected_within(&trap, Duration::from_secs(1)).await);
    a.stop().await;
}

/// An authenticated peer gossiping 200 addresses: the node keeps (and dials) at most
/// `max_known_addresses` of them.
#[tokio::test]
async fn gossiped_addresses_are_capped_by_max_known_addresses() {
    let cfg = MeshConfig {
        max_known_addresses: 4,
        ..secured(GOOD_SECRET)
    };
    let a = engine("a", cfg).await;
    let (mut rd, mut wr) = connect(a.local_addr()).await;
    let (them, mine, theirs) =
        hello_and_challenge(&mut rd, &mut wr, "wscluster", "gossip", None).await;
    let proof = dialer_proof(GOOD_SECRET, "wscluster", "gossip", &them, &mine, &theirs);
    send(
        &mut wr,
        &HandshakeMsg::Proof {
            proof,
            resume: None,
        },
    )
    .await;
    assert!(matches!(
        next_msg(&mut rd).await,
        HandshakeMsg::Welcome { .. }
    ));
    // Addresses on loopback ports nobody listens on (port 9 is discard, closed here).
    let addrs: Vec<String> = (0..200).map(|i| format!("127.0.0.{}:9", i + 2)).collect();
    let env = Envelope {
        kind: Kind::Hello,
        origin: Origin {
            node_id: Arc::from("gossip"),
            incarnation: 7,
        },
        seq: 0,
        payload: Bytes::from(postcard::to_stdvec(&addrs).unwrap_or_default()),
    }
    .encode()
    .unwrap_or_else(|e| panic!("{e}"));
    wire::write_frames(&mut wr, [WireFrame::whole(env)])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    wr.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let unreached = || {
        a.peer_statuses()
            .iter()
            .filter(|p| p.state == PeerState::Unreached)
            .count()
    };
    // One gossip message is applied under one lock: once any of it shows, all of it does.
    assert!(
        support::eventually(WAIT, || unreached() > 0).await,
        "the gossip was applied"
    );
    assert!(unreached() <= 4, "{:?}", a.peer_statuses());
    a.stop().await;
}
