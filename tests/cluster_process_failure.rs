//! Node failures with real `wscluster` processes: SIGKILL, restart under the same name, a frozen
//! process replaced by a new incarnation, SIGTERM (each on the mesh and on both Redis routings),
//! and a node with the wrong cluster secret.
//!
//! What the surviving clients receive is checked frame by frame: a departed node's members leave
//! with exactly the frames a local disconnect produces (`channel@member@remove` to each channel's
//! members, then `member@remove` to every member), nothing else arrives, and no ghost stays in
//! `get@members`. The nodes run with a long peer timeout, and the survivors' logged down reason says
//! the purge came from a closed link, a bye or a new incarnation; it must also come within a second
//! (times `WSCLUSTER_TEST_TIME_FACTOR`).

mod presence_support;
mod support;

use std::time::{Duration, Instant};

use presence_support::*;
use support::WsClient;
use support::process::*;

/// Longest accepted time from a kill to the last purge frame on the survivors, before the machine's
/// time factor ([`purge_within`]).
const PURGE_WITHIN: Duration = Duration::from_secs(1);

/// [`PURGE_WITHIN`] scaled by the machine's time factor. What caused a purge (a closed link, a
/// bye, a new incarnation, never the peer timeout) is checked by the down reason the survivors log,
/// so scaling the bound loosens only how fast, never why.
fn purge_within() -> Duration {
    support::scaled(PURGE_WITHIN)
}

/// Reads `n` frames and returns them with the time the last one arrived.
async fn collect(c: &mut PClient, n: usize) -> (Vec<String>, Instant) {
    let mut frames = Vec::with_capacity(n);
    for _ in 0..n {
        frames.push(c.recv().await);
    }
    (frames, Instant::now())
}

/// Asserts that `got` is an interleaving of `sequences`, each kept in its order (the purge of one
/// member is ordered; the order between members is not specified).
fn assert_interleaving(who: &str, got: &[String], sequences: &[&[String]]) {
    let mut next = vec![0usize; sequences.len()];
    for f in got {
        let i = sequences
            .iter()
            .enumerate()
            .position(|(i, s)| s.get(next[i]) == Some(f))
            .unwrap_or_else(|| panic!("{who}: unexpected or out-of-order frame {f}; got {got:#?}"));
        next[i] += 1;
    }
    for (i, s) in sequences.iter().enumerate() {
        assert_eq!(
            next[i],
            s.len(),
            "{who}: missing frames of {s:#?}; got {got:#?}"
        );
    }
}

