//! Presence flows over real sockets (docs/wire.md §3.4, §5.3): who receives which frame, byte for byte,
//! and who does not (proved with a barrier round trip that must come back next).

mod presence_support;
mod support;

use std::sync::Arc;

use parking_lot::Mutex;
use presence_support::*;
use wscluster::internals::protocol::presence::AppEvent;

#[tokio::test]
async fn session_frame_first_then_member_new_reaches_all_members_including_the_new_one() {
    let (server, _p) = start_default().await;
    let addr = server.local_addr();
    let mut lurker = PClient::connect(addr).await;
    assert_eq!(
        lurker.session,
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@presence@session","message":{{"text":"{}"}}}}"#,
            lurker.guid
        )
    );
    assert!(server.connection(&lurker.guid).is_some());
    let mut a = PClient::member(addr, "", "alice").await;
    assert_eq!(
        a.id, a.guid,
        "Delphi style: the member id is the session GUID"
    );
    // Delphi writes Info (a TStringList) raw, with its trailing CRLF.
    let mut b = PClient::connect(addr).await;
    let bid = b.guid.clone();
    b.member_new(&bid, "bob", "line1\r\n").await;
    let bob = m(&bid, "bob", "line1\r\n");
    b.expect(&member_frame("member@new", &bob)).await;
    b.quiet().await;
    a.expect(&member_frame("member@new", &bob)).await;
    a.quiet().await;
    // A connection that is not a member hears no member broadcasts.
    lurker.quiet().await;
}

/// Three members alice, bob, carol (JS-style custom ids), every member@new drained.
async fn three(addr: std::net::SocketAddr) -> (PClient, PClient, PClient) {
    let mut a = PClient::member(addr, "a1", "alice").await;
    let mut b = PClient::member(addr, "b2", "bob").await;
    a.expect(&member_frame("member@new", &m("b2", "bob", "")))
        .await;
    let c = PClient::member(addr, "c3", "carol").await;
    for x in [&mut a, &mut b] {
        x.expect(&member_frame("member@new", &m("c3", "carol", "")))
            .await;
    }
    (a, b, c)
}

#[tokio::test]
async fn join_reaches_the_channel_members_including_the_joiner_filled_from_the_roster() {
    let (server, _p) = start_default().await;
    let (mut a, mut b, mut c) = three(server.local_addr()).await;
    a.join("room-42").await;
    let cmn_a = channel_member_frame("channel@member@new", &m("a1", "alice", ""), "room-42");
    a.expect(&cmn_a).await;
    a.quiet().await;
    b.quiet().await;
    b.join("room-42").await;
    // The client sends name "" and info ""; the broadcast carries the roster's member.
    let cmn_b = channel_member_frame("channel@member@new", &m("b2", "bob", ""), "room-42");
    b.expect(&cmn_b).await;
    b.quiet().await;
    a.expect(&cmn_b).await;
    a.quiet().await;
    c.quiet().await;
}

async fn room_with_a_and_b(addr: std::net::SocketAddr) -> (PClient, PClient, PClient) {
    let (mut a, mut b, c) = three(addr).await;
    a.join("room").await;
    a.expect(&channel_member_frame(
        "channel@member@new",
        &m("a1", "alice", ""),
        "room",
    ))
    .await;
    b.join("room").await;
    let cmn_b = channel_member_frame("channel@member@new", &m("b2", "bob", ""), "room");
    b.expect(&cmn_b).await;
    a.expect(&cmn_b).await;
    (a, b, c)
}

#[tokio::test]
async fn explicit_leave_reaches_the_channel_members_and_the_leaver_only() {
    let (server, p) = start_default().await;
    let (mut a, mut b, mut c) = room_with_a_and_b(server.local_addr()).await;
    b.leave("room").await;
    let cmr_b = channel_member_frame("channel@member@remove", &m("b2", "bob", ""), "room");
    b.expect(&cmr_b).await;
    b.quiet().await;
    a.expect(&cmr_b).await;
    a.quiet().await;
    c.quiet().await;
    assert_eq!(p.channels(), vec![("room".to_string(), 1)]);
}

