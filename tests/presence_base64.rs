//! Base64 (docs/wire.md §1.4): `sgc@b64:` values are decoded everywhere on input (JS clients encode
//! everything, `method` included); with `encode_base64` every outgoing string but `jsonrpc` is
//! encoded, except the entries of member lists (docs/wire.md §3.6, docs/presence.md).

mod presence_support;
mod support;

use presence_support::*;
use wscluster::protocol::json::encode_b64;
use wscluster::protocol::presence::PresenceConfig;

#[tokio::test]
async fn js_style_frames_with_base64_values_are_decoded_everywhere() {
    let (server, _p) = start_default().await;
    let addr = server.local_addr();
    let mut d = PClient::member(addr, "", "delphi").await;
    let dm = m(&d.guid, "delphi", "");
    let mut js = PClient::connect_js(addr).await;
    js.member_new("js-1", "Jösé \"J\"", "multi\r\nline").await;
    let jm = m("js-1", "Jösé \"J\"", "multi\r\nline");
    js.expect(&member_frame("member@new", &jm)).await;
    d.expect(&member_frame("member@new", &jm)).await;
    js.join("sala ñ").await;
    js.expect(&channel_member_frame("channel@member@new", &jm, "sala ñ"))
        .await;
    d.join("sala ñ").await;
    let cmn = channel_member_frame("channel@member@new", &dm, "sala ñ");
    d.expect(&cmn).await;
    js.expect(&cmn).await;
    js.publish("héllo {not json", "sala ñ").await;
    let f = publish_frame(&q("héllo {not json"), "sala ñ", &jm);
    js.expect(&f).await;
    d.expect(&f).await;
    js.get_members("sala ñ").await;
    js.expect(&send_members_frame(
        "sala ñ",
        &jm,
        &[jm.clone(), dm.clone()],
    ))
    .await;
    js.invite("sala ñ", &[&d.guid]).await;
    // The inviter as sent: the JS client sent empty name and info.
    d.expect(&invitation_frame("sala ñ", &m("js-1", "", "")))
        .await;
    js.quiet().await;
    d.quiet().await;
}

#[tokio::test]
async fn encode_base64_encodes_every_string_but_jsonrpc_and_member_list_entries() {
    let (server, _p) = start(PresenceConfig {
        encode_base64: true,
        ..PresenceConfig::default()
    })
    .await;
    let b = encode_b64;
    let mut a = PClient::connect(server.local_addr()).await;
    assert_eq!(
        a.session,
        format!(
            r#"{{"jsonrpc":"2.0","method":"{}","message":{{"text":"{}"}}}}"#,
            b("sgc@presence@session"),
            b(&a.guid)
        )
    );
    let member_b64 = format!(
        r#"{{"id":"{}","name":"{}","info":""}}"#,
        b("a1"),
        b("alice")
    );
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"a1","name":"alice","info":""},"id":"i1"}"#).await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","id":"{}"}}"#,
        b("sgc@presence@acknowledgment"),
        b("i1")
    ))
    .await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","member":{member_b64}}}"#,
        b("sgc@presence@member@new")
    ))
    .await;
    a.id = "a1".into();
    a.get_members("").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","channel":{{"name":""}},"member":{member_b64},"members":[{}]}}"#,
        b("sgc@presence@send@members"),
        m("a1", "alice", "")
    ))
    .await;
    a.publish("{\"x\":1}", "").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","message":{{"text":"{}"}},"channel":{{"name":""}},"member":{{"id":"{}","name":"","info":""}}}}"#,
        b("sgc@presence@publish@msg"),
        b("{\"x\":1}"),
        b("a1")
    ))
    .await;
    a.leave("r").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","error":{{"code":5,"text":"{}"}},"channel":{{"name":"{}"}},"member":{member_b64}}}"#,
        b("sgc@presence@error@member@channel"),
        b("Channel not exists"),
        b("r")
    ))
    .await;
}
