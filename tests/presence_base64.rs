//! Base64 (docs/wire.md §1.4): `sgc@b64:` values are decoded everywhere on input (JS clients encode
//! everything, `method` included); with `encode_base64` every outgoing string but `jsonrpc` is
//! encoded, except the entries of member lists (docs/wire.md §3.6, docs/presence.md).

mod presence_support;
mod support;

use presence_support::*;
use wscluster::internals::protocol::presence::PresenceConfig;

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
    // Expected values are literals (computed outside the crate), never the crate's own encoder.
    let mut a = PClient::connect(server.local_addr()).await;
    // The session GUID is random: its encoded form is decoded with the base64 crate and must
    // give the GUID back; the rest of the frame is literal.
    let session: serde_json::Value =
        serde_json::from_str(&a.session).unwrap_or_else(|e| panic!("{e}: {}", a.session));
    let guid_b64 = session["message"]["text"].as_str().unwrap_or_default();
    let decoded = {
        use base64::Engine as _;
        let body = guid_b64
            .strip_prefix("sgc@b64:")
            .unwrap_or_else(|| panic!("{guid_b64}"));
        base64::engine::general_purpose::STANDARD
            .decode(body)
            .unwrap_or_else(|e| panic!("{e}: {guid_b64}"))
    };
    assert_eq!(decoded, a.guid.as_bytes(), "{}", a.session);
    assert_eq!(
        a.session,
        format!(
            r#"{{"jsonrpc":"2.0","method":"sgc@b64:c2djQHByZXNlbmNlQHNlc3Npb24=","message":{{"text":"{guid_b64}"}}}}"#
        )
    );
    let member_b64 = format!(
        r#"{{"id":"{}","name":"{}","info":""}}"#,
        "sgc@b64:YTE=", "sgc@b64:YWxpY2U="
    );
    a.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{"id":"a1","name":"alice","info":""},"id":"i1"}"#).await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","id":"{}"}}"#,
        "sgc@b64:c2djQHByZXNlbmNlQGFja25vd2xlZGdtZW50", "sgc@b64:aTE="
    ))
    .await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","member":{member_b64}}}"#,
        "sgc@b64:c2djQHByZXNlbmNlQG1lbWJlckBuZXc="
    ))
    .await;
    a.id = "a1".into();
    a.get_members("").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","channel":{{"name":""}},"member":{member_b64},"members":[{}]}}"#,
        "sgc@b64:c2djQHByZXNlbmNlQHNlbmRAbWVtYmVycw==",
        m("a1", "alice", "")
    ))
    .await;
    a.publish("{\"x\":1}", "").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","message":{{"text":"{}"}},"channel":{{"name":""}},"member":{{"id":"{}","name":"","info":""}}}}"#,
        "sgc@b64:c2djQHByZXNlbmNlQHB1Ymxpc2hAbXNn",
        "sgc@b64:eyJ4IjoxfQ==",
        "sgc@b64:YTE="
    ))
    .await;
    a.leave("r").await;
    a.expect(&format!(
        r#"{{"jsonrpc":"2.0","method":"{}","error":{{"code":5,"text":"{}"}},"channel":{{"name":"{}"}},"member":{member_b64}}}"#,
        "sgc@b64:c2djQHByZXNlbmNlQGVycm9yQG1lbWJlckBjaGFubmVs",
        "sgc@b64:Q2hhbm5lbCBub3QgZXhpc3Rz",
        "sgc@b64:cg=="
    ))
    .await;
}
