//! Bearer tokens and channel rules over real sockets: JWTs (made here with the same crate) in the
//! `Authorization` header or a query parameter, refusals with HTTP 404, the application's bearer
//! hook, and `[[auth.rules]]` refusing sgc subscribes/publishes and Presence joins/publishes the
//! way an application hook saying no does.

mod presence_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use presence_support::{PClient, channel_member_frame, error_frame, m};
use serde_json::{Value, json};
use support::sgc::*;
use support::*;
use wscluster::config::AuthConfig;
use wscluster::internals::protocol::access::{ChannelRule, ChannelRules};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::internals::transport::bearer::{BearerAttempt, Identity};
use wscluster::{Server, ServerHandle};

const SECRET: &str = "test-secret";

struct Node {
    _server: ServerHandle,
    sgc: SgcProtocol,
    addr: SocketAddr,
}

/// A node with sgc and Presence, JWT (HS256, issuer `test`, audience `ws`) on, and `rules`.
async fn node(
    rules: Vec<ChannelRule>,
    cfg: impl FnOnce(&mut AuthConfig),
    server: impl FnOnce(Server) -> Server,
) -> (Node, PresenceProtocol) {
    init_logs();
    let mut auth = AuthConfig::default();
    auth.jwt.enabled = true;
    auth.jwt.secret = SECRET.into();
    auth.jwt.issuer = "test".into();
    auth.jwt.audience = "ws".into();
    auth.jwt.leeway_s = 0;
    cfg(&mut auth);
    let rules = Arc::new(ChannelRules::new(&rules).unwrap_or_else(|e| panic!("{e}")));
    let sgc = SgcProtocol::new(SgcConfig::default());
    sgc.channel_rules(rules.clone());
    let presence = PresenceProtocol::new(PresenceConfig::default());
    presence.channel_rules(rules);
    let s = Server::new(test_server_config())
        .auth(auth)
        .protocol(Arc::new(sgc.clone()))
        .protocol(Arc::new(presence.clone()));
    let handle = server(s)
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = handle.local_addr();
    (
        Node {
            _server: handle,
            sgc,
            addr,
        },
        presence,
    )
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Good claims for `sub`, valid for a minute.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "iss": "test", "aud": "ws", "exp": now() + 60, "roles": ["reader"]})
}

fn jwt(claims: &Value, secret: &str) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn token(sub: &str) -> String {
    jwt(&claims(sub), SECRET)
}

