//! QoS (docs/wire.md §2.6): server → client resends of id'd frames at QoS 1 until acknowledged, and the
//! QoS-2 PubRec/PubRel flow for client messages, over real sockets.

mod support;

use support::sgc::*;
use support::*;
use wscluster::internals::protocol::sgc::SgcConfig;

fn qos1() -> SgcConfig {
    SgcConfig {
        qos_level: 1,
        qos_interval_ms: 20,
        qos_timeout_ms: 40,
        ..SgcConfig::default()
    }
}

/// Reads frames until `want`, accepting only `allowed` frames (resends) before it.
async fn expect_skipping(c: &mut WsClient, want: &str, allowed: &str) {
    loop {
        let f = c.recv().await;
        if f == want {
            return;
        }
        assert_eq!(f, allowed, "only resends may precede {want}");
    }
}

/// A barrier that tolerates resends of `allowed` queued before it.
async fn barrier_skipping(c: &mut WsClient, allowed: &str) {
    c.send(js::PROTOCOL).await;
    expect_skipping(c, "esegece.com", allowed).await;
}

#[tokio::test]
async fn qos1_session_is_resent_until_acknowledged_in_either_shape() {
    let (server, sgc) = sgc_server(qos1()).await;
    let addr = server.local_addr();
    let (mut a, ga) = client(addr).await;
    let (mut b, gb) = client(addr).await;
    let (mut j, gj) = client(addr).await;
    let session_a = s1(&ga, "qosLevel1");
    // Not acknowledged: resent.
    a.expect(&session_a).await;
    a.expect(&session_a).await;
    assert_eq!(sgc.unacked_count(&ga), 1);
    // The Delphi (result-shaped) ack stops it; so does the request-shaped one.
    a.send(&delphi::ack(&ga)).await;
    j.send(&format!(
        r#"{{"jsonrpc":"2.0", "method":"sgc@acknowledgment", "id":"{gj}"}}"#
    ))
    .await;
    assert!(
        eventually(DEFAULT_WAIT, || sgc.unacked_count(&ga) == 0
            && sgc.unacked_count(&gj) == 0)
        .await
    );
    // Resends queued before the ack was processed may still be in flight; none after it.
    barrier_skipping(&mut a, &session_a).await;
    barrier_skipping(&mut j, &s1(&gj, "qosLevel1")).await;
    // B never acks: two more resends to B, after everything queued so far, prove the sweeper
    // ran twice since A's and J's acks.
    let session_b = s1(&gb, "qosLevel1");
    barrier_skipping(&mut b, &session_b).await;
    b.expect(&session_b).await;
    b.expect(&session_b).await;
    a.barrier().await;
    j.barrier().await;
    assert_eq!(sgc.unacked_count(&gb), 1);
}

