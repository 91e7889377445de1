//! The NATS engine against a real `nats-server` (each test starts its own on ephemeral ports):
//! nodes meet through NATS on the subjects the docs name, route per channel when asked (a node
//! holds the subjects of the channels it has subscribers for, no others), survive the server
//! restarted mid-stream (the loss counted, publishing back within 2 s), refuse bad configuration
//! clearly and keep serving local clients while NATS is away or refuses them.
//!
//! The cross-node sgc and Presence scenarios, SIGKILL, SIGTERM and restarts run on NATS too: see
//! the `nats_shared::` and `nats_channel::` tests of `cluster_process_*.rs`.

mod nats_support;
mod support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nats_support::*;
use support::broker::a_first_subscriber_waits_for_the_broker;
use support::nats::{NatsAuth, NatsServer};
use support::sgc::*;
use support::{WsClient, eventually, scaled};
use wscluster::internals::cluster::nats::NatsRouting;
use wscluster::internals::cluster::nats::names::token;

/// How soon after the server is back a node's publishes must reach the others again.
const RESUME_WITHIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn nodes_meet_through_nats_and_a_publish_arrives_once_everywhere() {
    let nats = NatsServer::start().await;
    let v = nodes(&nats, NatsRouting::Shared, &["a", "b", "c"]).await;
    let mut subs = Vec::new();
    for n in &v {
        subs.push(n.client("news").await);
    }
    let (mut publisher, _) = WsClient::sgc(v[0].server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"hello\"", "news", "queueLevel0"))
        .await;
    for s in &mut subs {
        s.expect(&s5("news", "\"hello\"")).await;
    }
    // Exactly once: nothing else came (the server does not echo a node's own envelopes).
    for s in &mut subs {
        s.barrier().await;
    }
    // The subjects each node holds: the shared one and its own.
    let p = prefix(&nats);
    let want: Vec<(String, Vec<String>)> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            (
                (*n).to_owned(),
                vec![format!("{p}.node.{n}"), format!("{p}.shared")],
            )
        })
        .collect();
    assert_eq!(nats.subscriptions().await, want);
    for n in &v {
        assert_eq!(get(&n.engine().stats().gaps), 0);
    }
}

#[tokio::test]
async fn per_channel_routing_holds_the_subjects_of_subscribed_channels_only() {
    let nats = NatsServer::start().await;
    let v = nodes(&nats, NatsRouting::Channel, &["a", "b"]).await;
    let p = prefix(&nats);
    // Many channels, among them names that are not one safe subject token.
    let channels: Vec<String> = (0..40)
        .map(|i| match i % 4 {
            0 => format!("room-{i}"),
            1 => format!("room.{i}"),
            2 => format!("room:{i} *"),
            _ => format!("room>{i}"),
        })
        .collect();
    let (mut all_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    for c in &channels {
        all_a.subscribe(c).await;
    }
    let (mut even_b, _) = WsClient::sgc(v[1].server.local_addr()).await;
    for c in channels.iter().step_by(2) {
        even_b.subscribe(c).await;
    }
    let subject = |c: &str| format!("{p}.ch.{}", token(c));
    let mut want_a: Vec<String> = channels.iter().map(|c| subject(c)).collect();
    want_a.extend([format!("{p}.node.a"), format!("{p}.shared")]);
    want_a.sort();
    let mut want_b: Vec<String> = channels.iter().step_by(2).map(|c| subject(c)).collect();
    want_b.extend([format!("{p}.node.b"), format!("{p}.shared")]);
    want_b.sort();
    let want = vec![("a".to_owned(), want_a), ("b".to_owned(), want_b)];
    let deadline = Instant::now() + WAIT;
    loop {
        let now = nats.subscriptions().await;
        if now == want {
            break;
        }
        assert!(Instant::now() < deadline, "{now:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Every channel published from a: b's client gets the even ones, in order, and nothing else.
    let (mut publisher, _) = WsClient::sgc(v[0].server.local_addr()).await;
    for (i, c) in channels.iter().enumerate() {
        publisher
            .send(&delphi::publish(&format!("\"m{i}\""), c, "queueLevel0"))
            .await;
    }
    for (i, c) in channels.iter().enumerate() {
        all_a.expect(&s5(c, &format!("\"m{i}\""))).await;
        if i % 2 == 0 {
            even_b.expect(&s5(c, &format!("\"m{i}\""))).await;
        }
    }
    even_b.barrier().await;

    // b's last subscriber leaves: b leaves those subjects.
    even_b.close().await;
    let b_left = || async {
        nats.subscriptions().await.get(1).map(|(_, s)| s.clone())
            == Some(vec![format!("{p}.node.b"), format!("{p}.shared")])
    };
    let deadline = Instant::now() + WAIT;
    while !b_left().await {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            nats.subscriptions().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_first_subscriber_is_answered_once_the_server_has_processed_its_subscription() {
    let nats = NatsServer::start().await;
    let mut cfg = config(&nats, NatsRouting::Channel);
    // Far longer than the pause: the answer must wait for the server, not for the timeout.
    cfg.nats.response_timeout_ms = 60_000;
    let v = vec![node_with("a", cfg.clone()).await, node_with("b", cfg).await];
    meet(&v).await;
    a_first_subscriber_waits_for_the_broker(
        &nats,
        v[0].server.local_addr(),
        v[1].server.local_addr(),
    )
    .await;
}

/// Publishes `"s-<i>"` on `channel` every few milliseconds until stopped; `sent` counts them.
fn stream(
    mut publisher: WsClient,
    channel: &'static str,
    sent: Arc<AtomicU64>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<WsClient> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            let i = sent.load(Ordering::SeqCst);
            publisher
                .send(&delphi::publish(
                    &format!("\"s-{i}\""),
                    channel,
                    "queueLevel0",
                ))
                .await;
            sent.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(3)) => {}
            }
        }
        publisher
    })
}