/// The sorted ids of a `send@members` reply to `get@members` for `channel`.
async fn roster(c: &mut PClient, channel: &str) -> Vec<String> {
    c.get_members(channel).await;
    let reply = c.recv_json().await;
    assert_eq!(reply["method"], "sgc@presence@send@members", "{reply}");
    let mut ids: Vec<String> = reply["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

/// Registers member `id` on `node` and waits until every other `watchers` got its `member@new`
/// and every node applied it.
async fn join_member(
    sync: &mut Syncer,
    node: &NodeProcess,
    id: &str,
    watchers: &mut [&mut PClient],
) -> PClient {
    let mut c = PClient::member(node.ws, id, id).await;
    c.quiet().await;
    let new = member_frame("member@new", &m(id, id, ""));
    for w in watchers.iter_mut() {
        w.expect(&new).await;
    }
    sync.flush_from(&node.name).await;
    c
}

/// `c` (on `node`) joins `channel`; `members` (already in it) see the join.
async fn join_channel(
    sync: &mut Syncer,
    node: &str,
    c: &mut PClient,
    channel: &str,
    members: &mut [&mut PClient],
) {
    c.join(channel).await;
    let f = channel_member_frame("channel@member@new", &m(&c.id, &c.id, ""), channel);
    c.expect(&f).await;
    c.quiet().await;
    for w in members.iter_mut() {
        w.expect(&f).await;
    }
    sync.flush_from(node).await;
}

fn cmr(id: &str, channel: &str) -> String {
    channel_member_frame("channel@member@remove", &m(id, id, ""), channel)
}

fn mr(id: &str) -> String {
    member_frame("member@remove", &m(id, id, ""))
}

/// Why `node` logged `peer` (this incarnation) down, once it did.
async fn down_reason(node: &NodeProcess, peer: &str, incarnation: u64) -> String {
    let find = |n: &NodeProcess| {
        n.peer_events()
            .into_iter()
            .find(|e| !e.up && e.peer == peer && e.incarnation == incarnation)
    };
    node.wait_log(&format!("{peer} down"), |n| find(n).is_some())
        .await;
    find(node).map(|e| e.reason).unwrap_or_default()
}

/// The incarnation under which `node` last saw `peer` connect.
fn incarnation_of(node: &NodeProcess, peer: &str) -> u64 {
    node.peer_events()
        .into_iter()
        .rfind(|e| e.up && e.peer == peer)
        .map(|e| e.incarnation)
        .unwrap_or_else(|| panic!("{} never saw {peer}", node.name))
}

async fn a_sigkilled_process_s_members_leave_everywhere_at_once_with_disconnect_frames(
    bp: Backplane,
) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut alice = join_member(&mut sync, a, "alice", &mut []).await;
    let mut bob = join_member(&mut sync, b, "bob", &mut [&mut alice]).await;
    let mut bert = join_member(&mut sync, b, "bert", &mut [&mut alice, &mut bob]).await;
    let mut carol = join_member(
        &mut sync,
        c,
        "carol",
        &mut [&mut alice, &mut bob, &mut bert],
    )
    .await;
    let mut dave = join_member(
        &mut sync,
        c,
        "dave",
        &mut [&mut alice, &mut bob, &mut bert, &mut carol],
    )
    .await;
    // room: alice, bob. side: carol, bob. solo: bob alone. bert and dave in no channel.
    join_channel(&mut sync, "a", &mut alice, "room", &mut []).await;
    join_channel(&mut sync, "b", &mut bob, "room", &mut [&mut alice]).await;
    join_channel(&mut sync, "c", &mut carol, "side", &mut []).await;
    join_channel(&mut sync, "b", &mut bob, "side", &mut [&mut carol]).await;
    join_channel(&mut sync, "b", &mut bob, "solo", &mut []).await;
    for p in [&mut alice, &mut carol, &mut dave] {
        p.quiet().await;
    }
    let b_incarnation = incarnation_of(&nodes[0], "b");

    sync.remove("b");
    let killed_at = Instant::now();
    nodes[1].kill();
    let ((got_a, at_a), (got_c, at_c), (got_d, at_d)) = tokio::join!(
        collect(&mut alice, 3),
        collect(&mut carol, 3),
        collect(&mut dave, 2)
    );
    let took = [at_a, at_c, at_d]
        .into_iter()
        .max()
        .unwrap_or(killed_at)
        .duration_since(killed_at);
    eprintln!("SIGKILL -> last purge frame on the survivors: {took:?}");
    let (bob_out, bert_out) = (mr("bob"), mr("bert"));
    assert_interleaving(
        "alice (room)",
        &got_a,
        &[
            &[cmr("bob", "room"), bob_out.clone()],
            std::slice::from_ref(&bert_out),
        ],
    );
    assert_interleaving(
        "carol (side)",
        &got_c,
        &[
            &[cmr("bob", "side"), bob_out.clone()],
            std::slice::from_ref(&bert_out),
        ],
    );
    // dave is in no channel: member@remove only (a disconnect's channel frames are scoped).
    assert_interleaving("dave", &got_d, &[&[bob_out], &[bert_out]]);
    // The mesh sees the closed link at once; through Redis, the survivors' probes see that Redis
    // dropped the dead process's subscription (with probing off, silence past the peer timeout
    // does it: tests/redis_engine.rs).
    let (within, reason) = match bp {
        Backplane::Mesh => (purge_within(), "link closed"),
        Backplane::Redis(..) | Backplane::RedisCluster(..) | Backplane::Nats(..) => {
            (purge_within(), "its broker subscription is gone")
        }
    };
    assert!(
        took < within,
        "purge took {took:?} after SIGKILL (bound {within:?}; {} scales it)",
        support::TIME_FACTOR_VAR
    );
    let (a, c) = (&nodes[0], &nodes[2]);
    for n in [a, c] {
        assert_eq!(down_reason(n, "b", b_incarnation).await, reason);
    }

    // Nothing more, and no ghost anywhere.
    for p in [&mut alice, &mut carol, &mut dave] {
        p.quiet().await;
    }
    assert_eq!(roster(&mut alice, "").await, ["alice", "carol", "dave"]);
    assert_eq!(roster(&mut dave, "").await, ["alice", "carol", "dave"]);
    assert_eq!(roster(&mut alice, "room").await, ["alice"]);
    assert_eq!(roster(&mut dave, "side").await, ["carol"]);
    // bob's own channel is gone with him (freed when empty): error 5.
    carol.get_members("solo").await;
    let err = carol.recv_json().await;
    assert_eq!(err["error"]["code"], 5, "{err}");

    // a and c carry on: Presence and sgc between them still flow.
    join_channel(&mut sync, "c", &mut carol, "room", &mut [&mut alice]).await;
    alice.publish("still here", "room").await;
    let f = publish_frame("\"still here\"", "room", &m("alice", "alice", ""));
    alice.expect(&f).await;
    carol.expect(&f).await;
    sync.flush_all().await;
    for p in [&mut alice, &mut carol, &mut dave] {
        p.quiet().await;
    }
}

async fn a_process_restarted_under_the_same_name_does_not_bring_back_its_old_members(
    bp: Backplane,
) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut alice = join_member(&mut sync, a, "alice", &mut []).await;
    let mut bob = join_member(&mut sync, b, "bob", &mut [&mut alice]).await;
    let mut carol = join_member(&mut sync, c, "carol", &mut [&mut alice, &mut bob]).await;
    join_channel(&mut sync, "a", &mut alice, "room", &mut []).await;
    join_channel(&mut sync, "b", &mut bob, "room", &mut [&mut alice]).await;
    let (old_ws, old_mesh) = (b.ws, b.mesh);
    let old_incarnation = incarnation_of(a, "b");

    sync.remove("b");
    nodes[1].kill();
    alice.expect(&cmr("bob", "room")).await;
    alice.expect(&mr("bob")).await;
    carol.expect(&mr("bob")).await;

    // Same name, same ports, a new process (a new incarnation).
    let args = bp.args("b", Some(&nodes[0])).listen(old_ws);
    let b2 = NodeProcess::start(match bp {
        Backplane::Mesh => args.cluster_port(old_mesh.port()),
        Backplane::Redis(..) | Backplane::RedisCluster(..) | Backplane::Nats(..) => args,
    })
    .await;
    assert_eq!((b2.ws, b2.mesh), (old_ws, old_mesh), "same ports");
    nodes[1] = b2;
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    assert_ne!(incarnation_of(a, "b"), old_incarnation);
    assert_ne!(incarnation_of(c, "b"), old_incarnation);
    sync.add(b).await;
    sync.flush_all().await;
    // The old members did not come back: no member@new, not in any roster.
    alice.quiet().await;
    carol.quiet().await;
    assert_eq!(roster(&mut alice, "").await, ["alice", "carol"]);
    assert_eq!(roster(&mut alice, "room").await, ["alice"]);

    // New members on the new b appear normally, and see the union.
    let mut bella = join_member(&mut sync, b, "bella", &mut [&mut alice, &mut carol]).await;
    assert_eq!(roster(&mut bella, "").await, ["alice", "bella", "carol"]);
    join_channel(&mut sync, "b", &mut bella, "room", &mut [&mut alice]).await;
    for p in [&mut alice, &mut bella, &mut carol] {
        p.quiet().await;
    }
}

