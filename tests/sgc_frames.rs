//! Every sgc frame of spec Appendix A over real sockets, in both client dialects, checked byte for
//! byte, including what must not arrive.

mod support;

use support::sgc::*;
use support::*;
use tokio::sync::mpsc::unbounded_channel;
use wscluster::internals::protocol::sgc::{Payload, QueueLevel, SgcConfig, Targets};

#[tokio::test]
async fn session_is_the_first_frame_with_the_server_qos_and_the_connection_guid() {
    for (level, name) in [(0, "qosLevel0"), (1, "qosLevel1"), (2, "qosLevel2")] {
        let (server, sgc) = sgc_server(SgcConfig {
            qos_level: level,
            ..SgcConfig::default()
        })
        .await;
        let mut c = WsClient::connect(server.local_addr(), "/", &["esegece.com"])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.protocol.as_deref(), Some("esegece.com"));
        let first = c.recv().await;
        let conns = sgc.connections();
        assert_eq!(conns.len(), 1);
        let guid = conns[0].id().to_owned();
        assert!(
            guid.len() == 32
                && guid
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_eq!(first, s1(&guid, name));
        c.barrier().await;
    }
}

#[tokio::test]
async fn session_request_resends_s1_in_both_dialects() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut c, guid) = client(server.local_addr()).await;
    c.send(delphi::GET_SESSION).await;
    c.expect(&s1(&guid, "qosLevel0")).await;
    c.send(js::GET_SESSION).await;
    c.expect(&s1(&guid, "qosLevel0")).await;
    // With an id the ack comes first.
    c.send(r#"{"jsonrpc":"2.0", "method":"sgc@session", "id":"s-1"}"#)
        .await;
    c.expect(&s2("s-1")).await;
    c.expect(&s1(&guid, "qosLevel0")).await;
}

