//! The Redis Cluster engine on a real three-master Redis Cluster: channels spread over the
//! masters, a master restarted mid-stream (what it lost is counted exactly and publishing resumes
//! within 2 s), and bad configuration (no seeds, unreachable seeds, a wrong password). The
//! multi-process scenarios every engine passes are in `tests/cluster_process_*.rs`.

mod redis_support;
mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_support::{WAIT, get, meet, node_with};
use support::broker::{LATE_CHANNEL, a_first_subscriber_waits_for_the_broker};
use support::redis_cluster::RedisCluster;
use support::sgc::*;
use support::{Frame, WsClient, eventually, time_factor};
use wscluster::internals::cluster::redis::RedisRouting;
use wscluster::internals::cluster::redis_cluster::{RedisClusterConfig, RedisClusterEngine};
use wscluster::internals::cluster::{ClusterConfig, EngineKind};

fn config(seeds: Vec<String>, prefix: &str, routing: RedisRouting) -> ClusterConfig {
    let mut c = ClusterConfig {
        engine: EngineKind::RedisCluster,
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 2_000,
        ..ClusterConfig::default()
    };
    c.redis_cluster = RedisClusterConfig::local(seeds, prefix, routing);
    c.redis_cluster.reconnect_min_ms = 50;
    c.redis_cluster.reconnect_max_ms = 300;
    c.redis_cluster.connect_timeout_ms = 500;
    c.redis_cluster.response_timeout_ms = 500;
    c
}

fn prefix_of(rc: &RedisCluster) -> String {
    format!("t{}", rc.port(0))
}

async fn nodes(
    rc: &RedisCluster,
    routing: RedisRouting,
    names: &[&str],
) -> Vec<redis_support::Node> {
    let mut v = Vec::new();
    for n in names {
        v.push(node_with(n, config(rc.seeds(), &prefix_of(rc), routing)).await);
    }
    meet(&v).await;
    v
}

fn engine(n: &redis_support::Node) -> RedisClusterEngine {
    n.cluster
        .redis_cluster()
        .unwrap_or_else(|| panic!("not running on redis-cluster"))
}

/// The sharded channels of this test's cluster on each master.
async fn ours_by_master(rc: &RedisCluster) -> Vec<Vec<String>> {
    let prefix = format!("{}:", prefix_of(rc));
    let mut v = Vec::new();
    for i in 0..3 {
        let mut mine = rc.shard_channels(i).await;
        mine.retain(|c| c.starts_with(&prefix));
        v.push(mine);
    }
    v
}

#[tokio::test]
async fn per_channel_streams_spread_over_the_masters_and_reach_only_their_subscribers() {
    const CHANNELS: usize = 24;
    let rc = RedisCluster::start().await;
    let v = nodes(&rc, RedisRouting::Channel, &["a", "b", "c"]).await;
    let mut subs = Vec::new();
    for i in 0..CHANNELS {
        subs.push(v[1].client(&format!("ch-{i}")).await);
    }
    // c subscribes to another channel only: none of the traffic below may reach it.
    let mut other = v[2].client("other").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;

    // Every channel's stream is subscribed on the master that owns its slot.
    let b = engine(&v[1]);
    let streams: Vec<String> = (0..CHANNELS)
        .map(|i| b.channel_stream(&format!("ch-{i}")))
        .collect();
    let mut masters_used = BTreeSet::new();
    for s in &streams {
        let m = rc.master_of(s).await;
        masters_used.insert(m);
        let on_master = ours_by_master(&rc).await;
        assert!(
            on_master[m].contains(s),
            "{s} not subscribed on master {m}: {on_master:?}"
        );
    }
    assert!(
        masters_used.len() >= 2,
        "{CHANNELS} channels used masters {masters_used:?} only"
    );

    // Each publish reaches its channel's subscriber, once, in order.
    for round in 0..2 {
        for i in 0..CHANNELS {
            pub_a
                .send(&delphi::publish(
                    &format!("\"m{round}-{i}\""),
                    &format!("ch-{i}"),
                    "queueLevel0",
                ))
                .await;
        }
    }
    for (i, sub) in subs.iter_mut().enumerate() {
        for round in 0..2 {
            sub.expect(&s5(&format!("ch-{i}"), &format!("\"m{round}-{i}\"")))
                .await;
        }
    }
    // c's subscriber gets only what is published on its own channel: the marker is its next frame.
    pub_a
        .send(&delphi::publish("\"marker\"", "other", "queueLevel0"))
        .await;
    other.expect(&s5("other", "\"marker\"")).await;
    for sub in &mut subs {
        sub.barrier().await;
    }
}