#[tokio::test]
async fn publish_reaches_the_channel_members_or_every_member_with_an_empty_channel() {
    let (server, _p) = start_default().await;
    let (mut a, mut b, mut c) = room_with_a_and_b(server.local_addr()).await;
    a.publish("hello", "room").await;
    let f = publish_frame(r#""hello""#, "room", &m("a1", "alice", ""));
    a.expect(&f).await;
    a.quiet().await;
    b.expect(&f).await;
    b.quiet().await;
    c.quiet().await;
    // Empty channel: everyone, member as sent (only the id filled).
    c.publish("to all", "").await;
    let f = publish_frame(r#""to all""#, "", &m("c3", "", ""));
    c.expect(&f).await;
    c.quiet().await;
    for x in [&mut a, &mut b] {
        x.expect(&f).await;
        x.quiet().await;
    }
    // A Delphi Publish('{"id":42}') arrives as a raw object and is forwarded unquoted.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@publish@msg","message":{"text":{"id":42}},"channel":{"name":"room"},"member":{"id":"a1","name":"","info":""}}"#).await;
    let f = publish_frame(r#"{"id":42}"#, "room", &m("a1", "alice", ""));
    a.expect(&f).await;
    b.expect(&f).await;
}

#[tokio::test]
async fn get_members_answers_the_requester_only_with_the_channel_or_everyone() {
    let (server, _p) = start_default().await;
    let (mut a, mut b, mut c) = three(server.local_addr()).await;
    b.join("room").await;
    b.expect(&channel_member_frame(
        "channel@member@new",
        &m("b2", "bob", ""),
        "room",
    ))
    .await;
    c.join("room").await;
    let cmn = channel_member_frame("channel@member@new", &m("c3", "carol", ""), "room");
    c.expect(&cmn).await;
    b.expect(&cmn).await;
    // Asking needs no membership of the channel.
    a.get_members("room").await;
    a.expect(&send_members_frame(
        "room",
        &m("a1", "alice", ""),
        &[m("b2", "bob", ""), m("c3", "carol", "")],
    ))
    .await;
    a.get_members("").await;
    a.expect(&send_members_frame(
        "",
        &m("a1", "alice", ""),
        &[
            m("a1", "alice", ""),
            m("b2", "bob", ""),
            m("c3", "carol", ""),
        ],
    ))
    .await;
    a.quiet().await;
    b.quiet().await;
    c.quiet().await;
}

#[tokio::test]
async fn invitation_reaches_each_listed_existing_member_with_the_inviter_as_sent() {
    let (server, _p) = start_default().await;
    let (mut a, mut b, mut c) = three(server.local_addr()).await;
    // The inviter's name is forwarded as sent, not looked up; unknown invitees are skipped;
    // an invitee listed twice gets it once.
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@channel@invitation","channel":{"name":"room-42"},"member":{"id":"a1","name":"Alice (as sent)","info":"i"},"members":[{"id":"b2","name":"","info":""},{"id":"ghost","name":"","info":""},{"id":"b2","name":"","info":""}]}"#).await;
    a.quiet().await;
    b.expect(&invitation_frame(
        "room-42",
        &m("a1", "Alice (as sent)", "i"),
    ))
    .await;
    b.quiet().await;
    c.quiet().await;
}

#[tokio::test]
async fn member_remove_leaves_every_channel_then_is_announced_to_the_remaining_members() {
    let (server, p) = start_default().await;
    let (mut a, mut b, mut c) = room_with_a_and_b(server.local_addr()).await;
    a.join("solo").await;
    a.expect(&channel_member_frame(
        "channel@member@new",
        &m("a1", "alice", ""),
        "solo",
    ))
    .await;
    a.remove().await;
    a.quiet().await;
    b.expect(&channel_member_frame(
        "channel@member@remove",
        &m("a1", "alice", ""),
        "room",
    ))
    .await;
    let mr = member_frame("member@remove", &m("a1", "alice", ""));
    b.expect(&mr).await;
    b.quiet().await;
    c.expect(&mr).await;
    c.quiet().await;
    assert_eq!(p.channels(), vec![("room".to_string(), 1)], "solo is freed");
    assert!(p.member("a1").is_none());
    // The connection may become a member again.
    a.member_new("a1", "alice2", "").await;
    a.expect(&member_frame("member@new", &m("a1", "alice2", "")))
        .await;
}

#[tokio::test]
async fn disconnect_purges_a_js_member_with_a_custom_id() {
    let (server, p) = start_default().await;
    let addr = server.local_addr();
    let mut d = PClient::member(addr, "", "delphi").await;
    let mut js = PClient::connect_js(addr).await;
    js.member_new("1f3a9c0b77e2", "jsuser", "").await;
    let jm = m("1f3a9c0b77e2", "jsuser", "");
    js.expect(&member_frame("member@new", &jm)).await;
    d.expect(&member_frame("member@new", &jm)).await;
    js.join("room").await;
    js.expect(&channel_member_frame("channel@member@new", &jm, "room"))
        .await;
    d.join("room").await;
    let dm = m(&d.guid, "delphi", "");
    let cmn = channel_member_frame("channel@member@new", &dm, "room");
    d.expect(&cmn).await;
    js.expect(&cmn).await;
    js.close().await;
    d.expect(&channel_member_frame("channel@member@remove", &jm, "room"))
        .await;
    d.expect(&member_frame("member@remove", &jm)).await;
    d.get_members("").await;
    d.expect(&send_members_frame("", &dm, std::slice::from_ref(&dm)))
        .await;
    assert_eq!(p.member_count(), 1, "no ghost");
}

#[tokio::test]
async fn abrupt_disconnect_purges_a_delphi_member_with_its_guid() {
    let (server, p) = start_default().await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "", "alice").await;
    let b = PClient::member(addr, "", "bob").await;
    let bm = m(&b.guid, "bob", "");
    a.expect(&member_frame("member@new", &bm)).await;
    // No close frame: the TCP connection just goes away.
    drop(b);
    a.expect(&member_frame("member@remove", &bm)).await;
    a.quiet().await;
    assert_eq!(p.members().len(), 1);
}

#[tokio::test]
async fn channels_are_freed_when_empty_and_re_creation_fires_on_new_channel_again() {
    let (server, p) = start_default().await;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    p.on_event(move |e| match e {
        AppEvent::NewChannel { channel, .. } => l.lock().push(format!("new {channel}")),
        AppEvent::ChannelFreed { channel, .. } => l.lock().push(format!("freed {channel}")),
        _ => {}
    });
    let asked = Arc::new(Mutex::new(0));
    let n = asked.clone();
    p.on_before_new_channel(move |_, _, _| {
        *n.lock() += 1;
        true
    });
    let mut a = PClient::member(server.local_addr(), "a", "alice").await;
    let cmn = channel_member_frame("channel@member@new", &m("a", "alice", ""), "r");
    let cmr = channel_member_frame("channel@member@remove", &m("a", "alice", ""), "r");
    a.join("r").await;
    a.expect(&cmn).await;
    a.leave("r").await;
    a.expect(&cmr).await;
    assert!(p.channels().is_empty());
    a.join("r").await;
    a.expect(&cmn).await;
    assert_eq!(*log.lock(), vec!["new r", "freed r", "new r"]);
    assert_eq!(*asked.lock(), 2);
}

#[tokio::test]
async fn server_broadcast_is_a_publish_with_an_empty_member() {
    let (server, p) = start_default().await;
    let (mut a, mut b, mut c) = room_with_a_and_b(server.local_addr()).await;
    assert_eq!(p.broadcast("hi", "room"), 2);
    let f = publish_frame(r#""hi""#, "room", &m("", "", ""));
    a.expect(&f).await;
    b.expect(&f).await;
    c.quiet().await;
    assert_eq!(p.broadcast(r#"{"k":[1]}"#, ""), 3);
    let f = publish_frame(r#"{"k":[1]}"#, "", &m("", "", ""));
    for x in [&mut a, &mut b, &mut c] {
        x.expect(&f).await;
        x.quiet().await;
    }
    assert_eq!(p.broadcast("nobody", "no-such-channel"), 0);
}

#[tokio::test]
async fn read_api_and_application_events() {
    let (server, p) = start_default().await;
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = log.clone();
    p.on_event(move |e| {
        let s = match e {
            AppEvent::Connected { .. } => "connected".to_string(),
            AppEvent::Disconnected { .. } => "disconnected".to_string(),
            AppEvent::NewMember { member, .. } => format!("member {}", member.id),
            AppEvent::RemoveMember { member, .. } => format!("-member {}", member.id),
            AppEvent::NewChannel { channel, .. } => format!("channel {channel}"),
            AppEvent::ChannelFreed { channel, .. } => format!("-channel {channel}"),
            AppEvent::NewChannelMember {
                channel, member, ..
            } => {
                format!("join {} {channel}", member.id)
            }
            AppEvent::RemoveChannelMember {
                channel, member, ..
            } => {
                format!("leave {} {channel}", member.id)
            }
            AppEvent::Publish {
                channel, message, ..
            } => {
                format!("publish {channel} {}", message.as_text())
            }
            AppEvent::Invitation { invitee, .. } => format!("invite {invitee}"),
            AppEvent::Error { error, .. } => format!("error {}", error.code()),
        };
        l.lock().push(s);
    });
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    a.join("r").await;
    a.expect(&channel_member_frame(
        "channel@member@new",
        &m("a", "alice", ""),
        "r",
    ))
    .await;
    let conn = server
        .connection(&a.guid)
        .unwrap_or_else(|| panic!("no conn"));
    assert_eq!(
        p.member_of(&conn).map(|m| m.name.to_string()),
        Some("alice".into())
    );
    assert_eq!(
        p.channel_members("r")
            .unwrap_or_default()
            .iter()
            .map(|m| m.id.to_string())
            .collect::<Vec<_>>(),
        vec!["a"]
    );
    assert!(p.channel_members("nope").is_none());
    a.publish("x", "r").await;
    a.recv().await;
    a.leave("nope").await;
    a.recv().await;
    a.close().await;
    assert!(
        support::eventually(support::DEFAULT_WAIT, || log
            .lock()
            .last()
            .is_some_and(|s| s == "disconnected"))
        .await
    );
    assert_eq!(
        *log.lock(),
        vec![
            "connected",
            "member a",
            "channel r",
            "join a r",
            "publish r x",
            "error 5",
            "leave a r",
            "-channel r",
            "-member a",
            "disconnected"
        ]
    );
    assert_eq!(p.member_count(), 0);
}
