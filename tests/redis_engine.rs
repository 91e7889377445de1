//! The Redis engine against a real `redis-server` (each test starts its own on an ephemeral
//! port): nodes meet through Redis, survive Redis going away (a cut subscription, a restarted
//! server), route per channel when asked, refuse a wrong password clearly while serving local
//! clients, and drop garbage published on their channels.
//!
//! Exact loss counting and the roster resync after a loss: `tests/redis_loss.rs`. The cross-node
//! sgc and Presence scenarios, SIGKILL, SIGTERM and restarts run on Redis too: see
//! the `redis_shared::` and `redis_channel::` tests of `cluster_process_*.rs`.

mod presence_support;
#[path = "support/proxy.rs"]
mod proxy_support;
mod redis_support;
mod support;

use std::time::Duration;

use redis_support::*;
use support::broker::a_first_subscriber_waits_for_the_broker;
use support::redis::RedisServer;
use support::sgc::*;
use support::{WsClient, eventually};
use wscluster::internals::cluster::redis::RedisRouting;

#[tokio::test]
async fn nodes_meet_through_redis_and_a_publish_arrives_once_everywhere() {
    let redis = RedisServer::start().await;
    let v = nodes(&redis, RedisRouting::Shared, &["a", "b", "c"]).await;
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
    // Exactly once: nodes drop their own envelopes (Redis echoes them) and nothing else came.
    for s in &mut subs {
        s.barrier().await;
    }
    // Redis channels in use: the shared one and one per node.
    let p = redis.port();
    assert_eq!(
        redis.channels().await,
        [
            format!("t{p}"),
            format!("t{p}:node:a"),
            format!("t{p}:node:b"),
            format!("t{p}:node:c"),
        ]
    );
    assert_eq!(get(&v[1].engine().stats().gaps), 0);
}

#[tokio::test]
async fn a_restarted_redis_is_survived_local_delivery_goes_on_and_the_cluster_comes_back() {
    let mut redis = RedisServer::start().await;
    let v = nodes(&redis, RedisRouting::Shared, &["a", "b"]).await;
    let mut local_a = v[0].client("feed").await;
    let mut sub_b = v[1].client("feed").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;

    redis.kill();
    assert!(
        eventually(WAIT, || v.iter().all(|n| !n.cluster.ready())).await,
        "ready must turn false while redis is away"
    );
    // Redis is down: a's own subscribers are served at once.
    for i in 0..20 {
        pub_a
            .send(&delphi::publish(
                &format!("\"down-{i}\""),
                "feed",
                "queueLevel0",
            ))
            .await;
        local_a.expect(&s5("feed", &format!("\"down-{i}\""))).await;
    }

    redis.restart().await;
    meet(&v).await;
    pub_a
        .send(&delphi::publish("\"back\"", "feed", "queueLevel0"))
        .await;
    local_a.expect(&s5("feed", "\"back\"")).await;
    // b receives "back"; before it, at most the messages a published while Redis was down (a
    // keeps them queued, within its cap, until it can publish again), in order.
    let mut before = Vec::new();
    loop {
        let f = sub_b.recv().await;
        if f == s5("feed", "\"back\"") {
            break;
        }
        before.push(f);
    }
    let expected: Vec<String> = (0..20)
        .map(|i| s5("feed", &format!("\"down-{i}\"")))
        .collect();
    let positions: Vec<Option<usize>> = before
        .iter()
        .map(|f| expected.iter().position(|e| e == f))
        .collect();
    assert!(
        positions.iter().all(Option::is_some) && positions.windows(2).all(|w| w[0] < w[1]),
        "unexpected frames before \"back\": {before:?}"
    );
    for n in &v {
        assert!(get(&n.engine().stats().reconnects) >= 1);
    }
    sub_b.barrier().await;
}

#[tokio::test]
async fn a_first_subscriber_is_answered_once_redis_has_processed_its_subscription() {
    let redis = RedisServer::start().await;
    let mut cfg = config(&redis, RedisRouting::Channel);
    // Far longer than the pause: the answer must wait for the server, not for the timeout.
    cfg.redis.response_timeout_ms = 60_000;
    let v = vec![node_with("a", cfg.clone()).await, node_with("b", cfg).await];
    meet(&v).await;
    a_first_subscriber_waits_for_the_broker(
        &redis,
        v[0].server.local_addr(),
        v[1].server.local_addr(),
    )
    .await;
}

