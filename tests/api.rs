//! The server API on one real `wscluster` process: every route with its scope (401 without a
//! key or with a wrong one, 403 without the scope), messages reaching sgc subscribers as a client's
//! publish would, keep-alive and pipelining, bad requests answered with a clear 4xx without
//! disturbing other requests, idempotency on one node, the TLS listener, and the key checks at
//! start. Across several nodes: `tests/api_cluster.rs`.

mod api_support;
mod support;

use std::time::Duration;

use api_support::*;
use support::WsClient;
use support::http_client::{HttpClient, request_text};
use support::process::{NodeArgs, NodeProcess};
use support::sgc::{delphi, s5, s6};

/// Each route: a request a key with the route's scope may make.
const ROUTES: [(&str, &str, &str); 6] = [
    ("POST", "/api/publish", r#"{"channel":"c","message":"m"}"#),
    ("POST", "/api/broadcast", r#"{"message":"m"}"#),
    (
        "POST",
        "/api/batch",
        r#"{"commands":[{"method":"publish","params":{"channel":"c","message":1}}]}"#,
    ),
    ("GET", "/api/presence", ""),
    ("GET", "/api/channels", ""),
    ("POST", "/api/disconnect", r#"{"connection":"NOPE"}"#),
];

#[tokio::test]
async fn every_route_needs_a_key_and_its_scope() {
    let a = NodeProcess::start(api_node("a")).await;
    let mut c = HttpClient::connect(a.ws).await;
    for (method, path, body) in ROUTES {
        let r = c.call(method, path, &[], body).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "unauthorized".into()),
            "{path}: {}",
            r.body
        );
        assert!(r.header("www-authenticate").is_some(), "{path}");
        for wrong in ["Bearer all-scopes-key-012345678", "Basic x", "Bearer "] {
            let r = c
                .call(method, path, &[("Authorization", wrong)], body)
                .await;
            assert_eq!(r.status, 401, "{path} with {wrong:?}: {}", r.body);
        }
        let scoped = match path {
            "/api/publish" | "/api/broadcast" | "/api/batch" => PUBLISH,
            "/api/presence" => PRESENCE,
            "/api/channels" => CHANNELS,
            _ => DISCONNECT,
        };
        for key in [PUBLISH, PRESENCE, CHANNELS, DISCONNECT] {
            let r = call(&mut c, method, path, key, body).await;
            if key == scoped {
                // The disconnect of an unknown connection is a 404, past the scope check.
                let want = if path == "/api/disconnect" { 404 } else { 200 };
                assert_eq!(r.status, want, "{path} with its scope: {}", r.body);
            } else {
                assert_eq!(
                    (r.status, r.code()),
                    (403, "forbidden".into()),
                    "{path} without its scope: {}",
                    r.body
                );
            }
        }
        // X-API-Key works too.
        let r = c.call(method, path, &[("X-API-Key", ALL)], body).await;
        assert!(r.status == 200 || r.status == 404, "{path}: {}", r.body);
    }
    // A batch needs the scope of each of its commands.
    let r = call(
        &mut c,
        "POST",
        "/api/batch",
        PUBLISH,
        r#"{"commands":[{"method":"publish","params":{"channel":"c","message":1}},{"method":"disconnect","params":{"connection":"X"}}]}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "forbidden".into()),
        "{}",
        r.body
    );
    // Unknown routes and wrong methods, with the key.
    let r = call(&mut c, "GET", "/api/nope", ALL, "").await;
    assert_eq!(
        (r.status, r.code()),
        (404, "not_found".into()),
        "{}",
        r.body
    );
    let r = call(&mut c, "GET", "/api/publish", ALL, "").await;
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("POST")),
        "{}",
        r.body
    );
    // The admin routes keep their own token: an API key opens nothing there.
    let r = call(&mut c, "GET", "/admin/channels", ALL, "").await;
    assert_eq!(r.status, 403, "{}", r.body);
}

