//! Graceful shutdown of a real `wscluster` process (SIGTERM): new connections are refused at once,
//! clients receive everything queued for them and then a 1001 close, a client that does not read
//! cannot hold the node past `server.shutdown_timeout_ms`, the node exits 0, and a second signal
//! ends the shutdown at once. (That peers purge the node's members at once on its bye is checked
//! by `cluster_process_failure.rs`, `sigterm_says_bye_…`.)

mod support;

use std::time::{Duration, Instant};

use support::process::*;
use support::sgc::{delphi, s5};
use support::{Frame, WsClient};

/// Messages in the burst, and the size of each: 12 MB in all, more than loopback socket buffers
/// hold, so most of it is still in the node's outbox when the signal arrives.
const BURST: usize = 6_000;
const MESSAGE_BYTES: usize = 2_000;

fn message(i: usize) -> String {
    format!("\"{i:06}-{}\"", "x".repeat(MESSAGE_BYTES))
}

/// A node whose outboxes hold the whole burst (no slow-consumer close), shutting down within
/// `shutdown_ms`.
async fn node(shutdown_ms: u64) -> NodeProcess {
    NodeProcess::start(
        NodeArgs::new("a")
            .set("server.max_outbox_bytes=268435456")
            .set(&format!("server.shutdown_timeout_ms={shutdown_ms}")),
    )
    .await
}

/// Queues the burst on channel `burst` to every subscriber: a publisher (itself subscribed) sends it
/// and reads its own copies; once it has the last one, the node has queued all of them to every
/// subscriber (one fan-out per publish).
async fn queue_burst(node: &NodeProcess) {
    let (mut publisher, _) = WsClient::sgc(node.ws).await;
    publisher.subscribe("burst").await;
    for i in 0..BURST {
        publisher
            .send(&delphi::publish(&message(i), "burst", "queueLevel0"))
            .await;
    }
    for i in 0..BURST {
        publisher.expect(&s5("burst", &message(i))).await;
    }
}

/// A subscriber of `burst` that reads nothing more after its subscription.
async fn subscriber(node: &NodeProcess) -> WsClient {
    let (mut c, _) = WsClient::sgc(node.ws).await;
    c.subscribe("burst").await;
    c
}

/// Waits until the node logged that it is shutting down.
async fn shutting_down(node: &NodeProcess) {
    node.wait_log("shutting down", |n| {
        n.logs().iter().any(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shutting down"))
        })
    })
    .await;
}

#[tokio::test]
async fn a_queued_burst_reaches_the_subscriber_in_full_before_its_1001_close() {
    let mut node = node(10_000).await;
    let mut sub = subscriber(&node).await;
    queue_burst(&node).await;
    node.signal("TERM");
    for i in 0..BURST {
        sub.expect(&s5("burst", &message(i))).await;
    }
    match sub.next_frame_within(PROCESS_WAIT).await {
        Some(Frame::Close(code, reason)) => {
            assert_eq!(code, Some(1001));
            assert_eq!(reason, "server shutting down");
        }
        other => panic!("after the burst the next frame must be the 1001 close, got {other:?}"),
    }
    let status = node.exit_status().await;
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    let stopped = node.logged("stopped");
    assert_eq!(stopped.len(), 1, "{}", node.stderr());
    assert_eq!(
        stopped[0]["forced"],
        "0",
        "nothing was forced: {}",
        node.stderr()
    );
}

