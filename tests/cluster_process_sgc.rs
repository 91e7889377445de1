//! sgc across real `wscluster` processes linked by the mesh: what each client receives, frame by
//! frame, including what must not arrive. Publishes reach every node's subscribers exactly once
//! and in per-origin order, broadcasts reach every sgc connection everywhere (and no Presence
//! client), and retained queues are replayed on any node and to a node started later. (Link cuts:
//! `cluster_process_partition.rs`.)

mod presence_support;
mod support;

use std::net::SocketAddr;

use presence_support::PClient;
use support::WsClient;
use support::process::*;
use support::sgc::*;

async fn subscriber(addr: SocketAddr, channel: &str) -> WsClient {
    let (mut c, _) = WsClient::sgc(addr).await;
    c.subscribe(channel).await;
    c
}

/// The messages of origin `tag` among `frames`, in arrival order.
fn from_origin(frames: &[String], tag: &str) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.contains(&format!("\"{tag}-")))
        .cloned()
        .collect()
}

async fn publishes_reach_every_process_once_in_order_and_never_non_subscribers(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut subs = [
        subscriber(a.ws, "orders").await,
        subscriber(b.ws, "orders").await,
        subscriber(c.ws, "orders").await,
    ];
    let (mut plain_b, _) = WsClient::sgc(b.ws).await;
    let mut other_c = subscriber(c.ws, "other").await;
    let mut member_b = PClient::member(b.ws, "watcher", "watcher").await;
    let (mut pub_a, _) = WsClient::sgc(a.ws).await;
    let (mut pub_c, _) = WsClient::sgc(c.ws).await;

    // Two origins publish at the same time; a raw JSON object with escapes and non-ASCII text
    // must pass through the mesh byte for byte.
    const N: usize = 200;
    let object = r#"{"id":42,"text":"caf\u00e9 \"q\" é","list":[1,2.5,null]}"#;
    for i in 0..N {
        pub_a
            .send(&delphi::publish(
                &format!("\"a-{i}\""),
                "orders",
                "queueLevel0",
            ))
            .await;
        pub_c
            .send(&js::publish(&format!("c-{i}"), "orders", &format!("id{i}")))
            .await;
    }
    pub_a
        .send(&delphi::publish(object, "orders", "queueLevel0"))
        .await;
    let expected_a: Vec<String> = (0..N)
        .map(|i| s5("orders", &format!("\"a-{i}\"")))
        .chain([s5("orders", object)])
        .collect();
    let expected_c: Vec<String> = (0..N)
        .map(|i| s5("orders", &format!("\"c-{i}\"")))
        .collect();
    for (s, node) in subs.iter_mut().zip(["a", "b", "c"]) {
        let mut got = Vec::with_capacity(2 * N + 1);
        for _ in 0..2 * N + 1 {
            got.push(s.recv().await);
        }
        let (mut from_a, from_c) = (from_origin(&got, "a"), from_origin(&got, "c"));
        if let Some(last) = got.iter().rfind(|f| f.contains(r#""id":42"#)) {
            from_a.push(last.clone());
        }
        assert_eq!(from_a, expected_a, "subscriber on {node}: a's messages");
        assert_eq!(from_c, expected_c, "subscriber on {node}: c's messages");
        assert_eq!(
            from_a.len() + from_c.len(),
            got.len(),
            "subscriber on {node}: foreign frames: {got:?}"
        );
        // Exactly once: nothing after the last one.
        s.barrier().await;
    }
    // Nobody else received anything: each of them was on a node that had already delivered
    // everything to its subscribers, so a stray frame would be queued before the barrier reply.
    plain_b.barrier().await;
    other_c.barrier().await;
    pub_a.barrier().await;
    // The JS client's publishes carry ids: each is acknowledged (S2), and nothing else comes.
    for i in 0..N {
        pub_c.expect(&s2(&format!("id{i}"))).await;
    }
    pub_c.barrier().await;
    member_b.quiet().await;
}

async fn broadcasts_reach_every_sgc_connection_on_every_process(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let mut sync = Syncer::new(&[a, b, c]).await;
    let mut plain: Vec<WsClient> = Vec::new();
    for n in [a, b, c] {
        plain.push(WsClient::sgc(n.ws).await.0);
    }
    let mut news_c = subscriber(c.ws, "news").await;
    let mut member_b = PClient::member(b.ws, "watcher", "watcher").await;
    let (mut sender, _) = WsClient::sgc(a.ws).await;

    sender.send(&delphi::broadcast("\"everyone\"", "")).await;
    let everyone = s6("", "\"everyone\"", Some("qosLevel0"), None);
    sender.expect(&everyone).await;
    for p in plain.iter_mut() {
        p.expect(&everyone).await;
    }
    news_c.expect(&everyone).await;
    for n in ["a", "b", "c"] {
        sync.client(n).expect(&everyone).await;
    }
    // A broadcast to a channel reaches that channel's subscribers only.
    sender.send(&js::broadcast("news only", "news")).await;
    news_c
        .expect(&s6("news", "\"news only\"", None, None))
        .await;
    news_c.barrier().await;
    // The others got nothing more: flushes from a prove the broadcast was applied everywhere.
    sync.flush_all().await;
    for p in plain.iter_mut() {
        p.barrier().await;
    }
    sender.barrier().await;
    // Presence clients are not sgc connections.
    member_b.quiet().await;
}

async fn retained_queues_replay_on_any_process_and_to_a_process_started_later(bp: Backplane) {
    let mut nodes = start_cluster_on(&bp, &["a", "b", "c"], |a| a).await;
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let (mut publisher, _) = WsClient::sgc(a.ws).await;
    for (m, ch, q) in [
        ("\"price-1\"", "prices", "queueLevel1"),
        ("\"price-2\"", "prices", "queueLevel1"),
        ("\"one\"", "log", "queueLevel2"),
        (r#"{"two":2}"#, "log", "queueLevel2"),
    ] {
        publisher.send(&delphi::publish(m, ch, q)).await;
    }
    // Processed on a (the barrier answers after them), then relayed ahead of the flush.
    publisher.barrier().await;
    sync.flush_from("a").await;

    let mut late_c = subscriber(c.ws, "prices").await;
    late_c.expect(&s5("prices", "\"price-2\"")).await;
    late_c.barrier().await;
    let mut late_b = subscriber(b.ws, "log").await;
    late_b.expect(&s5("log", "\"one\"")).await;
    late_b.expect(&s5("log", r#"{"two":2}"#)).await;
    late_b.barrier().await;

    // A fourth process, started afterwards and given only b, gets the retained queues in the
    // snapshots its peers send when it links (each of them sends one: no duplicates allowed).
    let d = NodeProcess::start(bp.args("d", Some(b))).await;
    nodes.push(d);
    wait_linked(&nodes.iter().collect::<Vec<_>>()).await;
    let d = &nodes[3];
    sync.add(d).await;
    sync.flush_all().await;
    let mut on_d = subscriber(d.ws, "log").await;
    on_d.expect(&s5("log", "\"one\"")).await;
    on_d.expect(&s5("log", r#"{"two":2}"#)).await;
    on_d.barrier().await;
    let mut prices_d = subscriber(d.ws, "prices").await;
    prices_d.expect(&s5("prices", "\"price-2\"")).await;
    prices_d.barrier().await;
    // And d's own retained publish reaches the others.
    let (mut pub_d, _) = WsClient::sgc(d.ws).await;
    pub_d
        .send(&delphi::publish("\"three\"", "log", "queueLevel2"))
        .await;
    late_b.expect(&s5("log", "\"three\"")).await;
    late_b.barrier().await;
}

on_every_backplane!(
    publishes_reach_every_process_once_in_order_and_never_non_subscribers,
    broadcasts_reach_every_sgc_connection_on_every_process,
    retained_queues_replay_on_any_process_and_to_a_process_started_later,
);