#[tokio::test]
async fn without_keys_every_route_answers_401_api_disabled() {
    let a = NodeProcess::start(NodeArgs::new("a")).await;
    let mut c = HttpClient::connect(a.ws).await;
    for (method, path, body) in ROUTES {
        let r = call(&mut c, method, path, ALL, body).await;
        assert_eq!(
            (r.status, r.code()),
            (401, "api_disabled".into()),
            "{path}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn messages_reach_sgc_subscribers_as_a_client_publish_would() {
    let a = NodeProcess::start(api_node("a")).await;
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("news").await;
    let (mut other, _) = WsClient::sgc(a.ws).await;
    let mut c = HttpClient::connect(a.ws).await;
    // What a client's publish of the same values delivers.
    for message in [r#"{"id":42,"tags":["a"]}"#, r#""hello""#, "[1,2]"] {
        other
            .send(&delphi::publish(message, "news", "queueLevel0"))
            .await;
        sub.expect(&s5("news", message)).await;
        let v = publish(
            &mut c,
            &format!(r#"{{"channel":"news","message":{message}}}"#),
        )
        .await;
        assert_eq!(v["duplicate"], false, "{v}");
        assert_eq!(v["local_deliveries"], 1, "{v}");
        sub.expect(&s5("news", message)).await;
    }
    let r = call(
        &mut c,
        "POST",
        "/api/broadcast",
        PUBLISH,
        r#"{"message":{"all":true}}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sub.expect(&s6("", r#"{"all":true}"#, None, None)).await;
    other.expect(&s6("", r#"{"all":true}"#, None, None)).await;
    let r = call(
        &mut c,
        "POST",
        "/api/broadcast",
        PUBLISH,
        r#"{"message":"n","channel":"news"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    sub.expect(&s6("news", r#""n""#, None, None)).await;
    // `other` is not subscribed to news: its next frame is this barrier's answer.
    other.barrier().await;
}

#[tokio::test]
async fn five_hundred_publishes_on_one_keep_alive_connection_then_pipelined_requests() {
    let a = NodeProcess::start(api_node("a")).await;
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("bulk").await;
    let mut c = HttpClient::connect(a.ws).await;
    for i in 0..500 {
        let r = call(
            &mut c,
            "POST",
            "/api/publish",
            PUBLISH,
            &format!(r#"{{"channel":"bulk","message":{i}}}"#),
        )
        .await;
        assert_eq!(r.status, 200, "publish {i}: {}", r.body);
        assert_ne!(r.header("connection"), Some("close"), "publish {i}");
    }
    for i in 0..500 {
        sub.expect(&s5("bulk", &format!("\"{i}\""))).await;
    }
    // Three requests in one write: three answers, in order, on the same connection.
    let auth = format!("Bearer {ALL}");
    let mut three = String::new();
    for m in ["p1", "p2", "p3"] {
        three.push_str(&request_text(
            "POST",
            "/api/publish",
            &[("Authorization", &auth)],
            &format!(r#"{{"channel":"bulk","message":"{m}"}}"#),
        ));
    }
    c.write_raw(three.as_bytes()).await;
    for _ in 0..3 {
        let r = c.read_reply().await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for m in ["p1", "p2", "p3"] {
        sub.expect(&s5("bulk", &format!("\"{m}\""))).await;
    }
    // Other routes on the same connection are served too (keep-alive).
    let r = c.call("GET", "/health", &[], "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&mut c, "GET", "/api/channels", ALL, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    sub.barrier().await;
}

#[tokio::test]
async fn bad_requests_get_a_clear_4xx_and_other_requests_go_on() {
    let a = NodeProcess::start(api_node("a").set("api.max_body_bytes=2048")).await;
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("ok").await;
    let mut c = HttpClient::connect(a.ws).await;
    let mut good = HttpClient::connect(a.ws).await;
    let cases: [(&str, &str, &str, u16, &str, &str); 9] = [
        (
            "POST",
            "/api/publish",
            r#"{"channel":"x","message":"#,
            400,
            "invalid_json",
            "not valid JSON",
        ),
        (
            "POST",
            "/api/publish",
            r#"{"channel":7,"message":"m"}"#,
            400,
            "invalid_request",
            "channel",
        ),
        (
            "POST",
            "/api/publish",
            r#"{"message":"m"}"#,
            400,
            "invalid_request",
            "channel",
        ),
        (
            "POST",
            "/api/publish",
            r#"{"channel":"","message":"m"}"#,
            400,
            "invalid_request",
            "channel",
        ),
        (
            "POST",
            "/api/publish",
            r#"{"channel":"x","message":"m","idempotency_key":5}"#,
            400,
            "invalid_request",
            "idempotency_key",
        ),
        (
            "POST",
            "/api/batch",
            r#"{"commands":[{"method":"publish","params":{"channel":"ok","message":"no"}},{"method":"explode","params":{}}]}"#,
            400,
            "unknown_method",
            "commands[1]",
        ),
        (
            "POST",
            "/api/batch",
            r#"{"commands":{}}"#,
            400,
            "invalid_request",
            "commands",
        ),
        (
            "GET",
            "/api/presence?channel=nowhere",
            "",
            404,
            "unknown_channel",
            "Presence channel",
        ),
        (
            "POST",
            "/api/disconnect",
            r#"{"connection":"A","member":"B"}"#,
            400,
            "invalid_request",
            "exactly one",
        ),
    ];
    for (method, path, body, status, code, says) in cases {
        let r = call(&mut c, method, path, ALL, body).await;
        assert_eq!(
            (r.status, r.code()),
            (status, code.to_owned()),
            "{body}: {}",
            r.body
        );
        let message = r.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains(says), "{body}: {message}");
        // The same connection and another one still publish.
        publish(&mut c, r#"{"channel":"ok","message":"after"}"#).await;
        sub.expect(&s5("ok", r#""after""#)).await;
        publish(&mut good, r#"{"channel":"ok","message":"other"}"#).await;
        sub.expect(&s5("ok", r#""other""#)).await;
    }
    // An oversize body: 413, then that connection closes; the others go on.
    let big = format!(r#"{{"channel":"ok","message":"{}"}}"#, "x".repeat(4096));
    let r = call(&mut c, "POST", "/api/publish", ALL, &big).await;
    assert_eq!(
        (r.status, r.code()),
        (413, "body_too_large".into()),
        "{}",
        r.body
    );
    assert!(c.closed_within(Duration::from_secs(5)).await);
    publish(&mut good, r#"{"channel":"ok","message":"still"}"#).await;
    sub.expect(&s5("ok", r#""still""#)).await;
    // Nothing of the refused requests was delivered (the refused batch's first command included).
    sub.barrier().await;
}

#[tokio::test]
async fn an_idempotency_key_is_delivered_once() {
    let a = NodeProcess::start(api_node("a")).await;
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("orders").await;
    let mut c = HttpClient::connect(a.ws).await;
    let first = publish(
        &mut c,
        r#"{"channel":"orders","message":"o1","idempotency_key":"order-1"}"#,
    )
    .await;
    assert_eq!(first["duplicate"], false, "{first}");
    sub.expect(&s5("orders", r#""o1""#)).await;
    let again = publish(
        &mut c,
        r#"{"channel":"orders","message":"o1","idempotency_key":"order-1"}"#,
    )
    .await;
    assert_eq!(again["duplicate"], true, "{again}");
    // In a batch too.
    let r = call(
        &mut c,
        "POST",
        "/api/batch",
        ALL,
        r#"{"commands":[{"method":"publish","params":{"channel":"orders","message":"o1","idempotency_key":"order-1"}},{"method":"publish","params":{"channel":"orders","message":"o2","idempotency_key":"order-2"}}]}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.json()["results"].clone();
    assert_eq!(results[0]["result"]["duplicate"], true, "{results}");
    assert_eq!(results[1]["result"]["duplicate"], false, "{results}");
    sub.expect(&s5("orders", r#""o2""#)).await;
    sub.barrier().await;
}

#[tokio::test]
async fn disconnect_a_connection_or_a_presence_member_of_this_node() {
    let a = NodeProcess::start(api_node("a")).await;
    let (mut victim, guid) = WsClient::sgc(a.ws).await;
    let mut c = HttpClient::connect(a.ws).await;
    let r = call(
        &mut c,
        "POST",
        "/api/disconnect",
        DISCONNECT,
        &format!(r#"{{"connection":"{guid}","code":4001,"reason":"bye"}}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["disconnected"], true);
    let (code, reason) = victim.expect_close().await;
    assert_eq!((code, reason.as_str()), (Some(4001), "bye"));
    let r = call(
        &mut c,
        "POST",
        "/api/disconnect",
        DISCONNECT,
        r#"{"connection":"gone","code":999}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "invalid_request".into()),
        "{}",
        r.body
    );
}

/// Runs the binary with `args` to its end (no `WSCLUSTER_` variable of the caller).
fn run(args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wscluster"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("WSCLUSTER_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run wscluster: {e}"))
}

#[test]
fn a_short_key_stops_the_node_with_exit_2_naming_it_and_print_config_hides_keys() {
    let out = run(&[
        "--listen",
        "127.0.0.1:0",
        "--set",
        "api.keys=[{name=\"backend\",key=\"too-short\",scopes=[\"publish\"]}]",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api.keys") && err.contains("backend"), "{err}");
    assert!(!err.contains("too-short"), "the key is shown: {err}");
    let out = run(&["--print-config", "--set", &keys_setting()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("\"pres\""), "{text}");
    for key in [ALL, PUBLISH, PRESENCE, CHANNELS, DISCONNECT] {
        assert!(!text.contains(key), "{key} shown:\n{text}");
    }
}

#[tokio::test]
async fn the_tls_listener_serves_the_api_with_keep_alive() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = support::tls::TestCa::new(dir.path(), "api");
    let cert = ca.issue(dir.path(), "ws", 1);
    let cfg = dir.path().join("a.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server.tls]\nlisten = \"127.0.0.1:0\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.cert(),
            cert.key()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = cfg.display().to_string();
    let a = NodeProcess::start(api_node("a").args(&["--config", &cfg])).await;
    let wss = a.wss.unwrap_or_else(|| panic!("no wss:// line"));
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("secure").await;
    let tcp = tokio::net::TcpStream::connect(wss)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let name =
        rustls::pki_types::ServerName::try_from("localhost").unwrap_or_else(|e| panic!("{e}"));
    let tls = support::tls::connector(&ca.ca_file)
        .connect(name, tcp)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake: {e}"));
    let mut c = HttpClient::over(Box::new(tls));
    for i in 0..3 {
        publish(&mut c, &format!(r#"{{"channel":"secure","message":{i}}}"#)).await;
        sub.expect(&s5("secure", &format!("\"{i}\""))).await;
    }
    let r = c.call("POST", "/api/publish", &[], "{}").await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let a = NodeProcess::start(api_node("a").set("api.idle_timeout_ms=300")).await;
    let mut c = HttpClient::connect(a.ws).await;
    let r = call(&mut c, "GET", "/api/channels", ALL, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        c.closed_within(support::scaled(Duration::from_secs(5)))
            .await,
        "an idle connection stayed open"
    );
    // A keep-alive connection that never finishes its next request head is closed too.
    let mut slow = HttpClient::connect(a.ws).await;
    let r = call(&mut slow, "GET", "/api/channels", ALL, "").await;
    assert_eq!(r.status, 200, "{}", r.body);
    slow.write_raw(b"POST /api/publish HTTP/1.1\r\nHost: x\r\n")
        .await;
    assert!(
        slow.closed_within(support::scaled(Duration::from_secs(5)))
            .await,
        "a half-sent request head kept its connection"
    );
}

#[tokio::test]
async fn the_admin_port_serves_the_api_with_keep_alive() {
    let a = NodeProcess::start(api_node("a").set("http.admin_listen=127.0.0.1:0")).await;
    let line = a.stdout_line("wscluster admin on http://").await;
    let admin: std::net::SocketAddr = line
        .trim_start_matches("wscluster admin on http://")
        .split(' ')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let (mut sub, _) = WsClient::sgc(a.ws).await;
    sub.subscribe("ops").await;
    let mut c = HttpClient::connect(admin).await;
    for i in 0..3 {
        publish(&mut c, &format!(r#"{{"channel":"ops","message":{i}}}"#)).await;
        sub.expect(&s5("ops", &format!("\"{i}\""))).await;
    }
    // The key is still needed there.
    let r = c.call("GET", "/api/channels", &[], "").await;
    assert_eq!(r.status, 401, "{}", r.body);
}