#[tokio::test]
async fn per_channel_routing_subscribes_only_where_there_are_subscribers() {
    let redis = RedisServer::start().await;
    let v = nodes(&redis, RedisRouting::Channel, &["a", "b"]).await;
    let p = redis.port();
    let x = format!("t{p}:ch:x");
    assert_eq!(redis.subscribers(&x).await, 0);
    // b's first subscriber of x is acknowledged once Redis has b subscribed to x.
    let mut sub_b = v[1].client("x").await;
    assert_eq!(redis.subscribers(&x).await, 1);
    let mut second_b = v[1].client("x").await;
    assert_eq!(
        redis.subscribers(&x).await,
        1,
        "one Redis subscription per node"
    );

    let b = v[1].engine();
    let b = b.stats();
    let before = get(&b.envelopes_in);
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    // y has no subscriber anywhere: it never leaves a's Redis channel for y.
    pub_a
        .send(&delphi::publish("\"to-y\"", "y", "queueLevel0"))
        .await;
    pub_a
        .send(&delphi::publish("\"to-x\"", "x", "queueLevel0"))
        .await;
    sub_b.expect(&s5("x", "\"to-x\"")).await;
    second_b.expect(&s5("x", "\"to-x\"")).await;
    let heartbeats_at_most = 2 * (WAIT.as_millis() / 100) as u64;
    let received = get(&b.envelopes_in) - before;
    assert!(received >= 1 && received <= 1 + heartbeats_at_most);

    // The last local subscriber leaves: so does the node's Redis subscription.
    sub_b.send(&delphi::unsubscribe("x")).await;
    sub_b.expect(&s4("x", Some("qosLevel0"), None)).await;
    assert_eq!(redis.subscribers(&x).await, 1);
    second_b.send(&delphi::unsubscribe("x")).await;
    second_b.expect(&s4("x", Some("qosLevel0"), None)).await;
    let (redis_ref, name) = (&redis, x.clone());
    let mut gone = false;
    for _ in 0..200 {
        if redis_ref.subscribers(&name).await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "b left {x}");
    // Retained publishes go to every node (every node keeps the queues), whatever the routing:
    // a's retained publish to z travels ahead of its publish to "sync" (one connection each way,
    // so Redis keeps a's order across its channels), which b's subscriber waits for.
    let mut sync_b = v[1].client("sync").await;
    pub_a
        .send(&delphi::publish("\"kept\"", "z", "queueLevel1"))
        .await;
    pub_a
        .send(&delphi::publish("\"flush\"", "sync", "queueLevel0"))
        .await;
    sync_b.expect(&s5("sync", "\"flush\"")).await;
    let mut late = v[1].client("z").await;
    late.expect(&s5("z", "\"kept\"")).await;
    late.barrier().await;
}

/// Waits until `n`'s engine reports Redis refusing its login; the node is then not ready.
async fn login_refused(n: &Node) {
    assert!(
        eventually(WAIT, || n
            .cluster
            .redis()
            .and_then(|r| r.last_error())
            .is_some_and(|e| e.contains("redis authentication failed")))
        .await,
        "last error: {:?}",
        n.cluster.redis().and_then(|r| r.last_error())
    );
    assert!(!n.cluster.ready());
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_and_the_node_serves_locally() {
    let redis = RedisServer::start_with(Some("right")).await;
    let mut c = config(&redis, RedisRouting::Shared);
    c.redis.password = "wrong".into();
    let n = node_with("a", c).await;
    login_refused(&n).await;
    let mut sub = n.client("local").await;
    let (mut publisher, _) = WsClient::sgc(n.server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"still served\"", "local", "queueLevel0"))
        .await;
    sub.expect(&s5("local", "\"still served\"")).await;

    // With the right password the same node joins once restarted.
    n.cluster.stop().await;
    let mut good = config(&redis, RedisRouting::Shared);
    good.redis.password = "right".into();
    let a = node_with("a2", good.clone()).await;
    let b = node_with("b2", good).await;
    meet(&[a, b]).await;
}

#[tokio::test]
async fn garbage_on_the_cluster_s_redis_channels_is_dropped_and_counted() {
    let redis = RedisServer::start().await;
    let v = nodes(&redis, RedisRouting::Shared, &["a", "b"]).await;
    let p = redis.port();
    let b = v[1].engine();
    let b = b.stats();
    for (channel, payload) in [
        (format!("t{p}"), b"not an envelope".to_vec()),
        (format!("t{p}"), vec![]),
        (format!("t{p}"), vec![1, 99, 0, 0]),
        (format!("t{p}:node:b"), vec![0xff; 64]),
        (format!("t{p}"), vec![9; 200]),
    ] {
        redis.publish(&channel, &payload).await;
    }
    assert!(
        eventually(WAIT, || get(&b.malformed) >= 5).await,
        "malformed: {}",
        get(&b.malformed)
    );
    // The cluster carries on.
    let mut sub_b = v[1].client("after").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    pub_a
        .send(&delphi::publish("\"fine\"", "after", "queueLevel0"))
        .await;
    sub_b.expect(&s5("after", "\"fine\"")).await;
    meet(&v).await;
}

