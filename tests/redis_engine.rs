//! The Redis engine against a real `redis-server` (each test starts its own on an ephemeral
//! port): nodes meet through Redis, survive Redis going away (a cut subscription, a restarted
//! server), count exactly what Redis lost, resynchronise Presence rosters after a loss, route per
//! channel when asked, refuse a wrong password clearly while serving local clients, and drop
//! garbage published on their channels.
//!
//! The cross-node sgc and Presence scenarios, SIGKILL, SIGTERM and restarts run on Redis too: see
//! the `redis_shared::` and `redis_channel::` tests of `cluster_process_*.rs`.

mod presence_support;
#[path = "support/proxy.rs"]
mod proxy_support;
mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use support::redis::RedisServer;
use support::sgc::*;
use support::{WsClient, eventually};
use wscluster::cluster::redis::{RedisEngine, RedisRouting};
use wscluster::cluster::{Cluster, ClusterConfig, PresenceAdapter, SgcAdapter};
use wscluster::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

/// Long enough for any wait on a loaded machine.
const WAIT: Duration = Duration::from_secs(10);

struct Node {
    server: ServerHandle,
    cluster: Cluster,
}

impl Node {
    fn engine(&self) -> RedisEngine {
        self.cluster
            .redis()
            .unwrap_or_else(|| panic!("not running on redis"))
    }

    async fn client(&self, channel: &str) -> WsClient {
        let (mut c, _) = WsClient::sgc(self.server.local_addr()).await;
        c.subscribe(channel).await;
        c
    }
}

fn config(redis: &RedisServer, routing: RedisRouting) -> ClusterConfig {
    let mut c = ClusterConfig::local_redis(redis.port(), &format!("t{}", redis.port()));
    c.heartbeat_interval_ms = 100;
    c.peer_timeout_ms = 2_000;
    c.redis.routing = routing;
    c.redis.reconnect_min_ms = 50;
    c.redis.reconnect_max_ms = 300;
    c
}

async fn node_with(name: &str, config: ClusterConfig) -> Node {
    support::init_logs();
    let sgc = SgcProtocol::new(SgcConfig::default());
    let presence = PresenceProtocol::new(PresenceConfig::default());
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(presence.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(name, config);
    cluster.attach(SgcAdapter::new(sgc));
    cluster.attach(PresenceAdapter::new(presence));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node { server, cluster }
}

async fn nodes(redis: &RedisServer, routing: RedisRouting, names: &[&str]) -> Vec<Node> {
    let mut v = Vec::new();
    for n in names {
        v.push(node_with(n, config(redis, routing)).await);
    }
    meet(&v).await;
    v
}

/// Waits until every node is ready and sees every other.
async fn meet(nodes: &[Node]) {
    let want = nodes.len() - 1;
    assert!(
        eventually(WAIT, || nodes.iter().all(
            |n| n.cluster.ready() && n.cluster.connected_peer_count() == want
        ))
        .await,
        "nodes did not meet through redis"
    );
}

fn get(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

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

/// Two nodes on `routing` where b reaches Redis only through a fault proxy, so the test can cut b
/// off Redis (every connection closed, none accepted) while a stays connected.
async fn a_and_b_behind_a_proxy(
    redis: &RedisServer,
    routing: RedisRouting,
) -> (Vec<Node>, proxy_support::Proxy) {
    let proxy =
        proxy_support::Proxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], redis.port())))
            .await;
    let a = node_with("a", config(redis, routing)).await;
    let mut via_proxy = config(redis, routing);
    via_proxy.redis.port = proxy.addr().port();
    let b = node_with("b", via_proxy).await;
    let v = vec![a, b];
    meet(&v).await;
    (v, proxy)
}

/// Cuts b off Redis and waits until b knows it (its subscription is gone), so nothing a publishes
/// from now on can reach it.
async fn cut_b(v: &[Node], proxy: &proxy_support::Proxy) {
    proxy.cut();
    assert!(
        eventually(WAIT, || !v[1].cluster.ready()).await,
        "b did not notice that it lost Redis"
    );
}

/// Lets b reach Redis again and waits until it is subscribed and sees a again.
async fn restore_b(v: &[Node], proxy: &proxy_support::Proxy) {
    proxy.restore();
    meet(v).await;
}

