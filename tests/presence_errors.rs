//! Every Presence error code and text (docs/wire.md §3.2), each sent as `error@member@channel` to the
//! requester only; refusals of a connection acting as another's member; bad input.

mod presence_support;
mod support;

use std::sync::Arc;

use parking_lot::Mutex;
use presence_support::*;
use wscluster::internals::protocol::presence::{AppEvent, PresenceConfig, PresenceError};

#[tokio::test]
async fn error_1_member_already_exists() {
    let (server, p) = start_default().await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "x", "alice").await;
    let mut b = PClient::connect(addr).await;
    b.member_new("x", "bob", "").await;
    b.expect(&error_frame(
        1,
        "Member already exists.",
        "",
        &m("x", "bob", ""),
    ))
    .await;
    // One member per connection: a second member@new with another id is refused too.
    a.member_new("y", "alice2", "").await;
    a.expect(&error_frame(
        1,
        "Member already exists.",
        "",
        &m("y", "alice2", ""),
    ))
    .await;
    a.member_new("x", "alice", "").await;
    a.expect(&error_frame(
        1,
        "Member already exists.",
        "",
        &m("x", "alice", ""),
    ))
    .await;
    a.quiet().await;
    b.quiet().await;
    assert_eq!(p.member_count(), 1);
    assert_eq!(
        p.member("x").map(|m| m.name.to_string()),
        Some("alice".into())
    );
}

#[tokio::test]
async fn error_2_new_member_denied_by_the_hook_or_without_an_id() {
    let (server, p) = start_default().await;
    p.on_before_new_member(|_, member| &*member.name != "mallory");
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    let mut b = PClient::connect(addr).await;
    b.member_new("b", "mallory", "").await;
    b.expect(&error_frame(
        2,
        "Create New Member request has been denied.",
        "",
        &m("b", "mallory", ""),
    ))
    .await;
    b.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new"}"#)
        .await;
    b.expect(&error_frame(
        2,
        "Create New Member request has been denied.",
        "",
        &m("", "", ""),
    ))
    .await;
    b.quiet().await;
    a.quiet().await;
    assert_eq!(p.member_count(), 1);
}

#[tokio::test]
async fn error_3_unknown_member_for_every_request() {
    let (server, _p) = start_default().await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    a.join("room").await;
    a.recv().await;
    let mut n = PClient::connect(addr).await;
    n.id = "nobody".into();
    let e3 = |ch: &str| error_frame(3, "Member not exists.", ch, &m("nobody", "", ""));
    n.join("room").await;
    n.expect(&e3("room")).await;
    n.leave("room").await;
    n.expect(&e3("room")).await;
    n.publish("x", "room").await;
    n.expect(&e3("room")).await;
    n.publish("x", "").await;
    n.expect(&e3("")).await;
    n.get_members("").await;
    n.expect(&e3("")).await;
    n.invite("room", &["a"]).await;
    n.expect(&e3("room")).await;
    n.remove().await;
    n.expect(&e3("")).await;
    // A missing member object: the error carries an empty member.
    n.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@get@members","channel":{"name":"room"}}"#)
        .await;
    n.expect(&error_frame(
        3,
        "Member not exists.",
        "room",
        &m("", "", ""),
    ))
    .await;
    n.quiet().await;
    a.quiet().await;
}

#[tokio::test]
async fn a_connection_cannot_act_as_another_connections_member() {
    let (server, p) = start_default().await;
    let addr = server.local_addr();
    let mut victim = PClient::member(addr, "victim", "vic").await;
    victim.join("room").await;
    victim.recv().await;
    let mut evil = PClient::member(addr, "evil", "eve").await;
    victim
        .expect(&member_frame("member@new", &m("evil", "eve", "")))
        .await;
    evil.id = "victim".into();
    let e3 = |ch: &str| error_frame(3, "Member not exists.", ch, &m("victim", "", ""));
    evil.join("other").await;
    evil.expect(&e3("other")).await;
    evil.leave("room").await;
    evil.expect(&e3("room")).await;
    evil.publish("spoof", "room").await;
    evil.expect(&e3("room")).await;
    evil.publish("spoof", "").await;
    evil.expect(&e3("")).await;
    evil.get_members("room").await;
    evil.expect(&e3("room")).await;
    evil.invite("room", &["victim"]).await;
    evil.expect(&e3("room")).await;
    evil.remove().await;
    evil.expect(&e3("")).await;
    evil.quiet().await;
    // None of it was obeyed.
    victim.quiet().await;
    assert!(p.member("victim").is_some());
    assert_eq!(p.channels(), vec![("room".to_string(), 1)]);
}