/// Connects an sgc client at `path` with `headers`, checks S1, returns it with its GUID.
async fn sgc_at(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> (WsClient, String) {
    let mut c = WsClient::connect_with(addr, path, &["esegece.com"], headers)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = c.recv().await;
    let s: Value = serde_json::from_str(&text).unwrap_or_default();
    let guid = s["result"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(text, s1(&guid, "qosLevel0"));
    (c, guid)
}

/// An sgc client authenticated as `sub` by a header token.
async fn sgc_as(addr: SocketAddr, sub: &str) -> (WsClient, String) {
    let bearer = format!("Bearer {}", token(sub));
    sgc_at(addr, "/", &[("authorization", &bearer)]).await
}

/// The status line of a raw upgrade at `path` with extra header lines.
async fn upgrade_status(addr: SocketAddr, path: &str, headers: &str) -> String {
    let resp = raw_http(addr, &upgrade_request(path, "esegece.com", headers)).await;
    resp.lines().next().unwrap_or_default().to_owned()
}

fn rule(identity: Option<&str>, anonymous: bool, sub: &[&str], publ: &[&str]) -> ChannelRule {
    ChannelRule {
        identity: identity.map(str::to_owned),
        role: None,
        anonymous,
        subscribe: sub.iter().map(|s| s.to_string()).collect(),
        publish: publ.iter().map(|s| s.to_string()).collect(),
    }
}

#[tokio::test]
async fn a_valid_jwt_names_the_user_in_the_header_or_the_query() {
    let (n, _) = node(vec![], |_| {}, |s| s).await;
    let (mut c, guid) = sgc_as(n.addr, "alice").await;
    c.barrier().await;
    let conn = n
        .sgc
        .connection(&guid)
        .unwrap_or_else(|| panic!("no {guid}"));
    assert_eq!(conn.user(), Some("alice"));
    assert_eq!(
        conn.claims().and_then(|c| c.get("roles")).cloned(),
        Some(json!(["reader"]))
    );
    for param in ["access_token", "token"] {
        let path = format!("/?{param}={}", token("bob"));
        let (mut c, guid) = sgc_at(n.addr, &path, &[]).await;
        c.barrier().await;
        let user = n
            .sgc
            .connection(&guid)
            .and_then(|c| c.user().map(str::to_owned));
        assert_eq!(user.as_deref(), Some("bob"), "{param}");
    }
    // Without a token (not required): anonymous.
    let (mut c, guid) = sgc_at(n.addr, "/", &[]).await;
    c.barrier().await;
    assert_eq!(
        n.sgc.connection(&guid).map(|c| c.user().is_none()),
        Some(true)
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_404() {
    let (n, _) = node(vec![], |_| {}, |s| s).await;
    let mut expired = claims("alice");
    expired["exp"] = json!(now() - 10);
    let mut other_audience = claims("alice");
    other_audience["aud"] = json!("elsewhere");
    let mut no_exp = claims("alice");
    no_exp.as_object_mut().map(|o| o.remove("exp"));
    let bad = [
        ("expired", jwt(&expired, SECRET)),
        ("wrong signature", jwt(&claims("alice"), "not-the-secret")),
        ("wrong audience", jwt(&other_audience, SECRET)),
        ("no exp", jwt(&no_exp, SECRET)),
        ("garbage", "abc.def.ghi".to_owned()),
    ];
    for (what, t) in &bad {
        let header = format!("Authorization: Bearer {t}\r\n");
        assert_eq!(
            upgrade_status(n.addr, "/", &header).await,
            "HTTP/1.1 404 Not Found",
            "{what}"
        );
        assert_eq!(
            upgrade_status(n.addr, &format!("/?access_token={t}"), "").await,
            "HTTP/1.1 404 Not Found",
            "{what} in the query"
        );
    }
    // A good token still works on the same node.
    let (mut c, _) = sgc_as(n.addr, "alice").await;
    c.barrier().await;
}

#[tokio::test]
async fn a_jwt_with_a_crit_header_is_refused() {
    let (n, _) = node(vec![], |_| {}, |s| s).await;
    let signed = |header: &Header| {
        encode(
            header,
            &claims("alice"),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    };
    let critical = Header {
        crit: Some(vec!["exp-ext".into()]),
        ..Header::default()
    };
    // Correctly signed, valid claims: only the unknown critical extension is wrong.
    let t = signed(&critical);
    let header = format!("Authorization: Bearer {t}\r\n");
    assert_eq!(
        upgrade_status(n.addr, "/", &header).await,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        upgrade_status(n.addr, &format!("/?access_token={t}"), "").await,
        "HTTP/1.1 404 Not Found"
    );
    // The same token without `crit` is accepted.
    let t = signed(&Header::default());
    let (mut c, _) = sgc_at(n.addr, "/", &[("authorization", &format!("Bearer {t}"))]).await;
    c.barrier().await;
}

#[tokio::test]
async fn an_authenticated_client_creates_only_its_own_presence_member() {
    let (n, presence) = node(vec![], |_| {}, |s| s).await;
    let mut alice = PClient::connect_at(n.addr, &format!("/?token={}", token("alice"))).await;
    // Claiming another user's id: error 2, and no member is created.
    alice.member_new("bob", "bob", "").await;
    alice
        .expect(&error_frame(
            2,
            "Create New Member request has been denied.",
            "",
            &m("bob", "bob", ""),
        ))
        .await;
    alice.quiet().await;
    assert_eq!(presence.member_count(), 0);
    // The real bob still gets his id.
    let mut bob = PClient::connect_at(n.addr, &format!("/?token={}", token("bob"))).await;
    bob.member_new("bob", "Bob", "").await;
    bob.expect(&presence_support::member_frame(
        "member@new",
        &m("bob", "Bob", ""),
    ))
    .await;
    // Its own id is accepted.
    alice.member_new("alice", "Alice", "").await;
    alice
        .expect(&presence_support::member_frame(
            "member@new",
            &m("alice", "Alice", ""),
        ))
        .await;
    alice.quiet().await;
    assert_eq!(presence.member_count(), 2);
}

#[tokio::test]
async fn a_required_token_refuses_upgrades_without_one() {
    let (n, _) = node(vec![], |a| a.jwt.required = true, |s| s).await;
    assert_eq!(
        upgrade_status(n.addr, "/", "").await,
        "HTTP/1.1 404 Not Found"
    );
    // A query parameter not in the list does not count.
    let path = format!("/?jwt={}", token("alice"));
    assert_eq!(
        upgrade_status(n.addr, &path, "").await,
        "HTTP/1.1 404 Not Found"
    );
    let (mut c, _) = sgc_as(n.addr, "alice").await;
    c.barrier().await;
}

#[tokio::test]
async fn the_application_bearer_hook_replaces_jwt_verification() {
    let (n, _) = node(
        vec![],
        |a| a.jwt.required = true,
        |s| {
            s.bearer_hook(|a: &BearerAttempt<'_>| {
                (a.token == "letmein").then(|| Identity::from("carol"))
            })
        },
    )
    .await;
    let (mut c, guid) = sgc_at(n.addr, "/", &[("authorization", "Bearer letmein")]).await;
    c.barrier().await;
    let user = n
        .sgc
        .connection(&guid)
        .and_then(|c| c.user().map(str::to_owned));
    assert_eq!(user.as_deref(), Some("carol"));
    // A JWT the built-in verification would accept is the hook's to judge: refused.
    let header = format!("Authorization: Bearer {}\r\n", token("alice"));
    assert_eq!(
        upgrade_status(n.addr, "/", &header).await,
        "HTTP/1.1 404 Not Found"
    );
}

#[tokio::test]
async fn rules_refuse_a_publish_like_a_hook_and_deliver_nothing() {
    let rules = vec![
        rule(Some("reader"), false, &["news.*"], &[]),
        rule(Some("writer"), false, &["*"], &["news.*"]),
    ];
    let (n, _) = node(rules, |_| {}, |s| s).await;
    let (mut reader, _) = sgc_as(n.addr, "reader").await;
    let (mut writer, _) = sgc_as(n.addr, "writer").await;
    reader.subscribe("news.today").await;
    writer.subscribe("news.today").await;
    // The reader may not subscribe outside news.* (no S3: the barrier reply comes first).
    reader.send(&delphi::subscribe("sports")).await;
    reader.barrier().await;
    // The reader's publish is dropped: neither subscriber gets it. The reader's barrier reply
    // comes after its publish was handled, so a delivered event would be queued to the writer
    // before the writer's own barrier reply.
    reader
        .send(&delphi::publish(r#""from reader""#, "news.today", ""))
        .await;
    reader.barrier().await;
    writer.barrier().await;
    // So is a broadcast to everyone.
    reader.send(&delphi::broadcast(r#""to all""#, "")).await;
    reader.barrier().await;
    writer.barrier().await;
    // The writer may publish there.
    writer
        .send(&delphi::publish(r#""from writer""#, "news.today", ""))
        .await;
    let event = s5("news.today", r#""from writer""#);
    writer.expect(&event).await;
    reader.expect(&event).await;
    // But not outside news.*.
    writer.subscribe("sports").await;
    writer
        .send(&delphi::publish(r#""goal""#, "sports", ""))
        .await;
    writer.barrier().await;
}

#[tokio::test]
async fn rules_refuse_a_presence_join_with_error_10_and_a_publish_with_error_20() {
    let rules = vec![
        rule(Some("admin"), false, &["*"], &["*"]),
        rule(None, true, &["lobby"], &["lobby"]),
    ];
    let (n, presence) = node(rules, |_| {}, |s| s).await;
    let mut anon = PClient::connect(n.addr).await;
    anon.member_new("a", "anon", "").await;
    anon.expect(&presence_support::member_frame(
        "member@new",
        &m("a", "anon", ""),
    ))
    .await;
    anon.join("vip").await;
    anon.expect(&error_frame(
        10,
        "Create Subscription request has been denied.",
        "vip",
        &m("a", "anon", ""),
    ))
    .await;
    assert!(
        presence.channels().is_empty(),
        "a refused join creates nothing"
    );
    anon.join("lobby").await;
    anon.expect(&channel_member_frame(
        "channel@member@new",
        &m("a", "anon", ""),
        "lobby",
    ))
    .await;
    // To everyone is the channel "", which only "*" allows.
    anon.publish("hi all", "").await;
    anon.expect(&error_frame(
        20,
        "Publish Message request has been denied.",
        "",
        &m("a", "anon", ""),
    ))
    .await;
    // An admin (token in the query) may join anything.
    let mut admin = PClient::connect_at(n.addr, &format!("/?token={}", token("admin"))).await;
    admin.member_new("admin", "boss", "").await;
    admin
        .expect(&presence_support::member_frame(
            "member@new",
            &m("admin", "boss", ""),
        ))
        .await;
    admin.join("vip").await;
    admin
        .expect(&channel_member_frame(
            "channel@member@new",
            &m("admin", "boss", ""),
            "vip",
        ))
        .await;
    admin.quiet().await;
}

#[tokio::test]
async fn a_role_in_the_token_selects_a_rule() {
    let editors = ChannelRule {
        role: Some("editor".into()),
        ..rule(None, false, &["*"], &["*"])
    };
    let (n, _) = node(vec![editors, rule(None, false, &["*"], &[])], |_| {}, |s| s).await;
    // `claims()` gives every token the role "reader": a publish is dropped.
    let (mut reader, _) = sgc_as(n.addr, "rita").await;
    reader.subscribe("desk").await;
    reader
        .send(&delphi::publish(r#""draft""#, "desk", ""))
        .await;
    reader.barrier().await;
    let mut c = claims("eddie");
    c["roles"] = json!(["reader", "editor"]);
    let bearer = format!("Bearer {}", jwt(&c, SECRET));
    let (mut editor, _) = sgc_at(n.addr, "/", &[("authorization", &bearer)]).await;
    editor
        .send(&delphi::publish(r#""final""#, "desk", ""))
        .await;
    reader.expect(&s5("desk", r#""final""#)).await;
}
