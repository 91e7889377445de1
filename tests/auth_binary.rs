//! Bearer tokens and channel rules configured the way an operator does it: options given to the
//! real `wscluster` binary. Refusals are logged once with their reason (never the token) and
//! counted in `wscluster_auth_refusals_total`.

mod ops_support;
mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use ops_support::get;
use serde_json::{Value, json};
use support::process::{NodeArgs, NodeProcess};
use support::sgc::*;
use support::*;

const SECRET: &str = "binary-test-secret";

fn token(sub: &str, exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    encode(
        &Header::default(),
        &json!({"sub": sub, "exp": now + exp_in}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

async fn sgc_as(addr: std::net::SocketAddr, sub: &str) -> WsClient {
    let path = format!("/?access_token={}", token(sub, 60));
    let mut c = WsClient::connect(addr, &path, &["esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{sub}: {e}"));
    let s: Value = c.recv_json().await;
    assert_eq!(s["result"]["method"], "sgc@session", "{s}");
    c
}

#[tokio::test]
async fn the_binary_verifies_tokens_and_applies_rules_from_its_options() {
    let node = NodeProcess::start(
        NodeArgs::new("auth")
            .set("auth.jwt.enabled=true")
            .set("auth.jwt.required=true")
            .set(&format!("auth.jwt.secret={SECRET}"))
            .set(r#"auth.rules=[{ identity = "writer", subscribe = ["*"], publish = ["*"] }, { subscribe = ["*"] }]"#),
    )
    .await;
    let addr = node.ws;
    // No token, and an expired one: 404, logged with the reason, counted.
    let expired = token("writer", -100);
    for (path, reason) in [
        ("/".to_owned(), "missing"),
        (format!("/?token={expired}"), "expired"),
    ] {
        let resp = raw_http(addr, &upgrade_request(&path, "esegece.com", "")).await;
        assert!(resp.starts_with("HTTP/1.1 404 "), "{path}: {resp}");
        let metrics = get(addr, "/metrics").await.body;
        let line = format!("wscluster_auth_refusals_total{{reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
    let refusals = node.logged("WebSocket connection refused");
    let details: Vec<&str> = refusals
        .iter()
        .filter_map(|f| f["detail"].as_str())
        .collect();
    assert_eq!(details, ["missing", "expired"], "{refusals:?}");
    assert!(!node.stderr().contains(&expired), "the token was logged");
    // The rules: a reader's publish reaches nobody; the writer's does.
    let mut reader = sgc_as(addr, "reader").await;
    let mut writer = sgc_as(addr, "writer").await;
    reader.subscribe("room").await;
    writer.subscribe("room").await;
    reader.send(&delphi::publish(r#""no""#, "room", "")).await;
    reader.barrier().await;
    writer.barrier().await;
    writer.send(&delphi::publish(r#""yes""#, "room", "")).await;
    reader.expect(&s5("room", r#""yes""#)).await;
    writer.expect(&s5("room", r#""yes""#)).await;
}
