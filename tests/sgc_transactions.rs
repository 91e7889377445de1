//! Transactions (docs/wire.md §2.10) over real sockets: queued per (connection, channel), replayed in order
//! on commit, dropped on rollback, no replies beyond acknowledgments.

mod support;

use support::sgc::*;
use tokio::sync::mpsc::unbounded_channel;
use wscluster::internals::protocol::sgc::SgcConfig;

#[tokio::test]
async fn commit_replays_queued_messages_in_order() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, _) = client(addr).await;
    let (mut b, _) = client(addr).await;
    a.subscribe("tx").await;
    a.subscribe("other").await;
    b.subscribe("tx").await;
    a.send(&delphi::tx("sgc@transaction", "tx")).await;
    a.send(&delphi::publish(r#""m1""#, "tx", "queueLevel0"))
        .await;
    a.send(&delphi::broadcast(r#""b2""#, "tx")).await;
    a.send(&delphi::publish(r#""m3""#, "tx", "queueLevel1"))
        .await;
    // Another channel is not in the transaction.
    a.send(&delphi::publish(r#""now""#, "other", "queueLevel0"))
        .await;
    a.expect(&s5("other", r#""now""#)).await;
    a.barrier().await;
    b.barrier().await;
    a.send(&delphi::tx("sgc@commit", "tx")).await;
    for c in [&mut a, &mut b] {
        c.expect(&s5("tx", r#""m1""#)).await;
        c.expect(&s6("tx", r#""b2""#, Some("qosLevel0"), None))
            .await;
        c.expect(&s5("tx", r#""m3""#)).await;
        c.barrier().await;
    }
    // Closed: the next publish goes straight out; a second commit does nothing.
    a.send(&delphi::publish(r#""m4""#, "tx", "queueLevel0"))
        .await;
    a.expect(&s5("tx", r#""m4""#)).await;
    a.send(&delphi::tx("sgc@commit", "tx")).await;
    a.barrier().await;
}

#[tokio::test]
async fn rollback_discards_and_js_frames_get_only_acks() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("tx").await;
    a.send(r#"{"jsonrpc":"2.0", "method":"sgc@transaction", "params":{"channel":"tx", "message":""}, "id":"t1"}"#).await;
    a.expect(&s2("t1")).await;
    // Queued messages are still acknowledged at once (ack before processing).
    a.send(&js::publish("lost", "tx", "p1")).await;
    a.expect(&s2("p1")).await;
    a.send(&delphi::publish(r#""kept?""#, "tx", "queueLevel1"))
        .await;
    a.barrier().await;
    a.send(&js::tx("sgc@rollback", "tx")).await;
    a.barrier().await;
    assert_eq!(
        sgc.retained_count("tx"),
        0,
        "a rolled-back publish stores nothing"
    );
    a.send(&js::publish("after", "tx", "p2")).await;
    a.expect(&s2("p2")).await;
    a.expect(&s5("tx", r#""after""#)).await;
    a.send(&js::tx("sgc@transaction", "tx")).await;
    a.send(&js::publish("in2", "tx", "p3")).await;
    a.expect(&s2("p3")).await;
    a.send(&js::tx("sgc@commit", "tx")).await;
    a.expect(&s5("tx", r#""in2""#)).await;
    a.barrier().await;
}

#[tokio::test]
async fn transaction_on_channel_empty_holds_every_channelless_message() {
    let (tx, mut rx) = unbounded_channel();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_message(move |_, m| {
            let _ = tx.send(m.as_text().to_owned());
        });
    })
    .await;
    let (mut a, guid) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    a.send(&js::tx("sgc@transaction", "")).await;
    a.send(&delphi::write_data(r#""held""#)).await;
    a.send(delphi::GET_SESSION).await;
    a.send(&js::broadcast("to all", "")).await;
    // sgc@protocol has no channel either, so it is held too: use a subscribe (channel "z") as
    // the round trip instead.
    a.send(js::PROTOCOL).await;
    a.subscribe("z").await;
    b.barrier().await;
    no_event(&mut rx);
    a.send(&js::tx("sgc@commit", "")).await;
    a.expect(&s1(&guid, "qosLevel0")).await;
    a.expect(&s6("", r#""to all""#, None, None)).await;
    a.expect("esegece.com").await;
    b.expect(&s6("", r#""to all""#, None, None)).await;
    assert_eq!(next_event(&mut rx).await, "held");
    a.barrier().await;
    b.barrier().await;
}

#[tokio::test]
async fn transactions_are_per_connection_and_bounded() {
    let (server, _sgc) = sgc_server(SgcConfig {
        transaction_max_messages: 2,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    a.subscribe("tx").await;
    b.send(&delphi::tx("sgc@transaction", "tx")).await;
    // A's publishes are not in B's transaction.
    a.send(&delphi::publish(r#""a""#, "tx", "queueLevel0"))
        .await;
    a.expect(&s5("tx", r#""a""#)).await;
    for m in ["1", "2", "3"] {
        b.send(&delphi::publish(&format!(r#""{m}""#), "tx", "queueLevel0"))
            .await;
    }
    b.barrier().await;
    a.barrier().await;
    b.send(&delphi::tx("sgc@commit", "tx")).await;
    b.barrier().await;
    a.expect(&s5("tx", r#""1""#)).await;
    a.expect(&s5("tx", r#""2""#)).await;
    a.barrier().await;
}
