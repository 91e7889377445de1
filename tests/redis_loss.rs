//! What Redis loses is counted exactly and made good: node b reaches Redis through a proxy that
//! cuts it off while a publishes; the gap count must be what b missed, and Presence rosters must
//! converge after the resync. The rest of the Redis engine's tests are in `tests/redis_engine.rs`.

mod presence_support;
#[path = "support/proxy.rs"]
mod proxy_support;
mod redis_support;
mod support;

use redis_support::*;
use support::redis::RedisServer;
use support::sgc::*;
use support::{WsClient, eventually};
use wscluster::internals::cluster::redis::RedisRouting;

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
    let total = |f: fn(&wscluster::internals::cluster::redis::RedisStats) -> u64| -> u64 {
        engines.iter().map(|e| f(e.stats())).sum()
    };
    let gaps = |s: &wscluster::internals::cluster::redis::RedisStats| get(&s.gaps);
    let resyncs = |s: &wscluster::internals::cluster::redis::RedisStats| get(&s.resyncs);
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