/// The index of an `"s-<i>"` frame on `channel`.
fn index(frame: &str, channel: &str) -> u64 {
    let v: serde_json::Value =
        serde_json::from_str(frame).unwrap_or_else(|e| panic!("{e}: {frame}"));
    let v = &v["result"];
    assert_eq!(v["channel"], channel, "{frame}");
    let text = v["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message in {frame}"));
    text.trim_matches('"')
        .strip_prefix("s-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a stream frame: {frame}"))
}

#[tokio::test]
async fn a_nats_server_restarted_mid_stream_loses_only_what_is_counted_and_publishing_resumes() {
    const CH: &str = "stream";
    let mut nats = NatsServer::start().await;
    let v = nodes(&nats, NatsRouting::Shared, &["a", "b"]).await;
    let mut local_a = v[0].client(CH).await;
    let mut sub_b = v[1].client(CH).await;
    let (publisher, _) = WsClient::sgc(v[0].server.local_addr()).await;
    let sent = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let task = stream(publisher, CH, sent.clone(), stop_rx);

    let mut got_b: Vec<u64> = Vec::new();
    let mut got_a: Vec<u64> = Vec::new();
    while got_b.len() < 20 {
        got_b.push(index(&sub_b.recv().await, CH));
    }
    nats.kill();
    assert!(
        eventually(WAIT, || v.iter().all(|n| !n.cluster.ready())).await,
        "ready must turn false while nats is away"
    );
    let reason = v[0].cluster.last_error().unwrap_or_default();
    assert!(reason.contains("nats"), "last error: {reason:?}");
    // NATS is away: a's own subscriber is still served.
    let at_kill = sent.load(Ordering::SeqCst);
    while got_a.last().is_none_or(|i| *i < at_kill + 20) {
        got_a.push(index(&local_a.recv().await, CH));
    }

    nats.restart().await;
    let back = Instant::now();
    let first_after = sent.load(Ordering::SeqCst);
    loop {
        let i = index(&sub_b.recv().await, CH);
        got_b.push(i);
        if i >= first_after {
            break;
        }
    }
    let resumed = back.elapsed();
    assert!(
        resumed <= scaled(RESUME_WITHIN),
        "publishing resumed {resumed:?} after the server came back"
    );
    let _ = stop_tx.send(true);
    let mut publisher = task.await.unwrap_or_else(|e| panic!("{e}"));
    publisher
        .send(&delphi::publish("\"end\"", CH, "queueLevel0"))
        .await;
    loop {
        let f = sub_b.recv().await;
        if f == s5(CH, "\"end\"") {
            break;
        }
        got_b.push(index(&f, CH));
    }
    // In order, never twice; what b missed is counted as lost.
    assert!(got_b.windows(2).all(|w| w[0] < w[1]), "{got_b:?}");
    let total = sent.load(Ordering::SeqCst);
    let missed = total - got_b.len() as u64;
    let gaps = get(&v[1].engine().stats().gaps);
    eprintln!("sent {total}, b missed {missed}, counted {gaps} lost, resumed after {resumed:?}");
    assert!(
        gaps >= missed,
        "b missed {missed} of {total} frames but counted {gaps} lost envelopes"
    );
    for n in &v {
        assert!(get(&n.engine().stats().reconnects) >= 1);
        assert!(n.cluster.ready());
    }
    meet(&v).await;
}

#[tokio::test]
async fn an_unreachable_server_at_start_is_not_ready_with_the_reason_and_serves_locally() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().unwrap_or_else(|e| panic!("{e}")).port()
    };
    let mut c = wscluster::internals::cluster::ClusterConfig::local_nats(port, "unreachable");
    c.nats.reconnect_max_ms = 200;
    let n = node_with("a", c).await;
    assert!(
        eventually(WAIT, || n
            .cluster
            .last_error()
            .is_some_and(|e| e.contains("cannot connect to nats")))
        .await,
        "last error: {:?}",
        n.cluster.last_error()
    );
    assert!(!n.cluster.ready());
    let mut sub = n.client("local").await;
    let (mut publisher, _) = WsClient::sgc(n.server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"still served\"", "local", "queueLevel0"))
        .await;
    sub.expect(&s5("local", "\"still served\"")).await;
    n.cluster.stop().await;
}

