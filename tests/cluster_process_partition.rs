//! Link cuts between real `wscluster` processes. Each node advertises a fault proxy
//! (`tests/support/proxy.rs`) in front of its mesh port, so every link between them goes through
//! the proxies, which can cut it and let it through again.
//!
//! - sgc: a cut shorter than the replay window loses and duplicates nothing.
//! - Presence: a closed link is a dead peer at once (its members leave on the other side), and the
//!   heal announces them again, once.

mod presence_support;
mod support;

#[path = "support/proxy.rs"]
mod proxy_support;

use std::net::SocketAddr;

use presence_support::*;
use proxy_support::Proxy;
use support::WsClient;
use support::process::*;
use support::sgc::*;

/// Two linked nodes, `a` and `b`, each behind its proxy.
struct ProxiedPair {
    a: NodeProcess,
    b: NodeProcess,
    proxy_a: Proxy,
    proxy_b: Proxy,
}

impl ProxiedPair {
    async fn start() -> Self {
        // Proxies first (their ports are held from now on), nodes on ephemeral ports advertising
        // them, then each proxy learns its node's port.
        let proxy_a = Proxy::start_deferred().await;
        let proxy_b = Proxy::start_deferred().await;
        let a = NodeProcess::start(
            NodeArgs::new("a").set(&format!("cluster.mesh.advertise={}", proxy_a.addr())),
        )
        .await;
        proxy_a.set_target(a.mesh);
        let b = NodeProcess::start(
            NodeArgs::new("b")
                .set(&format!("cluster.mesh.advertise={}", proxy_b.addr()))
                .peer(proxy_a.addr()),
        )
        .await;
        proxy_b.set_target(b.mesh);
        wait_linked(&[&a, &b]).await;
        Self {
            a,
            b,
            proxy_a,
            proxy_b,
        }
    }

    /// Cuts both proxies and waits until both nodes logged the other one down.
    async fn cut(&self) {
        let downs = |n: &NodeProcess| n.peer_events().iter().filter(|e| !e.up).count();
        let (da, db) = (downs(&self.a), downs(&self.b));
        self.proxy_a.cut();
        self.proxy_b.cut();
        self.a.wait_log("b disconnected", |n| downs(n) > da).await;
        self.b.wait_log("a disconnected", |n| downs(n) > db).await;
    }

    /// Lets the links through again.
    fn restore(&self) {
        self.proxy_a.restore();
        self.proxy_b.restore();
    }
}

async fn subscriber(addr: SocketAddr, channel: &str) -> WsClient {
    let (mut c, _) = WsClient::sgc(addr).await;
    c.subscribe(channel).await;
    c
}
/// The link is cut while a publisher keeps publishing, then restored well within the replay
/// window: the subscriber on the other side gets every message once, in order.
///
/// Guards a fixed regression: interest routing once dropped a down peer from routing, so live
/// publishes made while its link was down never entered the replay window.
#[tokio::test]
async fn a_short_link_cut_loses_and_duplicates_nothing() {
    let pair = ProxiedPair::start().await;
    let (a, b) = (&pair.a, &pair.b);
    let mut sub_b = subscriber(b.ws, "t").await;
    let (mut pub_a, _) = WsClient::sgc(a.ws).await;
    let publish = |i: usize| delphi::publish(&format!("\"m{i}\""), "t", "queueLevel0");
    for i in 0..50 {
        pub_a.send(&publish(i)).await;
    }
    // The first half arrives over the link before the cut.
    for i in 0..50 {
        sub_b.expect(&s5("t", &format!("\"m{i}\""))).await;
    }
    pair.cut().await;
    // Published while no link exists: kept in a's replay window.
    for i in 50..100 {
        pub_a.send(&publish(i)).await;
    }
    pub_a.barrier().await;
    pair.restore();
    // Some right after the restore (the link may not be back yet), the rest once it is.
    for i in 100..125 {
        pub_a.send(&publish(i)).await;
    }
    pub_a.barrier().await;
    wait_linked(&[a, b]).await;
    for i in 125..150 {
        pub_a.send(&publish(i)).await;
    }
    for i in 50..150 {
        sub_b.expect(&s5("t", &format!("\"m{i}\""))).await;
    }
    sub_b.barrier().await;
    // The link came back (a second `peer connected`): the messages crossed a new link, replayed.
    let ups = a
        .peer_events()
        .iter()
        .filter(|e| e.up && e.peer == "b")
        .count();
    assert!(ups >= 2, "a must have relinked with b");
    assert!(
        pair.proxy_a.connections() + pair.proxy_b.connections() >= 2,
        "the links went through the proxies"
    );
    let a_logs = a.stderr();
    assert!(
        !a_logs.contains("lost beyond the replay window") && !a_logs.contains("frames missing"),
        "nothing may be lost: {a_logs}"
    );
}