#[tokio::test]
async fn new_connections_are_refused_while_draining_and_a_client_that_never_reads_is_cut_at_the_deadline()
 {
    const DEADLINE: Duration = Duration::from_millis(2_000);
    let mut node = node(DEADLINE.as_millis() as u64).await;
    // A connection accepted before the signal whose upgrade request comes only after it: refused
    // with 503 and logged as `shutting_down`. It connects before the clients below, so once they
    // are served the node has accepted it too.
    let mut late = tokio::net::TcpStream::connect(node.ws)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _stuck = subscriber(&node).await;
    queue_burst(&node).await;
    let signalled = Instant::now();
    node.signal("TERM");
    shutting_down(&node).await;
    {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        late.write_all(support::upgrade_request("/", "esegece.com", "").as_bytes())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(DEADLINE, late.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with("HTTP/1.1 503"),
            "an upgrade after SIGTERM got {answer:?}"
        );
    }

    // The listener closes first: a new client is refused while the stuck one still holds the
    // drain open (the node is still running after the refusal).
    let refused = loop {
        match WsClient::connect(node.ws, "/", &["esegece.com"]).await {
            Err(e) => break e,
            Ok(c) => {
                drop(c);
                assert!(
                    signalled.elapsed() < DEADLINE / 2,
                    "connections still accepted {:?} after SIGTERM",
                    signalled.elapsed()
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    assert!(
        node.is_running(),
        "refused ({refused}) only because the node was gone"
    );
    assert!(
        signalled.elapsed() < DEADLINE,
        "refusal came after the deadline"
    );

    let status = node.exit_status().await;
    let took = signalled.elapsed();
    eprintln!("SIGTERM -> exit with a client that never reads: {took:?}");
    assert_eq!(status.code(), Some(0), "{}", node.stderr());
    assert!(
        took >= DEADLINE,
        "the node gave up before its deadline: {took:?}"
    );
    assert!(
        took < DEADLINE + Duration::from_secs(3),
        "a client that never reads held the node for {took:?} (deadline {DEADLINE:?})"
    );
    let forced =
        node.logged("shutdown deadline passed: closing the remaining connections without waiting");
    assert_eq!(forced.len(), 1, "{}", node.stderr());
    assert_eq!(forced[0]["forced"], "1", "{}", node.stderr());
    let refusals = node.logged("WebSocket connection refused");
    // Not vacuous: the late upgrade above was refused, so there is at least one refusal to check.
    assert!(!refusals.is_empty(), "{}", node.stderr());
    assert!(
        refusals.iter().all(|r| r["reason"] == "shutting_down"),
        "{refusals:?}"
    );
}

#[tokio::test]
async fn a_second_signal_during_the_drain_exits_at_once() {
    let mut node = node(60_000).await;
    let _stuck = subscriber(&node).await;
    queue_burst(&node).await;
    node.signal("TERM");
    shutting_down(&node).await;
    let second = Instant::now();
    node.signal("INT");
    let status = node.exit_status().await;
    let took = second.elapsed();
    assert!(took < Duration::from_secs(3), "second signal took {took:?}");
    assert_eq!(status.code(), Some(1), "{}", node.stderr());
    assert_eq!(
        node.logged("second signal: exiting without waiting for connections")
            .len(),
        1,
        "{}",
        node.stderr()
    );
}

/// The library's side: `ServerHandle::shutdown_by` forces a connection that never reads once the
/// deadline passes, and its protocol still hears `on_disconnect` (no subscription outlives it).
#[tokio::test]
async fn shutdown_by_forces_a_stuck_connection_and_its_protocol_state_is_cleaned() {
    use std::sync::Arc;
    use wscluster::internals::protocol::sgc::{QueueLevel, SgcConfig};
    use wscluster::{Server, SgcProtocol};

    let sgc = SgcProtocol::new(SgcConfig::default());
    let server = Server::new(wscluster::config::ServerConfig {
        max_outbox_bytes: 256 * 1024 * 1024,
        ..support::test_server_config()
    })
    .protocol(Arc::new(sgc.clone()))
    .bind()
    .await
    .unwrap_or_else(|e| panic!("bind: {e}"));
    let (mut stuck, _) = WsClient::sgc(server.local_addr()).await;
    stuck.subscribe("burst").await;
    for i in 0..BURST {
        let queued = sgc.publish(
            &message(i),
            "burst",
            QueueLevel::Level0,
            &Default::default(),
        );
        assert_eq!(queued, 1);
    }
    let deadline = Duration::from_millis(300);
    let started = tokio::time::Instant::now();
    let forced = server.shutdown_by(started + deadline).await;
    let took = started.elapsed();
    assert_eq!(forced, 1);
    assert!(took >= deadline, "{took:?}");
    assert!(took < deadline + Duration::from_secs(2), "{took:?}");
    assert_eq!(server.connection_count(), 0);
    assert_eq!(sgc.connection_count(), 0, "on_disconnect ran");
    assert_eq!(sgc.subscriber_count("burst"), 0);
    drop(stuck);
}

/// An upgrade that passed the "still serving?" check when the shutdown began (here it is held in
/// the credential check) is waited for: its client gets its 101, then the 1001 close, instead of
/// the process ending under it with no close frame. (Before, `shutdown_by` saw no connection and
/// returned at once; a binary test caught the race about once in 300 runs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_an_upgrade_already_past_its_serving_check_and_closes_it_with_1001() {
    use std::sync::{Arc, Mutex, mpsc};
    use wscluster::internals::protocol::sgc::SgcConfig;
    use wscluster::internals::transport::auth::AuthConfig;
    use wscluster::{Server, SgcProtocol};

    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let held = Mutex::new((entered_tx, release_rx));
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(SgcProtocol::new(SgcConfig::default())))
        .auth(AuthConfig {
            enabled: true,
            ..AuthConfig::default()
        })
        .auth_hook(move |_| {
            let Ok(held) = held.lock() else { return false };
            let _ = held.0.send(());
            held.1.recv_timeout(Duration::from_secs(10)).is_ok()
        })
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let server = Arc::new(server);
    let addr = server.local_addr();
    let client = tokio::spawn(async move {
        WsClient::connect(addr, "/sgc/auth/url/ann/secret", &["esegece.com"]).await
    });
    let entered = tokio::task::spawn_blocking(move || entered_rx.recv_timeout(PROCESS_WAIT))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        entered.is_ok(),
        "the upgrade never reached the credential check"
    );

    let mut shutdown = tokio::spawn({
        let server = server.clone();
        async move {
            server
                .shutdown_by(tokio::time::Instant::now() + PROCESS_WAIT)
                .await
        }
    });
    // The listener closes first; from then on the shutdown only waits.
    let deadline = Instant::now() + PROCESS_WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(Instant::now() < deadline, "the listener never closed");
        tokio::task::yield_now().await;
    }
    let early = tokio::time::timeout(Duration::from_millis(300), &mut shutdown).await;
    assert!(early.is_err(), "shutdown ended with an upgrade in flight");

    let _ = release_tx.send(());
    let mut c = client
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("the upgrade was refused: {e}"));
    let (code, reason) = c.expect_closed_within(PROCESS_WAIT).await;
    assert_eq!(code, Some(1001), "{reason}");
    let forced = shutdown.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(forced, 0);
    assert_eq!(server.connection_count(), 0);
}