#[tokio::test]
async fn shared_routing_subscribes_every_partition_spread_over_every_master() {
    let rc = RedisCluster::start().await;
    let v = nodes(&rc, RedisRouting::Shared, &["a", "b"]).await;
    let partitions = RedisClusterConfig::default().partitions as usize;
    let by_master = ours_by_master(&rc).await;
    let is_partition = |s: &&String| s.contains(":{p");
    let counts: Vec<usize> = by_master
        .iter()
        .map(|m| m.iter().filter(is_partition).count())
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), partitions, "{by_master:?}");
    assert!(
        counts.iter().all(|c| *c > 0),
        "a master without partitions: {counts:?}"
    );
    // Control (the shared channel and both node channels) is on one master.
    let control: Vec<usize> = by_master
        .iter()
        .map(|m| m.iter().filter(|s| s.contains(":{ctl}")).count())
        .collect();
    assert_eq!(
        control.iter().filter(|c| **c == 3).count(),
        1,
        "{control:?}"
    );
    let mut sub_b = v[1].client("news").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    pub_a
        .send(&delphi::publish("\"hi\"", "news", "queueLevel0"))
        .await;
    sub_b.expect(&s5("news", "\"hi\"")).await;
}

/// A channel whose partition lives on another master than the control slot.
async fn channel_off_the_control_master(
    rc: &RedisCluster,
    e: &RedisClusterEngine,
) -> (String, usize) {
    let control = rc.master_of(&format!("{}:{{ctl}}", prefix_of(rc))).await;
    for i in 0..100 {
        let ch = format!("feed-{i}");
        let m = rc.master_of(&e.channel_stream(&ch)).await;
        if m != control {
            return (ch, m);
        }
    }
    panic!("no channel off the control master in 100")
}

/// The numbers b's subscriber received (frames `"<n>"` on `ch`) until the frame `"end"`.
async fn numbers_until_end(sub: &mut WsClient, ch: &str, into: &mut Vec<u64>) {
    loop {
        let f = sub.recv_json().await;
        assert_eq!(f["result"]["channel"], ch, "{f}");
        let m = f["result"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if m == "end" {
            return;
        }
        into.push(m.parse().unwrap_or_else(|_| panic!("not a number: {f}")));
    }
}

async fn a_master_restarted_mid_stream(routing: RedisRouting) {
    let mut rc = RedisCluster::start().await;
    let v = nodes(&rc, routing, &["a", "b"]).await;
    let (a, b) = (engine(&v[0]), engine(&v[1]));
    let (ch, master) = channel_off_the_control_master(&rc, &b).await;
    let mut sub_b = v[1].client(&ch).await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    // b has heard a on the channel's stream: from now on a skipped number is a loss.
    pub_a
        .send(&delphi::publish("\"0\"", &ch, "queueLevel0"))
        .await;
    sub_b.expect(&s5(&ch, "\"0\"")).await;
    let gaps_before = get(&b.stats().gaps);
    let errors_before = get(&a.stats().publish_errors);

    // a publishes 1, 2, 3, … every 5 ms until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = tokio::spawn({
        let (stop, ch) = (stop.clone(), ch.clone());
        async move {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                pub_a
                    .send(&delphi::publish(&format!("\"{n}\""), &ch, "queueLevel0"))
                    .await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            pub_a
                .send(&delphi::publish("\"end\"", &ch, "queueLevel0"))
                .await;
            n
        }
    });
    let mut got = Vec::new();
    // Mid-stream: some numbers have arrived.
    while got.len() < 20 {
        let f = sub_b.recv_json().await;
        got.push(
            f["result"]["message"]
                .as_str()
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0),
        );
    }
    rc.kill(master);
    assert!(
        eventually(WAIT, || get(&a.stats().publish_errors) > errors_before).await,
        "a never failed to publish to the killed master"
    );
    // The control slot's master stayed up: both nodes stay ready and see each other.
    assert!(
        v.iter()
            .all(|n| n.cluster.ready() && n.cluster.connected_peer_count() == 1)
    );
    rc.relaunch(master).await;
    let restarted = Instant::now();
    // Publishing resumes: the first number after the gap (published once the master was back)
    // arrives within 2 s of the master answering again.
    let resumed_within = Duration::from_secs_f64(2.0 * time_factor());
    loop {
        let left = resumed_within.saturating_sub(restarted.elapsed());
        let Some(Frame::Text(t)) = sub_b.next_frame_within(left).await else {
            panic!("b's subscriber ended")
        };
        let j: serde_json::Value = serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}"));
        let n: u64 = j["result"]["message"]
            .as_str()
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        let prev = got.last().copied().unwrap_or(0);
        got.push(n);
        if n > prev + 1 {
            break;
        }
    }
    let took = restarted.elapsed();
    assert!(
        took < resumed_within,
        "publishing resumed {took:?} after the restart (bound {resumed_within:?})"
    );
    eprintln!("master restarted -> delivery resumed: {took:?}");
    rc.wait_ok().await;
    stop.store(true, Ordering::SeqCst);
    let sent = publisher.await.unwrap_or_else(|e| panic!("{e}"));
    numbers_until_end(&mut sub_b, &ch, &mut got).await;

    // In order, no duplicates; every number that did not arrive is counted as lost, exactly.
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order: {got:?}");
    let lost = sent - got.len() as u64;
    assert!(lost > 0, "the kill lost nothing: the test proves nothing");
    assert_eq!(
        get(&b.stats().gaps) - gaps_before,
        lost,
        "sent {sent}, got {}",
        got.len()
    );
    assert!(v.iter().all(|n| n.cluster.ready()));
}

