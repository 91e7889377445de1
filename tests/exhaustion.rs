//! Resource exhaustion: a slowloris, a frame header promising gigabytes, a subscriber
//! that never reads on a busy channel, and a mesh peer that floods its link. Each attacker is cut
//! off within a bounded time and memory, and the node's other clients keep their latency: a
//! publish → deliver round trip is measured before and during each attack (numbers printed with
//! `--nocapture`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use support::sgc::{delphi, s5};
use support::{DEFAULT_WAIT, WsClient, eventually, init_logs, test_server_config, upgrade_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wscluster::config::ServerConfig;
use wscluster::internals::protocol::sgc::{QueueLevel, SgcConfig, SgcProtocol, Targets};
use wscluster::{Server, ServerHandle};

/// Round trips measured per sample.
const SAMPLES: usize = 200;
/// The bound every p99 must stay under (loopback, debug build, shared CI machine), before the
/// machine's time factor (`support::scaled`).
const P99_BOUND: Duration = Duration::from_millis(200);

async fn node(cfg: ServerConfig) -> (ServerHandle, SgcProtocol) {
    init_logs();
    let sgc = SgcProtocol::new(SgcConfig::default());
    let server = Server::new(cfg)
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    (server, sgc)
}

/// A publisher and a subscriber on channel `rt` of `server`: the probe of other clients' latency.
struct Probe {
    publisher: WsClient,
    subscriber: WsClient,
    n: u64,
}

impl Probe {
    async fn new(addr: std::net::SocketAddr) -> Self {
        let (publisher, _) = WsClient::sgc(addr).await;
        let (mut subscriber, _) = WsClient::sgc(addr).await;
        subscriber.subscribe("rt").await;
        Self {
            publisher,
            subscriber,
            n: 0,
        }
    }

    /// p50 and p99 of `SAMPLES` publish → deliver round trips.
    async fn measure(&mut self) -> (Duration, Duration) {
        let mut took = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            self.n += 1;
            let m = format!("\"{}\"", self.n);
            let t0 = Instant::now();
            self.publisher
                .send(&delphi::publish(&m, "rt", "queueLevel0"))
                .await;
            self.subscriber.expect(&s5("rt", &m)).await;
            took.push(t0.elapsed());
        }
        took.sort();
        (took[SAMPLES / 2], took[SAMPLES * 99 / 100])
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn report(what: &str, before: (Duration, Duration), during: (Duration, Duration)) {
    eprintln!(
        "{what}: round trip p50/p99 before {:?}/{:?}, during {:?}/{:?}",
        before.0, before.1, during.0, during.1
    );
    let bound = support::scaled(P99_BOUND);
    assert!(
        during.1 < bound,
        "{what}: other clients slowed down: p99 {:?} (bound {bound:?}; {} scales it)",
        during.1,
        support::TIME_FACTOR_VAR
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_by_the_handshake_timeout() {
    const STALLED: usize = 200;
    let mut cfg = test_server_config();
    cfg.handshake_timeout_ms = 1_000;
    let (server, _sgc) = node(cfg).await;
    let addr = server.local_addr();
    let mut probe = Probe::new(addr).await;
    let baseline_sockets = server.open_sockets();
    let before = probe.measure().await;
    // Each sends half a request head and stalls.
    let t0 = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..STALLED {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: web")
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        stalled.push(s);
    }
    assert!(
        eventually(DEFAULT_WAIT, || server.open_sockets()
            >= baseline_sockets + STALLED)
        .await,
        "the stalled sockets are counted: {}",
        server.open_sockets()
    );
    let during = probe.measure().await;
    report("slowloris", before, during);
    // Every stalled socket is closed by the node (EOF or reset) within the timeout and a margin.
    let mut last_close = Duration::ZERO;
    for mut s in stalled {
        let mut buf = [0u8; 256];
        let left = Duration::from_secs(5).saturating_sub(t0.elapsed());
        let r = tokio::time::timeout(left, s.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "a stalled socket is still open after {:?}",
            t0.elapsed()
        );
        last_close = last_close.max(t0.elapsed());
    }
    eprintln!("slowloris: {STALLED} stalled sockets all closed {last_close:?} after the first");
    assert!(
        eventually(DEFAULT_WAIT, || server.open_sockets() == baseline_sockets).await,
        "the node's socket count returns to normal: {}",
        server.open_sockets()
    );
    assert_eq!(server.connection_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_header_promising_gigabytes_is_closed_with_1009_at_once() {
    let (server, _sgc) = node(test_server_config()).await;
    let addr = server.local_addr();
    let mut probe = Probe::new(addr).await;
    let before = probe.measure().await;
    let rss0 = rss_kib();
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        s.write_all(upgrade_request("/", "esegece.com", "").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.unwrap_or(0);
            assert_eq!(n, 1, "the upgrade is answered");
            head.push(byte[0]);
        }
        // A masked text frame header promising 1 TiB, and nothing after it.
        let mut frame = vec![0x81, 0xFF];
        frame.extend_from_slice(&(1u64 << 40).to_be_bytes());
        frame.extend_from_slice(&[1, 2, 3, 4]);
        let t0 = Instant::now();
        s.write_all(&frame)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        // Skip the S1 session frame, then the close frame must come: 0x88, length, code 1009.
        let mut got = Vec::new();
        let closed = tokio::time::timeout(DEFAULT_WAIT, async {
            let mut buf = [0u8; 1024];
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
                if got
                    .windows(4)
                    .any(|w| w[0] == 0x88 && w[2..] == [0x03, 0xF1])
                {
                    return;
                }
            }
        })
        .await;
        worst = worst.max(t0.elapsed());
        assert!(closed.is_ok(), "no close within {DEFAULT_WAIT:?}");
        assert!(
            got.windows(4)
                .any(|w| w[0] == 0x88 && w[2..] == [0x03, 0xF1]),
            "expected a 1009 close: {got:?}"
        );
    }
    let during = probe.measure().await;
    let grown = rss_kib().saturating_sub(rss0);
    eprintln!(
        "giant frame header: 20 connections closed with 1009, slowest {worst:?}, RSS +{grown} KiB"
    );
    report("giant frame header", before, during);
    assert!(worst < Duration::from_millis(500), "{worst:?}");
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_a_busy_channel_is_cut_and_others_keep_up() {
    let mut cfg = test_server_config();
    cfg.max_outbox_bytes = 1024 * 1024;
    cfg.max_message_size = 64 * 1024;
    let (server, sgc) = node(cfg).await;
    let addr = server.local_addr();
    let mut probe = Probe::new(addr).await;
    // The stuck subscriber: subscribes, then is never read again.
    let (mut stuck, stuck_id) = WsClient::sgc(addr).await;
    stuck.subscribe("busy").await;
    // Healthy subscribers of the same channel, reading everything.
    let mut healthy = Vec::new();
    for _ in 0..3 {
        let (mut c, _) = WsClient::sgc(addr).await;
        c.subscribe("busy").await;
        healthy.push(c);
    }
    let before = probe.measure().await;
    // Each healthy subscriber counts the busy messages until the closing "end" one.
    let mut readers = Vec::new();
    for mut c in healthy {
        readers.push(tokio::spawn(async move {
            let mut n = 0usize;
            loop {
                match c.next_frame_within(Duration::from_secs(20)).await {
                    Some(support::Frame::Text(t)) if t.contains("\"end\"") => return Some(n),
                    Some(support::Frame::Text(_)) => n += 1,
                    _ => return None,
                }
            }
        }));
    }
    // The busy channel: 4 KiB messages, as fast as the API takes them, in bursts.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let stop = stop.clone();
        let sgc = sgc.clone();
        let payload = "x".repeat(4096);
        tokio::spawn(async move {
            let mut sent = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for _ in 0..8 {
                    sgc.publish(&payload, "busy", QueueLevel::Level0, &Targets::all());
                    sent += 1;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sent
        })
    };
    let t0 = Instant::now();
    assert!(
        eventually(Duration::from_secs(20), || server
            .connection(&stuck_id)
            .is_none())
        .await,
        "the stuck subscriber is never cut"
    );
    let cut_after = t0.elapsed();
    let during = probe.measure().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = publisher.await.unwrap_or(0);
    sgc.publish("end", "busy", QueueLevel::Level0, &Targets::all());
    let mut got = 0;
    for r in readers {
        // Every healthy subscriber stayed connected and got every message: none was dropped.
        assert_eq!(
            r.await.ok().flatten(),
            Some(sent),
            "a healthy subscriber lost messages"
        );
        got += sent;
    }
    eprintln!(
        "never-reading subscriber: cut after {cut_after:?}; {sent} messages of 4 KiB published, \
         {got} delivered to 3 healthy subscribers"
    );
    report("never-reading subscriber", before, during);
    assert!(cut_after < Duration::from_secs(10), "{cut_after:?}");
    let (code, reason) = stuck.expect_closed_within(Duration::from_secs(10)).await;
    if let Some(code) = code {
        assert_eq!(code, 1008, "{reason}");
    }
}

mod mesh_flood {
    use super::*;
    use wscluster::internals::cluster::engine::EngineHandler;
    use wscluster::internals::cluster::envelope::{Envelope, Kind, Origin};
    use wscluster::internals::cluster::membership::DownReason;
    use wscluster::internals::cluster::mesh::auth::{self, Role, Transcript};
    use wscluster::internals::cluster::mesh::wire::{self, HandshakeMsg, WireFrame};
    use wscluster::internals::cluster::mesh::{MeshConfig, MeshEngine};

    #[derive(Default)]
    struct Downs(parking_lot::Mutex<Vec<String>>);

    impl EngineHandler for Downs {
        fn on_envelope(&self, _: Envelope) {}
        fn on_peer_up(&self, _: &Origin, _: Option<&str>) {}
        fn on_peer_down(&self, p: &Origin, _: DownReason) {
            self.0.lock().push(p.node_id.to_string());
        }
    }

    /// A fake peer: it accepts the node's link, completes the handshake with the right secret,
    /// then either floods valid heartbeats as fast as it can for `flood`, or writes a length
    /// prefix promising 4 GiB. Returns its address and how many bytes it managed to write.
    async fn attacker(
        secret: &'static str,
        giant: bool,
        flood: Duration,
    ) -> (
        std::net::SocketAddr,
        tokio::task::JoinHandle<(u64, Option<Duration>)>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let task = tokio::spawn(async move {
            let Ok((stream, _)) = listener.accept().await else {
                return (0, None);
            };
            let (mut rd, mut wr) = stream.into_split();
            let Ok(Some(hello)) = wire::read_frame(&mut rd, 1 << 16).await else {
                return (0, None);
            };
            let Some(HandshakeMsg::Hello {
                node_id,
                nonce: their,
                cluster,
                ..
            }) = HandshakeMsg::decode(&hello)
            else {
                return (0, None);
            };
            let mine = auth::new_nonce();
            let t = Transcript {
                cluster: &cluster,
                dialer_id: &node_id,
                acceptor_id: "flood",
                dialer_nonce: &their,
                acceptor_nonce: &mine,
            };
            let challenge = HandshakeMsg::Challenge {
                node_id: "flood".into(),
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
            let _ = wr.flush().await;
            // Drain what the node sends so only our writes are under test.
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                while matches!(rd.read(&mut buf).await, Ok(n) if n > 0) {}
            });
            let t0 = Instant::now();
            if giant {
                let _ = wr.write_all(&u32::MAX.to_be_bytes()).await;
                let _ = wr.write_all(&[0u8; 1024]).await;
                // The node must reset the link: our next writes fail.
                let mut cut = None;
                while t0.elapsed() < Duration::from_secs(5) {
                    if wr.write_all(&[0u8; 1024]).await.is_err() {
                        cut = Some(t0.elapsed());
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                return (0, cut);
            }
            let origin = Origin {
                node_id: Arc::from("flood"),
                incarnation: 9,
            };
            let beat = Envelope {
                kind: Kind::Heartbeat,
                origin,
                seq: 0,
                payload: Bytes::from_static(&[0u8; 8]),
            }
            .encode()
            .unwrap_or_default();
            let mut burst = Vec::new();
            for _ in 0..1024 {
                burst.extend_from_slice(&(beat.len() as u32).to_be_bytes());
                burst.extend_from_slice(&beat);
            }
            let mut written = 0u64;
            while t0.elapsed() < flood {
                match wr.write_all(&burst).await {
                    Ok(()) => written += burst.len() as u64,
                    Err(_) => return (written, Some(t0.elapsed())),
                }
            }
            (written, None)
        });
        (addr, task)
    }

    async fn mesh_node(peer: std::net::SocketAddr, handler: Arc<Downs>) -> MeshEngine {
        let cfg = MeshConfig {
            peers: vec![peer.to_string()],
            secret: "s".into(),
            peer_timeout_ms: 60_000,
            heartbeat_interval_ms: 100,
            ..MeshConfig::loopback()
        };
        let origin = Origin {
            node_id: Arc::from("victim"),
            incarnation: 1,
        };
        MeshEngine::start(cfg, origin, handler)
            .await
            .unwrap_or_else(|e| panic!("mesh: {e}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_flooding_the_mesh_link_is_cut_off_without_slowing_websocket_clients() {
        let (server, _sgc) = node(test_server_config()).await;
        let mut probe = Probe::new(server.local_addr()).await;
        let before = probe.measure().await;
        let rss0 = rss_kib();
        let (peer, flood) = attacker("s", false, Duration::from_secs(5)).await;
        let downs = Arc::new(Downs::default());
        let mesh = mesh_node(peer, downs.clone()).await;
        let during = probe.measure().await;
        let (written, cut) = flood.await.unwrap_or((0, None));
        let grown = rss_kib().saturating_sub(rss0);
        eprintln!(
            "mesh flood: peer wrote {} KiB of heartbeats before its link was reset {cut:?} after \
             the flood began; node RSS +{grown} KiB",
            written / 1024
        );
        report("mesh flood", before, during);
        assert!(written > 0);
        // Heartbeats past cluster.mesh.max_control_frames_per_sec (10 000/s, burst 10 000): the
        // node resets the link long before the attacker's 5 s are up.
        let cut = cut.unwrap_or_else(|| panic!("the flooding peer's link was never reset"));
        assert!(cut < Duration::from_secs(3), "{cut:?}");
        assert!(
            eventually(DEFAULT_WAIT, || downs.0.lock().iter().any(|d| d == "flood")).await,
            "the flooding peer is reported down"
        );
        assert!(grown < 128 * 1024, "memory grew by {grown} KiB");
        mesh.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mesh_length_prefix_promising_gigabytes_resets_the_link_at_once() {
        let (server, _sgc) = node(test_server_config()).await;
        let mut probe = Probe::new(server.local_addr()).await;
        let before = probe.measure().await;
        let rss0 = rss_kib();
        let (peer, giant) = attacker("s", true, Duration::ZERO).await;
        let downs = Arc::new(Downs::default());
        let mesh = mesh_node(peer, downs.clone()).await;
        let (_, cut) = giant.await.unwrap_or((0, None));
        let during = probe.measure().await;
        let grown = rss_kib().saturating_sub(rss0);
        eprintln!("mesh giant prefix: link reset {cut:?} after the prefix; node RSS +{grown} KiB");
        report("mesh giant prefix", before, during);
        let cut = cut.unwrap_or_else(|| panic!("the link was never reset"));
        assert!(cut < Duration::from_secs(2), "{cut:?}");
        assert!(
            eventually(DEFAULT_WAIT, || downs.0.lock().iter().any(|d| d == "flood")).await,
            "the flooding peer is reported down"
        );
        assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
        mesh.stop().await;
    }
}
