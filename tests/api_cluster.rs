//! The server API across real `wscluster` processes: a batch of 100 reaches another node once
//! and in order, an idempotency key sent to two nodes (one after the other, or both at once) is
//! delivered once to every subscriber, and presence, channel counts and disconnects are
//! cluster-wide. The single-node behaviour is in `tests/api.rs`.

mod api_support;
mod presence_support;
mod support;

use std::time::Duration;

use api_support::*;
use presence_support::PClient;
use support::WsClient;
use support::http_client::HttpClient;
use support::process::*;
use support::sgc::s5;

on_every_backplane!(
    a_batch_of_100_arrives_once_and_in_order_on_another_node,
    an_idempotency_key_sent_to_two_nodes_is_delivered_once,
);

async fn a_batch_of_100_arrives_once_and_in_order_on_another_node(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b"], |n| n.set(&keys_setting())).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let (mut sub, _) = WsClient::sgc(b.ws).await;
    sub.subscribe("feed").await;
    let mut c = HttpClient::connect(a.ws).await;
    let commands: Vec<String> = (0..100)
        .map(|i| {
            format!(r#"{{"method":"publish","params":{{"channel":"feed","message":{{"n":{i}}}}}}}"#)
        })
        .collect();
    let r = call(
        &mut c,
        "POST",
        "/api/batch",
        PUBLISH,
        &format!(r#"{{"commands":[{}]}}"#, commands.join(",")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].as_array().cloned().unwrap_or_default();
    assert_eq!(results.len(), 100);
    assert!(
        results.iter().all(|r| r["result"]["duplicate"] == false),
        "{results:?}"
    );
    for i in 0..100 {
        sub.expect(&s5("feed", &format!(r#"{{"n":{i}}}"#))).await;
    }
    // Nothing more: the next frame is a later publish from the same node.
    publish(&mut c, r#"{"channel":"feed","message":"end"}"#).await;
    sub.expect(&s5("feed", r#""end""#)).await;
}

async fn an_idempotency_key_sent_to_two_nodes_is_delivered_once(bp: Backplane) {
    let nodes = start_cluster_on(&bp, &["a", "b", "c"], |n| n.set(&keys_setting())).await;
    let mut subs = Vec::new();
    for n in &nodes {
        let (mut s, _) = WsClient::sgc(n.ws).await;
        s.subscribe("orders").await;
        subs.push(s);
    }
    // c's subscriber is known to a and b (interest) before anything is published.
    let mut sync = Syncer::new(&nodes.iter().collect::<Vec<_>>()).await;
    sync.flush_all().await;
    let mut ca = HttpClient::connect(nodes[0].ws).await;
    let mut cb = HttpClient::connect(nodes[1].ws).await;

    // One after the other: the second node answers duplicate and delivers nothing.
    let first = publish(
        &mut ca,
        r#"{"channel":"orders","message":"o1","idempotency_key":"order-1"}"#,
    )
    .await;
    assert_eq!(first["duplicate"], false, "{first}");
    for s in &mut subs {
        s.expect(&s5("orders", r#""o1""#)).await;
    }
    let again = publish(
        &mut cb,
        r#"{"channel":"orders","message":"o1","idempotency_key":"order-1"}"#,
    )
    .await;
    assert_eq!(again["duplicate"], true, "{again}");

    // Both at once: each subscriber gets one of the two, once.
    let (ra, rb) = tokio::join!(
        publish(
            &mut ca,
            r#"{"channel":"orders","message":"via-a","idempotency_key":"order-2"}"#
        ),
        publish(
            &mut cb,
            r#"{"channel":"orders","message":"via-b","idempotency_key":"order-2"}"#
        ),
    );
    // Then a marker from each of the two nodes: once both arrived, everything either sent
    // before has been delivered (each node's traffic keeps its order).
    publish(&mut ca, r#"{"channel":"orders","message":"end-a"}"#).await;
    publish(&mut cb, r#"{"channel":"orders","message":"end-b"}"#).await;
    for (i, s) in subs.iter_mut().enumerate() {
        let (mut keyed, mut ends) = (Vec::new(), 0);
        while ends < 2 {
            let f = s.recv().await;
            if f == s5("orders", r#""end-a""#) || f == s5("orders", r#""end-b""#) {
                ends += 1;
            } else {
                keyed.push(f);
            }
        }
        assert_eq!(
            keyed.len(),
            1,
            "subscriber on node {i}: {keyed:?} ({ra}, {rb})"
        );
        assert!(
            keyed[0] == s5("orders", r#""via-a""#) || keyed[0] == s5("orders", r#""via-b""#),
            "{keyed:?}"
        );
    }
    // The first of "order-1" was only delivered once too: every subscriber is quiet now.
    for s in &mut subs {
        s.barrier().await;
    }
}

/// Calls `GET path` with the all-scopes key until `ok` holds for the JSON answer (replication to
/// the other nodes is asynchronous), within 5 s (scaled).
async fn poll(
    c: &mut HttpClient,
    path: &str,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = tokio::time::Instant::now() + support::scaled(Duration::from_secs(5));
    loop {
        let r = call(c, "GET", path, ALL, "").await;
        // A channel not replicated yet is unknown for a while.
        assert!(
            r.status == 200 || r.code() == "unknown_channel",
            "{path}: {}",
            r.body
        );
        let v = r.json();
        if r.status == 200 && ok(&v) {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "{path}: still {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_channels_and_disconnects_are_cluster_wide() {
    let nodes = start_cluster_with(&["a", "b"], |n| n.set(&keys_setting())).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut c = HttpClient::connect(a.ws).await;

    // Presence: a member of node b, seen from node a.
    let mut bob = PClient::member(b.ws, "bob-id", "bob").await;
    bob.join("room").await;
    let v = poll(&mut c, "/api/presence?channel=room", |v| v["total"] == 1).await;
    assert_eq!(v["members"][0]["id"], "bob-id", "{v}");
    assert_eq!(v["members"][0]["name"], "bob", "{v}");
    assert_eq!(v["members"][0]["node"], "b", "{v}");
    let carol = PClient::member(a.ws, "carol-id", "carol").await;
    let v = poll(&mut c, "/api/presence", |v| v["total"] == 2).await;
    let mut ids: Vec<&str> = v["members"]
        .as_array()
        .map(|m| m.iter().filter_map(|m| m["id"].as_str()).collect())
        .unwrap_or_default();
    ids.sort_unstable();
    assert_eq!(ids, ["bob-id", "carol-id"], "{v}");

    // Channels: subscribers on both nodes, counted together.
    let (mut sa, _) = WsClient::sgc(a.ws).await;
    sa.subscribe("news").await;
    let (mut sb, guid_b) = WsClient::sgc(b.ws).await;
    sb.subscribe("news").await;
    let r = call(&mut c, "GET", "/api/channels", CHANNELS, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    let news = v["channels"]
        .as_array()
        .and_then(|l| l.iter().find(|ch| ch["name"] == "news").cloned())
        .unwrap_or_default();
    assert_eq!(news["subscribers"], 2, "{v}");
    assert_eq!(v["missing_nodes"].as_array().map(Vec::len), Some(0), "{v}");

    // Disconnect through node a: a connection of node b, then a Presence member of node b.
    let r = call(
        &mut c,
        "POST",
        "/api/disconnect",
        DISCONNECT,
        &format!(r#"{{"connection":"{guid_b}","code":4002,"reason":"moved"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["node"], "b", "{}", r.body);
    let (code, reason) = sb.expect_close().await;
    assert_eq!((code, reason.as_str()), (Some(4002), "moved"));
    let r = call(
        &mut c,
        "POST",
        "/api/disconnect",
        DISCONNECT,
        r#"{"member":"bob-id","code":4003}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let (code, _) = bob.ws.expect_close().await;
    assert_eq!(code, Some(4003));
    let r = call(
        &mut c,
        "POST",
        "/api/disconnect",
        DISCONNECT,
        r#"{"member":"nobody"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found".into()),
        "{}",
        r.body
    );
    // The others are untouched.
    sa.barrier().await;
    drop(carol);
}
