//! Presence across three real `wscluster` processes: members, channel joins and leaves,
//! publishes, invitations and `get@members` behave as on one node (the scopes of
//! `docs/presence.md`), frame by frame, with nothing extra for anyone.
//!
//! Steps that depend on an event having reached another process are ordered with
//! [`Syncer::flush_from`]: after a client's own reply proves its request was processed (and
//! relayed), a flush from the same node proves the relay was applied everywhere.

mod presence_support;
mod support;

use presence_support::*;
use support::process::*;

/// The ids of a `send@members` reply, in order.
fn member_ids(reply: &serde_json::Value) -> Vec<String> {
    reply["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn members_channels_publishes_and_rosters_cross_processes_with_local_scopes(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut sync = Syncer::new(&[a, b, c]).await;
    let (alice_m, bob_m, carol_m) = (
        m("alice-id", "alice", ""),
        m("bob-id", "bob", ""),
        m("carol-id", "carol", "line\r\n"),
    );

    // member@new: every member everywhere, the new one included.
    let mut alice = PClient::member(a.ws, "alice-id", "alice").await;
    alice.quiet().await;
    sync.flush_from("a").await;
    let mut bob = PClient::member(b.ws, "bob-id", "bob").await;
    bob.quiet().await;
    alice.expect(&member_frame("member@new", &bob_m)).await;
    sync.flush_from("b").await;
    // carol is a JS client (spaced frames, Base64 values); Delphi info carries a raw CRLF.
    let mut carol = PClient::connect_js(c.ws).await;
    carol.member_new("carol-id", "carol", "line\r\n").await;
    let carol_new = member_frame("member@new", &carol_m);
    carol.expect(&carol_new).await;
    carol.quiet().await;
    alice.expect(&carol_new).await;
    bob.expect(&carol_new).await;
    sync.flush_from("c").await;
    // A connection without a member hears nothing.
    let mut lurker = PClient::connect(b.ws).await;

    // get@members on any node: the union, in arrival order.
    for (who, client) in [(&"a", &mut alice), (&"b", &mut bob), (&"c", &mut carol)] {
        client.get_members("").await;
        let reply = client.recv_json().await;
        assert_eq!(reply["method"], "sgc@presence@send@members", "on {who}");
        assert_eq!(
            member_ids(&reply),
            ["alice-id", "bob-id", "carol-id"],
            "union on {who}: {reply}"
        );
    }
    // Exact bytes on one of them (Delphi requester: member from the roster).
    alice.get_members("").await;
    alice
        .expect(&send_members_frame(
            "",
            &alice_m,
            &[alice_m.clone(), bob_m.clone(), carol_m.clone()],
        ))
        .await;

    // channel@member@new: the channel's members only, across nodes.
    alice.join("room").await;
    alice
        .expect(&channel_member_frame(
            "channel@member@new",
            &alice_m,
            "room",
        ))
        .await;
    alice.quiet().await;
    sync.flush_from("a").await;
    bob.join("room").await;
    let bob_joined = channel_member_frame("channel@member@new", &bob_m, "room");
    bob.expect(&bob_joined).await;
    bob.quiet().await;
    alice.expect(&bob_joined).await;
    sync.flush_from("b").await;
    carol.quiet().await;
    // The channel roster from a node that has no member in it.
    carol.get_members("room").await;
    carol
        .expect(&send_members_frame(
            "room",
            &carol_m,
            &[alice_m.clone(), bob_m.clone()],
        ))
        .await;

    // publish@msg to a channel: its members (publisher included); carol, outside, nothing.
    carol.publish("not a member", "room").await;
    let err = carol.recv_json().await;
    assert_eq!(err["error"]["code"], 12, "{err}");
    bob.publish("hello room", "room").await;
    let to_room = publish_frame("\"hello room\"", "room", &bob_m);
    bob.expect(&to_room).await;
    bob.quiet().await;
    alice.expect(&to_room).await;
    sync.flush_from("b").await;
    carol.quiet().await;
    // publish@msg to everyone (channel ""): every member, the member as sent.
    carol.publish("to all", "").await;
    let to_all = publish_frame("\"to all\"", "", &m("carol-id", "", ""));
    carol.expect(&to_all).await;
    carol.quiet().await;
    alice.expect(&to_all).await;
    bob.expect(&to_all).await;

    // An invitation to a member on another node reaches it (the inviter as sent), nobody else.
    alice.invite("room", &["carol-id"]).await;
    alice.quiet().await;
    carol
        .expect(&invitation_frame("room", &m("alice-id", "", "")))
        .await;
    sync.flush_from("a").await;
    bob.quiet().await;

    // An explicit leave: the channel's remaining members plus the leaver.
    bob.leave("room").await;
    let bob_left = channel_member_frame("channel@member@remove", &bob_m, "room");
    bob.expect(&bob_left).await;
    bob.quiet().await;
    alice.expect(&bob_left).await;
    sync.flush_from("b").await;
    carol.quiet().await;

    // An explicit member@remove: every remaining member.
    carol.remove().await;
    carol.quiet().await;
    let carol_gone = member_frame("member@remove", &carol_m);
    alice.expect(&carol_gone).await;
    bob.expect(&carol_gone).await;
    sync.flush_from("c").await;

    // A disconnect on a: its channels' members first (none left in room), then everyone.
    alice.close().await;
    bob.expect(&member_frame("member@remove", &alice_m)).await;
    bob.get_members("").await;
    bob.expect(&send_members_frame(
        "",
        &bob_m,
        std::slice::from_ref(&bob_m),
    ))
    .await;
    sync.flush_all().await;
    bob.quiet().await;
    carol.quiet().await;
    lurker.quiet().await;
}

async fn member_ids_are_unique_across_processes(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b"], |a| a).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut sync = Syncer::new(&[a, b]).await;
    let mut alice = PClient::member(a.ws, "same-id", "alice").await;
    alice.quiet().await;
    sync.flush_from("a").await;
    // The same id on another node is refused with error 1, and nothing reaches alice.
    let mut twin = PClient::connect(b.ws).await;
    twin.member_new("same-id", "twin", "").await;
    let err = twin.recv_json().await;
    assert_eq!(err["error"]["code"], 1, "{err}");
    twin.quiet().await;
    sync.flush_from("b").await;
    alice.quiet().await;
}

/// A fourth process started while members exist: its clients see the union at once (snapshots),
/// and the existing clients see nothing but the newcomer's own members (no flap of anybody while
/// the new links settle, duplicate dials included).
async fn a_process_started_later_gets_the_union_and_nobody_sees_a_flap(bp: Backplane) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
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
    for w in [&mut alice, &mut bob] {
        w.expect(&member_frame("member@new", &carol_m)).await;
    }
    sync.flush_from("c").await;
    alice.join("room").await;
    alice
        .expect(&channel_member_frame(
            "channel@member@new",
            &alice_m,
            "room",
        ))
        .await;
    alice.quiet().await;
    sync.flush_from("a").await;

    // d knows only c; it learns a and b from c and links with everyone.
    let d = NodeProcess::start(bp.args("d", Some(&nodes[2]))).await;
    nodes.push(d);
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    let d = &nodes[3];
    sync.add(d).await;
    sync.flush_all().await;
    for p in [&mut alice, &mut bob, &mut carol] {
        p.quiet().await;
    }
    let mut dan = PClient::member(d.ws, "dan", "dan").await;
    dan.quiet().await;
    let dan_new = member_frame("member@new", &m("dan", "dan", ""));
    for p in [&mut alice, &mut bob, &mut carol] {
        p.expect(&dan_new).await;
    }
    sync.flush_from("d").await;
    dan.get_members("").await;
    let reply = dan.recv_json().await;
    let mut ids = member_ids(&reply);
    ids.sort();
    assert_eq!(ids, ["alice", "bob", "carol", "dan"], "{reply}");
    dan.get_members("room").await;
    dan.expect(&send_members_frame(
        "room",
        &m("dan", "dan", ""),
        std::slice::from_ref(&alice_m),
    ))
    .await;
    dan.join("room").await;
    let dan_in = channel_member_frame("channel@member@new", &m("dan", "dan", ""), "room");
    dan.expect(&dan_in).await;
    alice.expect(&dan_in).await;
    sync.flush_from("d").await;
    for p in [&mut alice, &mut bob, &mut carol, &mut dan] {
        p.quiet().await;
    }
    // Not even a flap invisible to clients: no node ever logged a peer down.
    for n in &nodes {
        let downs: Vec<PeerEvent> = n.peer_events().into_iter().filter(|e| !e.up).collect();
        assert!(downs.is_empty(), "{} logged {downs:?}", n.name);
    }
}

on_every_backplane!(
    members_channels_publishes_and_rosters_cross_processes_with_local_scopes,
    member_ids_are_unique_across_processes,
    a_process_started_later_gets_the_union_and_nobody_sees_a_flap,
);