/// Waits until `n`'s engine reports NATS refusing its login; the node is then not ready.
async fn login_refused(n: &Node) {
    assert!(
        eventually(WAIT, || n
            .cluster
            .last_error()
            .is_some_and(|e| e.contains("nats authentication failed")))
        .await,
        "last error: {:?}",
        n.cluster.last_error()
    );
    assert!(!n.cluster.ready());
}

#[tokio::test]
async fn a_wrong_token_or_password_is_a_clear_error_and_the_node_serves_locally() {
    let nats = NatsServer::start_with(NatsAuth::Token("right-token".into())).await;
    let plain = format!("nats://127.0.0.1:{}", nats.port());
    let mut c = config(&nats, NatsRouting::Shared);
    c.nats.urls = vec![plain.clone()];
    c.nats.token = "wrong-token".into();
    let n = node_with("a", c.clone()).await;
    login_refused(&n).await;
    let mut sub = n.client("local").await;
    let (mut publisher, _) = WsClient::sgc(n.server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"still served\"", "local", "queueLevel0"))
        .await;
    sub.expect(&s5("local", "\"still served\"")).await;
    n.cluster.stop().await;
    // With the right token two nodes meet.
    c.nats.token = "right-token".into();
    let v = [node_with("a2", c.clone()).await, node_with("b2", c).await];
    meet(&v).await;

    let nats = NatsServer::start_with(NatsAuth::User("app".into(), "right".into())).await;
    let mut c = config(&nats, NatsRouting::Shared);
    c.nats.urls = vec![format!("nats://127.0.0.1:{}", nats.port())];
    c.nats.username = "app".into();
    c.nats.password = "wrong".into();
    let n = node_with("c", c.clone()).await;
    login_refused(&n).await;
    n.cluster.stop().await;
    c.nats.password = "right".into();
    let v = [node_with("c2", c.clone()).await, node_with("d2", c).await];
    meet(&v).await;
}

#[tokio::test]
async fn garbage_on_the_cluster_s_subjects_is_dropped_and_counted() {
    let nats = NatsServer::start().await;
    let v = nodes(&nats, NatsRouting::Shared, &["a", "b"]).await;
    let p = prefix(&nats);
    let client = nats.client().await;
    for (subject, payload) in [
        (format!("{p}.shared"), b"not an envelope".to_vec()),
        (format!("{p}.shared"), vec![]),
        (format!("{p}.shared"), vec![1, 99, 0, 0]),
        (format!("{p}.node.b"), vec![0xff; 64]),
        (format!("{p}.shared"), vec![9; 200]),
    ] {
        client
            .publish(subject, payload.into())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    client.flush().await.unwrap_or_else(|e| panic!("{e}"));
    let b = v[1].engine();
    assert!(
        eventually(WAIT, || get(&b.stats().malformed) >= 5).await,
        "malformed: {}",
        get(&b.stats().malformed)
    );
    let mut sub_b = v[1].client("after").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    pub_a
        .send(&delphi::publish("\"fine\"", "after", "queueLevel0"))
        .await;
    sub_b.expect(&s5("after", "\"fine\"")).await;
    meet(&v).await;
}

/// Runs the binary with `args` until it exits (within 30 s): its exit code and standard error.
fn run(args: &[&str]) -> (Option<i32>, String) {
    let err = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wscluster"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err.reopen().unwrap_or_else(|e| panic!("{e}")))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run wscluster: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("wscluster {args:?} did not exit");
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("{e}"),
        }
    };
    (
        status.code(),
        std::fs::read_to_string(err.path()).unwrap_or_default(),
    )
}

#[test]
fn bad_nats_configuration_exits_2_naming_the_key() {
    let base = ["--listen", "127.0.0.1:0", "--cluster-engine", "nats"];
    for (extra, key) in [
        (&[][..], "cluster.nats.urls"),
        (
            &["--nats-url", "http://127.0.0.1:4222"][..],
            "cluster.nats.urls",
        ),
        (
            &[
                "--nats-url",
                "nats://127.0.0.1:4222",
                "--nats-subject-prefix",
                "a.*",
            ][..],
            "cluster.nats.subject_prefix",
        ),
        (
            &[
                "--nats-url",
                "nats://127.0.0.1:4222",
                "--set",
                "cluster.nats.token=t",
                "--set",
                "cluster.nats.username=u",
                "--set",
                "cluster.nats.password=p",
            ][..],
            "one login only",
        ),
        (
            &[
                "--nats-url",
                "nats://127.0.0.1:4222",
                "--set",
                "cluster.nats.creds_file=/nonexistent/x.creds",
            ][..],
            "cluster.nats.creds_file",
        ),
    ] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, stderr) = run(&args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(key), "{args:?}: {stderr}");
    }
}