#[tokio::test]
async fn a_master_restarted_mid_stream_loses_what_it_held_counted_and_resumes_shared() {
    a_master_restarted_mid_stream(RedisRouting::Shared).await;
}

#[tokio::test]
async fn a_master_restarted_mid_stream_loses_what_it_held_counted_and_resumes_per_channel() {
    a_master_restarted_mid_stream(RedisRouting::Channel).await;
}

/// The control slot's master restarted: the nodes turn unready (local delivery goes on), come back
/// on their own, still see each other, and traffic crosses again.
#[tokio::test]
async fn the_control_master_restarted_makes_nodes_unready_until_it_is_back() {
    let mut rc = RedisCluster::start().await;
    let v = nodes(&rc, RedisRouting::Shared, &["a", "b"]).await;
    let control = rc.master_of(&format!("{}:{{ctl}}", prefix_of(&rc))).await;
    let mut sub_b = v[1].client("news").await;
    let mut local_a = v[0].client("news").await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;

    rc.kill(control);
    assert!(
        eventually(WAIT, || v.iter().all(|n| !n.cluster.ready())).await,
        "the nodes did not notice that the control master is away"
    );
    assert!(engine(&v[0]).last_error().is_some());
    // Local delivery does not wait for Redis.
    pub_a
        .send(&delphi::publish("\"local\"", "news", "queueLevel0"))
        .await;
    local_a.expect(&s5("news", "\"local\"")).await;

    rc.restart(control).await;
    assert!(
        eventually(WAIT, || {
            v.iter()
                .all(|n| n.cluster.ready() && n.cluster.connected_peer_count() == 1)
        })
        .await,
        "the nodes did not come back: {:?}",
        engine(&v[0]).last_error()
    );
    pub_a
        .send(&delphi::publish("\"back\"", "news", "queueLevel0"))
        .await;
    local_a.expect(&s5("news", "\"back\"")).await;
    // b gets "back"; "local" was published while the nodes held their envelopes, so it may come
    // first (the queue is kept across a broker outage), and nothing else.
    let first = sub_b.recv().await;
    if first == s5("news", "\"local\"") {
        sub_b.expect(&s5("news", "\"back\"")).await;
    } else {
        assert_eq!(first, s5("news", "\"back\""));
    }
    sub_b.barrier().await;
}

