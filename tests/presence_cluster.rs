//! The Presence union in process: relay events emitted after local application, remote events
//! applied with local scopes (never re-emitted), `purge_node` producing the frames of a
//! disconnect, incarnations, snapshots, and two nodes bridged through their relays.

mod presence_support;
mod support;

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use presence_support::*;
use wscluster::internals::protocol::json::Payload;
use wscluster::internals::protocol::presence::{
    Member, Origin, PresenceEvent, PresenceProtocol, RemoteOrigin,
};
use wscluster::internals::relay::Relay;

/// Records every relayed event.
#[derive(Default)]
struct Capture(Mutex<Vec<PresenceEvent>>);

impl Relay<PresenceEvent> for Capture {
    fn relay(&self, event: &PresenceEvent) {
        self.0.lock().push(event.clone());
    }
}

impl Capture {
    fn take(&self) -> Vec<PresenceEvent> {
        std::mem::take(&mut *self.0.lock())
    }
}

fn node(name: &str, incarnation: u64) -> RemoteOrigin {
    RemoteOrigin {
        node_id: name.into(),
        incarnation,
    }
}

fn member(id: &str, name: &str) -> Member {
    Member::new(id, name, "")
}

fn remote_member_new(p: &PresenceProtocol, origin: &RemoteOrigin, id: &str, name: &str) {
    p.apply_remote(
        &PresenceEvent::MemberNew {
            member: member(id, name),
        },
        origin,
    );
}

fn remote_join(p: &PresenceProtocol, origin: &RemoteOrigin, id: &str, channel: &str) {
    p.apply_remote(
        &PresenceEvent::ChannelMemberNew {
            member: Member::with_id(id),
            channel: channel.into(),
        },
        origin,
    );
}

#[tokio::test]
async fn local_changes_are_relayed_after_local_application_and_remote_ones_are_not() {
    let (server, p) = start_default().await;
    let cap = Arc::new(Capture::default());
    p.attach_relay(cap.clone());
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    a.join("room").await;
    a.recv().await;
    a.publish("hi", "room").await;
    a.recv().await;
    a.leave("room").await;
    a.recv().await;
    let n2 = node("n2", 1);
    remote_member_new(&p, &n2, "x", "xavier");
    a.expect(&member_frame("member@new", &m("x", "xavier", "")))
        .await;
    let mut b = PClient::member(addr, "b", "bob").await;
    a.expect(&member_frame("member@new", &m("b", "bob", "")))
        .await;
    // One invitation: b is local (delivered here), x lives on n2 (routed by event).
    a.invite("room", &["b", "x"]).await;
    b.expect(&invitation_frame("room", &m("a", "", ""))).await;
    a.quiet().await;
    b.close().await;
    a.expect(&member_frame("member@remove", &m("b", "bob", "")))
        .await;
    assert_eq!(
        cap.take(),
        vec![
            PresenceEvent::MemberNew {
                member: member("a", "alice")
            },
            PresenceEvent::ChannelMemberNew {
                member: member("a", "alice"),
                channel: "room".into()
            },
            PresenceEvent::Publish {
                channel: "room".into(),
                message: Payload::Text("hi".into()),
                member: member("a", "alice")
            },
            PresenceEvent::ChannelMemberRemove {
                member: member("a", "alice"),
                channel: "room".into()
            },
            PresenceEvent::MemberNew {
                member: member("b", "bob")
            },
            PresenceEvent::Invitation {
                channel: "room".into(),
                inviter: Member::with_id("a"),
                target: "x".into(),
                target_node: "n2".into()
            },
            PresenceEvent::MemberRemove {
                member: member("b", "bob")
            },
        ]
    );
    p.detach_relay();
    a.publish("unrelayed", "").await;
    a.recv().await;
    assert!(cap.take().is_empty());
}

