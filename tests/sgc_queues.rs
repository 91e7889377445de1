//! Retained queues (docs/wire.md §2.7), channel `""`, non-subscribers, include/exclude targets and the
//! wildcard mask (§2.8), over real sockets.

mod support;

use support::sgc::*;
use support::*;
use wscluster::internals::protocol::sgc::{QueueLevel, SgcConfig, Targets};

#[tokio::test]
async fn level1_keeps_the_last_message_and_replays_it_to_the_subscriber_only() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut publisher, _) = client(addr).await;
    let (mut watcher, _) = client(addr).await;
    publisher
        .send(&delphi::publish(r#""first""#, "news", "queueLevel1"))
        .await;
    publisher
        .send(&delphi::publish(r#"{"n":2}"#, "news", "queueLevel1"))
        .await;
    publisher.barrier().await;
    assert_eq!(sgc.retained_count("news"), 1);
    let (mut late, _) = client(addr).await;
    late.subscribe("news").await;
    late.expect(&s5("news", r#"{"n":2}"#)).await;
    late.barrier().await;
    // Only the subscriber got the replay; the others got nothing.
    watcher.barrier().await;
    publisher.barrier().await;
}

#[tokio::test]
async fn level0_stores_nothing() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::publish(r#""x""#, "ch", "queueLevel0"))
        .await;
    a.barrier().await;
    assert_eq!(sgc.retained_count("ch"), 0);
    a.subscribe("ch").await;
    a.barrier().await;
}

#[tokio::test]
async fn level2_keeps_all_up_to_the_cap_and_replays_in_order() {
    let (server, sgc) = sgc_server(SgcConfig {
        queue_level2_cap: 3,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    for i in 1..=5 {
        a.send(&delphi::publish(
            &format!(r#""m{i}""#),
            "log",
            "queueLevel2",
        ))
        .await;
    }
    a.barrier().await;
    assert_eq!(sgc.retained_count("log"), 3);
    let (mut b, _) = client(server.local_addr()).await;
    b.subscribe("log").await;
    for i in 3..=5 {
        b.expect(&s5("log", &format!(r#""m{i}""#))).await;
    }
    b.barrier().await;
    // Resubscribing replays again (the reference replays on every accepted subscribe).
    b.subscribe("log").await;
    for i in 3..=5 {
        b.expect(&s5("log", &format!(r#""m{i}""#))).await;
    }
    // A level-1 publish replaces the whole queue; clear_queue empties it.
    a.send(&delphi::publish(r#""last""#, "log", "queueLevel1"))
        .await;
    b.expect(&s5("log", r#""last""#)).await;
    a.barrier().await;
    assert_eq!(sgc.retained_count("log"), 1);
    sgc.clear_queue("log");
    assert_eq!(sgc.retained_count("log"), 0);
    let (mut c, _) = client(server.local_addr()).await;
    c.subscribe("log").await;
    c.barrier().await;
}

#[tokio::test]
async fn channel_empty_reaches_everyone_and_is_replayed_right_after_the_session() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, _) = client(addr).await;
    let (mut b, _) = client(addr).await;
    a.send(&delphi::publish(r#""welcome""#, "", "queueLevel1"))
        .await;
    a.expect(&s5("", r#""welcome""#)).await;
    b.expect(&s5("", r#""welcome""#)).await;
    sgc.publish("second", "", QueueLevel::Level2, &Targets::all());
    a.expect(&s5("", r#""second""#)).await;
    b.expect(&s5("", r#""second""#)).await;
    // A new connection: S1 first, then the channel-"" queue, then nothing else.
    let mut c = WsClient::connect(addr, "/", &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let guid = {
        let s = c.recv_json().await;
        s["result"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(sgc.connections().len(), 3);
    assert!(sgc.connection(&guid).is_some());
    c.expect(&s5("", r#""welcome""#)).await;
    c.expect(&s5("", r#""second""#)).await;
    c.barrier().await;
}

#[tokio::test]
async fn non_subscribers_receive_nothing() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, _) = client(addr).await;
    let (mut b, _) = client(addr).await;
    let (mut c, _) = client(addr).await;
    a.subscribe("x").await;
    b.subscribe("y").await;
    c.send(&delphi::publish(r#""to x""#, "x", "queueLevel0"))
        .await;
    c.send(&js::broadcast("to x too", "x")).await;
    // The publisher's barrier proves its frames were fanned out before the others' barriers.
    c.barrier().await;
    a.expect(&s5("x", r#""to x""#)).await;
    a.expect(&s6("x", r#""to x too""#, None, None)).await;
    a.barrier().await;
    b.barrier().await;
}

#[tokio::test]
async fn comma_lists_subscribe_and_publish_each_channel() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&js::subscribe("a,b,,a", "L1")).await;
    a.expect(&s2("L1")).await;
    a.expect(&s3("a", None, Some("L1"))).await;
    a.expect(&s3("b", None, Some("L1"))).await;
    a.send(&delphi::publish(r#""m""#, "b,a", "queueLevel0"))
        .await;
    a.expect(&s5("b", r#""m""#)).await;
    a.expect(&s5("a", r#""m""#)).await;
    a.send(&delphi::unsubscribe("a,b")).await;
    a.expect(&s4("a", Some("qosLevel0"), None)).await;
    a.expect(&s4("b", Some("qosLevel0"), None)).await;
    a.barrier().await;
}

#[tokio::test]
async fn wildcard_mask_on_expands_against_existing_channels() {
    let (server, sgc) = sgc_server(SgcConfig {
        use_matches_mask: true,
        ..SgcConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let (mut owner, _) = client(addr).await;
    owner.subscribe("news/sport").await;
    owner.subscribe("news/tech").await;
    owner.subscribe("weather").await;
    let (mut w, guid) = client(addr).await;
    w.send(&delphi::subscribe("NEWS/*")).await;
    w.expect(&s3("news/sport", Some("qosLevel0"), None)).await;
    w.expect(&s3("news/tech", Some("qosLevel0"), None)).await;
    w.barrier().await;
    assert_eq!(sgc.subscriptions(&guid), ["news/sport", "news/tech"]);
    // Publish with a mask: one S5 per concrete channel, each with its own name.
    w.send(&delphi::publish(r#""p""#, "news/[s]*", "queueLevel0"))
        .await;
    owner.expect(&s5("news/sport", r#""p""#)).await;
    w.expect(&s5("news/sport", r#""p""#)).await;
    w.barrier().await;
    // Nothing matches: the comma split is used literally.
    w.send(&delphi::subscribe("sports*")).await;
    w.expect(&s3("sports*", Some("qosLevel0"), None)).await;
    w.send(&delphi::unsubscribe("news/?ech")).await;
    w.expect(&s4("news/tech", Some("qosLevel0"), None)).await;
    owner.barrier().await;
}

#[tokio::test]
async fn wildcard_mask_off_takes_names_literally() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut owner, _) = client(addr).await;
    owner.subscribe("news/sport").await;
    let (mut w, _) = client(addr).await;
    w.send(&delphi::subscribe("news/*")).await;
    w.expect(&s3("news/*", Some("qosLevel0"), None)).await;
    w.send(&delphi::publish(r#""p""#, "news/*", "queueLevel0"))
        .await;
    w.expect(&s5("news/*", r#""p""#)).await;
    w.barrier().await;
    owner.barrier().await;
}

#[tokio::test]
async fn server_publish_and_broadcast_honour_include_and_exclude() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, ga) = client(addr).await;
    let (mut b, gb) = client(addr).await;
    let (mut c, gc) = client(addr).await;
    for x in [&mut a, &mut b, &mut c] {
        x.subscribe("t").await;
    }
    assert_eq!(
        sgc.publish(
            "only a",
            "t",
            QueueLevel::Level0,
            &Targets::only([ga.clone()])
        ),
        1
    );
    assert_eq!(
        sgc.publish(
            "not b",
            "t",
            QueueLevel::Level0,
            &Targets::except([gb.clone()])
        ),
        2
    );
    let lists = Targets::from_lists(&format!("{ga},{gb}"), &gb);
    assert_eq!(sgc.broadcast("a by lists", "", &lists), 1);
    assert_eq!(
        sgc.broadcast("all but c", "", &Targets::except([gc.clone()])),
        2
    );
    a.expect(&s5("t", r#""only a""#)).await;
    a.expect(&s5("t", r#""not b""#)).await;
    a.expect(&s6("", r#""a by lists""#, None, None)).await;
    a.expect(&s6("", r#""all but c""#, None, None)).await;
    b.expect(&s6("", r#""all but c""#, None, None)).await;
    c.expect(&s5("t", r#""not b""#)).await;
    for x in [&mut a, &mut b, &mut c] {
        x.barrier().await;
    }
    // Targets restrict delivery, not storage: a later subscriber still gets the retained message.
    sgc.publish("kept", "r", QueueLevel::Level1, &Targets::only(["NOBODY"]));
    assert_eq!(sgc.retained_count("r"), 1);
}

#[tokio::test]
async fn read_access_channels_and_subscriptions() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, ga) = client(addr).await;
    let (mut b, _) = client(addr).await;
    a.subscribe("one").await;
    a.subscribe("two").await;
    b.subscribe("two").await;
    let chans: Vec<(String, usize)> = sgc
        .channels()
        .into_iter()
        .map(|c| (c.name, c.subscribers))
        .collect();
    assert_eq!(chans, [("one".to_owned(), 1), ("two".to_owned(), 2)]);
    assert_eq!(sgc.subscriber_count("two"), 2);
    assert_eq!(sgc.subscriptions(&ga), ["one", "two"]);
    assert_eq!(sgc.connection_count(), 2);
    b.close().await;
    assert!(eventually(DEFAULT_WAIT, || sgc.subscriber_count("two") == 1).await);
    assert!(eventually(DEFAULT_WAIT, || sgc.connection_count() == 1).await);
}