#[tokio::test]
async fn error_5_channel_not_exists() {
    let (server, _p) = start_default().await;
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    let e5 = error_frame(5, "Channel not exists", "nope", &m("a", "alice", ""));
    a.leave("nope").await;
    a.expect(&e5).await;
    a.publish("x", "nope").await;
    a.expect(&e5).await;
    a.get_members("nope").await;
    a.expect(&e5).await;
    a.quiet().await;
}

#[tokio::test]
async fn error_6_new_channel_denied() {
    let (server, p) = start_default().await;
    p.on_before_new_channel(|_, channel, _| channel != "secret");
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    a.join("secret").await;
    a.expect(&error_frame(
        6,
        "Create New Channel request has been denied.",
        "secret",
        &m("a", "alice", ""),
    ))
    .await;
    // A channel named "" would be unreachable ("" means everyone): refused the same way.
    a.join("").await;
    a.expect(&error_frame(
        6,
        "Create New Channel request has been denied.",
        "",
        &m("a", "alice", ""),
    ))
    .await;
    a.quiet().await;
    assert!(p.channels().is_empty());
}

#[tokio::test]
async fn error_10_join_denied_by_the_hook_or_the_channel_limit() {
    let (server, p) = start(PresenceConfig {
        max_channels_per_member: 2,
        ..PresenceConfig::default()
    })
    .await;
    p.on_before_join_channel(|_, channel, _| channel != "vip");
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    let e10 = |ch: &str| {
        error_frame(
            10,
            "Create Subscription request has been denied.",
            ch,
            &m("a", "alice", ""),
        )
    };
    a.join("vip").await;
    a.expect(&e10("vip")).await;
    assert!(p.channels().is_empty(), "a denied join creates no channel");
    for ch in ["c1", "c2"] {
        a.join(ch).await;
        a.expect(&channel_member_frame(
            "channel@member@new",
            &m("a", "alice", ""),
            ch,
        ))
        .await;
    }
    a.join("c3").await;
    a.expect(&e10("c3")).await;
    a.quiet().await;
}

#[tokio::test]
async fn error_11_and_12_subscription_exists_or_not() {
    let (server, _p) = start_default().await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    let mut b = PClient::member(addr, "b", "bob").await;
    a.expect(&member_frame("member@new", &m("b", "bob", "")))
        .await;
    a.join("room").await;
    a.recv().await;
    a.join("room").await;
    a.expect(&error_frame(
        11,
        "Subscription already exists.",
        "room",
        &m("a", "alice", ""),
    ))
    .await;
    let e12 = error_frame(12, "Subscription not exists.", "room", &m("b", "bob", ""));
    b.leave("room").await;
    b.expect(&e12).await;
    b.publish("x", "room").await;
    b.expect(&e12).await;
    b.quiet().await;
    a.quiet().await;
}

#[tokio::test]
async fn error_20_publish_denied_and_30_send_members_denied() {
    let (server, p) = start_default().await;
    p.on_before_publish(|_, message, _, _| message.as_text() != "forbidden");
    p.on_before_send_members(|_, channel, _| channel != "hidden");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let e = errors.clone();
    p.on_event(move |ev| {
        if let AppEvent::Error { error, .. } = ev {
            e.lock().push(*error);
        }
    });
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    let mut b = PClient::member(addr, "b", "bob").await;
    a.expect(&member_frame("member@new", &m("b", "bob", "")))
        .await;
    for x in [&mut a, &mut b] {
        x.join("hidden").await;
    }
    a.expect(&channel_member_frame(
        "channel@member@new",
        &m("a", "alice", ""),
        "hidden",
    ))
    .await;
    let cmn = channel_member_frame("channel@member@new", &m("b", "bob", ""), "hidden");
    a.expect(&cmn).await;
    b.expect(&cmn).await;
    a.publish("forbidden", "hidden").await;
    a.expect(&error_frame(
        20,
        "Publish Message request has been denied.",
        "hidden",
        &m("a", "alice", ""),
    ))
    .await;
    a.publish("forbidden", "").await;
    a.expect(&error_frame(
        20,
        "Publish Message request has been denied.",
        "",
        &m("a", "alice", ""),
    ))
    .await;
    a.get_members("hidden").await;
    a.expect(&error_frame(30, "", "hidden", &m("a", "alice", "")))
        .await;
    a.quiet().await;
    b.quiet().await;
    assert_eq!(
        *errors.lock(),
        vec![
            PresenceError::PublishDenied,
            PresenceError::PublishDenied,
            PresenceError::SendMembersDenied
        ]
    );
}

