//! Byte caps on what an sgc or Presence client makes a node hold, frame by frame over real
//! sockets: transactions (per transaction and per connection, and publishes counted against the
//! rate when they arrive), retained queues (per channel and node-wide, oldest first), the retained
//! replay to a new subscriber (the newest that fit half its outbox), channel names and Presence
//! member fields. Each cap's answer is checked, and what must not arrive is proved absent by a
//! round trip.

mod presence_support;
mod support;

use std::sync::Arc;

use support::sgc::{delphi, s5, s6};
use support::{DEFAULT_WAIT, WsClient, init_logs, test_server_config};
use wscluster::config::{LimitsConfig, ServerConfig};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::internals::protocol::sgc::retained::ENTRY_OVERHEAD;
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

async fn node(
    server: ServerConfig,
    limits: LimitsConfig,
    config: SgcConfig,
) -> (ServerHandle, SgcProtocol) {
    init_logs();
    let sgc = SgcProtocol::new(config);
    let server = Server::new(server)
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(PresenceProtocol::new(PresenceConfig::default())))
        .limits(limits)
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    (server, sgc)
}

async fn sgc_node(config: SgcConfig) -> (ServerHandle, SgcProtocol) {
    node(test_server_config(), LimitsConfig::default(), config).await
}

/// A message value of `n` characters, as raw JSON text.
fn text(tag: &str, n: usize) -> String {
    format!("\"{tag}{}\"", "x".repeat(n.saturating_sub(tag.len())))
}