/// A cut link is a dead peer: each side's clients see the other side's members leave with
/// disconnect frames. After the heal the members are announced again, once, the rosters are whole
/// again and the channel works across the link. Several cut/heal cycles, as a blip can repeat.
///
/// Guards a fixed race: after a heal both nodes dial each other at about the same time; the link
/// a node replaces now says `Superseded` before it closes (no spurious peer down), peer changes
/// are reported in the order they were decided, and a replaced link exchanges snapshots again.
#[tokio::test]
async fn a_healed_partition_announces_the_returned_members_once() {
    let pair = ProxiedPair::start().await;
    let (a, b) = (&pair.a, &pair.b);
    let mut sync = Syncer::new(&[a, b]).await;
    let (alice_m, bob_m) = (m("alice", "alice", ""), m("bob", "bob", ""));
    let mut alice = PClient::member(a.ws, "alice", "alice").await;
    alice.quiet().await;
    sync.flush_from("a").await;
    let mut bob = PClient::member(b.ws, "bob", "bob").await;
    bob.quiet().await;
    alice.expect(&member_frame("member@new", &bob_m)).await;
    for (c, who, node) in [(&mut alice, &alice_m, "a"), (&mut bob, &bob_m, "b")] {
        c.join("room").await;
        c.expect(&channel_member_frame("channel@member@new", who, "room"))
            .await;
        c.quiet().await;
        sync.flush_from(node).await;
    }
    alice
        .expect(&channel_member_frame("channel@member@new", &bob_m, "room"))
        .await;

    for cycle in 0..6 {
        pair.cut().await;
        for (c, gone) in [(&mut alice, &bob_m), (&mut bob, &alice_m)] {
            let got = drain(c, &format!("cut-{cycle}-{}", c.id)).await;
            assert_eq!(
                got,
                [
                    channel_member_frame("channel@member@remove", gone, "room"),
                    member_frame("member@remove", gone),
                ],
                "cycle {cycle}: {} after the cut",
                c.id
            );
        }
        pair.restore();
        wait_linked(&[a, b]).await;
        sync.flush_all().await;
        // Each side hears the other's member come back, with its channel, once.
        for (c, back) in [(&mut alice, &bob_m), (&mut bob, &alice_m)] {
            let got = drain(c, &format!("heal-{cycle}-{}", c.id)).await;
            assert_eq!(
                got,
                [
                    member_frame("member@new", back),
                    channel_member_frame("channel@member@new", back, "room"),
                ],
                "cycle {cycle}: {} after the heal (a: {:?}, b: {:?})",
                c.id,
                a.peer_events(),
                b.peer_events()
            );
            assert_eq!(roster_ids(c).await, ["alice", "bob"], "cycle {cycle}");
        }
        alice.publish("healed", "room").await;
        let f = publish_frame("\"healed\"", "room", &alice_m);
        alice.expect(&f).await;
        bob.expect(&f).await;
        sync.flush_from("a").await;
        alice.quiet().await;
        bob.quiet().await;
    }
}

/// Sends a barrier (a frame with a fresh id) and returns every frame that arrived before its
/// acknowledgment.
async fn drain(c: &mut PClient, tag: &str) -> Vec<String> {
    c.send(&format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@barrier","id":"{tag}"}}"#
    ))
    .await;
    let ack = ack_frame(tag);
    let mut frames = Vec::new();
    loop {
        let f = c.recv().await;
        if f == ack {
            return frames;
        }
        frames.push(f);
    }
}

/// A Presence publish made during a partition is replayed after the heal; the receiving node holds
/// it until the snapshot that announces its sender again, so its clients never receive a
/// `publish@msg` from a member they were not told about.
#[tokio::test]
async fn a_publish_made_during_a_partition_never_precedes_its_sender_s_return() {
    let pair = ProxiedPair::start().await;
    let (a, b) = (&pair.a, &pair.b);
    let mut sync = Syncer::new(&[a, b]).await;
    let (alice_m, bob_m) = (m("alice", "alice", ""), m("bob", "bob", ""));
    let mut alice = PClient::member(a.ws, "alice", "alice").await;
    alice.quiet().await;
    sync.flush_from("a").await;
    let mut bob = PClient::member(b.ws, "bob", "bob").await;
    bob.quiet().await;
    alice.expect(&member_frame("member@new", &bob_m)).await;
    for (c, who, node) in [(&mut alice, &alice_m, "a"), (&mut bob, &bob_m, "b")] {
        c.join("room").await;
        c.expect(&channel_member_frame("channel@member@new", who, "room"))
            .await;
        c.quiet().await;
        sync.flush_from(node).await;
    }
    let bob_in = channel_member_frame("channel@member@new", &bob_m, "room");
    assert_eq!(drain(&mut alice, "joined-a").await, [bob_in]);
    assert_eq!(drain(&mut bob, "joined-b").await, Vec::<String>::new());

    pair.cut().await;
    assert_eq!(drain(&mut bob, "cut-b").await.len(), 2, "alice purged on b");
    assert_eq!(drain(&mut alice, "cut-a").await.len(), 2, "bob purged on a");
    // During the cut alice publishes to room: only a's members of room have it now.
    alice.publish("during", "room").await;
    let during = publish_frame("\"during\"", "room", &alice_m);
    alice.expect(&during).await;
    alice.quiet().await;

    pair.restore();
    bob.expect(&member_frame("member@new", &alice_m)).await;
    sync.flush_all().await;
    let rest = drain(&mut bob, "healed-b").await;
    let back_in_room = channel_member_frame("channel@member@new", &alice_m, "room");
    // Delivered after her return (nothing lost), or not at all: never before it.
    assert!(
        rest == [back_in_room.clone()] || rest == [back_in_room, during],
        "after alice's member@new bob got {rest:#?}"
    );
}

