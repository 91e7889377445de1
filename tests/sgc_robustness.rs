//! Bad and abusive input over real sockets: malformed JSON, wrong versions and types, unknown
//! methods, huge channel lists and a flood of subscribes. The node answers nothing it should not,
//! never crashes, and the connection (and others) keep working.

mod support;

use std::time::{Duration, Instant};

use support::sgc::*;
use support::*;
use wscluster::internals::protocol::sgc::SgcConfig;

#[tokio::test]
async fn malformed_and_ill_typed_frames_get_no_reply_and_change_nothing() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, guid) = client(server.local_addr()).await;
    let bad: &[&str] = &[
        "",
        "not json",
        "{",
        "[]",
        "[1,2]",
        "42",
        "\"string\"",
        "null",
        "{}",
        r#"{"jsonrpc":"1.0","method":"sgc@subscribe","params":{"channel":"v1"},"id":"1"}"#,
        r#"{"jsonrpc":2,"method":"sgc@subscribe","params":{"channel":"v2"},"id":"1"}"#,
        r#"{"method":"sgc@subscribe","params":{"channel":"nov"},"id":"1"}"#,
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":"noMethod"}"#,
        r#"{"jsonrpc":"2.0","method":"","id":""}"#,
        r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"client error"},"id":"e1"}"#,
        r#"{"jsonrpc":"2.0","result":"scalar","id":"r1"}"#,
        r#"{"jsonrpc":"2.0","result":{"nomethod":true},"id":"r2"}"#,
        r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"x"}"#,
        "{\"jsonrpc\":\"2.0\",\"method\":\"sgc@subscribe\",\"params\":{\"channel\":\"\u{0}\u{1}\"}}\u{0}",
        "\u{feff}{\"jsonrpc\":\"2.0\"}",
    ];
    for frame in bad {
        a.send(frame).await;
    }
    a.barrier().await;
    assert!(sgc.subscriptions(&guid).is_empty());
    // Odd but well-formed types are tolerated, and frames with ids are acknowledged. A channel
    // that is not a string reads as its JSON text; a missing one is channel "".
    let sub_empty = s3("", None, Some("o1"));
    let odd: Vec<(&str, Vec<String>)> = vec![
        (
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":[1,2],"id":"o1"}"#,
            vec![s2("o1"), sub_empty],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":true,"id":"o2"}"#,
            vec![s2("o2"), s3("", None, Some("o2"))],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"channel":{"a":1},"message":{"deep":[{"x":null}]}},"id":"o3"}"#,
            vec![s2("o3")],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@unsubscribe","params":{"channel":null},"id":"o4"}"#,
            vec![s2("o4"), s4("", None, Some("o4"))],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@unknown","params":{},"id":"o5"}"#,
            vec![s2("o5")],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@commit","params":{"channel":"none"},"id":"o6"}"#,
            vec![s2("o6")],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@rollback","id":"o7"}"#,
            vec![s2("o7")],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@pubrec","id":"o8"}"#,
            vec![s2("o8")],
        ),
        (r#"{"jsonrpc":"2.0","method":"sgc@acknowledgment"}"#, vec![]),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":",,,"},"id":"o9"}"#,
            vec![s2("o9")],
        ),
        (
            r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":{"a":1}},"id":"o10"}"#,
            vec![s2("o10"), s3(r#"{\"a\":1}"#, None, Some("o10"))],
        ),
    ];
    for (frame, want) in odd {
        a.send(frame).await;
        for w in want {
            a.expect(&w).await;
        }
    }
    a.barrier().await;
    assert_eq!(sgc.subscriptions(&guid), [r#"{"a":1}"#]);
    // Still a working connection.
    a.subscribe("fine").await;
    a.send(&delphi::publish(r#""ok""#, "fine", "queueLevel0"))
        .await;
    a.expect(&s5("fine", r#""ok""#)).await;
}

#[tokio::test]
async fn sgc_at_b64_garbage_is_taken_literally() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@subscribe","params":{"channel":"sgc@b64:!!!"}}"#)
        .await;
    a.expect(&s3("sgc@b64:!!!", None, None)).await;
}

#[tokio::test]
async fn huge_channel_lists_are_capped() {
    let (server, sgc) = sgc_server(SgcConfig {
        max_channels_per_request: 10,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, guid) = client(server.local_addr()).await;
    let list: Vec<String> = (0..50_000).map(|i| format!("c{i}")).collect();
    a.send(&delphi::subscribe(&list.join(","))).await;
    for ch in list.iter().take(10) {
        a.expect(&s3(ch, Some("qosLevel0"), None)).await;
    }
    a.barrier().await;
    assert_eq!(sgc.subscriptions(&guid).len(), 10);
    a.send(&delphi::publish(r#""m""#, &list.join(","), "queueLevel0"))
        .await;
    for ch in list.iter().take(10) {
        a.expect(&s5(ch, r#""m""#)).await;
    }
    a.barrier().await;
}

#[tokio::test]
async fn a_flood_of_10000_subscribes_does_not_stall_the_node() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut flood, guid) = client(addr).await;
    let (mut other, _) = client(addr).await;
    other.subscribe("quiet").await;
    let n = 10_000;
    let sender = tokio::spawn(async move {
        for i in 0..n {
            flood
                .send(&js::subscribe(&format!("f{i}"), &format!("i{i}")))
                .await;
        }
        flood
    });
    // Meanwhile another client is served promptly.
    let t0 = Instant::now();
    other
        .send(&delphi::publish(r#""hi""#, "quiet", "queueLevel0"))
        .await;
    other.expect(&s5("quiet", r#""hi""#)).await;
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "other client stalled: {:?}",
        t0.elapsed()
    );
    let mut flood = sender.await.unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        flood.expect(&s2(&format!("i{i}"))).await;
        flood
            .expect(&s3(&format!("f{i}"), None, Some(&format!("i{i}"))))
            .await;
    }
    flood.barrier().await;
    assert_eq!(sgc.subscriptions(&guid).len(), n);
    assert_eq!(sgc.channels().len(), n + 1);
    flood
        .send(&delphi::publish(r#""last""#, "f9999", "queueLevel0"))
        .await;
    flood.expect(&s5("f9999", r#""last""#)).await;
    // Disconnect cleans every channel up.
    flood.close().await;
    assert!(eventually(DEFAULT_WAIT, || sgc.channels().len() == 1).await);
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped_silently() {
    let (server, sgc) = sgc_server(SgcConfig {
        max_subscriptions_per_connection: 3,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, guid) = client(server.local_addr()).await;
    a.send(&delphi::subscribe("a,b,c,d,e")).await;
    for ch in ["a", "b", "c"] {
        a.expect(&s3(ch, Some("qosLevel0"), None)).await;
    }
    a.barrier().await;
    // Re-subscribing an existing channel is still confirmed.
    a.subscribe("a").await;
    assert_eq!(sgc.subscriptions(&guid), ["a", "b", "c"]);
}

#[tokio::test]
async fn open_transactions_are_capped() {
    let (server, _sgc) = sgc_server(SgcConfig {
        transaction_max_open: 1,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("t2").await;
    a.send(&delphi::tx("sgc@transaction", "t1")).await;
    // Past the cap: no transaction on t2, so its publish goes out at once.
    a.send(&delphi::tx("sgc@transaction", "t2")).await;
    a.send(&delphi::publish(r#""now""#, "t2", "queueLevel0"))
        .await;
    a.expect(&s5("t2", r#""now""#)).await;
}

#[tokio::test]
async fn binary_frames_without_a_hook_are_ignored() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send_binary(&[0xff, 0, 1]).await;
    a.barrier().await;
}
