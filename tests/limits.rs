//! The `[limits]` options and `server.allowed_origins` over real sockets: each limit's answer
//! (503/429 with Retry-After, 403, close 1009 or 1008, a silently refused subscription), and that
//! a refusal touches nobody else.

mod presence_support;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use support::sgc::{delphi, s3, s5};
use support::{DEFAULT_WAIT, WsClient, eventually, init_logs, test_server_config, upgrade_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wscluster::config::{LimitsConfig, ServerConfig};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::{Server, ServerHandle};

async fn node(server: ServerConfig, limits: LimitsConfig) -> ServerHandle {
    init_logs();
    Server::new(server)
        .protocol(Arc::new(SgcProtocol::new(SgcConfig::default())))
        .protocol(Arc::new(PresenceProtocol::new(PresenceConfig::default())))
        .limits(limits)
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"))
}

/// Sends an sgc upgrade request and returns the response head (a 101 leaves the socket open, so
/// this does not wait for the end of the stream).
async fn upgrade(addr: SocketAddr, headers: &str) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    s.write_all(upgrade_request("/", "esegece.com", headers).as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let _ = tokio::time::timeout(DEFAULT_WAIT, async {
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
    })
    .await;
    String::from_utf8_lossy(&head).into_owned()
}

/// Tokens a rate limit of `per_second` can have refilled since `started`. A burst must be exact
/// when this is 0 (everything within a second); on a machine so slow that it took longer, each
/// refilled token may let one more through, and no more than that.
fn refilled(started: std::time::Instant, per_second: u32) -> usize {
    (started.elapsed().as_secs_f64() * f64::from(per_second)).floor() as usize
}

fn status(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test]
async fn node_connection_cap_answers_503_with_retry_after_and_frees_on_close() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            max_connections: 2,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let (a, _) = WsClient::sgc(addr).await;
    let (mut b, _) = WsClient::sgc(addr).await;
    let refused = upgrade(addr, "").await;
    assert!(status(&refused).contains("503"), "{refused}");
    assert!(refused.contains("Retry-After: 1\r\n"), "{refused}");
    // The open clients are untouched.
    b.barrier().await;
    a.close().await;
    // Once a's socket is gone, a new client gets in.
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    loop {
        if status(&upgrade(addr, "").await).contains("101") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never admitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn per_ip_cap_answers_429() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            max_connections_per_ip: 1,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let (mut a, _) = WsClient::sgc(addr).await;
    let refused = upgrade(addr, "").await;
    assert!(status(&refused).contains("429"), "{refused}");
    a.barrier().await;
}

#[tokio::test]
async fn connection_rate_answers_429_with_retry_after() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            connections_per_ip_per_second: 1,
            connections_per_ip_burst: 2,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    // Exactly the burst of 2 is let through, then 429 (one more per second the attempts took).
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let refused = loop {
        let r = upgrade(addr, "").await;
        if status(&r).contains("101") {
            accepted += 1;
            assert!(accepted <= 10, "never refused");
            continue;
        }
        break r;
    };
    let extra = refilled(started, 1);
    assert!(
        (2..=2 + extra).contains(&accepted),
        "{accepted} upgrades accepted, expected the burst of 2 (+{extra} refilled)"
    );
    assert!(status(&refused).contains("429"), "{refused}");
    assert!(refused.contains("Retry-After: 1\r\n"), "{refused}");
}

#[tokio::test]
async fn origins_outside_the_allow_list_get_403() {
    let mut cfg = test_server_config();
    cfg.allowed_origins = vec![
        "https://app.example.com".into(),
        "https://*.example.org".into(),
    ];
    let server = node(cfg, LimitsConfig::default()).await;
    let addr = server.local_addr();
    for ok in [
        "Origin: https://app.example.com\r\n",
        "Origin: https://EU.Example.org\r\n",
        "",
    ] {
        let r = upgrade(addr, ok).await;
        assert!(status(&r).contains("101"), "{ok:?}: {r}");
    }
    for bad in [
        "Origin: https://evil.example.net\r\n",
        "Origin: https://app.example.com.evil.net\r\n",
        "Origin: null\r\n",
    ] {
        let r = upgrade(addr, bad).await;
        assert!(status(&r).contains("403"), "{bad:?}: {r}");
    }
    // A real client with an allowed Origin works end to end.
    let mut c = WsClient::connect_with(
        addr,
        "/",
        &["esegece.com"],
        &[("origin", "https://a.example.org")],
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let s1 = c.recv_json().await;
    assert_eq!(s1["result"]["method"], "sgc@session");
}

#[tokio::test]
async fn message_size_is_capped_per_protocol_with_1009() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            max_message_size_sgc: 200,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let pad = "x".repeat(300);
    // Presence keeps the transport's cap: a 300-byte frame with an id is acknowledged.
    let mut p = WsClient::connect(addr, "/", &["presence.esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let _session = p.recv_json().await;
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@nothing","pad":"{pad}","id":"k1"}}"#
    ))
    .await;
    let ack = p.recv_json().await;
    assert_eq!(ack["id"], "k1", "{ack}");
    // sgc is capped at 200 bytes.
    let (mut s, _) = WsClient::sgc(addr).await;
    s.send(&delphi::publish(&format!("\"{pad}\""), "c", "queueLevel0"))
        .await;
    let (code, _) = s.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn publish_rate_exceeded_closes_with_1008_and_others_keep_receiving() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            publishes_per_second_per_connection: 1,
            publish_burst: 5,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let (mut sub, _) = WsClient::sgc(addr).await;
    sub.subscribe("news").await;
    let (mut flooder, _) = WsClient::sgc(addr).await;
    let started = std::time::Instant::now();
    for n in 0..20 {
        flooder
            .send(&delphi::publish(&format!("\"{n}\""), "news", "queueLevel0"))
            .await;
    }
    let (code, reason) = flooder.expect_closed_within(DEFAULT_WAIT).await;
    assert_eq!(code, Some(1008));
    assert_eq!(
        reason,
        wscluster::internals::transport::PUBLISH_RATE_EXCEEDED
    );
    let extra = refilled(started, 1);
    // Exactly the burst went through, in order, and nothing after it (one more per second the
    // flood took to arrive).
    sub.send(support::sgc::js::PROTOCOL).await;
    let mut got = Vec::new();
    loop {
        let f = sub.recv().await;
        if f == "esegece.com" {
            break;
        }
        got.push(f);
    }
    let want: Vec<String> = (0..got.len())
        .map(|n| s5("news", &format!("\"{n}\"")))
        .collect();
    assert_eq!(got, want, "the first publishes, in order");
    assert!(
        (5..=5 + extra).contains(&got.len()),
        "{} publishes went through, expected the burst of 5 (+{extra} refilled)",
        got.len()
    );
    // Another publisher is not affected.
    let (mut other, _) = WsClient::sgc(addr).await;
    other
        .send(&delphi::publish("\"fine\"", "news", "queueLevel0"))
        .await;
    sub.expect(&s5("news", "\"fine\"")).await;
}

