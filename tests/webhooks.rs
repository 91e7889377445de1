//! Lifecycle webhooks from real `wscluster` processes to a real HTTP receiver on loopback: signed
//! batches, a crashed node's departures reported once by one survivor, a clean stop reporting its
//! own, a receiver that comes back getting what was queued, and the queue's byte cap.

mod presence_support;
mod support;

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use presence_support::PClient;
use support::process::*;
use support::tls::TestCa;
use support::webhook_receiver::{Receiver, free_addr};
use support::{raw_http, scaled};

const SECRET: &str = "webhook-test-secret-0123456789";

/// How long a webhook may take when nothing is down (a loaded machine included).
const WAIT: Duration = Duration::from_secs(10);

/// Node arguments sending webhooks to `url`.
fn hooked(args: NodeArgs, url: &str) -> NodeArgs {
    args.set(&format!("webhooks.url={url}"))
        .set(&format!("webhooks.secret={SECRET}"))
}

/// Every event of `kind` about member `id`.
fn about<'a>(events: &'a [Value], kind: &str, id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["type"] == kind && e["member"]["id"] == id)
        .collect()
}

/// Checks every POST's signature as a receiver would: HMAC-SHA256 of the raw body.
fn assert_signed(receiver: &Receiver) {
    let posts = receiver.posts();
    assert!(!posts.is_empty());
    for p in posts {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        mac.update(&p.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            p.header("x-wscluster-signature"),
            Some(format!("sha256={hex}").as_str()),
            "body {}",
            String::from_utf8_lossy(&p.body)
        );
        assert_eq!(p.header("content-type"), Some("application/json"));
    }
}

/// The value of one counter series in a node's `/metrics` (0 when absent).
async fn metric(node: &NodeProcess, series: &str) -> f64 {
    let text = raw_http(
        node.ws,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn wait_metric(node: &NodeProcess, series: &str, cond: impl Fn(f64) -> bool) -> f64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let v = metric(node, series).await;
        if cond(v) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{series} on {} stayed at {v}",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_killed_node_s_member_leaves_are_reported_once_by_one_survivor(bp: Backplane) {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| hooked(a, &url)).await;

    // A member joining a channel on b: signed events, each reported by b.
    let mut bob = PClient::member(nodes[1].ws, "bob-id", "bob").await;
    bob.join("room").await;
    let _ = bob.recv().await;
    let events = receiver
        .wait_for("bob's join", WAIT, |e| {
            !about(e, "channel_member_joined", "bob-id").is_empty()
        })
        .await;
    let joined = about(&events, "member_joined", "bob-id");
    assert_eq!(joined.len(), 1, "{events:#?}");
    assert_eq!(joined[0]["node"], "b");
    assert_eq!(joined[0]["member"]["name"], "bob");
    assert!(joined[0].get("reported_by").is_none());
    assert_eq!(joined[0]["id"].as_str().map(str::len), Some(32));
    let occupied: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "channel_occupied" && e["channel"] == "room")
        .collect();
    assert_eq!(occupied.len(), 1, "{events:#?}");
    assert_eq!(occupied[0]["node"], "b");
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "connection_opened" && e["connection"] == bob.guid.as_str()),
        "{events:#?}"
    );
    assert_signed(&receiver);

    // SIGKILL b: a (the lowest live node) reports bob's departures, once, within the bound.
    let killed = tokio::time::Instant::now();
    nodes[1].kill();
    let bound = scaled(match bp {
        Backplane::Mesh => Duration::from_millis(1_500),
        // Through a broker a dead node is noticed by its silence at worst.
        Backplane::Redis(..) | Backplane::Nats(..) => {
            REDIS_PEER_TIMEOUT + Duration::from_millis(1_500)
        }
    });
    let events = receiver
        .wait_for("bob's member_left", bound, |e| {
            !about(e, "member_left", "bob-id").is_empty()
        })
        .await;
    let took = killed.elapsed();
    println!("member_left received {took:?} after SIGKILL");
    assert!(took <= bound, "member_left after {took:?}");
    let left = about(&events, "member_left", "bob-id");
    assert_eq!(left.len(), 1, "{events:#?}");
    assert_eq!(left[0]["node"], "b");
    assert_eq!(left[0]["reported_by"], "a");
    // c must hear of the death before the barrier below means anything.
    nodes[2]
        .wait_log("b down on c", |n| {
            n.peer_events().iter().any(|e| !e.up && e.peer == "b")
        })
        .await;
    // Barrier: an event c reports after it purged b. Had c queued b's events, they would be
    // ahead of it in c's queue.
    let barrier = PClient::connect(nodes[2].ws).await;
    let events = receiver
        .wait_for("c's barrier", WAIT, |e| {
            e.iter().any(|x| {
                x["type"] == "connection_opened" && x["connection"] == barrier.guid.as_str()
            })
        })
        .await;
    let reported: Vec<&Value> = events
        .iter()
        .filter(|e| e.get("reported_by").is_some())
        .collect();
    assert!(
        reported.iter().all(|e| e["reported_by"] == "a"),
        "{reported:#?}"
    );
    assert_eq!(about(&events, "member_left", "bob-id").len(), 1);
    let channel_left = about(&events, "channel_member_left", "bob-id");
    assert_eq!(channel_left.len(), 1, "{events:#?}");
    assert_eq!(channel_left[0]["channel"], "room");
    let vacated: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "channel_vacated" && e["channel"] == "room")
        .collect();
    assert_eq!(vacated.len(), 1, "{events:#?}");
    // b's connections are reported closed too (its peers knew them), once.
    let closed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "connection_closed" && e["connection"] == bob.guid.as_str())
        .collect();
    assert_eq!(closed.len(), 1, "{events:#?}");
    assert_eq!(closed[0]["reported_by"], "a");
    assert_signed(&receiver);
}

