//! Presence across three in-process nodes linked by the mesh: the union roster, events with local
//! scopes on every node, and purge of a departed node's members everywhere.

mod presence_support;
mod support;

use std::sync::Arc;
use std::time::Duration;

use presence_support::*;
use wscluster::internals::cluster::{Cluster, ClusterConfig, PresenceAdapter};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::{Server, ServerHandle};

struct Node {
    server: ServerHandle,
    presence: PresenceProtocol,
    cluster: Cluster,
}

async fn node(name: &str, peers: Vec<String>) -> Node {
    support::init_logs();
    let presence = PresenceProtocol::new(PresenceConfig::default());
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(presence.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(
        name,
        ClusterConfig {
            heartbeat_interval_ms: 100,
            peer_timeout_ms: 1_000,
            ..ClusterConfig::loopback_mesh(peers, "test-secret")
        },
    );
    cluster.attach(PresenceAdapter::new(presence.clone()));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node {
        server,
        presence,
        cluster,
    }
}

async fn three_nodes() -> (Node, Node, Node) {
    let a = node("a", vec![]).await;
    let seed = a
        .cluster
        .mesh()
        .map(|m| m.local_addr().to_string())
        .unwrap_or_default();
    let b = node("b", vec![seed.clone()]).await;
    let c = node("c", vec![seed]).await;
    let linked = support::eventually(Duration::from_secs(5), || {
        [&a, &b, &c]
            .iter()
            .all(|n| n.cluster.connected_peer_count() == 2)
    })
    .await;
    assert!(linked, "full mesh");
    (a, b, c)
}

#[tokio::test]
async fn members_events_and_publishes_cross_nodes_with_local_scopes() {
    let (a, b, c) = three_nodes().await;
    let mut alice = PClient::member(a.server.local_addr(), "alice-id", "alice").await;
    // Alice is known everywhere before others join (else they would also hear her arrive).
    assert!(
        support::eventually(Duration::from_secs(5), || b.presence.member_count() == 1
            && c.presence.member_count() == 1)
        .await
    );
    // bob joins on b: alice (on a) hears member@new like a local member would.
    let mut bob = PClient::member(b.server.local_addr(), "bob-id", "bob").await;
    alice
        .expect(&member_frame("member@new", &m("bob-id", "bob", "")))
        .await;
    assert!(support::eventually(Duration::from_secs(5), || c.presence.member_count() == 2).await);
    // carol on c asks for everyone: the union of all nodes.
    let mut carol = PClient::member(c.server.local_addr(), "carol-id", "carol").await;
    alice
        .expect(&member_frame("member@new", &m("carol-id", "carol", "")))
        .await;
    bob.expect(&member_frame("member@new", &m("carol-id", "carol", "")))
        .await;
    carol.get_members("").await;
    let reply = carol.recv_json().await;
    let mut ids: Vec<String> = reply["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    assert_eq!(ids, ["alice-id", "bob-id", "carol-id"]);
    // A channel spanning nodes: alice and bob join room; carol does not.
    alice.join("room").await;
    alice
        .expect(&channel_member_frame(
            "channel@member@new",
            &m("alice-id", "alice", ""),
            "room",
        ))
        .await;
    assert!(
        support::eventually(Duration::from_secs(5), || b
            .presence
            .channel_members("room")
            .is_some_and(|m| m.len() == 1))
        .await
    );
    bob.join("room").await;
    let bob_joined = channel_member_frame("channel@member@new", &m("bob-id", "bob", ""), "room");
    bob.expect(&bob_joined).await;
    alice.expect(&bob_joined).await;
    // A publish from c's member to room (carol is not in it: error 12, nothing relayed).
    carol.publish("nope", "room").await;
    let err = carol.recv_json().await;
    assert_eq!(err["error"]["code"], 12);
    // bob publishes: alice on a receives it, carol does not.
    bob.publish("hello room", "room").await;
    let frame = publish_frame("\"hello room\"", "room", &m("bob-id", "bob", ""));
    bob.expect(&frame).await;
    alice.expect(&frame).await;
    carol.quiet().await;
    alice.quiet().await;
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn a_departed_node_s_members_are_purged_everywhere_with_disconnect_frames() {
    let (a, b, c) = three_nodes().await;
    let mut alice = PClient::member(a.server.local_addr(), "alice-id", "alice").await;
    assert!(support::eventually(Duration::from_secs(5), || b.presence.member_count() == 1).await);
    let mut bob = PClient::member(b.server.local_addr(), "bob-id", "bob").await;
    alice
        .expect(&member_frame("member@new", &m("bob-id", "bob", "")))
        .await;
    bob.join("room").await;
    bob.expect(&channel_member_frame(
        "channel@member@new",
        &m("bob-id", "bob", ""),
        "room",
    ))
    .await;
    alice.join("room").await;
    alice
        .expect(&channel_member_frame(
            "channel@member@new",
            &m("alice-id", "alice", ""),
            "room",
        ))
        .await;
    bob.expect(&channel_member_frame(
        "channel@member@new",
        &m("alice-id", "alice", ""),
        "room",
    ))
    .await;
    assert!(support::eventually(Duration::from_secs(5), || c.presence.member_count() == 2).await);
    // b leaves the cluster: a and c purge bob as if he had disconnected.
    b.cluster.stop().await;
    alice
        .expect(&channel_member_frame(
            "channel@member@remove",
            &m("bob-id", "bob", ""),
            "room",
        ))
        .await;
    alice
        .expect(&member_frame("member@remove", &m("bob-id", "bob", "")))
        .await;
    alice.quiet().await;
    assert!(
        support::eventually(Duration::from_secs(5), || c.presence.member_count() == 1
            && a.presence.member_count() == 1)
        .await,
        "no ghost on any survivor"
    );
    // b, now alone, purges alice the same way: its clients see her leave.
    bob.expect(&channel_member_frame(
        "channel@member@remove",
        &m("alice-id", "alice", ""),
        "room",
    ))
    .await;
    bob.expect(&member_frame("member@remove", &m("alice-id", "alice", "")))
        .await;
    bob.quiet().await;
    assert_eq!(b.presence.member_count(), 1);
    for n in [&a, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn a_detached_protocol_behaves_as_a_single_node_again() {
    let (a, b, c) = three_nodes().await;
    let mut alice = PClient::member(a.server.local_addr(), "alice-id", "alice").await;
    assert!(support::eventually(Duration::from_secs(5), || b.presence.member_count() == 1).await);
    let mut bob = PClient::member(b.server.local_addr(), "bob-id", "bob").await;
    alice
        .expect(&member_frame("member@new", &m("bob-id", "bob", "")))
        .await;
    // b detaches Presence: its clients see the remote members leave, the others see b's members
    // leave (no replica outlives the link), and b stops relaying.
    b.cluster.detach("presence.esegece.com");
    bob.expect(&member_frame("member@remove", &m("alice-id", "alice", "")))
        .await;
    alice
        .expect(&member_frame("member@remove", &m("bob-id", "bob", "")))
        .await;
    bob.quiet().await;
    assert_eq!(b.presence.member_count(), 1);
    // A new member on b is not announced elsewhere; the cluster itself keeps running.
    let _bella = PClient::member(b.server.local_addr(), "bella-id", "bella").await;
    bob.expect(&member_frame("member@new", &m("bella-id", "bella", "")))
        .await;
    alice.quiet().await;
    assert_eq!(
        a.presence.member_count(),
        1,
        "alice only: neither bob nor bella"
    );
    assert_eq!(b.cluster.connected_peer_count(), 2);
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}
