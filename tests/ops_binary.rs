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