on_every_backplane!(a_killed_node_s_member_leaves_are_reported_once_by_one_survivor);

#[tokio::test]
async fn when_the_reporting_survivor_dies_too_the_next_one_reports_both_nodes() {
    // The receiver is down: a cannot deliver b's events before it dies in turn.
    let addr = free_addr().await;
    let url = format!("http://{addr}/hook");
    let mut nodes = start_cluster_on(&Backplane::Mesh, &["a", "b", "c"], |a| hooked(a, &url)).await;
    let _bob = PClient::member(nodes[1].ws, "bob-id", "bob").await;
    let _alice = PClient::member(nodes[0].ws, "alice-id", "alice").await;
    // Both members are replicated everywhere once a flush from each node came back.
    let mut sync = Syncer::new(&[&nodes[0], &nodes[1], &nodes[2]]).await;
    sync.flush_all().await;
    nodes[1].kill();
    sync.remove("b");
    // a holds b's events and fails to post them.
    nodes[0]
        .wait_log("b down on a", |n| {
            n.peer_events().iter().any(|e| !e.up && e.peer == "b")
        })
        .await;
    nodes[2]
        .wait_log("b down on c", |n| {
            n.peer_events().iter().any(|e| !e.up && e.peer == "b")
        })
        .await;
    wait_metric(
        &nodes[0],
        r#"wscluster_webhook_posts_total{outcome="failed"}"#,
        |v| v >= 1.0,
    )
    .await;
    nodes[0].kill();
    let receiver = Receiver::start_on(addr).await;
    let events = receiver
        .wait_for("b's and a's departures", WAIT, |e| {
            !about(e, "member_left", "bob-id").is_empty()
                && !about(e, "member_left", "alice-id").is_empty()
        })
        .await;
    for id in ["bob-id", "alice-id"] {
        let left = about(&events, "member_left", id);
        assert_eq!(left.len(), 1, "{events:#?}");
        assert_eq!(left[0]["reported_by"], "c", "{events:#?}");
    }
    assert_eq!(about(&events, "member_left", "bob-id")[0]["node"], "b");
    assert_eq!(about(&events, "member_left", "alice-id")[0]["node"], "a");
    assert_signed(&receiver);
}

