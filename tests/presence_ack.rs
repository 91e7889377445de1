//! Acknowledgments (docs/wire.md §3.5): every client frame with an id is acknowledged before it is
//! processed; the optional server-side mode adds ids to outgoing frames and resends them until
//! the client acknowledges them.

mod presence_support;
mod support;

use std::time::Duration;

use presence_support::*;
use serde_json::Value;
use support::{DEFAULT_WAIT, WsClient, eventually};
use wscluster::internals::protocol::presence::{AckConfig, PresenceConfig};

#[tokio::test]
async fn frames_with_an_id_are_acknowledged_before_they_are_processed() {
    let (server, _p) = start_default().await;
    let mut a = PClient::connect(server.local_addr()).await;
    // Delphi may send a number: it is echoed as a string.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"a","name":"al","info":""},"id":12345}"#).await;
    a.expect(&ack_frame("12345")).await;
    a.expect(&member_frame("member@new", &m("a", "al", "")))
        .await;
    // Errors too are preceded by the ack.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@member@remove","member":{"id":"a","name":"","info":""},"channel":{"name":"x"},"id":"7F"}"#).await;
    a.expect(&ack_frame("7F")).await;
    a.expect(&error_frame(
        5,
        "Channel not exists",
        "x",
        &m("a", "al", ""),
    ))
    .await;
    // A client's acknowledgment is never acknowledged; without the mode it is just ignored.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":"whatever"}"#)
        .await;
    a.quiet().await;
}

fn ack_mode(interval_ms: u64, timeout_ms: u64) -> PresenceConfig {
    PresenceConfig {
        acknowledgment: AckConfig {
            enabled: true,
            interval_ms,
            timeout_ms,
            ..AckConfig::default()
        },
        ..PresenceConfig::default()
    }
}

async fn connect_raw(addr: std::net::SocketAddr) -> WsClient {
    WsClient::connect(addr, "/", &["presence.esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn json(t: &str) -> Value {
    serde_json::from_str(t).unwrap_or_else(|e| panic!("{e}: {t}"))
}

#[tokio::test]
async fn ack_mode_adds_fresh_ids_and_resends_until_acknowledged() {
    let (server, p) = start(ack_mode(20, 80)).await;
    let mut c = connect_raw(server.local_addr()).await;
    let session = c.recv().await;
    let v = json(&session);
    let guid = v["message"]["text"].as_str().unwrap_or_default().to_owned();
    let id = v["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(id.len(), 32);
    assert_ne!(id, guid, "a new GUID per frame");
    assert_eq!(
        session,
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@session","message":{{"text":"{guid}"}},"id":"{id}"}}"#
        )
    );
    // Not acknowledged: the very same frame comes again.
    assert_eq!(c.recv().await, session);
    let conn = server
        .connection(&guid)
        .unwrap_or_else(|| panic!("no conn"));
    assert_eq!(p.pending_acks(&conn), 1);
    c.send(&ack_frame(&id)).await;
    assert!(eventually(DEFAULT_WAIT, || p.pending_acks(&conn) == 0).await);
    // Give the sweeper several rounds past the timeout; a barrier must then come back first.
    // Its own ack is never tracked.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@x","id":"b1"}"#)
        .await;
    loop {
        // A resend queued just before our ack was processed may still be in flight: skip it.
        let t = c.recv().await;
        if t != session {
            assert_eq!(t, ack_frame("b1"));
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@x","id":"b2"}"#)
        .await;
    c.expect(&ack_frame("b2")).await;
    assert_eq!(p.pending_acks(&conn), 0);
}

/// Receives the next frame, acknowledges it when it has an id, and returns it without the id.
async fn recv_acking(c: &mut WsClient) -> (String, Option<String>) {
    let t = c.recv().await;
    let v = json(&t);
    let id = v["id"].as_str().map(str::to_owned);
    if let Some(id) = &id
        && v["method"] != "sgc@presence@acknowledgment"
    {
        c.send(&ack_frame(id)).await;
        let suffix = format!(r#","id":"{id}"}}"#);
        let body = t.strip_suffix(&suffix).map(|b| format!("{b}}}"));
        return (body.unwrap_or(t), Some(id.clone()));
    }
    (t, id)
}

#[tokio::test]
async fn ack_mode_fan_out_gives_each_receiver_its_own_id() {
    let (server, p) = start(ack_mode(1000, 60_000)).await;
    let addr = server.local_addr();
    let mut a = connect_raw(addr).await;
    let mut b = connect_raw(addr).await;
    recv_acking(&mut a).await;
    recv_acking(&mut b).await;
    a.send(&member_new_req("a")).await;
    assert_eq!(
        recv_acking(&mut a).await.0,
        member_frame("member@new", &m("a", "a", ""))
    );
    b.send(&member_new_req("b")).await;
    let (fa, ida) = recv_acking(&mut a).await;
    let (fb, idb) = recv_acking(&mut b).await;
    assert_eq!(fa, member_frame("member@new", &m("b", "b", "")));
    assert_eq!(fa, fb);
    assert!(ida.is_some() && idb.is_some());
    assert_ne!(ida, idb, "one id per receiver");
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":"hi"},"channel":{"name":""},"member":{"id":"a","name":"","info":""}}"#).await;
    let f = publish_frame(r#""hi""#, "", &m("a", "", ""));
    assert_eq!(recv_acking(&mut a).await.0, f);
    assert_eq!(recv_acking(&mut b).await.0, f);
    let conns = server.connections();
    assert!(
        eventually(DEFAULT_WAIT, || conns
            .iter()
            .all(|c| p.pending_acks(c) == 0))
        .await
    );
}

fn member_new_req(id: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{{"id":"{id}","name":"{id}","info":""}}}}"#
    )
}

#[tokio::test]
async fn pending_frames_are_forgotten_when_the_connection_goes() {
    let (server, p) = start(ack_mode(1000, 60_000)).await;
    let mut c = connect_raw(server.local_addr()).await;
    let v = json(&c.recv().await);
    let guid = v["message"]["text"].as_str().unwrap_or_default().to_owned();
    let conn = server
        .connection(&guid)
        .unwrap_or_else(|| panic!("no conn"));
    assert_eq!(p.pending_acks(&conn), 1);
    c.close().await;
    assert!(eventually(DEFAULT_WAIT, || p.pending_acks(&conn) == 0).await);
}
