//! sgc across in-process nodes linked by the mesh: publishes, broadcasts and retained queues reach
//! every node's clients exactly once, in order, and stop at a node that left the cluster.

#[path = "support/proxy.rs"]
mod proxy;
mod support;

use std::sync::Arc;
use std::time::Duration;

use support::sgc::*;
use support::{WsClient, eventually};
use wscluster::internals::cluster::envelope::Kind;
use wscluster::internals::cluster::membership::DownReason;
use wscluster::internals::cluster::{Cluster, ClusterConfig, ClusterEvent, SgcAdapter};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

struct Node {
    server: ServerHandle,
    sgc: SgcProtocol,
    cluster: Cluster,
}

fn mesh_config(peers: Vec<String>) -> ClusterConfig {
    ClusterConfig {
        heartbeat_interval_ms: 100,
        peer_timeout_ms: 1_000,
        ..ClusterConfig::loopback_mesh(peers, "test-secret")
    }
}

async fn node(name: &str, peers: Vec<String>) -> Node {
    node_with(name, mesh_config(peers)).await
}

async fn node_with(name: &str, config: ClusterConfig) -> Node {
    node_attached(name, config, true).await
}

/// A node whose cluster is started with its sgc protocol attached, or with nothing attached
/// (`attach_sgc` false: its sgc clients are on their own until the test attaches it).
async fn node_attached(name: &str, config: ClusterConfig, attach_sgc: bool) -> Node {
    support::init_logs();
    let sgc = SgcProtocol::new(SgcConfig::default());
    let server = Server::new(support::test_server_config())
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let cluster = Cluster::new(name, config);
    if attach_sgc {
        cluster.attach(SgcAdapter::new(sgc.clone()));
    }
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    Node {
        server,
        sgc,
        cluster,
    }
}

fn seed(n: &Node) -> String {
    n.cluster
        .mesh()
        .map(|m| m.local_addr().to_string())
        .unwrap_or_default()
}

async fn linked(nodes: &[&Node]) {
    let want = nodes.len() - 1;
    assert!(
        eventually(Duration::from_secs(5), || nodes
            .iter()
            .all(|n| n.cluster.connected_peer_count() == want))
        .await,
        "full mesh"
    );
}

async fn three_nodes() -> (Node, Node, Node) {
    let a = node("a", vec![]).await;
    let b = node("b", vec![seed(&a)]).await;
    let c = node("c", vec![seed(&a)]).await;
    linked(&[&a, &b, &c]).await;
    (a, b, c)
}

async fn subscriber(n: &Node, channel: &str) -> WsClient {
    let (mut c, _) = WsClient::sgc(n.server.local_addr()).await;
    c.subscribe(channel).await;
    c
}