#[tokio::test]
async fn delphi_subscribe_publish_unsubscribe() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&delphi::subscribe("orders")).await;
    a.expect(&s3("orders", Some("qosLevel0"), None)).await;
    a.send(&delphi::publish(r#""hello""#, "orders", "queueLevel0"))
        .await;
    a.expect(&s5("orders", r#""hello""#)).await;
    a.send(&delphi::publish(r#"{"id":42}"#, "orders", "queueLevel0"))
        .await;
    a.expect(&s5("orders", r#"{"id":42}"#)).await;
    a.send(&delphi::unsubscribe("orders")).await;
    a.expect(&s4("orders", Some("qosLevel0"), None)).await;
    // Not subscribed any more: the publish reaches nobody, and unsubscribing again is silent.
    a.send(&delphi::publish(r#""gone""#, "orders", "queueLevel0"))
        .await;
    a.send(&delphi::unsubscribe("orders")).await;
    a.barrier().await;
}

#[tokio::test]
async fn delphi_qos1_publish_is_acked_before_its_event() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("orders").await;
    a.send(&delphi::publish_qos(
        r#""m""#,
        "orders",
        "queueLevel0",
        "qosLevel1",
        "ID1",
    ))
    .await;
    a.expect(&s2("ID1")).await;
    a.expect(&s5("orders", r#""m""#)).await;
}

#[tokio::test]
async fn js_subscribe_publish_unsubscribe() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(&js::subscribe("orders", "a1b2")).await;
    a.expect(&s2("a1b2")).await;
    a.expect(&s3("orders", None, Some("a1b2"))).await;
    a.send(&js::publish("hello", "orders", "c3")).await;
    a.expect(&s2("c3")).await;
    a.expect(&s5("orders", r#""hello""#)).await;
    a.send(&js::publish(r#"{"x": [1, 2]}"#, "orders", "c4"))
        .await;
    a.expect(&s2("c4")).await;
    a.expect(&s5("orders", r#"{"x": [1, 2]}"#)).await;
    a.send(&js::unsubscribe("orders", "d5")).await;
    a.expect(&s2("d5")).await;
    a.expect(&s4("orders", None, Some("d5"))).await;
}

#[tokio::test]
async fn client_acks_in_either_shape_get_no_reply() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, guid) = client(server.local_addr()).await;
    a.send(&delphi::ack(&guid)).await;
    a.send(&format!(
        r#"{{"jsonrpc":"2.0", "method":"sgc@acknowledgment", "id":"{guid}"}}"#
    ))
    .await;
    a.barrier().await;
}

#[tokio::test]
async fn broadcast_reaches_channel_subscribers_or_everyone_sender_included() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, _) = client(addr).await;
    let (mut b, _) = client(addr).await;
    let (mut c, _) = client(addr).await;
    a.subscribe("chan").await;
    b.subscribe("chan").await;
    // Delphi broadcast to a channel: S6b echoes the sender's qos; C is not subscribed.
    a.send(&delphi::broadcast(r#""hi""#, "chan")).await;
    let want = s6("chan", r#""hi""#, Some("qosLevel0"), None);
    a.expect(&want).await;
    b.expect(&want).await;
    a.barrier().await;
    c.barrier().await;
    // JS broadcast to "" reaches every sgc connection, sender included, nothing echoed.
    c.send(&js::broadcast("all", "")).await;
    let want = s6("", r#""all""#, None, None);
    for x in [&mut a, &mut b, &mut c] {
        x.expect(&want).await;
    }
    // A broadcast with an id echoes it (after the sender's own ack).
    c.send(r#"{"jsonrpc":"2.0","method":"sgc@broadcast","params":{"message":{"k":1},"channel":"chan","qos":"qosLevel1"},"qos":"qosLevel1","id":"B1"}"#).await;
    c.expect(&s2("B1")).await;
    let want = s6("chan", r#"{"k":1}"#, Some("qosLevel1"), Some("B1"));
    a.expect(&want).await;
    b.expect(&want).await;
    c.barrier().await;
}

#[tokio::test]
async fn unsubscribe_all_is_silent_and_effective() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, guid) = client(server.local_addr()).await;
    a.subscribe("x").await;
    a.subscribe("y").await;
    assert_eq!(sgc.subscriptions(&guid), ["x", "y"]);
    a.send(delphi::UNSUBSCRIBE_ALL).await;
    a.barrier().await;
    assert!(sgc.subscriptions(&guid).is_empty());
    a.send(&delphi::publish(r#""m""#, "x", "queueLevel0")).await;
    a.barrier().await;
}

#[tokio::test]
async fn sgc_message_goes_to_the_hook_without_reply() {
    let (tx, mut rx) = unbounded_channel();
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_message(move |conn, payload| {
            let _ = tx.send((conn.id().to_owned(), payload.clone()));
        });
    })
    .await;
    let (mut a, guid) = client(server.local_addr()).await;
    a.send(&delphi::write_data(r#""hello""#)).await;
    a.send(&delphi::write_data(r#"{"a":[1]}"#)).await;
    a.send(&js::send("from js", "j1")).await;
    a.expect(&s2("j1")).await;
    a.barrier().await;
    assert_eq!(
        next_event(&mut rx).await,
        (guid.clone(), Payload::Text("hello".into()))
    );
    assert_eq!(
        next_event(&mut rx).await,
        (guid.clone(), Payload::Raw(r#"{"a":[1]}"#.into()))
    );
    assert_eq!(
        next_event(&mut rx).await,
        (guid, Payload::Text("from js".into()))
    );
    no_event(&mut rx);
}

#[tokio::test]
async fn protocol_request_gets_the_raw_name() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@protocol","params":{"qos":"qosLevel0"},"qos":"qosLevel0"}"#).await;
    a.expect("esegece.com").await;
}

#[tokio::test]
async fn base64_strings_are_decoded_on_input() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    // method "sgc@subscribe", channel "orders", message "hello" — all sgc@b64: encoded.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@b64:c2djQHN1YnNjcmliZQ==","params":{"channel":"sgc@b64:b3JkZXJz"}}"#).await;
    a.expect(&s3("orders", None, None)).await;
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"channel":"sgc@b64:b3JkZXJz","message":"sgc@b64:aGVsbG8="}}"#).await;
    a.expect(&s5("orders", r#""hello""#)).await;
}

#[tokio::test]
async fn raw_control_characters_and_odd_types_are_tolerated() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("7").await;
    // A raw CR LF inside the message string, a numeric channel, a numeric id.
    a.send("{\"jsonrpc\":\"2.0\",\"method\":\"sgc@publish\",\"params\":{\"message\":\"a\r\nb\",\"channel\":7},\"id\":12}").await;
    a.expect(&s2("12")).await;
    a.expect(&s5("7", r#""a\r\nb""#)).await;
    // Numbers, booleans and null as messages are forwarded as text.
    a.send(&delphi::publish("3.5", "7", "queueLevel0")).await;
    a.expect(&s5("7", r#""3.5""#)).await;
    a.send(&delphi::publish("null", "7", "queueLevel0")).await;
    a.expect(&s5("7", r#""""#)).await;
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@publish","params":{"channel":"7"}}"#)
        .await;
    a.expect(&s5("7", r#""""#)).await;
}

#[tokio::test]
async fn direct_send_is_s6_and_write_data_is_s7() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, guid) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    assert!(sgc.send(&guid, "hi"));
    assert!(sgc.send(&guid, r#"{"a":1}"#));
    assert!(sgc.send(&guid, "{not json"));
    assert!(sgc.write_data(&guid, "text"));
    assert!(!sgc.send("NOSUCHCONNECTION", "x"));
    a.expect(&s6("", r#""hi""#, None, None)).await;
    a.expect(&s6("", r#"{"a":1}"#, None, None)).await;
    a.expect(&s6("", r#""{not json""#, None, None)).await;
    a.expect(&s7(r#""text""#)).await;
    b.barrier().await;
}

#[tokio::test]
async fn server_publish_and_broadcast_frames() {
    let (server, sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("c").await;
    assert_eq!(
        sgc.publish("plain \"q\"", "c", QueueLevel::Level0, &Targets::all()),
        1
    );
    a.expect(&s5("c", r#""plain \"q\"""#)).await;
    assert_eq!(
        sgc.publish("[1,2]", "c", QueueLevel::Level0, &Targets::all()),
        1
    );
    a.expect(&s5("c", "[1,2]")).await;
    assert_eq!(sgc.broadcast("b", "c", &Targets::all()), 1);
    a.expect(&s6("c", r#""b""#, None, None)).await;
    assert_eq!(sgc.broadcast("e", "", &Targets::all()), 1);
    a.expect(&s6("", r#""e""#, None, None)).await;
}