/// A process that stops answering (SIGSTOP: its links stay open) and is replaced by a new process
/// with the same name: the new incarnation's hello purges the old members at once, long before the
/// (here 30 s) peer timeout.
async fn a_new_incarnation_replaces_a_frozen_process_at_once(bp: Backplane) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |args| {
        args.set("cluster.peer_timeout_ms=30000")
    })
    .await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut alice = join_member(&mut sync, a, "alice", &mut []).await;
    let _bob = join_member(&mut sync, b, "bob", &mut [&mut alice]).await;
    let mut carol = join_member(&mut sync, c, "carol", &mut [&mut alice]).await;
    join_channel(&mut sync, "a", &mut alice, "room", &mut []).await;
    // (bob's client is frozen with its node from here on: it receives nothing more.)
    let old_incarnation = incarnation_of(a, "b");
    sync.remove("b");
    nodes[1].signal("STOP");

    let started = Instant::now();
    let b2 = NodeProcess::start(
        bp.args("b", Some(&nodes[0]))
            .set("cluster.peer_timeout_ms=30000"),
    )
    .await;
    let ((got_a, at_a), (got_c, at_c)) =
        tokio::join!(collect(&mut alice, 1), collect(&mut carol, 1));
    let took = at_a.max(at_c).duration_since(started);
    eprintln!("new incarnation started -> old members purged: {took:?}");
    assert_eq!(got_a, [mr("bob")]);
    assert_eq!(got_c, [mr("bob")]);
    assert!(took < Duration::from_secs(5), "purge took {took:?}");
    for n in [&nodes[0], &nodes[2]] {
        assert_eq!(
            down_reason(n, "b", old_incarnation).await,
            "restarted with a new incarnation"
        );
    }
    let frozen = std::mem::replace(&mut nodes[1], b2);
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    sync.add(&nodes[1]).await;
    sync.flush_all().await;
    alice.quiet().await;
    carol.quiet().await;
    assert_eq!(roster(&mut carol, "").await, ["alice", "carol"]);
    let mut bella = join_member(&mut sync, &nodes[1], "bella", &mut [&mut alice, &mut carol]).await;
    assert_eq!(roster(&mut bella, "").await, ["alice", "bella", "carol"]);
    drop(frozen);
    alice.quiet().await;
}

