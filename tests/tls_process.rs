//! Real `wscluster` processes configured for TLS from their config file: `wss://` next to `ws://`,
//! mutual TLS between the nodes, and the certificate reloaded on SIGHUP while an open `wss://`
//! connection keeps working.

mod support;

use std::path::Path;

use support::WsClient;
use support::process::{NodeArgs, NodeProcess};
use support::sgc::{delphi, s5};
use support::tls::{Issued, TestCa, connect};

const WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// A config file with a TLS listener (`ws`) and mutual mesh TLS (`mesh`), both from `ca`.
fn config_file(dir: &Path, name: &str, ws: &Issued, mesh: &Issued, ca: &TestCa) -> String {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        r#"
[server.tls]
listen = "127.0.0.1:0"
cert_file = "{}"
key_file = "{}"
reload_interval_ms = 0

[cluster.mesh.tls]
enabled = true
cert_file = "{}"
key_file = "{}"
ca_file = "{}"
require_client_cert = true
"#,
        ws.cert(),
        ws.key(),
        mesh.cert(),
        mesh.key(),
        ca.ca()
    );
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

async fn wss_sgc(node: &NodeProcess, ca: &TestCa) -> (WsClient, Vec<u8>) {
    let addr = node
        .wss
        .unwrap_or_else(|| panic!("{} printed no wss:// line", node.name));
    let (mut c, leaf) = connect(addr, "/", &["esegece.com"], &ca.ca_file)
        .await
        .unwrap_or_else(|e| panic!("wss connect: {e}"));
    let s1 = c.recv_json().await;
    assert_eq!(s1["result"]["method"], "sgc@session", "{s1}");
    (c, leaf)
}

#[tokio::test]
async fn tls_nodes_link_serve_wss_and_reload_their_certificate_on_sighup() {
    support::init_logs();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ca = TestCa::new(dir.path(), "cluster");
    let a_ws = ca.issue(dir.path(), "a-ws", 1);
    let a_mesh = ca.issue(dir.path(), "a-mesh", 2);
    let b_ws = ca.issue(dir.path(), "b-ws", 3);
    let b_mesh = ca.issue(dir.path(), "b-mesh", 4);
    let a_cfg = config_file(dir.path(), "a", &a_ws, &a_mesh, &ca);
    let b_cfg = config_file(dir.path(), "b", &b_ws, &b_mesh, &ca);
    let a = NodeProcess::start(NodeArgs::new("a").args(&["--config", &a_cfg])).await;
    let b = NodeProcess::start(NodeArgs::new("b").args(&["--config", &b_cfg]).peer(a.mesh)).await;
    a.wait_log("b up", |n| n.live_peers().contains("b")).await;
    b.wait_log("a up", |n| n.live_peers().contains("a")).await;

    // A wss:// subscriber on a, a plain ws:// publisher on b.
    let (mut secure, leaf) = wss_sgc(&a, &ca).await;
    assert_eq!(leaf, a_ws.der);
    secure.subscribe("news").await;
    let (mut plain, _) = WsClient::sgc(b.ws).await;
    plain.subscribe("news").await;
    // The subscription crosses the mesh asynchronously: publish until one arrives, each try waiting
    // a short while, under one generous overall deadline. A try that times out is not a failure (the
    // subscription may simply not have crossed yet); only the overall deadline is. A late frame may
    // answer an earlier try, so whatever arrives must be one of the messages published so far.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut sent = Vec::new();
    let arrived = loop {
        let msg = format!("\"m{}\"", sent.len());
        plain
            .send(&delphi::publish(&msg, "news", "queueLevel0"))
            .await;
        plain.expect(&s5("news", &msg)).await;
        sent.push(s5("news", &msg));
        let wait = std::time::Duration::from_millis(200);
        // `next_frame` only polls the socket's stream, so abandoning it on timeout loses no frame.
        if let Ok(frame) = tokio::time::timeout(wait, secure.next_frame()).await {
            break frame;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a publish on b never reached the wss:// subscriber on a within {WAIT:?} ({} tries)",
            sent.len()
        );
    };
    match arrived {
        Some(support::Frame::Text(t)) => assert!(
            sent.contains(&t),
            "the wss:// subscriber got {t}, not one of the {} messages published",
            sent.len()
        ),
        other => panic!("the wss:// subscriber got {other:?} instead of a published message"),
    }

    // SIGHUP after the certificate files changed: new connections get the new certificate.
    let a_ws2 = ca.issue(dir.path(), "a-ws", 5);
    a.signal("HUP");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (mut c, leaf) = wss_sgc(&a, &ca).await;
        c.barrier().await;
        if leaf == a_ws2.der {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "SIGHUP did not reload the certificate; log:\n{}",
            a.stderr()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    a.wait_log("the reload", |n| {
        !n.logged("TLS certificate reloaded").is_empty()
    })
    .await;
    // The connection opened before the reload still receives.
    plain
        .send(&delphi::publish("\"after\"", "news", "queueLevel0"))
        .await;
    plain.expect(&s5("news", "\"after\"")).await;
    secure.expect(&s5("news", "\"after\"")).await;
    secure.barrier().await;
}