#[tokio::test]
async fn the_binary_logs_a_refused_password_once_and_serves_locally() {
    use support::process::{NodeArgs, NodeProcess};
    let redis = RedisServer::start_with(Some("right")).await;
    let node = NodeProcess::start(
        NodeArgs::new("a")
            .redis(redis.port(), "shared")
            .set("cluster.redis.password=wrong")
            .set("cluster.redis.reconnect_max_ms=100"),
    )
    .await;
    let refused = |n: &NodeProcess| {
        n.logs()
            .into_iter()
            .filter(|v| {
                v["level"] == "ERROR"
                    && v["fields"]["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("redis authentication failed"))
            })
            .count()
    };
    node.wait_log("the refused password", |n| refused(n) >= 1)
        .await;
    let (mut sub, _) = WsClient::sgc(node.ws).await;
    sub.subscribe("local").await;
    let (mut publisher, _) = WsClient::sgc(node.ws).await;
    publisher
        .send(&delphi::publish("\"served\"", "local", "queueLevel0"))
        .await;
    sub.expect(&s5("local", "\"served\"")).await;
    // Retried every 100 ms meanwhile, but logged once per connection (publisher, subscriber).
    assert!(refused(&node) <= 2, "{}", node.stderr());
}

/// With probing off, a SIGKILLed node is found dead by its silence: its members are purged on the
/// survivors within the peer timeout plus a second.
#[tokio::test]
async fn without_probes_a_killed_node_is_purged_after_the_peer_timeout() {
    use support::process::{Backplane, NodeProcess, REDIS_PEER_TIMEOUT, start_cluster_on};
    let bp = Backplane::redis("shared").await;
    let mut nodes = start_cluster_on(&bp, &["a", "b"], |a| {
        a.set("cluster.redis.probe_interval_ms=0")
    })
    .await;
    let mut watcher = presence_support::PClient::member(nodes[0].ws, "watcher", "w").await;
    watcher.quiet().await;
    let mut gone = presence_support::PClient::member(nodes[1].ws, "gone", "g").await;
    gone.quiet().await;
    watcher
        .expect(&presence_support::member_frame(
            "member@new",
            &presence_support::m("gone", "g", ""),
        ))
        .await;
    let killed_at = std::time::Instant::now();
    nodes[1].kill();
    let frame =
        presence_support::member_frame("member@remove", &presence_support::m("gone", "g", ""));
    loop {
        let f = watcher.recv().await;
        if f == frame {
            break;
        }
    }
    let took = killed_at.elapsed();
    eprintln!("SIGKILL -> purge without probes: {took:?}");
    assert!(
        took >= REDIS_PEER_TIMEOUT / 2,
        "purged by silence, not sooner: {took:?}"
    );
    assert!(
        took < REDIS_PEER_TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );
    let a: &NodeProcess = &nodes[0];
    a.wait_log("b down by timeout", |n| {
        n.peer_events()
            .iter()
            .any(|e| !e.up && e.peer == "b" && e.reason == "peer timeout")
    })
    .await;
}

/// Members that join while Redis is away are seen everywhere once it is back: a node publishes
/// nothing before its own subscription is up (a peer that hears it asks it for its snapshot on
/// its channel, and must be heard).
#[tokio::test]
async fn members_who_joined_while_redis_was_away_are_seen_everywhere_once_it_is_back() {
    use presence_support::{PClient, m, member_frame};
    let mut redis = RedisServer::start().await;
    redis.kill();
    let a = node_with("a", config(&redis, RedisRouting::Shared)).await;
    let b = node_with("b", config(&redis, RedisRouting::Shared)).await;
    let mut alice = PClient::member(a.server.local_addr(), "alice", "alice").await;
    alice.quiet().await;
    let mut bob = PClient::member(b.server.local_addr(), "bob", "bob").await;
    bob.quiet().await;
    redis.restart().await;
    let v = [a, b];
    meet(&v).await;
    alice
        .expect(&member_frame("member@new", &m("bob", "bob", "")))
        .await;
    bob.expect(&member_frame("member@new", &m("alice", "alice", "")))
        .await;
    // And what they do next crosses too.
    let mut carol = PClient::member(v[0].server.local_addr(), "carol", "carol").await;
    carol.quiet().await;
    for c in [&mut alice, &mut bob] {
        c.expect(&member_frame("member@new", &m("carol", "carol", "")))
            .await;
    }
}

#[tokio::test]
async fn an_acl_user_and_its_password_are_used_to_log_in() {
    let redis = RedisServer::start().await;
    let _: String = redis
        .query(&[
            "ACL", "SETUSER", "wsc", "on", ">s3cret", "~*", "&*", "+@all",
        ])
        .await;
    // The default user takes any password: only a login as `wsc` can fail on a wrong one.
    let mut wrong = config(&redis, RedisRouting::Shared);
    wrong.redis.username = "wsc".into();
    wrong.redis.password = "not-it".into();
    let refused = node_with("refused", wrong).await;
    login_refused(&refused).await;
    refused.cluster.stop().await;

    let mut good = config(&redis, RedisRouting::Shared);
    good.redis.username = "wsc".into();
    good.redis.password = "s3cret".into();
    let a = node_with("a", good.clone()).await;
    let b = node_with("b", good).await;
    let nodes = [a, b];
    meet(&nodes).await;
    // Each node's subscription and publishing connections are logged in as wsc.
    let list: String = redis.query(&["CLIENT", "LIST"]).await;
    let as_wsc = list.lines().filter(|l| l.contains(" user=wsc ")).count();
    assert!(as_wsc >= 4, "connections as wsc: {list}");
    for n in &nodes {
        n.cluster.stop().await;
    }
}