async fn sigterm_says_bye_purges_at_once_closes_clients_with_1001_and_exits_0(bp: Backplane) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |args| {
        args.set("cluster.peer_timeout_ms=30000")
    })
    .await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut alice = join_member(&mut sync, a, "alice", &mut []).await;
    let mut bob = join_member(&mut sync, b, "bob", &mut [&mut alice]).await;
    let mut carol = join_member(&mut sync, c, "carol", &mut [&mut alice, &mut bob]).await;
    join_channel(&mut sync, "a", &mut alice, "room", &mut []).await;
    join_channel(&mut sync, "b", &mut bob, "room", &mut [&mut alice]).await;
    let (mut sgc_b, _) = WsClient::sgc(b.ws).await;
    let b_incarnation = incarnation_of(a, "b");

    sync.remove("b");
    let stopped_at = Instant::now();
    nodes[1].signal("TERM");
    let ((got_a, at_a), (got_c, at_c)) =
        tokio::join!(collect(&mut alice, 2), collect(&mut carol, 1));
    let took = at_a.max(at_c).duration_since(stopped_at);
    eprintln!("SIGTERM -> last purge frame on the survivors: {took:?}");
    assert_eq!(got_a, [cmr("bob", "room"), mr("bob")]);
    assert_eq!(got_c, [mr("bob")]);
    assert!(
        took < purge_within(),
        "purge took {took:?} after SIGTERM (bound {:?}; {} scales it)",
        purge_within(),
        support::TIME_FACTOR_VAR
    );
    for n in [&nodes[0], &nodes[2]] {
        assert_eq!(down_reason(n, "b", b_incarnation).await, "bye");
    }
    // b's clients, Presence and sgc, are closed with 1001 (bob is not shown the remote members
    // leaving first: the close is his next frame); b exits 0.
    match bob.ws.next_frame_within(PROCESS_WAIT).await {
        Some(support::Frame::Close(code, reason)) => {
            assert_eq!(code, Some(1001));
            assert_eq!(reason, wscluster::internals::transport::SHUTDOWN_REASON);
        }
        other => panic!("bob's next frame must be the 1001 close, got {other:?}"),
    }
    let (code, _) = sgc_b.expect_closed_within(PROCESS_WAIT).await;
    assert_eq!(code, Some(1001));
    let status = nodes[1].exit_status().await;
    assert_eq!(status.code(), Some(0), "{}", nodes[1].stderr());
    sync.flush_all().await;
    alice.quiet().await;
    carol.quiet().await;
    assert_eq!(roster(&mut carol, "").await, ["alice", "carol"]);
}