#[tokio::test]
async fn bad_input_is_logged_and_ignored_and_the_node_keeps_serving() {
    let (server, p) = start(PresenceConfig {
        max_channels_per_member: 50,
        ..PresenceConfig::default()
    })
    .await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    let mut x = PClient::member(addr, "x", "xavier").await;
    a.expect(&member_frame("member@new", &m("x", "xavier", "")))
        .await;
    for junk in [
        "",
        "not json",
        "[1,2,3]",
        "42",
        "\"string\"",
        "{",
        r#"{"jsonrpc":"2.0"}"#,
        r#"{"method":null}"#,
        r#"{"method":{"deep":[1,2]}}"#,
        &format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)),
        r#"{"method":"sgc@presence@whatever","member":{"id":"x"}}"#,
        r#"{"method":"sgc@other@thing"}"#,
        // Server-only methods sent by a client.
        r#"{"method":"sgc@presence@session","message":{"text":"x"}}"#,
        r#"{"method":"sgc@presence@send@members","channel":{"name":""},"member":{"id":"x"},"members":[]}"#,
        r#"{"method":"sgc@presence@error@publish@msg","error":{"code":1,"text":"x"}}"#,
        // Wrong types in known methods.
        r#"{"method":"sgc@presence@channel@member@new","member":{"id":"x"},"channel":[1,2]}"#,
        r#"{"method":"sgc@presence@publish@msg","member":{"id":["x"]},"channel":{"name":{"a":1}},"message":7}"#,
        r#"{"method":"sgc@presence@channel@invitation","member":{"id":"x"},"members":{"id":"a"}}"#,
    ] {
        x.send(junk).await;
    }
    // Only the well-formed-but-odd requests get answers; drain them, then prove quiet.
    let mut answers = Vec::new();
    x.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@barrier","id":"end"}"#)
        .await;
    loop {
        let v = x.recv_json().await;
        if v["method"] == "sgc@presence@acknowledgment" && v["id"] == "end" {
            break;
        }
        answers.push(v);
    }
    assert_eq!(answers.len(), 2, "{answers:?}");
    // `"channel":[1,2]` is no channel: joining "" is refused with 6.
    assert_eq!(answers[0]["error"]["code"], 6);
    assert_eq!(answers[0]["channel"]["name"], "");
    // `"member":{"id":["x"]}`: an id `["x"]` that is not x's: error 3.
    assert_eq!(answers[1]["error"]["code"], 3);
    assert_eq!(answers[1]["member"]["id"], r#"["x"]"#);
    a.quiet().await;
    // A flood of joins is cut by the per-member channel limit; the node stays responsive.
    for i in 0..500 {
        x.join(&format!("flood-{i}")).await;
    }
    let mut joined = 0;
    let mut refused = 0;
    for _ in 0..500 {
        let v = x.recv_json().await;
        match v["method"].as_str() {
            Some("sgc@presence@channel@member@new") => joined += 1,
            Some("sgc@presence@error@member@channel") => {
                assert_eq!(v["error"]["code"], 10);
                refused += 1;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!((joined, refused), (50, 450));
    x.quiet().await;
    a.publish("still alive", "").await;
    a.expect(&publish_frame(r#""still alive""#, "", &m("a", "", "")))
        .await;
    assert_eq!(p.member_count(), 2);
}