/// A slot moved to another master (a resharding): Redis drops the sharded subscriptions of the
/// slot, and the engine subscribes again at the new owner; traffic resumes without a restart.
async fn a_moved_slot_is_subscribed_again_at_its_new_master(routing: RedisRouting) {
    let rc = RedisCluster::start().await;
    let v = nodes(&rc, routing, &["a", "b"]).await;
    let b = engine(&v[1]);
    let (ch, from) = channel_off_the_control_master(&rc, &b).await;
    let stream = b.channel_stream(&ch);
    let mut sub_b = v[1].client(&ch).await;
    let (mut pub_a, _) = WsClient::sgc(v[0].server.local_addr()).await;
    pub_a
        .send(&delphi::publish("\"before\"", &ch, "queueLevel0"))
        .await;
    sub_b.expect(&s5(&ch, "\"before\"")).await;

    let control = rc.master_of(&format!("{}:{{ctl}}", prefix_of(&rc))).await;
    let to = (0..3)
        .find(|m| *m != from && *m != control)
        .unwrap_or(control);
    rc.move_slot(rc.slot_of(&stream).await, from, to).await;
    // The stream is subscribed at the new master by every node that wants it (both nodes in
    // shared routing; b alone in channel routing), and no longer at the old one. Each node
    // subscribes again on its own time: a publish before the last of them would miss it.
    let subscribers = match routing {
        RedisRouting::Shared => 2,
        RedisRouting::Channel => 1,
    };
    let mut moved = false;
    for _ in 0..200 {
        if rc.shard_subscribers(to, &stream).await == subscribers
            && rc.shard_subscribers(from, &stream).await == 0
        {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        moved,
        "{stream} not subscribed {subscribers} times at master {to} alone: {} at {to}, {} at {from}; {:?}",
        rc.shard_subscribers(to, &stream).await,
        rc.shard_subscribers(from, &stream).await,
        ours_by_master(&rc).await
    );
    // Publishing follows the slot (MOVED) and the next message arrives; nothing is duplicated.
    pub_a
        .send(&delphi::publish("\"after\"", &ch, "queueLevel0"))
        .await;
    sub_b.expect(&s5(&ch, "\"after\"")).await;
    assert!(
        v.iter()
            .all(|n| n.cluster.ready() && n.cluster.connected_peer_count() == 1)
    );
}

#[tokio::test]
async fn a_moved_slot_is_subscribed_again_at_its_new_master_shared() {
    a_moved_slot_is_subscribed_again_at_its_new_master(RedisRouting::Shared).await;
}

#[tokio::test]
async fn a_moved_slot_is_subscribed_again_at_its_new_master_per_channel() {
    a_moved_slot_is_subscribed_again_at_its_new_master(RedisRouting::Channel).await;
}

#[tokio::test]
async fn a_first_subscriber_is_answered_once_its_master_has_processed_the_subscription() {
    let rc = RedisCluster::start().await;
    let mut cfg = config(rc.seeds(), &prefix_of(&rc), RedisRouting::Channel);
    // Far longer than the pause: the answer must wait for the master, not for the timeout.
    cfg.redis_cluster.response_timeout_ms = 60_000;
    let v = vec![node_with("a", cfg.clone()).await, node_with("b", cfg).await];
    meet(&v).await;
    // The master of the channel's stream is the one paused.
    let master = rc
        .master_of(&engine(&v[1]).channel_stream(LATE_CHANNEL))
        .await;
    a_first_subscriber_waits_for_the_broker(
        rc.master(master),
        v[0].server.local_addr(),
        v[1].server.local_addr(),
    )
    .await;
}

#[test]
fn no_seeds_is_a_config_error_naming_the_key() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wscluster"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--cluster-engine",
            "redis-cluster",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cluster.redis_cluster.nodes"), "{stderr}");
    assert!(out.stdout.is_empty(), "must not announce an address");
}

#[tokio::test]
async fn unreachable_seeds_leave_the_node_not_ready_with_the_reason_and_local_delivery_working() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let n = node_with(
        "lonely",
        config(
            vec![format!("127.0.0.1:{port}")],
            "t-unreach",
            RedisRouting::Shared,
        ),
    )
    .await;
    let e = engine(&n);
    assert!(
        eventually(WAIT, || e.last_error().is_some()).await,
        "no reason given"
    );
    assert!(!n.cluster.ready());
    let mut sub = n.client("local").await;
    let (mut p, _) = WsClient::sgc(n.server.local_addr()).await;
    p.send(&delphi::publish("\"here\"", "local", "queueLevel0"))
        .await;
    sub.expect(&s5("local", "\"here\"")).await;
    assert!(!n.cluster.ready(), "{:?}", e.last_error());
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error() {
    let rc = RedisCluster::start_with(Some("right-password")).await;
    let mut cfg = config(rc.seeds(), &prefix_of(&rc), RedisRouting::Shared);
    cfg.redis_cluster.password = "wrong-password".into();
    let n = node_with("intruder", cfg).await;
    let e = engine(&n);
    assert!(
        eventually(WAIT, || e
            .last_error()
            .is_some_and(|m| m.contains("authentication failed")))
        .await,
        "last error: {:?}",
        e.last_error()
    );
    assert!(!n.cluster.ready());
    assert!(
        !e.last_error()
            .unwrap_or_default()
            .contains("wrong-password")
    );

    // The right password works.
    let mut good = config(rc.seeds(), &prefix_of(&rc), RedisRouting::Shared);
    good.redis_cluster.password = "right-password".into();
    let ok = node_with("member", good).await;
    assert!(
        eventually(WAIT, || ok.cluster.ready()).await,
        "{:?}",
        engine(&ok).last_error()
    );
}