#[tokio::test]
async fn a_node_with_the_wrong_secret_is_refused_and_the_others_carry_on() {
    let nodes = start_cluster(&["a", "b"]).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut sync = Syncer::new(&[a, b]).await;
    let mut alice = join_member(&mut sync, a, "alice", &mut []).await;
    // The dialer of a configured peer says it as that peer being unreachable, with the reason.
    let refusals = |n: &NodeProcess| {
        let mut lines = n.logged("mesh link refused");
        lines.extend(
            n.logged("configured peer unreachable (retrying; reminded at most once a minute)"),
        );
        lines
            .iter()
            .filter(|f| {
                f["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("wrong cluster secret"))
            })
            .count()
    };

    let x = NodeProcess::start(
        NodeArgs::new("x")
            .secret("not-the-cluster-secret")
            .peer(a.mesh)
            .peer(b.mesh),
    )
    .await;
    x.wait_log("refusal", |n| refusals(n) >= 1).await;
    // A member and an sgc publish on x, then one more refused dial on each good node: had x
    // been let in, its snapshot and publish would have crossed before that.
    let mut xavier = PClient::member(x.ws, "xavier", "xavier").await;
    xavier.quiet().await;
    let (mut pub_x, _) = WsClient::sgc(x.ws).await;
    pub_x
        .send(&support::sgc::delphi::publish(
            "\"from x\"",
            SYNC_CHANNEL,
            "queueLevel0",
        ))
        .await;
    pub_x.barrier().await;
    let (ra, rb) = (refusals(a), refusals(b));
    a.wait_log("another refusal", |n| refusals(n) > ra).await;
    b.wait_log("another refusal", |n| refusals(n) > rb).await;
    for n in [a, b] {
        assert!(
            n.peer_events().iter().all(|e| e.peer != "x"),
            "{} linked with x: {:?}",
            n.name,
            n.peer_events()
        );
    }
    assert!(
        x.peer_events().is_empty(),
        "x linked: {:?}",
        x.peer_events()
    );
    sync.flush_all().await;
    alice.quiet().await;
    assert_eq!(roster(&mut alice, "").await, ["alice"]);
    assert_eq!(roster(&mut xavier, "").await, ["xavier"]);

    // A node of another cluster (right secret, wrong name) is refused the same way.
    let y = NodeProcess::start(
        NodeArgs::new("y")
            .set("cluster.name=other-cluster")
            .peer(a.mesh),
    )
    .await;
    let named = |n: &NodeProcess| {
        n.logged("mesh link refused")
            .iter()
            .filter(|f| {
                f["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("wrong cluster name"))
            })
            .count()
    };
    a.wait_log("wrong cluster name refusal", |n| named(n) >= 1)
        .await;
    let mut yves = PClient::member(y.ws, "yves", "yves").await;
    yves.quiet().await;
    let before = named(a);
    a.wait_log("another refusal", |n| named(n) > before).await;
    assert!(
        y.peer_events().is_empty(),
        "y linked: {:?}",
        y.peer_events()
    );
    assert!(a.peer_events().iter().all(|e| e.peer != "y"));
    sync.flush_all().await;
    alice.quiet().await;

    // The good nodes carry on.
    let mut bob = join_member(&mut sync, b, "bob", &mut [&mut alice]).await;
    assert_eq!(roster(&mut bob, "").await, ["alice", "bob"]);
    xavier.quiet().await;
    yves.quiet().await;
    alice.quiet().await;
}

/// The seed (the node the others were started with) is killed and restarted on the same ports
/// with no peer of its own: the others redial its address and the cluster is whole again.
#[tokio::test]
async fn a_restarted_seed_is_redialed_by_the_others() {
    let mut nodes = start_cluster(&["a", "b", "c"]).await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let _alice = join_member(&mut sync, a, "alice", &mut []).await;
    let mut bob = join_member(&mut sync, b, "bob", &mut []).await;
    let mut carol = join_member(&mut sync, c, "carol", &mut [&mut bob]).await;
    let (old_ws, old_mesh) = (a.ws, a.mesh);

    sync.remove("a");
    nodes[0].kill();
    bob.expect(&mr("alice")).await;
    carol.expect(&mr("alice")).await;
    let restarted = Instant::now();
    nodes[0] = NodeProcess::start(
        NodeArgs::new("a")
            .listen(old_ws)
            .cluster_port(old_mesh.port()),
    )
    .await;
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    eprintln!(
        "seed restarted -> full mesh again: {:?}",
        restarted.elapsed()
    );
    sync.add(&nodes[0]).await;
    sync.flush_all().await;
    bob.quiet().await;
    carol.quiet().await;
    let mut ann = join_member(&mut sync, &nodes[0], "ann", &mut [&mut bob, &mut carol]).await;
    assert_eq!(roster(&mut ann, "").await, ["ann", "bob", "carol"]);
    bob.quiet().await;
    carol.quiet().await;
}

on_every_backplane!(
    a_sigkilled_process_s_members_leave_everywhere_at_once_with_disconnect_frames,
    a_process_restarted_under_the_same_name_does_not_bring_back_its_old_members,
    a_new_incarnation_replaces_a_frozen_process_at_once,
    sigterm_says_bye_purges_at_once_closes_clients_with_1001_and_exits_0,
);