#[tokio::test]
async fn remote_members_join_the_union_and_their_events_reach_local_clients_with_local_scopes() {
    let (server, p) = start_default().await;
    let cap = Arc::new(Capture::default());
    p.attach_relay(cap.clone());
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    a.join("room").await;
    a.recv().await;
    let mut b = PClient::member(addr, "b", "bob").await;
    a.expect(&member_frame("member@new", &m("b", "bob", "")))
        .await;
    let n2 = node("n2", 9);
    let xm = m("x", "xavier", "");
    cap.take();

    remote_member_new(&p, &n2, "x", "xavier");
    a.expect(&member_frame("member@new", &xm)).await;
    b.expect(&member_frame("member@new", &xm)).await;
    assert_eq!(p.member_origin("x"), Some(Origin::Remote(n2.clone())));

    remote_join(&p, &n2, "x", "room");
    a.expect(&channel_member_frame("channel@member@new", &xm, "room"))
        .await;
    b.quiet().await;

    a.get_members("room").await;
    a.expect(&send_members_frame(
        "room",
        &m("a", "alice", ""),
        &[m("a", "alice", ""), xm.clone()],
    ))
    .await;
    b.get_members("").await;
    b.expect(&send_members_frame(
        "",
        &m("b", "bob", ""),
        &[m("a", "alice", ""), m("b", "bob", ""), xm.clone()],
    ))
    .await;

    p.apply_remote(
        &PresenceEvent::Publish {
            channel: "room".into(),
            message: Payload::Raw(r#"{"n":1}"#.into()),
            member: member("x", "xavier"),
        },
        &n2,
    );
    a.expect(&publish_frame(r#"{"n":1}"#, "room", &xm)).await;
    b.quiet().await;

    p.apply_remote(
        &PresenceEvent::Invitation {
            channel: "room".into(),
            inviter: Member::with_id("x"),
            target: "b".into(),
            target_node: "here".into(),
        },
        &n2,
    );
    b.expect(&invitation_frame("room", &m("x", "", ""))).await;
    a.quiet().await;

    // A local client cannot act as the remote member.
    a.id = "x".into();
    a.publish("spoof", "room").await;
    a.expect(&error_frame(
        3,
        "Member not exists.",
        "room",
        &m("x", "", ""),
    ))
    .await;
    a.id = "a".into();
    // A node only speaks for its own members.
    p.apply_remote(
        &PresenceEvent::MemberRemove {
            member: member("a", "alice"),
        },
        &n2,
    );
    remote_member_new(&p, &n2, "b", "impostor");
    a.quiet().await;
    b.quiet().await;
    assert_eq!(
        p.member("a").map(|m| m.name.to_string()),
        Some("alice".into())
    );
    assert_eq!(
        p.member("b").map(|m| m.name.to_string()),
        Some("bob".into())
    );

    p.apply_remote(
        &PresenceEvent::ChannelMemberRemove {
            member: Member::with_id("x"),
            channel: "room".into(),
        },
        &n2,
    );
    a.expect(&channel_member_frame("channel@member@remove", &xm, "room"))
        .await;
    b.quiet().await;
    p.apply_remote(
        &PresenceEvent::MemberRemove {
            member: member("x", "xavier"),
        },
        &n2,
    );
    a.expect(&member_frame("member@remove", &xm)).await;
    b.expect(&member_frame("member@remove", &xm)).await;
    // Nothing applied from n2 was relayed back.
    assert!(cap.take().is_empty());
}

#[tokio::test]
async fn purge_node_sends_local_clients_the_frames_of_a_disconnect() {
    let (server, p) = start_default().await;
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    a.join("room").await;
    a.recv().await;
    let (n2, n3) = (node("n2", 1), node("n3", 1));
    remote_member_new(&p, &n2, "x", "xavier");
    remote_join(&p, &n2, "x", "room");
    remote_join(&p, &n2, "x", "lobby");
    remote_member_new(&p, &n2, "y", "yves");
    remote_member_new(&p, &n3, "z", "zoe");
    remote_join(&p, &n3, "z", "room");
    for _ in 0..5 {
        a.recv().await;
    }
    a.quiet().await;
    assert_eq!(p.purge_node("n2"), 2);
    let (xm, ym) = (m("x", "xavier", ""), m("y", "yves", ""));
    a.expect(&channel_member_frame("channel@member@remove", &xm, "room"))
        .await;
    a.expect(&member_frame("member@remove", &xm)).await;
    a.expect(&member_frame("member@remove", &ym)).await;
    a.get_members("").await;
    a.expect(&send_members_frame(
        "",
        &m("a", "alice", ""),
        &[m("a", "alice", ""), m("z", "zoe", "")],
    ))
    .await;
    assert_eq!(p.channels(), vec![("room".to_string(), 2)], "lobby freed");
    assert_eq!(p.purge_node("n2"), 0);
}

#[tokio::test]
async fn a_new_incarnation_of_a_node_purges_the_replicas_of_the_old_one_first() {
    let (server, p) = start_default().await;
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    remote_member_new(&p, &node("n2", 1), "x", "xavier");
    a.expect(&member_frame("member@new", &m("x", "xavier", "")))
        .await;
    remote_member_new(&p, &node("n2", 2), "y", "yves");
    a.expect(&member_frame("member@remove", &m("x", "xavier", "")))
        .await;
    a.expect(&member_frame("member@new", &m("y", "yves", "")))
        .await;
    a.quiet().await;
}

#[tokio::test]
async fn snapshots_rebuild_a_nodes_part_of_the_union() {
    let (s1, p1) = start_default().await;
    let (s2, p2) = start_default().await;
    let n1 = node("n1", 1);
    let mut a = PClient::member(s1.local_addr(), "a", "alice").await;
    a.join("room").await;
    a.recv().await;
    let mut c = PClient::member(s2.local_addr(), "c", "carol").await;
    c.join("room").await;
    c.recv().await;
    p2.apply_remote(&p1.snapshot(), &n1);
    let am = m("a", "alice", "");
    c.expect(&member_frame("member@new", &am)).await;
    c.expect(&channel_member_frame("channel@member@new", &am, "room"))
        .await;
    c.quiet().await;
    // Meanwhile (no relay attached): a leaves room and joins lobby, b arrives.
    a.leave("room").await;
    a.recv().await;
    a.join("lobby").await;
    a.recv().await;
    let _b = PClient::member(s1.local_addr(), "b", "bob").await;
    a.recv().await;
    p2.apply_remote(&p1.snapshot(), &n1);
    c.expect(&channel_member_frame("channel@member@remove", &am, "room"))
        .await;
    c.expect(&member_frame("member@new", &m("b", "bob", "")))
        .await;
    c.quiet().await;
    let mut lobby = p2.channel_members("lobby").unwrap_or_default();
    assert_eq!(lobby.pop().map(|m| m.id.to_string()), Some("a".into()));
    // The same snapshot again changes nothing.
    p2.apply_remote(&p1.snapshot(), &n1);
    c.quiet().await;
    // An empty snapshot removes everything of n1.
    p2.apply_remote(&PresenceEvent::Snapshot { members: vec![] }, &n1);
    c.expect(&member_frame("member@remove", &am)).await;
    c.expect(&member_frame("member@remove", &m("b", "bob", "")))
        .await;
    assert_eq!(p2.member_count(), 1);
}

/// Delivers one node's events to another, as a cluster engine would.
struct Bridge {
    to: PresenceProtocol,
    from: RemoteOrigin,
}

impl Relay<PresenceEvent> for Bridge {
    fn relay(&self, event: &PresenceEvent) {
        self.to.apply_remote(event, &self.from);
    }
}

#[tokio::test]
async fn two_nodes_bridged_through_their_relays_behave_as_one() {
    let (s1, p1) = start_default().await;
    let (s2, p2) = start_default().await;
    p1.attach_relay(Arc::new(Bridge {
        to: p2.clone(),
        from: node("n1", 1),
    }));
    p2.attach_relay(Arc::new(Bridge {
        to: p1.clone(),
        from: node("n2", 1),
    }));
    let (am, bm) = (m("a", "alice", ""), m("b", "bob", ""));
    let mut a = PClient::member(s1.local_addr(), "a", "alice").await;
    let mut b = PClient::member(s2.local_addr(), "b", "bob").await;
    a.expect(&member_frame("member@new", &bm)).await;
    // b registered after a: it hears of a only through get@members.
    b.get_members("").await;
    b.expect(&send_members_frame("", &bm, &[am.clone(), bm.clone()]))
        .await;
    a.join("room").await;
    a.expect(&channel_member_frame("channel@member@new", &am, "room"))
        .await;
    b.quiet().await;
    b.join("room").await;
    let cmn = channel_member_frame("channel@member@new", &bm, "room");
    b.expect(&cmn).await;
    a.expect(&cmn).await;
    a.publish("across", "room").await;
    let f = publish_frame(r#""across""#, "room", &am);
    a.expect(&f).await;
    b.expect(&f).await;
    a.invite("lobby", &["b"]).await;
    b.expect(&invitation_frame("lobby", &m("a", "", ""))).await;
    // Identity is cluster-wide: b's id is taken on node 1 too.
    let mut dup = PClient::connect(s1.local_addr()).await;
    dup.member_new("b", "other", "").await;
    dup.expect(&error_frame(
        1,
        "Member already exists.",
        "",
        &m("b", "other", ""),
    ))
    .await;
    a.close().await;
    b.expect(&channel_member_frame("channel@member@remove", &am, "room"))
        .await;
    b.expect(&member_frame("member@remove", &am)).await;
    b.quiet().await;
    assert_eq!(p2.member_count(), 1);
    assert_eq!(p1.member_count(), 1);
}

#[tokio::test]
async fn a_ten_thousand_member_channel_is_listed_in_one_reply() {
    let (server, p) = start_default().await;
    let n2 = node("n2", 1);
    let t0 = Instant::now();
    for i in 0..10_000 {
        let id = format!("m{i:05}");
        remote_member_new(&p, &n2, &id, "someone");
        remote_join(&p, &n2, &id, "big");
    }
    let applied = t0.elapsed();
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    let mut b = PClient::member(server.local_addr(), "b", "bob").await;
    a.recv().await;
    let t1 = Instant::now();
    a.get_members("big").await;
    let reply = a.recv_json().await;
    let listed = t1.elapsed();
    let members = reply["members"].as_array().cloned().unwrap_or_default();
    assert_eq!(members.len(), 10_000);
    assert_eq!(members[0]["id"], "m00000");
    assert_eq!(members[9_999]["id"], "m09999");
    // Others are served meanwhile and after.
    b.quiet().await;
    a.get_members("big").await;
    assert_eq!(
        a.recv_json().await["members"].as_array().map(Vec::len),
        Some(10_000)
    );
    eprintln!("20k remote events applied in {applied:?}; 10k-member reply in {listed:?}");
}