#[tokio::test]
async fn losing_redis_reports_no_departure_of_nodes_that_are_alive() {
    let mut redis = support::redis::RedisServer::start().await;
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let args = |name: &str| {
        hooked(NodeArgs::new(name), &url)
            .redis(redis.port(), "shared")
            .set(&format!(
                "cluster.peer_timeout_ms={}",
                REDIS_PEER_TIMEOUT.as_millis()
            ))
    };
    let a = NodeProcess::start(args("a")).await;
    let b = NodeProcess::start(args("b")).await;
    wait_linked(&[&a, &b]).await;
    let _alice = PClient::member(a.ws, "alice-id", "alice").await;
    let _bob = PClient::member(b.ws, "bob-id", "bob").await;
    receiver
        .wait_for("both joins", WAIT, |e| {
            !about(e, "member_joined", "alice-id").is_empty()
                && !about(e, "member_joined", "bob-id").is_empty()
        })
        .await;
    // Redis goes away for longer than the peer timeout: each node sees the other go silent.
    redis.kill();
    for (n, other) in [(&a, "b"), (&b, "a")] {
        n.wait_log("the other node timed out", |n| {
            n.peer_events().iter().any(|e| !e.up && e.peer == other)
        })
        .await;
    }
    redis.restart().await;
    wait_linked(&[&a, &b]).await;
    // Barriers: an event from each node after it is linked again.
    let on_a = PClient::connect(a.ws).await;
    let on_b = PClient::connect(b.ws).await;
    let events = receiver
        .wait_for("both barriers", WAIT, |e| {
            [&on_a.guid, &on_b.guid].iter().all(|g| {
                e.iter()
                    .any(|x| x["type"] == "connection_opened" && x["connection"] == g.as_str())
            })
        })
        .await;
    let departures: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "member_left" || e.get("reported_by").is_some())
        .collect();
    assert!(departures.is_empty(), "{departures:#?}");
}

#[tokio::test]
async fn a_cleanly_stopped_node_reports_its_own_departures_and_no_survivor_does() {
    let receiver = Receiver::start().await;
    let url = receiver.url();
    let mut nodes = start_cluster_on(&Backplane::Mesh, &["a", "b"], |a| hooked(a, &url)).await;
    let _carol = PClient::member(nodes[1].ws, "carol-id", "carol").await;
    receiver
        .wait_for("carol's join", WAIT, |e| {
            !about(e, "member_joined", "carol-id").is_empty()
        })
        .await;
    nodes[1].signal("TERM");
    assert!(nodes[1].exit_status().await.success());
    // Barrier on a, after it heard b's bye.
    nodes[0]
        .wait_log("b down on a", |n| {
            n.peer_events().iter().any(|e| !e.up && e.peer == "b")
        })
        .await;
    let barrier = PClient::connect(nodes[0].ws).await;
    let events = receiver
        .wait_for("a's barrier", WAIT, |e| {
            e.iter().any(|x| {
                x["type"] == "connection_opened" && x["connection"] == barrier.guid.as_str()
            })
        })
        .await;
    let left = about(&events, "member_left", "carol-id");
    assert_eq!(left.len(), 1, "{events:#?}");
    assert_eq!(left[0]["node"], "b");
    assert!(left[0].get("reported_by").is_none(), "{events:#?}");
    assert_signed(&receiver);
}