/// A process that goes silent (SIGSTOP) is dead after the peer timeout: its members leave on the
/// others with disconnect frames. Resumed (SIGCONT), the same incarnation links again, and every
/// side announces the other side's members again, once each.
///
/// Guards the same duplicate-link race as after a heal (both sides had a dial pending while b
/// slept).
#[tokio::test]
async fn a_silent_process_times_out_and_its_members_return_once_when_it_resumes() {
    let nodes = start_cluster_with(&["a", "b", "c"], |args| {
        args.set("cluster.peer_timeout_ms=1000")
            .log_level("info,wscluster::cluster=debug")
    })
    .await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (alice_m, bob_m, carol_m) = (
        m("alice", "alice", ""),
        m("bob", "bob", ""),
        m("carol", "carol", ""),
    );
    let mut alice = PClient::member(a.ws, "alice", "alice").await;
    alice.quiet().await;
    sync.flush_from("a").await;
    let mut bob = PClient::member(b.ws, "bob", "bob").await;
    bob.quiet().await;
    alice.expect(&member_frame("member@new", &bob_m)).await;
    sync.flush_from("b").await;
    let mut carol = PClient::member(c.ws, "carol", "carol").await;
    carol.quiet().await;
    alice.expect(&member_frame("member@new", &carol_m)).await;
    bob.expect(&member_frame("member@new", &carol_m)).await;
    sync.flush_from("c").await;
    for (cl, who, node) in [(&mut alice, &alice_m, "a"), (&mut bob, &bob_m, "b")] {
        cl.join("room").await;
        cl.expect(&channel_member_frame("channel@member@new", who, "room"))
            .await;
        cl.quiet().await;
        sync.flush_from(node).await;
    }
    let bob_in = channel_member_frame("channel@member@new", &bob_m, "room");
    let alice_in = channel_member_frame("channel@member@new", &alice_m, "room");
    alice.expect(&bob_in).await;

    let stopped = std::time::Instant::now();
    b.signal("STOP");
    alice
        .expect(&channel_member_frame(
            "channel@member@remove",
            &bob_m,
            "room",
        ))
        .await;
    alice.expect(&member_frame("member@remove", &bob_m)).await;
    carol.expect(&member_frame("member@remove", &bob_m)).await;
    eprintln!("SIGSTOP -> purged after {:?}", stopped.elapsed());
    for n in [a, c] {
        let reason = n
            .peer_events()
            .into_iter()
            .rfind(|e| !e.up && e.peer == "b")
            .map(|e| e.reason);
        assert_eq!(reason.as_deref(), Some("peer timeout"), "on {}", n.name);
    }
    alice.quiet().await;
    carol.quiet().await;

    b.signal("CONT");
    wait_linked(&[a, b, c]).await;
    sync.flush_all().await;
    // a and c: bob is back, with his channel, once.
    let got_a = drain(&mut alice, "resumed-a").await;
    let got_c = drain(&mut carol, "resumed-c").await;
    let got_b = drain(&mut bob, "resumed-b").await;
    let rosters = [
        roster_ids(&mut alice).await,
        roster_ids(&mut bob).await,
        roster_ids(&mut carol).await,
    ];
    assert_eq!(
        got_a,
        [member_frame("member@new", &bob_m), bob_in],
        "alice after the resume"
    );
    assert_eq!(got_c, [member_frame("member@new", &bob_m)], "carol");
    // b: its links were closed while it slept; alice and carol leave, then come back, once.
    let alice_seq = [
        channel_member_frame("channel@member@remove", &alice_m, "room"),
        member_frame("member@remove", &alice_m),
        member_frame("member@new", &alice_m),
        alice_in,
    ];
    let carol_seq = [
        member_frame("member@remove", &carol_m),
        member_frame("member@new", &carol_m),
    ];
    let (mut i, mut j) = (0, 0);
    for f in &got_b {
        if alice_seq.get(i) == Some(f) {
            i += 1;
        } else if carol_seq.get(j) == Some(f) {
            j += 1;
        } else {
            panic!("bob: unexpected frame {f}; got {got_b:#?}; rosters (a, b, c): {rosters:?}");
        }
    }
    assert_eq!((i, j), (4, 2), "bob got {got_b:#?}");
    for r in rosters {
        assert_eq!(r, ["alice", "bob", "carol"], "rosters after the resume");
    }
}

/// The sorted ids of `get@members` for everyone.
async fn roster_ids(c: &mut PClient) -> Vec<String> {
    c.get_members("").await;
    let reply = c.recv_json().await;
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