#[tokio::test]
async fn long_channel_names_are_refused_like_a_denied_subscription() {
    let server = node(
        test_server_config(),
        LimitsConfig {
            max_channel_name_length: 8,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let (mut c, _) = WsClient::sgc(addr).await;
    c.send(&delphi::subscribe("much-too-long")).await;
    // sgc answers nothing to a refused subscription: the barrier is the very next frame.
    c.barrier().await;
    c.send(&delphi::subscribe("short,much-too-long,ok")).await;
    c.expect(&s3("short", Some("qosLevel0"), None)).await;
    c.expect(&s3("ok", Some("qosLevel0"), None)).await;
    c.barrier().await;
    // A publish naming a long channel is ignored, one with short names is delivered.
    c.send(&delphi::publish(
        "\"1\"",
        "short,much-too-long",
        "queueLevel0",
    ))
    .await;
    c.barrier().await;
    c.send(&delphi::publish("\"2\"", "short", "queueLevel0"))
        .await;
    c.expect(&s5("short", "\"2\"")).await;
}

#[tokio::test]
async fn presence_answers_error_10_to_long_channels_and_closes_publish_floods() {
    use presence_support::{PClient, channel_member_frame, error_frame, m};
    let server = node(
        test_server_config(),
        LimitsConfig {
            max_channel_name_length: 8,
            publishes_per_second_per_connection: 1,
            publish_burst: 3,
            ..LimitsConfig::default()
        },
    )
    .await;
    let addr = server.local_addr();
    let mut a = PClient::member(addr, "a", "alice").await;
    a.join("much-too-long").await;
    a.expect(&error_frame(
        10,
        "Create Subscription request has been denied.",
        "much-too-long",
        &m("a", "alice", ""),
    ))
    .await;
    a.join("room").await;
    a.expect(&channel_member_frame(
        "channel@member@new",
        &m("a", "alice", ""),
        "room",
    ))
    .await;
    a.quiet().await;
    let started = std::time::Instant::now();
    for n in 0..10 {
        a.publish(&format!("m{n}"), "room").await;
    }
    let mut published = 0;
    let close = loop {
        match a.ws.next_frame().await {
            Some(support::Frame::Text(t)) if t.contains("publish@msg") => published += 1,
            Some(support::Frame::Close(code, reason)) => break (code, reason),
            other => panic!("unexpected {other:?}"),
        }
    };
    // Exactly the burst is delivered (one more per second the flood took to arrive).
    let extra = refilled(started, 1);
    assert!(
        (3..=3 + extra).contains(&published),
        "{published} publishes delivered, expected the burst of 3 (+{extra} refilled)"
    );
    assert_eq!(
        close,
        (
            Some(1008),
            wscluster::internals::transport::PUBLISH_RATE_EXCEEDED.to_owned()
        )
    );
}

/// The binary reads `[limits]` and `server.allowed_origins` and hands them to its server.
#[tokio::test]
async fn the_binary_applies_limits_and_origins_from_its_configuration() {
    use support::process::{NodeArgs, NodeProcess};
    let node = NodeProcess::start(
        NodeArgs::new("limited")
            .set("limits.max_connections=2")
            .set(r#"server.allowed_origins=["https://*.example.com"]"#),
    )
    .await;
    let addr = node.ws;
    let (_a, _) = WsClient::sgc(addr).await;
    let refused = upgrade(addr, "Origin: https://evil.example.net\r\n").await;
    assert!(status(&refused).contains("403"), "{refused}");
    // The refused socket leaves; a second client fits, a third does not.
    let deadline = tokio::time::Instant::now() + DEFAULT_WAIT;
    let _b = loop {
        match WsClient::connect_with(
            addr,
            "/",
            &["esegece.com"],
            &[("origin", "https://app.example.com")],
        )
        .await
        {
            Ok(c) => break c,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "never admitted: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let full = upgrade(addr, "").await;
    assert!(status(&full).contains("503"), "{full}");
    assert!(
        eventually(DEFAULT_WAIT, || node
            .stderr()
            .contains("refused by a limit"))
        .await,
        "the refusal is logged"
    );
}
