//! Authentication of WebSocket upgrades (docs/wire.md §1.6) over real sockets, with sgc clients: URL,
//! single-use session tokens, Basic, the user list and the application hook, refusal with HTTP 404,
//! and `allow_non_auth`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;

use support::sgc::*;
use support::*;
use wscluster::config::AuthConfig;
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::internals::transport::auth::AuthAttempt;
use wscluster::{Server, ServerHandle};

/// A node with sgc and this authentication; `alice`/`secret` is in the user list and the hook
/// accepts `bob`/`hook-pw`.
async fn node(cfg: impl FnOnce(&mut AuthConfig)) -> (ServerHandle, SgcProtocol) {
    init_logs();
    let mut auth = AuthConfig {
        enabled: true,
        ..AuthConfig::default()
    };
    auth.users.insert("alice".into(), "secret".into());
    cfg(&mut auth);
    let sgc = SgcProtocol::new(SgcConfig::default());
    let server = Server::new(test_server_config())
        .auth(auth)
        .auth_hook(|a: &AuthAttempt<'_>| a.user == "bob" && a.password == "hook-pw")
        .protocol(Arc::new(sgc.clone()))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    (server, sgc)
}

/// Connects at `path` with `headers`, expects S1, and returns the authenticated user.
async fn connect_user(
    addr: SocketAddr,
    sgc: &SgcProtocol,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<String> {
    let mut c = WsClient::connect_with(addr, path, &["esegece.com"], headers)
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = c.recv().await;
    let s: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let guid = s["result"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(text, s1(&guid, "qosLevel0"));
    c.barrier().await;
    let user = sgc
        .connection(&guid)
        .unwrap_or_else(|| panic!("no connection {guid}"))
        .user()
        .map(str::to_owned);
    c.close().await;
    user
}

/// The status line of a raw upgrade at `path` with extra header lines.
async fn upgrade_status(addr: SocketAddr, path: &str, headers: &str) -> String {
    let resp = raw_http(addr, &upgrade_request(path, "esegece.com", headers)).await;
    resp.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn url_authentication_with_the_user_list_and_the_hook() {
    let (server, sgc) = node(|_| {}).await;
    let addr = server.local_addr();
    assert_eq!(
        connect_user(addr, &sgc, "/sgc/auth/url/alice/secret", &[]).await,
        Some("alice".into())
    );
    assert_eq!(
        connect_user(addr, &sgc, "/sgc/auth/url/bob/hook-pw", &[]).await,
        Some("bob".into())
    );
    for path in [
        "/sgc/auth/url/alice/wrong",
        "/sgc/auth/url/bob/secret",
        "/sgc/auth/url/nobody/x",
        "/sgc/auth/url/",
        "/",
    ] {
        assert_eq!(
            upgrade_status(addr, path, "").await,
            "HTTP/1.1 404 Not Found",
            "{path}"
        );
    }
    // Only the two accepted clients ever connected, and they are gone.
    assert!(eventually(DEFAULT_WAIT, || sgc.connection_count() == 0).await);
    assert_eq!(server.connection_count(), 0);
}

#[tokio::test]
async fn session_tokens_are_issued_to_valid_users_and_single_use() {
    let (server, sgc) = node(|_| {}).await;
    let addr = server.local_addr();
    let resp = raw_http(
        addr,
        "GET /sgc/req/auth/session/alice/secret HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{resp}"
    );
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let token = body.lines().next().unwrap_or_default().to_owned();
    assert_eq!(token.len(), 32, "{body:?}");
    assert_eq!(
        body,
        format!("{token}\r\n\r\n\r\n"),
        "<SessionID> CRLF <extensions> CRLF <protocol> CRLF"
    );
    let path = format!("/sgc/auth/session/{token}");
    assert_eq!(
        connect_user(addr, &sgc, &path, &[]).await,
        Some("alice".into())
    );
    assert_eq!(
        upgrade_status(addr, &path, "").await,
        "HTTP/1.1 404 Not Found",
        "reuse"
    );
    // Hook users get tokens too; bad credentials get 404.
    let resp = raw_http(
        addr,
        "GET /sgc/req/auth/session/bob/hook-pw HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let resp = raw_http(
        addr,
        "GET /sgc/req/auth/session/alice/nope HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert_eq!(
        upgrade_status(addr, "/sgc/auth/session/NOTATOKEN", "").await,
        "HTTP/1.1 404 Not Found"
    );
}

#[tokio::test]
async fn session_requests_are_refused_when_sessions_are_off() {
    let (server, _sgc) = node(|a| a.session = false).await;
    let resp = raw_http(
        server.local_addr(),
        "GET /sgc/req/auth/session/alice/secret HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

#[tokio::test]
async fn basic_authentication_only_when_enabled() {
    // "alice:secret", "bob:hook-pw", "alice:bad"
    let good = "Basic YWxpY2U6c2VjcmV0";
    let hook = "Basic Ym9iOmhvb2stcHc=";
    let bad = "Basic YWxpY2U6YmFk";
    let (server, _sgc) = node(|_| {}).await;
    assert_eq!(
        upgrade_status(
            server.local_addr(),
            "/",
            &format!("Authorization: {good}\r\n")
        )
        .await,
        "HTTP/1.1 404 Not Found"
    );
    let (server, sgc) = node(|a| a.basic = true).await;
    let addr = server.local_addr();
    assert_eq!(
        connect_user(addr, &sgc, "/", &[("authorization", good)]).await,
        Some("alice".into())
    );
    assert_eq!(
        connect_user(addr, &sgc, "/", &[("authorization", hook)]).await,
        Some("bob".into())
    );
    assert_eq!(
        upgrade_status(addr, "/", &format!("Authorization: {bad}\r\n")).await,
        "HTTP/1.1 404 Not Found"
    );
}

#[tokio::test]
async fn url_mode_can_be_switched_off() {
    let (server, _sgc) = node(|a| a.url = false).await;
    assert_eq!(
        upgrade_status(server.local_addr(), "/sgc/auth/url/alice/secret", "").await,
        "HTTP/1.1 404 Not Found"
    );
}

#[tokio::test]
async fn allow_non_auth_admits_anonymous_connections() {
    let (server, sgc) = node(|a| a.allow_non_auth = true).await;
    let addr = server.local_addr();
    assert_eq!(connect_user(addr, &sgc, "/", &[]).await, None);
    assert_eq!(
        connect_user(addr, &sgc, "/sgc/auth/url/alice/wrong", &[]).await,
        None
    );
    assert_eq!(
        connect_user(addr, &sgc, "/sgc/auth/url/alice/secret", &[]).await,
        Some("alice".into())
    );
}

#[tokio::test]
async fn disabled_authentication_ignores_credentials() {
    let (server, sgc) = node(|a| a.enabled = false).await;
    let addr = server.local_addr();
    assert_eq!(connect_user(addr, &sgc, "/", &[]).await, None);
    assert_eq!(
        connect_user(addr, &sgc, "/sgc/auth/url/alice/wrong", &[]).await,
        None
    );
}