#[tokio::test]
async fn qos1_rpc_results_and_errors_are_resent_until_acknowledged() {
    let (server, sgc) = sgc_server_with(qos1(), |s| {
        s.on_rpc(|req| {
            if req.method() == "fail" {
                req.respond_error(-32000, "nope", "");
            } else {
                req.respond("ok");
            }
        });
    })
    .await;
    let (mut a, ga) = client(server.local_addr()).await;
    a.send(&delphi::ack(&ga)).await;
    assert!(eventually(DEFAULT_WAIT, || sgc.unacked_count(&ga) == 0).await);
    barrier_skipping(&mut a, &s1(&ga, "qosLevel1")).await;
    a.send(&delphi::rpc("r1", "ping", r#""x""#)).await;
    a.expect(&s2("r1")).await;
    let result = s9(r#""ok""#, "qosLevel1", "r1");
    a.expect(&result).await;
    a.expect(&result).await;
    a.send(&delphi::ack("r1")).await;
    assert!(eventually(DEFAULT_WAIT, || sgc.unacked_count(&ga) == 0).await);
    barrier_skipping(&mut a, &result).await;
    a.send(&delphi::rpc("r2", "fail", r#""x""#)).await;
    a.expect(&s2("r2")).await;
    let error = s10(-32000, "nope", None, "qosLevel1", "r2");
    a.expect(&error).await;
    a.expect(&error).await;
    a.send(&delphi::ack("r2")).await;
    assert!(eventually(DEFAULT_WAIT, || sgc.unacked_count(&ga) == 0).await);
    barrier_skipping(&mut a, &error).await;
}

#[tokio::test]
async fn qos0_server_tracks_nothing() {
    let (server, sgc) = sgc_server(SgcConfig {
        qos_interval_ms: 10,
        qos_timeout_ms: 0,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, ga) = client(server.local_addr()).await;
    a.send(&delphi::rpc("r", "m", "1")).await;
    a.expect(&s2("r")).await;
    a.barrier().await;
    assert_eq!(sgc.unacked_count(&ga), 0);
}

#[tokio::test]
async fn qos2_publish_is_held_until_pubrel_then_acked_and_delivered() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let addr = server.local_addr();
    let (mut a, _) = client(addr).await;
    let (mut b, _) = client(addr).await;
    a.subscribe("c").await;
    b.subscribe("c").await;
    a.send(&delphi::publish_qos(
        r#""first""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "X",
    ))
    .await;
    a.expect(&s8("X")).await;
    // Held: nothing delivered yet.
    a.barrier().await;
    b.barrier().await;
    // A duplicate publish replaces the held copy and gets a fresh PubRec.
    a.send(&delphi::publish_qos(
        r#""second""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "X",
    ))
    .await;
    a.expect(&s8("X")).await;
    a.send(&delphi::pubrel("X")).await;
    a.expect(&s2("X")).await;
    a.expect(&s5("c", r#""second""#)).await;
    b.expect(&s5("c", r#""second""#)).await;
    // PubRel for an id no longer held: just the ack.
    a.send(&delphi::pubrel("X")).await;
    a.expect(&s2("X")).await;
    a.barrier().await;
    b.barrier().await;
}

#[tokio::test]
async fn qos2_from_js_with_params_qos_and_pubrel_variants() {
    let (server, _sgc) = sgc_server(SgcConfig::default()).await;
    let (mut a, _) = client(server.local_addr()).await;
    a.subscribe("c").await;
    a.send(r#"{"jsonrpc":"2.0", "method":"sgc@publish", "params":{"channel":"c", "message":"js", "qos":"qosLevel2"}, "id":"q1"}"#).await;
    a.expect(&s8("q1")).await;
    a.send(&js::pubrel("q1", true)).await;
    a.expect(&s2("q1")).await;
    a.expect(&s5("c", r#""js""#)).await;
    // Unknown pubrel with and without the qos: the ack only.
    a.send(&js::pubrel("zz", true)).await;
    a.expect(&s2("zz")).await;
    a.send(&js::pubrel("zz", false)).await;
    a.expect(&s2("zz")).await;
    // A QoS-2 acknowledgment gets no reply.
    a.send(
        r#"{"jsonrpc":"2.0","result":{"method":"sgc@acknowledgment"},"qos":"qosLevel2","id":"q1"}"#,
    )
    .await;
    a.barrier().await;
}

#[tokio::test]
async fn qos2_rpc_is_held_until_pubrel() {
    let (server, _sgc) = sgc_server_with(SgcConfig::default(), |s| {
        s.on_rpc(|req| {
            req.respond(&format!("got {}", req.params().as_text()));
        });
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    a.send(r#"{"jsonrpc":"2.0","method":"echo","params":"p","qos":"qosLevel2","id":"R"}"#)
        .await;
    a.expect(&s8("R")).await;
    a.barrier().await;
    a.send(&delphi::pubrel("R")).await;
    a.expect(&s2("R")).await;
    a.expect(&s9(r#""got p""#, "qosLevel0", "R")).await;
}

#[tokio::test]
async fn qos2_store_is_bounded_per_connection() {
    let (server, _sgc) = sgc_server(SgcConfig {
        qos2_max_pending: 1,
        ..SgcConfig::default()
    })
    .await;
    let (mut a, _) = client(server.local_addr()).await;
    let (mut b, _) = client(server.local_addr()).await;
    a.subscribe("c").await;
    a.send(&delphi::publish_qos(
        r#""1""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "i1",
    ))
    .await;
    a.expect(&s8("i1")).await;
    // Full: no PubRec for a second id.
    a.send(&delphi::publish_qos(
        r#""2""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "i2",
    ))
    .await;
    a.barrier().await;
    // Another connection has its own store.
    b.send(&delphi::publish_qos(
        r#""3""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "i3",
    ))
    .await;
    b.expect(&s8("i3")).await;
    a.send(&delphi::pubrel("i1")).await;
    a.expect(&s2("i1")).await;
    a.expect(&s5("c", r#""1""#)).await;
    a.send(&delphi::publish_qos(
        r#""2""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "i2",
    ))
    .await;
    a.expect(&s8("i2")).await;
}

#[tokio::test]
async fn qos_state_is_dropped_on_disconnect() {
    let (server, sgc) = sgc_server(qos1()).await;
    let (mut a, ga) = client(server.local_addr()).await;
    a.send(&delphi::publish_qos(
        r#""m""#,
        "c",
        "queueLevel0",
        "qosLevel2",
        "held",
    ))
    .await;
    expect_skipping(&mut a, &s8("held"), &s1(&ga, "qosLevel1")).await;
    assert_eq!(sgc.unacked_count(&ga), 1);
    a.close().await;
    assert!(eventually(DEFAULT_WAIT, || sgc.connection(&ga).is_none()).await);
    assert_eq!(sgc.unacked_count(&ga), 0);
    assert_eq!(server.connection_count(), 0);
}
