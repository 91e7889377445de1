//! The operations routes of the real binary: it installs the Prometheus recorder (its metrics
//! and the scrape-time gauges on `/metrics`), serves the routes on its WebSocket port with the
//! configured token, and answers the other nodes' questions (cluster-wide channel counts across
//! processes).

mod ops_support;
mod support;

use ops_support::*;
use serde_json::{Value, json};
use support::process::{NodeArgs, NodeProcess, wait_linked};

/// The binary installs the Prometheus recorder, serves the routes on its WebSocket port and
/// answers the other nodes' questions.
#[tokio::test]
async fn the_binary_serves_metrics_and_the_admin_api() {
    let args = |name: &str| NodeArgs::new(name).set(&format!("admin.token={TOKEN}"));
    let a = NodeProcess::start(args("pa")).await;
    let b = NodeProcess::start(args("pb").peer(a.mesh)).await;
    wait_linked(&[&a, &b]).await;
    let r = request(a.ws, "GET", "/health", None, None).await;
    assert_eq!(r.status, 200);
    let m = request(a.ws, "GET", "/metrics", None, None).await.body;
    assert!(
        m.contains("wscluster_http_requests_total{route=\"health\",status=\"200\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("# TYPE wscluster_http_requests_total counter"),
        "{m}"
    );
    assert!(m.contains("\nwscluster_peers 1\n"), "{m}");
    assert!(m.contains("\nwscluster_ready 1\n"), "{m}");
    let r = request(b.ws, "GET", "/admin/channels", None, None).await;
    assert_eq!(r.status, 401);
    let v = get(b.ws, "/admin/channels").await.json();
    let answers: Vec<(Value, Value)> = v["nodes"]
        .as_array()
        .map(|n| {
            n.iter()
                .map(|n| (n["node"].clone(), n["answer"].clone()))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        answers,
        vec![
            (json!("pb"), json!("answered")),
            (json!("pa"), json!("answered"))
        ]
    );
}

/// The value of the sample `series` (name and labels exactly) in a `/metrics` body.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A fresh node's `/metrics` carries the process families, the build information and every
/// counter at 0 before its first event; the `protocol` label has one spelling in every family.
#[tokio::test]
async fn a_fresh_node_exports_process_build_info_and_zero_counters() {
    let a = NodeProcess::start(NodeArgs::new("fresh")).await;
    let m = request(a.ws, "GET", "/metrics", None, None).await.body;
    assert!(
        sample(&m, "process_cpu_seconds_total").is_some()
            || sample(&m, "process_resident_memory_bytes").is_some_and(|v| v > 0.0),
        "{m}"
    );
    assert!(
        sample(&m, "process_resident_memory_bytes").is_some_and(|v| v > 0.0),
        "{m}"
    );
    let build = m
        .lines()
        .find(|l| l.starts_with("wscluster_build_info{"))
        .unwrap_or_else(|| panic!("no build info: {m}"));
    assert!(
        build.starts_with(&format!(
            "wscluster_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && build.ends_with("\"} 1"),
        "{build}"
    );
    for zero in [
        "wscluster_ws_slow_consumer_closes_total",
        "wscluster_ws_heartbeat_timeouts_total",
        "wscluster_peer_up_total",
        "wscluster_ws_connections_opened_total{protocol=\"sgc\"}",
        "wscluster_ws_connections_opened_total{protocol=\"presence\"}",
        "wscluster_publishes_total{protocol=\"sgc\",origin=\"local\"}",
        "wscluster_ws_handshakes_refused_total{reason=\"auth\"}",
        "wscluster_limit_refusals_total{limit=\"connections\"}",
        "wscluster_peer_down_total{reason=\"timeout\"}",
        "wscluster_backplane_links_refused_total{by=\"peer\"}",
    ] {
        assert_eq!(sample(&m, zero), Some(0.0), "{zero}:\n{m}");
    }

    // After one connection of each protocol, every family's `protocol` label says `sgc` or
    // `presence`, never the subprotocol token.
    let (_sgc, _) = support::WsClient::sgc(a.ws).await;
    let _presence = support::WsClient::connect(a.ws, "/", &["presence.esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let m = loop {
        let m = request(a.ws, "GET", "/metrics", None, None).await.body;
        let opened = |p: &str| {
            sample(
                &m,
                &format!("wscluster_ws_connections_opened_total{{protocol=\"{p}\"}}"),
            )
        };
        if opened("sgc") == Some(1.0) && opened("presence") == Some(1.0) {
            break m;
        }
        assert!(std::time::Instant::now() < deadline, "{m}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for line in m.lines().filter(|l| l.contains("protocol=\"")) {
        let value = line
            .split("protocol=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default();
        assert!(
            ["sgc", "presence", "none"].contains(&value),
            "protocol spelled {value:?}: {line}"
        );
    }
}