#[tokio::test]
async fn a_lost_subscription_is_rebuilt_and_exactly_what_it_missed_is_counted() {
    /// Publishes a makes on b's subscribed channel while b is cut off: all of them are lost to b.
    const MISSED: u64 = 50;
    let redis = RedisServer::start().await;
    let (v, proxy) = a_and_b_behind_a_proxy(&redis, RedisRouting::Channel).await;
    let mut sub_b = v[1].client("feed").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    let (a, b) = (v[0].engine(), v[1].engine());
    let (a, b) = (a.stats(), b.stats());

    // b has heard a on the channel's stream: a number skipped from now on is a loss (the first
    // number heard on a stream is a baseline, whatever it is).
    pub_a
        .send(&delphi::publish("0", "feed", "queueLevel0"))
        .await;
    sub_b.expect(&s5("feed", "\"0\"")).await;

    cut_b(&v, &proxy).await;
    let gaps_before = get(&b.gaps);
    let out_before = get(&a.envelopes_out);
    for i in 1..=MISSED {
        pub_a
            .send(&delphi::publish(&format!("{i}"), "feed", "queueLevel0"))
            .await;
    }
    pub_a.barrier().await;
    // a has published all of them to Redis (which had no subscriber for them) before b returns.
    assert!(
        eventually(WAIT, || get(&a.envelopes_out) - out_before >= MISSED).await,
        "a published {} of {MISSED}",
        get(&a.envelopes_out) - out_before
    );
    let reconnects_before = get(&b.reconnects);
    restore_b(&v, &proxy).await;
    assert!(
        get(&b.reconnects) > reconnects_before,
        "b never resubscribed"
    );
    // Everything a sent while b could have missed it (the publishes, plus a's heartbeats and
    // snapshots meanwhile); what a sends from now on reaches b.
    let sent_while_away = get(&a.envelopes_out) - out_before;

    // Delivery resumes: a marker published now is the very next frame b's subscriber gets (none of
    // the lost publishes shows up late).
    pub_a
        .send(&delphi::publish("\"after\"", "feed", "queueLevel0"))
        .await;
    sub_b.expect(&s5("feed", "\"after\"")).await;

    // The feed stream skipped exactly MISSED numbers (counted once the marker arrived); a's other
    // envelopes lost meanwhile (heartbeats, on a's own stream) may add to the count, never more
    // than a sent while b was away. Counting each loss twice, or not at all, fails here.
    let gaps = get(&b.gaps) - gaps_before;
    assert!(
        (MISSED..=sent_while_away).contains(&gaps),
        "gaps {gaps}, expected {MISSED} lost publishes plus at most {} other envelopes a sent \
         while b was away (b: in {}, malformed {}, reconnects {})",
        sent_while_away - MISSED,
        get(&b.envelopes_in),
        get(&b.malformed),
        get(&b.reconnects),
    );
    assert!(
        sent_while_away - MISSED < MISSED,
        "the other envelopes ({}) must stay fewer than the lost publishes for the range to \
         catch a double count",
        sent_while_away - MISSED
    );
}

/// Rosters converge after a resynchronisation: Presence changes on a that b missed while cut off
/// Redis (a member who left, a member who joined) reach b's clients once b is back, because a node
/// that sees a gap in the other's stream asks for its snapshot and sends its own.
#[tokio::test]
async fn presence_rosters_converge_after_a_resync_of_what_was_lost() {
    use presence_support::{PClient, m, member_frame};
    let redis = RedisServer::start().await;
    let (v, proxy) = a_and_b_behind_a_proxy(&redis, RedisRouting::Shared).await;
    // olga on b is there first, so she is told of every later member of a.
    let mut olga = PClient::member(v[1].server.local_addr(), "olga", "olga").await;
    olga.quiet().await;
    let alice = PClient::member(v[0].server.local_addr(), "alice", "alice").await;
    // dave on a watches a's own roster change while b is away.
    let mut dave = PClient::member(v[0].server.local_addr(), "dave", "dave").await;
    for member in [m("alice", "alice", ""), m("dave", "dave", "")] {
        olga.expect(&member_frame("member@new", &member)).await;
    }

    cut_b(&v, &proxy).await;
    // Either side may notice the loss first (b's own envelopes were lost too), and either
    // side's resynchronisation sends both nodes' snapshots: counted over both.
    let engines = [v[0].engine(), v[1].engine()];
    let total = |f: fn(&wscluster::cluster::redis::RedisStats) -> u64| -> u64 {
        engines.iter().map(|e| f(e.stats())).sum()
    };
    let gaps = |s: &wscluster::cluster::redis::RedisStats| get(&s.gaps);
    let resyncs = |s: &wscluster::cluster::redis::RedisStats| get(&s.resyncs);
    let (gaps_before, resyncs_before) = (total(gaps), total(resyncs));
    alice.close().await;
    let _carol = PClient::member(v[0].server.local_addr(), "carol", "carol").await;
    // a made both changes (dave sees them; olga's own arrival may show up first, in either order)
    // and published them to a Redis b did not hear.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let f = dave.recv().await;
        if f != member_frame("member@new", &m("olga", "olga", "")) {
            seen.push(f);
        }
    }
    assert_eq!(
        seen,
        [
            member_frame("member@remove", &m("alice", "alice", "")),
            member_frame("member@new", &m("carol", "carol", "")),
        ]
    );
    olga.quiet().await;
    restore_b(&v, &proxy).await;

    // The loss was noticed and the nodes resynchronised: olga's roster loses alice and gains carol.
    let mut got = vec![olga.recv().await, olga.recv().await];
    got.sort();
    let mut want = vec![
        member_frame("member@new", &m("carol", "carol", "")),
        member_frame("member@remove", &m("alice", "alice", "")),
    ];
    want.sort();
    assert_eq!(got, want);
    assert!(total(gaps) > gaps_before, "no node counted a loss");
    assert!(total(resyncs) > resyncs_before, "no node resynchronised");
    olga.quiet().await;
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
