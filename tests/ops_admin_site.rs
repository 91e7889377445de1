//! The admin routes served without a token, against requests a page of another site can make a
//! browser send (a foreign `Origin`, any `Host` through DNS rebinding, a `text/plain` body): refused,
//! and nothing published; and `/metrics` and `/status` behind the token when configured. The other
//! operations routes are in `tests/ops_http.rs`.

mod ops_support;
mod presence_support;
mod support;

use ops_support::*;
use support::WsClient;
use support::sgc::s5;

#[tokio::test]
async fn metrics_and_status_can_be_put_behind_the_token() {
    let a = OpsNode::start(NodeSpec {
        metrics_token_required: true,
        ..NodeSpec::new("a")
    })
    .await;
    for path in ["/metrics", "/status"] {
        let r = request(a.ws(), "GET", path, None, None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let r = request(a.ws(), "GET", path, Some("wrong"), None).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
        let r = get(a.ws(), path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    // Health and readiness stay open for probes.
    let r = request(a.ws(), "GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
}

/// A request as a page of another site can make a browser send it: any `Host` (DNS rebinding),
/// its own `Origin`, a `text/plain` body (no CORS preflight).
fn cross_site(
    method: &str,
    path: &str,
    host: &str,
    origin: Option<&str>,
    ct: &str,
    body: &str,
) -> Vec<u8> {
    let origin = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: {ct}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test]
async fn token_less_admin_port_refuses_cross_site_requests_and_publishes_nothing() {
    let spec = NodeSpec {
        token: String::new(),
        admin_port: true,
        ..NodeSpec::new("a")
    };
    let a = OpsNode::start(spec).await;
    let admin = a.admin_addr();
    let own = admin.to_string();
    let (mut sub, _) = WsClient::sgc(a.ws()).await;
    sub.subscribe("news").await;
    // The path works: a same-site JSON publish arrives.
    let r = request(
        admin,
        "POST",
        "/admin/publish",
        None,
        Some(r#"{"channel":"news","message":"before"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sub.expect(&s5("news", r#""before""#)).await;

    let evil = "evil.example:80";
    let local_name = format!("localhost:{}", admin.port());
    let attempts: [(&str, Option<&str>, &str, u16); 5] = [
        // Foreign page, foreign Host (DNS rebinding): 421.
        (evil, Some("http://evil.example"), "text/plain", 421),
        (evil, None, "application/json", 421),
        // The right Host but a foreign Origin: 403.
        (&own, Some("http://evil.example"), "application/json", 403),
        (&own, Some("null"), "text/plain", 403),
        // The right Host, no Origin, not JSON (a form or a simple request): 415.
        (&local_name, None, "text/plain", 415),
    ];
    for (i, (host, origin, ct, status)) in attempts.iter().enumerate() {
        for path in ["/admin/publish", "/admin/broadcast"] {
            let body = format!(r#"{{"channel":"news","message":"evil {i}"}}"#);
            let r = raw(admin, &cross_site("POST", path, host, *origin, ct, &body)).await;
            assert_eq!(
                r.status, *status,
                "{path} {host} {origin:?} {ct}: {}",
                r.body
            );
            assert!(
                r.json()["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{}",
                r.body
            );
        }
    }
    // Reads check the Host too: a rebinding page cannot list the connections.
    for path in ["/admin/connections", "/status.json", "/admin/channels"] {
        let r = raw(
            admin,
            &cross_site("GET", path, evil, None, "text/plain", ""),
        )
        .await;
        assert_eq!(r.status, 421, "{path}: {}", r.body);
        assert!(!r.body.contains("connections\""), "{}", r.body);
    }
    // Open routes stay open (health probes use any Host).
    let r = raw(
        admin,
        &cross_site("GET", "/health", evil, None, "text/plain", ""),
    )
    .await;
    assert_eq!(r.status, 200);

    // A same-site JSON POST (the page's own Origin, a loopback name) still works.
    let origin = format!("http://{local_name}");
    let r = raw(
        admin,
        &cross_site(
            "POST",
            "/admin/publish",
            &local_name,
            Some(&origin),
            "application/json; charset=utf-8",
            r#"{"channel":"news","message":"after"}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Nothing refused was published: the next frame is the one sent after them, and nothing
    // follows it (the barrier's answer comes next).
    sub.expect(&s5("news", r#""after""#)).await;
    sub.barrier().await;
}