#[tokio::test]
async fn a_transaction_past_its_byte_cap_is_discarded_and_closes_1008() {
    let (server, sgc) = sgc_node(SgcConfig {
        transaction_max_bytes: 2000,
        ..SgcConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let (mut sub, _) = WsClient::sgc(addr).await;
    sub.subscribe("tx").await;
    let (mut a, _) = WsClient::sgc(addr).await;
    a.send(&delphi::tx("sgc@transaction", "tx")).await;
    // Each publish frame is about 710 bytes: two fit, the third passes 2000.
    for n in 0..2 {
        a.send(&delphi::publish(
            &text(&n.to_string(), 600),
            "tx",
            "queueLevel1",
        ))
        .await;
    }
    a.barrier().await;
    a.send(&delphi::publish(&text("2", 600), "tx", "queueLevel1"))
        .await;
    let (code, reason) = a.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(
        (code, reason.as_str()),
        (Some(1008), "transaction too large")
    );
    // Nothing of the discarded transaction was delivered nor retained.
    sub.barrier().await;
    assert_eq!(sgc.retained_count("tx"), 0);
    // The channel works for everyone else.
    let (mut b, _) = WsClient::sgc(addr).await;
    b.send(&delphi::publish("\"after\"", "tx", "queueLevel0"))
        .await;
    sub.expect(&s5("tx", "\"after\"")).await;
}

#[tokio::test]
async fn the_open_transactions_of_a_connection_share_a_byte_cap() {
    let (server, _sgc) = sgc_node(SgcConfig {
        transaction_max_bytes: 2000,
        transaction_max_bytes_per_connection: 2500,
        ..SgcConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let (mut sub, _) = WsClient::sgc(addr).await;
    sub.subscribe("t1").await;
    sub.subscribe("t2").await;
    let (mut a, _) = WsClient::sgc(addr).await;
    a.send(&delphi::tx("sgc@transaction", "t1")).await;
    a.send(&delphi::tx("sgc@transaction", "t2")).await;
    for ch in ["t1", "t1", "t2"] {
        a.send(&delphi::publish(&text(ch, 600), ch, "queueLevel0"))
            .await;
    }
    a.barrier().await;
    // t2 alone holds about 1420 bytes, under its own cap, but the connection passes 2500.
    a.send(&delphi::publish(&text("t2", 600), "t2", "queueLevel0"))
        .await;
    let (code, reason) = a.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(
        (code, reason.as_str()),
        (Some(1008), "transaction too large")
    );
    sub.barrier().await;
}

#[tokio::test]
async fn publishes_inside_a_transaction_count_against_the_rate_when_they_arrive() {
    let (server, _sgc) = node(
        test_server_config(),
        LimitsConfig {
            publishes_per_second_per_connection: 1,
            publish_burst: 3,
            ..LimitsConfig::default()
        },
        SgcConfig::default(),
    )
    .await;
    let addr = server.local_addr();
    let (mut sub, _) = WsClient::sgc(addr).await;
    sub.subscribe("tx").await;
    let (mut a, _) = WsClient::sgc(addr).await;
    a.send(&delphi::tx("sgc@transaction", "tx")).await;
    for n in 0..10 {
        a.send(&delphi::publish(&format!("\"{n}\""), "tx", "queueLevel0"))
            .await;
    }
    // Closed before any commit: the rate counted the queued publishes.
    let (code, reason) = a.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(code, Some(1008));
    assert_eq!(
        reason,
        wscluster::internals::transport::PUBLISH_RATE_EXCEEDED
    );
    sub.barrier().await;
}

#[tokio::test]
async fn broadcasts_count_against_the_publish_rate() {
    let (server, _sgc) = node(
        test_server_config(),
        LimitsConfig {
            publishes_per_second_per_connection: 1,
            publish_burst: 2,
            ..LimitsConfig::default()
        },
        SgcConfig::default(),
    )
    .await;
    let addr = server.local_addr();
    let (mut sub, _) = WsClient::sgc(addr).await;
    sub.subscribe("news").await;
    let (mut a, _) = WsClient::sgc(addr).await;
    for n in 0..10 {
        a.send(&delphi::broadcast(&format!("\"{n}\""), "news"))
            .await;
    }
    let (code, reason) = a.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(code, Some(1008));
    assert_eq!(
        reason,
        wscluster::internals::transport::PUBLISH_RATE_EXCEEDED
    );
    for n in 0..2 {
        sub.expect(&s6("news", &format!("\"{n}\""), Some("qosLevel0"), None))
            .await;
    }
    sub.barrier().await;
}

#[tokio::test]
async fn a_channel_keeps_its_newest_retained_bytes_and_a_too_big_message_is_only_delivered() {
    // Three S5 frames of a 200-character message fit in the channel's cap, four do not.
    let one = s5("q", &text("0", 200)).len() + ENTRY_OVERHEAD;
    let (server, sgc) = sgc_node(SgcConfig {
        retained_max_bytes_per_channel: 3 * one + 10,
        ..SgcConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let (mut live, _) = WsClient::sgc(addr).await;
    live.subscribe("q").await;
    let (mut publisher, _) = WsClient::sgc(addr).await;
    for n in 0..5 {
        publisher
            .send(&delphi::publish(
                &text(&n.to_string(), 200),
                "q",
                "queueLevel2",
            ))
            .await;
        live.expect(&s5("q", &text(&n.to_string(), 200))).await;
    }
    assert_eq!(sgc.retained_count("q"), 3);
    // Bigger than the channel's cap: delivered, not retained, the older ones kept.
    publisher
        .send(&delphi::publish(&text("big", 1500), "q", "queueLevel2"))
        .await;
    live.expect(&s5("q", &text("big", 1500))).await;
    let (mut late, _) = WsClient::sgc(addr).await;
    late.subscribe("q").await;
    for n in 2..5 {
        late.expect(&s5("q", &text(&n.to_string(), 200))).await;
    }
    late.barrier().await;
}

#[tokio::test]
async fn the_node_evicts_its_oldest_retained_message_whatever_the_channel() {
    let one = s5("a", &text("a", 200)).len() + ENTRY_OVERHEAD;
    let (server, sgc) = sgc_node(SgcConfig {
        retained_max_bytes: 4 * one,
        ..SgcConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let (mut publisher, _) = WsClient::sgc(addr).await;
    for ch in ["a", "a", "a", "b", "b", "b"] {
        publisher
            .send(&delphi::publish(&text(ch, 200), ch, "queueLevel2"))
            .await;
    }
    publisher.barrier().await;
    assert_eq!((sgc.retained_count("a"), sgc.retained_count("b")), (1, 3));
    let (mut late, _) = WsClient::sgc(addr).await;
    late.subscribe("a").await;
    late.expect(&s5("a", &text("a", 200))).await;
    late.barrier().await;
}

#[tokio::test]
async fn a_subscriber_gets_the_newest_retained_that_fit_half_its_outbox_and_stays_connected() {
    let server_config = ServerConfig {
        max_outbox_bytes: 8192,
        max_message_size: 4096,
        ..test_server_config()
    };
    let (server, _sgc) = node(server_config, LimitsConfig::default(), SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut publisher, _) = WsClient::sgc(addr).await;
    // Ten S5 frames of 976 bytes (9760, more than the 8192-byte outbox); half the outbox takes
    // the newest four.
    for n in 0..10 {
        publisher
            .send(&delphi::publish(
                &text(&n.to_string(), 900),
                "p",
                "queueLevel2",
            ))
            .await;
    }
    publisher.barrier().await;
    let (mut late, _) = WsClient::sgc(addr).await;
    late.subscribe("p").await;
    for n in 6..10 {
        late.expect(&s5("p", &text(&n.to_string(), 900))).await;
    }
    late.barrier().await;
    publisher
        .send(&delphi::publish("\"next\"", "p", "queueLevel0"))
        .await;
    late.expect(&s5("p", "\"next\"")).await;
}

#[tokio::test]
async fn channel_names_are_capped_at_256_bytes_by_default() {
    let (server, sgc) = sgc_node(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut c, _) = WsClient::sgc(addr).await;
    c.send(&delphi::subscribe(&"n".repeat(257))).await;
    c.barrier().await;
    c.subscribe(&"n".repeat(256)).await;
    // Forty names of 1 MB: each refused, nothing kept.
    for n in 0..40 {
        let name = format!("{n}{}", "y".repeat(1_000_000));
        c.send(&delphi::subscribe(&name)).await;
        c.send(&delphi::publish("\"m\"", &name, "queueLevel1"))
            .await;
    }
    c.barrier().await;
    let names: Vec<String> = sgc.channels().into_iter().map(|ch| ch.name).collect();
    assert_eq!(names, vec!["n".repeat(256)]);
}

#[tokio::test]
async fn presence_refuses_long_member_fields_with_error_2_and_long_channels_with_error_10() {
    use presence_support::{PClient, error_frame, m, member_frame};
    let (server, _sgc) = sgc_node(SgcConfig::default()).await;
    let addr = server.local_addr();
    let denied = "Create New Member request has been denied.";
    let mut c = PClient::connect(addr).await;
    let long_id = "i".repeat(300);
    c.member_new(&long_id, "n", "").await;
    c.expect(&error_frame(2, denied, "", &m(&"i".repeat(256), "", "")))
        .await;
    c.member_new("ok", &"n".repeat(257), "").await;
    c.expect(&error_frame(2, denied, "", &m("ok", "", "")))
        .await;
    c.member_new("ok", "n", &"f".repeat(4097)).await;
    c.expect(&error_frame(2, denied, "", &m("ok", "", "")))
        .await;
    c.quiet().await;
    // At the caps: accepted.
    let (id, info) = ("i".repeat(256), "f".repeat(4096));
    c.member_new(&id, "n", &info).await;
    c.expect(&member_frame("member@new", &m(&id, "n", &info)))
        .await;
    c.join(&"c".repeat(257)).await;
    c.expect(&error_frame(
        10,
        "Create Subscription request has been denied.",
        &"c".repeat(257),
        &m(&id, "n", &info),
    ))
    .await;
    c.quiet().await;
}

#[tokio::test]
async fn pending_rpc_ids_are_capped_in_bytes_with_error_32000() {
    use support::sgc::{s2, s10, sgc_server_with};
    let (server, _sgc) = sgc_server_with(
        SgcConfig {
            rpc_max_pending_bytes: 100,
            ..SgcConfig::default()
        },
        |s| {
            s.on_rpc(|_| {});
        },
    )
    .await;
    let (mut a, _) = WsClient::sgc(server.local_addr()).await;
    let (first, second) = ("a".repeat(60), "b".repeat(60));
    a.send(&delphi::rpc(&first, "m", "0")).await;
    a.expect(&s2(&first)).await;
    a.send(&delphi::rpc(&second, "m", "0")).await;
    a.expect(&s2(&second)).await;
    a.expect(&s10(
        -32000,
        "Too many pending requests.",
        None,
        "qosLevel0",
        &second,
    ))
    .await;
    a.barrier().await;
}

/// An in-process node with `config`, in a mesh cluster seeded by `peers`.
async fn cluster_node(
    name: &str,
    peers: Vec<String>,
    config: SgcConfig,
) -> (
    ServerHandle,
    SgcProtocol,
    wscluster::internals::cluster::Cluster,
) {
    use wscluster::internals::cluster::{Cluster, ClusterConfig, SgcAdapter};
    let (server, sgc) = sgc_node(config).await;
    let cluster = Cluster::new(
        name,
        ClusterConfig {
            heartbeat_interval_ms: 100,
            peer_timeout_ms: 1_000,
            ..ClusterConfig::loopback_mesh(peers, "test-secret")
        },
    );
    cluster.attach(SgcAdapter::new(sgc.clone()));
    cluster
        .start()
        .await
        .unwrap_or_else(|e| panic!("cluster start: {e}"));
    (server, sgc, cluster)
}

#[tokio::test]
async fn retained_messages_from_peers_and_snapshots_obey_the_byte_caps() {
    use std::time::Duration;
    let one = s5("log", &text("0", 200)).len() + ENTRY_OVERHEAD;
    let capped = SgcConfig {
        retained_max_bytes: 3 * one,
        ..SgcConfig::default()
    };
    let (a_server, a, a_cluster) = cluster_node("a", vec![], SgcConfig::default()).await;
    let seed = a_cluster
        .mesh()
        .map(|m| m.local_addr().to_string())
        .unwrap_or_default();
    let (_b_server, b, b_cluster) = cluster_node("b", vec![seed.clone()], capped.clone()).await;
    assert!(
        support::eventually(Duration::from_secs(5), || b_cluster.connected_peer_count()
            == 1)
        .await,
        "b linked to a"
    );
    let (mut publisher, _) = WsClient::sgc(a_server.local_addr()).await;
    for n in 0..5 {
        publisher
            .send(&delphi::publish(
                &text(&n.to_string(), 200),
                "log",
                "queueLevel2",
            ))
            .await;
    }
    publisher.barrier().await;
    assert_eq!(a.retained_count("log"), 5);
    // Relayed publishes: b keeps its newest three.
    assert!(
        support::eventually(Duration::from_secs(5), || b.retained_count("log") == 3).await,
        "b keeps {}",
        b.retained_count("log")
    );
    // A node joining later takes a's snapshot of five under its own caps.
    let (c_server, c, _c_cluster) = cluster_node("c", vec![seed], capped).await;
    assert!(
        support::eventually(Duration::from_secs(5), || c.retained_count("log") == 3).await,
        "c keeps {}",
        c.retained_count("log")
    );
    let (mut late, _) = WsClient::sgc(c_server.local_addr()).await;
    late.subscribe("log").await;
    for n in 2..5 {
        late.expect(&s5("log", &text(&n.to_string(), 200))).await;
    }
    late.barrier().await;
}