#[tokio::test]
async fn publishes_reach_every_node_once_in_order_and_never_non_subscribers() {
    let (a, b, c) = three_nodes().await;
    let mut subs = [
        subscriber(&a, "orders").await,
        subscriber(&b, "orders").await,
        subscriber(&c, "orders").await,
    ];
    let mut other = subscriber(&c, "other").await;
    let (mut publisher, _) = WsClient::sgc(a.server.local_addr()).await;
    for i in 0..100 {
        publisher
            .send(&delphi::publish(
                &format!("\"m{i}\""),
                "orders",
                "queueLevel0",
            ))
            .await;
    }
    publisher
        .send(&delphi::publish(r#"{"id":42}"#, "orders", "queueLevel0"))
        .await;
    for s in subs.iter_mut() {
        for i in 0..100 {
            s.expect(&s5("orders", &format!("\"m{i}\""))).await;
        }
        s.expect(&s5("orders", r#"{"id":42}"#)).await;
    }
    // Nothing more for anyone (no duplicates), and nothing for the other channel's subscriber;
    // the barrier on other proves it after b's publish below reached c.
    let (mut pb, _) = WsClient::sgc(b.server.local_addr()).await;
    pb.send(&delphi::publish("\"from-b\"", "other", "queueLevel0"))
        .await;
    other.expect(&s5("other", "\"from-b\"")).await;
    other.barrier().await;
    for s in subs.iter_mut() {
        s.barrier().await;
    }
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn broadcasts_reach_all_connections_or_a_channel_on_every_node() {
    let (a, b, c) = three_nodes().await;
    let (mut plain_b, _) = WsClient::sgc(b.server.local_addr()).await;
    let mut sub_c = subscriber(&c, "news").await;
    let (mut sender, _) = WsClient::sgc(a.server.local_addr()).await;
    sender.send(&delphi::broadcast("\"everyone\"", "")).await;
    let frame = s6("", "\"everyone\"", Some("qosLevel0"), None);
    sender.expect(&frame).await;
    plain_b.expect(&frame).await;
    sub_c.expect(&frame).await;
    sender
        .send(&delphi::broadcast("\"news only\"", "news"))
        .await;
    sub_c
        .expect(&s6("news", "\"news only\"", Some("qosLevel0"), None))
        .await;
    sub_c.barrier().await;
    plain_b.barrier().await;
    // Server-side broadcast on c reaches a's client too.
    c.sgc.broadcast("from the server", "", &Default::default());
    sender
        .expect(&s6("", "\"from the server\"", None, None))
        .await;
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn retained_messages_are_replayed_on_any_node_and_to_a_late_joining_node() {
    let (a, b, c) = three_nodes().await;
    let (mut publisher, _) = WsClient::sgc(a.server.local_addr()).await;
    publisher
        .send(&delphi::publish("\"last\"", "prices", "queueLevel1"))
        .await;
    publisher
        .send(&delphi::publish("\"one\"", "log", "queueLevel2"))
        .await;
    publisher
        .send(&delphi::publish("\"two\"", "log", "queueLevel2"))
        .await;
    publisher.barrier().await;
    assert!(
        eventually(Duration::from_secs(5), || c.sgc.retained_count("log") == 2
            && b.sgc.retained_count("prices") == 1)
        .await
    );
    let mut late = subscriber(&c, "prices").await;
    late.expect(&s5("prices", "\"last\"")).await;
    late.barrier().await;
    // A node that joins afterwards receives the retained queues in its snapshot.
    let d = node("d", vec![seed(&b)]).await;
    linked(&[&a, &b, &c, &d]).await;
    assert!(eventually(Duration::from_secs(5), || d.sgc.retained_count("log") == 2).await);
    let (mut on_d, _) = WsClient::sgc(d.server.local_addr()).await;
    on_d.subscribe("log").await;
    on_d.expect(&s5("log", "\"one\"")).await;
    on_d.expect(&s5("log", "\"two\"")).await;
    on_d.barrier().await;
    for n in [&a, &b, &c, &d] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn a_stopped_cluster_leaves_a_working_single_node() {
    let (a, b, c) = three_nodes().await;
    let mut on_b = subscriber(&b, "t").await;
    b.cluster.stop().await;
    assert!(!b.cluster.ready());
    assert_eq!(b.cluster.connected_peer_count(), 0);
    assert!(
        eventually(Duration::from_secs(5), || a.cluster.connected_peer_count()
            == 1)
        .await
    );
    let (mut pa, _) = WsClient::sgc(a.server.local_addr()).await;
    pa.send(&delphi::publish("\"lost to b\"", "t", "queueLevel0"))
        .await;
    pa.barrier().await;
    // b still serves its own clients.
    let (mut pb, _) = WsClient::sgc(b.server.local_addr()).await;
    pb.send(&delphi::publish("\"local\"", "t", "queueLevel0"))
        .await;
    on_b.expect(&s5("t", "\"local\"")).await;
    on_b.barrier().await;
    // And it rejoins with start (a new incarnation).
    b.cluster.start().await.unwrap_or_else(|e| panic!("{e}"));
    let _ = &c;
    for n in [&a, &c] {
        n.cluster.stop().await;
    }
    b.cluster.stop().await;
}

#[tokio::test]
async fn a_publish_right_after_a_remote_subscription_confirmation_is_never_lost() {
    let (a, b, c) = three_nodes().await;
    let (mut publisher, _) = WsClient::sgc(a.server.local_addr()).await;
    // Fresh channels, so each subscription is its node's first and must pass the interest gate.
    for i in 0..30 {
        let ch = format!("fresh-{i}");
        let mut sub = subscriber(if i % 2 == 0 { &b } else { &c }, &ch).await;
        publisher
            .send(&delphi::publish("\"right after\"", &ch, "queueLevel0"))
            .await;
        sub.expect(&s5(&ch, "\"right after\"")).await;
    }
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn channel_traffic_crosses_only_to_nodes_with_subscribers() {
    let (a, b, c) = three_nodes().await;
    let mut on_b = subscriber(&b, "only-b").await;
    let (mut publisher, _) = WsClient::sgc(a.server.local_addr()).await;
    let bytes_in = |n: &Node| {
        n.cluster
            .mesh()
            .map(|m| {
                m.stats()
                    .bytes_in
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .unwrap_or_default()
    };
    let (b0, c0) = (bytes_in(&b), bytes_in(&c));
    let big = format!("\"{}\"", "x".repeat(1000));
    for _ in 0..100 {
        publisher
            .send(&delphi::publish(&big, "only-b", "queueLevel0"))
            .await;
    }
    for _ in 0..100 {
        on_b.expect(&s5("only-b", &big)).await;
    }
    let (b1, c1) = (bytes_in(&b), bytes_in(&c));
    assert!(b1 - b0 >= 100 * 1000, "b received the traffic: {}", b1 - b0);
    assert!(
        c1 - c0 < 10 * 1000,
        "c, without subscribers, did not: {}",
        c1 - c0
    );
    // Once b's subscriber leaves, the traffic stops crossing to b as well. Markers on other
    // channels order things: b's interest removal reaches a before b's marker does, and a's big
    // publishes would reach b before a's marker does.
    let mut marker_on_a = subscriber(&a, "marker-a").await;
    let mut marker_on_b = subscriber(&b, "marker-b").await;
    on_b.send(&delphi::unsubscribe("only-b")).await;
    on_b.expect(&s4("only-b", Some("qosLevel0"), None)).await;
    on_b.send(&delphi::publish("\"removed\"", "marker-a", "queueLevel0"))
        .await;
    marker_on_a.expect(&s5("marker-a", "\"removed\"")).await;
    let b2 = bytes_in(&b);
    for _ in 0..100 {
        publisher
            .send(&delphi::publish(&big, "only-b", "queueLevel0"))
            .await;
    }
    publisher
        .send(&delphi::publish("\"done\"", "marker-b", "queueLevel0"))
        .await;
    marker_on_b.expect(&s5("marker-b", "\"done\"")).await;
    assert!(
        bytes_in(&b) - b2 < 10 * 1000,
        "b no longer receives the channel: {}",
        bytes_in(&b) - b2
    );
    on_b.barrier().await;
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}

#[tokio::test]
async fn a_slow_interest_announcement_delays_the_confirmation_not_the_message() {
    // node1 reaches node2 only through a proxy that delays node1 -> node2 traffic, so node1's
    // interest announcement arrives late; node2's publisher must still reach node1's subscriber.
    let to_node2 = proxy::Proxy::start_deferred().await;
    let mut c2 = mesh_config(vec![]);
    c2.mesh.advertise = to_node2.addr().to_string();
    let n2 = node_with("node2", c2).await;
    to_node2.set_target(seed(&n2).parse().unwrap_or_else(|e| panic!("{e}")));
    let mut c1 = mesh_config(vec![to_node2.addr().to_string()]);
    // Nothing listens there: node2 cannot dial node1 around the proxy.
    c1.mesh.advertise = "127.0.0.1:1".into();
    let n1 = node_with("node1", c1).await;
    linked(&[&n1, &n2]).await;
    to_node2.set_delay(Duration::from_millis(150));
    let (mut publisher, _) = WsClient::sgc(n2.server.local_addr()).await;
    for i in 0..3 {
        let ch = format!("slow-{i}");
        let mut sub = subscriber(&n1, &ch).await;
        publisher
            .send(&delphi::publish("\"made it\"", &ch, "queueLevel0"))
            .await;
        sub.expect(&s5(&ch, "\"made it\"")).await;
    }
    to_node2.set_delay(Duration::ZERO);
    n1.cluster.stop().await;
    n2.cluster.stop().await;
}

/// Publishes `"<word> i"` to channel `t` from `publisher` until a frame reaches `receiver` (an
/// interest announcement may still be on its way), and checks that the first frame `receiver`
/// gets is one of those publishes, so nothing published before reached it. `local`, when given,
/// is a subscriber on the publisher's node that must get each publish in turn.
async fn first_crossing(
    publisher: &mut WsClient,
    receiver: &mut WsClient,
    word: &str,
    mut local: Option<&mut WsClient>,
) {
    for i in 0..100 {
        let message = format!("\"{word} {i}\"");
        publisher
            .send(&delphi::publish(&message, "t", "queueLevel0"))
            .await;
        if let Some(l) = local.as_deref_mut() {
            l.expect(&s5("t", &message)).await;
        }
        if let Ok(f) = tokio::time::timeout(Duration::from_millis(50), receiver.next_frame()).await
        {
            match f {
                Some(support::Frame::Text(t)) => {
                    assert!(
                        t.contains(&format!("\"{word} ")),
                        "the first frame across: {t}"
                    );
                    return;
                }
                other => panic!("expected a publish, got {other:?}"),
            }
        }
    }
    panic!("no \"{word} …\" publish reached the other node");
}

/// Waits for the first event that `want` accepts, skipping the others (failing after 5 s).
async fn event_where(
    events: &mut tokio::sync::broadcast::Receiver<ClusterEvent>,
    what: &str,
    want: impl Fn(&ClusterEvent) -> bool,
) -> ClusterEvent {
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.recv().await {
                Ok(e) if want(&e) => return Some(e),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .await;
    match found {
        Ok(Some(e)) => e,
        _ => panic!("no {what} event within 5 s"),
    }
}

#[tokio::test]
async fn sgc_attached_while_running_joins_the_cluster_and_events_report_peers_and_messages() {
    let a = node("a", vec![]).await;
    let mut events = a.cluster.events();
    // b runs its cluster with no protocol attached: its sgc clients are on their own.
    let b = node_attached("b", mesh_config(vec![seed(&a)]), false).await;
    let connected = event_where(&mut events, "peer connected", |e| {
        matches!(e, ClusterEvent::PeerConnected { .. })
    })
    .await;
    assert!(
        matches!(&connected, ClusterEvent::PeerConnected { node_id, .. } if &**node_id == "b"),
        "{connected:?}"
    );

    let (mut on_b, _) = WsClient::sgc(b.server.local_addr()).await;
    on_b.subscribe("t").await;
    let mut on_a = subscriber(&a, "v").await;
    let (mut pa, _) = WsClient::sgc(a.server.local_addr()).await;
    pa.send(&delphi::publish("\"before attach\"", "t", "queueLevel0"))
        .await;
    pa.barrier().await;
    let (mut pb, _) = WsClient::sgc(b.server.local_addr()).await;
    pb.send(&delphi::publish("\"b unattached\"", "v", "queueLevel0"))
        .await;
    pb.barrier().await;

    // Attached while running: b's existing subscription now draws a's publishes, and b's
    // publishes reach a's subscribers. Publishes are repeated until the first one crosses (the
    // interest announcement is on its way); the very first frame each side sees must be one of
    // them, never what was published before the attach.
    b.cluster.attach(SgcAdapter::new(b.sgc.clone()));
    first_crossing(&mut pa, &mut on_b, "after", None).await;
    pb.send(&delphi::publish("\"b attached\"", "v", "queueLevel0"))
        .await;
    on_a.expect(&s5("v", "\"b attached\"")).await;
    let message = event_where(&mut events, "cluster message", |e| {
        matches!(
            e,
            ClusterEvent::Message {
                kind: Kind::SgcPublish,
                ..
            }
        )
    })
    .await;
    assert!(
        matches!(&message, ClusterEvent::Message { origin, size, .. } if &**origin == "b" && *size > 0),
        "{message:?}"
    );

    b.cluster.stop().await;
    let gone = event_where(&mut events, "peer disconnected", |e| {
        matches!(e, ClusterEvent::PeerDisconnected { .. })
    })
    .await;
    assert_eq!(
        gone,
        ClusterEvent::PeerDisconnected {
            node_id: Arc::from("b"),
            reason: DownReason::Bye
        }
    );
    a.cluster.stop().await;
}

#[tokio::test]
async fn sgc_detached_while_running_relays_nothing_until_attached_again() {
    let (a, b, c) = three_nodes().await;
    let mut on_b = subscriber(&b, "t").await;
    let mut on_a = subscriber(&a, "t").await;
    let (mut pa, _) = WsClient::sgc(a.server.local_addr()).await;
    pa.send(&delphi::publish("\"linked\"", "t", "queueLevel0"))
        .await;
    on_b.expect(&s5("t", "\"linked\"")).await;
    on_a.expect(&s5("t", "\"linked\"")).await;

    b.cluster.detach("esegece.com");
    // b's clients are on their own: a's publish does not reach them, b's does not leave b.
    pa.send(&delphi::publish("\"not for b\"", "t", "queueLevel0"))
        .await;
    on_a.expect(&s5("t", "\"not for b\"")).await;
    let (mut pb, _) = WsClient::sgc(b.server.local_addr()).await;
    pb.send(&delphi::publish("\"b alone\"", "t", "queueLevel0"))
        .await;
    on_b.expect(&s5("t", "\"b alone\"")).await;
    assert_eq!(
        b.cluster.connected_peer_count(),
        2,
        "the backplane stays up"
    );

    // Attached again: what b's subscriber sees next is a publish made after that, never the
    // one made while it was detached; and a's subscriber never saw b's local publish.
    b.cluster.attach(SgcAdapter::new(b.sgc.clone()));
    first_crossing(&mut pa, &mut on_b, "again", Some(&mut on_a)).await;
    for n in [&a, &b, &c] {
        n.cluster.stop().await;
    }
}