#[tokio::test]
async fn a_receiver_that_comes_back_gets_the_queued_events_and_the_cap_drops_are_counted() {
    // Room for a few events only; the receiver is down at first.
    let addr = free_addr().await;
    let url = format!("http://{addr}/hook");
    let node = NodeProcess::start(
        hooked(NodeArgs::new("solo"), &url)
            .set("webhooks.queue_bytes=600")
            .set(r#"webhooks.events=["member_joined"]"#),
    )
    .await;
    let _first = PClient::member(node.ws, "first-id", "first").await;
    wait_metric(
        &node,
        r#"wscluster_webhook_posts_total{outcome="failed"}"#,
        |v| v >= 1.0,
    )
    .await;
    let mut others = Vec::new();
    for i in 0..10 {
        others.push(PClient::member(node.ws, &format!("other-{i}"), "other").await);
    }
    let dropped = wait_metric(
        &node,
        r#"wscluster_webhook_events_dropped_total{reason="queue_full"}"#,
        |v| v >= 1.0,
    )
    .await;

    // The receiver comes back: what was queued arrives (the first event first), nothing else.
    let receiver = Receiver::start_on(addr).await;
    let events = receiver
        .wait_for("the queued events", WAIT, |e| {
            !about(e, "member_joined", "first-id").is_empty()
        })
        .await;
    assert_eq!(events[0]["member"]["id"], "first-id", "{events:#?}");
    assert!(events.iter().all(|e| e["type"] == "member_joined"));
    let delivered = wait_metric(&node, "wscluster_webhook_events_delivered_total", |v| {
        v >= events.len() as f64
    })
    .await;
    let dropped_now = metric(
        &node,
        r#"wscluster_webhook_events_dropped_total{reason="queue_full"}"#,
    )
    .await;
    assert_eq!(dropped_now, dropped, "no drop after the receiver came back");
    assert_eq!(
        delivered + dropped,
        11.0,
        "each event delivered or counted as dropped"
    );
    assert_eq!(receiver.events().len(), delivered as usize);
    assert_signed(&receiver);
}

#[tokio::test]
async fn a_refused_batch_is_sent_again_with_the_same_ids() {
    let receiver = Receiver::start().await;
    receiver.fail_next(2);
    let node = NodeProcess::start(hooked(NodeArgs::new("solo"), &receiver.url())).await;
    let _frank = PClient::member(node.ws, "frank-id", "frank").await;
    let events = receiver
        .wait_for("frank's join after two 500s", WAIT, |e| {
            !about(e, "member_joined", "frank-id").is_empty()
        })
        .await;
    let posts = receiver.posts();
    assert_eq!(
        posts.iter().map(|p| p.status).collect::<Vec<_>>()[..3],
        [500, 500, 200]
    );
    let ids = |p: &support::webhook_receiver::Post| {
        p.events()
            .iter()
            .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    // The refused events come again, first, with the same ids (newer ones may follow them).
    let refused = ids(&posts[0]);
    for retry in &posts[1..3] {
        assert_eq!(ids(retry)[..refused.len()], refused[..]);
    }
    assert_eq!(about(&events, "member_joined", "frank-id").len(), 1);
    wait_metric(
        &node,
        r#"wscluster_webhook_posts_total{outcome="refused"}"#,
        |v| v == 2.0,
    )
    .await;
    assert_signed(&receiver);
}

#[tokio::test]
async fn https_receivers_are_reached_only_with_a_certificate_the_node_trusts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "hooks");
    let other = TestCa::new(dir.path(), "other");
    let receiver = Receiver::start_tls(&ca.issue(dir.path(), "receiver", 1)).await;
    let trusted = NodeProcess::start(
        hooked(NodeArgs::new("trusting"), &receiver.https_url())
            .set(&format!("webhooks.ca_file={}", ca.ca())),
    )
    .await;
    let untrusted = NodeProcess::start(
        hooked(NodeArgs::new("doubting"), &receiver.https_url())
            .set(&format!("webhooks.ca_file={}", other.ca())),
    )
    .await;
    let _dave = PClient::member(untrusted.ws, "dave-id", "dave").await;
    wait_metric(
        &untrusted,
        r#"wscluster_webhook_posts_total{outcome="failed"}"#,
        |v| v >= 1.0,
    )
    .await;
    let _erin = PClient::member(trusted.ws, "erin-id", "erin").await;
    let events = receiver
        .wait_for("erin's join over https", WAIT, |e| {
            !about(e, "member_joined", "erin-id").is_empty()
        })
        .await;
    assert!(
        events.iter().all(|e| e["node"] == "trusting"),
        "the node that does not trust the certificate sent nothing: {events:#?}"
    );
    assert_signed(&receiver);
}

#[tokio::test]
async fn webhook_options_that_cannot_work_stop_the_node_naming_the_key() {
    for (sets, key) in [
        (vec!["webhooks.url=http://127.0.0.1:9/h"], "webhooks.secret"),
        (
            vec![
                "webhooks.url=ftp://127.0.0.1/h",
                "webhooks.secret=0123456789abcdef",
            ],
            "webhooks.url",
        ),
        (
            vec![
                "webhooks.url=http://127.0.0.1:9/h",
                "webhooks.secret=0123456789abcdef",
                r#"webhooks.events=["member_gone"]"#,
            ],
            "webhooks.events",
        ),
    ] {
        let mut args = vec!["--listen".to_owned(), "127.0.0.1:0".to_owned()];
        for s in &sets {
            args.push("--set".into());
            args.push((*s).to_owned());
        }
        let (mut child, _out, err) = spawn(&args, &[]);
        let status = child.wait().unwrap_or_else(|e| panic!("wait: {e}"));
        let stderr = std::fs::read_to_string(err.path()).unwrap_or_default();
        assert_eq!(status.code(), Some(2), "{sets:?}: {stderr}");
        assert!(stderr.contains(key), "{sets:?}: {key} not in {stderr}");
    }
}
