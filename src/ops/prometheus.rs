//! `GET /metrics`: the Prometheus text format.
//!
//! Two sources, concatenated:
//! - the process-wide `metrics` recorder, when the application installed one
//!   ([`install_prometheus_recorder`]; the binary does): every counter, gauge and histogram the
//!   crate records (see `docs/metrics.md`) plus `wscluster_http_requests_total`;
//! - the `process_*` families (`metrics-process`), collected into that recorder at each scrape;
//! - gauges read from the node's state at scrape time ([`ScrapeGauges`]), written directly (not
//!   through the recorder), so they are right even with several nodes in one process and present
//!   even without a recorder. Their names are listed in [`ScrapeGauges::render`] and in
//!   `docs/operations.md`.
//!
//! Installing the recorder is the application's choice: the recorder is process-global and a
//! library must not take it from an application that has its own.

use crate::metrics as m;
use std::fmt::Write as _;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Histogram buckets, in seconds: 0.5 ms to 10 s (cross-node delivery lag, presence purge
/// latency after a peer loss, which is bounded by `cluster.peer_timeout_ms`).
pub(crate) const HISTOGRAM_BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often [`spawn_upkeep`] drains histogram samples into buckets.
pub(super) const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The name of the counter of HTTP requests by route and status.
pub(super) const HTTP_REQUESTS: &str = "wscluster_http_requests_total";

/// Why the recorder was not installed.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The buckets were refused by the exporter.
    #[error("cannot configure the Prometheus recorder: {0}")]
    Build(String),
    /// Another recorder is installed in this process.
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// Installs the Prometheus recorder as the process-wide `metrics` recorder (histograms with
/// buckets from 0.5 ms to 10 s) and returns the handle `GET /metrics` renders. Call once per
/// process, and run [`spawn_upkeep`] next to it.
pub fn install_prometheus_recorder() -> Result<PrometheusHandle, RecorderError> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(HISTOGRAM_BUCKETS)
        .map_err(|e| RecorderError::Build(e.to_string()))?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).map_err(|_| RecorderError::AlreadyInstalled)?;
    describe();
    process_collector().describe();
    Ok(handle)
}

/// The `process_*` families (CPU seconds, resident and virtual memory, open and maximum file
/// descriptors, threads, start time), collected into the installed recorder at each scrape.
fn process_collector() -> &'static metrics_process::Collector {
    static COLLECTOR: std::sync::OnceLock<metrics_process::Collector> = std::sync::OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The version and commit this binary was built from (`wscluster_build_info`).
pub const BUILD_VERSION: &str = env!("CARGO_PKG_VERSION");
/// The commit (`git rev-parse --short=12 HEAD` at build time, or `WSCLUSTER_COMMIT`, or
/// `unknown`).
pub const BUILD_COMMIT: &str = env!("WSCLUSTER_BUILD_COMMIT");

/// Describes this module's own recorded metrics.
fn describe() {
    metrics::describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests to the operations and server API routes, by route and status code."
    );
}

/// Drains histogram samples every 5 seconds (without it they pile up between scrapes), as one of
/// `owner`'s tasks (it runs until the owner stops it; outside a Tokio runtime it does not run).
pub fn spawn_upkeep(handle: PrometheusHandle, owner: &crate::tasks::Tasks) {
    owner.spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    });
}

/// Values read from the node's state when `/metrics` is scraped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ScrapeGauges {
    /// `GET /ready` would answer 200.
    pub ready: bool,
    /// Open WebSocket connections (every protocol).
    pub connections: u64,
    /// Open sgc connections.
    pub sgc_connections: u64,
    /// sgc channels with local subscribers.
    pub sgc_channels: u64,
    /// sgc subscriptions (connection × channel pairs) on this node.
    pub sgc_subscriptions: u64,
    /// Presence members bound to this node's connections.
    pub presence_members_local: u64,
    /// Presence members in the cluster (this node's roster holds them all).
    pub presence_members_cluster: u64,
    /// Presence channels in the cluster.
    pub presence_channels: u64,
    /// Peers with a live link.
    pub peers: u64,
    /// Each configured peer address (`cluster.mesh.peers`, and the addresses of `peers_dns`
    /// names) and whether it is linked: `wscluster_mesh_peer_up{peer}`.
    pub peer_up: Vec<(String, bool)>,
}

impl ScrapeGauges {
    /// The gauges in Prometheus text format (with `# HELP` and `# TYPE`).
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, lines: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in lines {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let build = format!(
            "{{version=\"{}\",commit=\"{}\"}}",
            label_value(BUILD_VERSION),
            label_value(BUILD_COMMIT)
        );
        gauge(
            m::BUILD_INFO,
            "Always 1; the labels say which version and commit this node runs.",
            &[(&build, 1)],
        );
        gauge(
            m::READY,
            "1 when the node is ready (GET /ready answers 200), else 0.",
            &[("", u64::from(self.ready))],
        );
        gauge(
            m::CONNECTIONS,
            "Open WebSocket connections on this node, every protocol.",
            &[("", self.connections)],
        );
        gauge(
            m::SGC_CONNECTIONS,
            "Open sgc (esegece.com) connections on this node.",
            &[("", self.sgc_connections)],
        );
        gauge(
            m::SGC_CHANNELS,
            "sgc channels with subscribers on this node.",
            &[("", self.sgc_channels)],
        );
        gauge(
            m::SGC_SUBSCRIPTIONS,
            "sgc subscriptions (connection x channel) on this node.",
            &[("", self.sgc_subscriptions)],
        );
        gauge(
            m::PRESENCE_MEMBERS,
            "Presence members: scope=\"local\" on this node's connections, scope=\"cluster\" in the whole cluster.",
            &[
                ("{scope=\"local\"}", self.presence_members_local),
                ("{scope=\"cluster\"}", self.presence_members_cluster),
            ],
        );
        gauge(
            m::PRESENCE_CHANNELS,
            "Presence channels in the cluster.",
            &[("", self.presence_channels)],
        );
        gauge(
            m::PEERS,
            "Peer nodes with a live link.",
            &[("", self.peers)],
        );
        let peer_up: Vec<(String, u64)> = self
            .peer_up
            .iter()
            .map(|(addr, up)| {
                (
                    format!("{{peer=\"{}\"}}", label_value(addr)),
                    u64::from(*up),
                )
            })
            .collect();
        let peer_up: Vec<(&str, u64)> = peer_up.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        gauge(
            m::MESH_PEER_UP,
            "1 when the configured peer address (cluster.mesh.peers, or found through peers_dns) is linked, else 0.",
            &peer_up,
        );
        out
    }
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole `/metrics` body: the recorder's metrics (if any), then the scrape-time gauges.
pub(super) fn render(handle: Option<&PrometheusHandle>, gauges: &ScrapeGauges) -> String {
    if handle.is_some() {
        // Fresh process figures for this scrape (they live in the same recorder).
        process_collector().collect();
    }
    let mut out = handle.map(PrometheusHandle::render).unwrap_or_default();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&gauges.render());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_gauges_are_valid_exposition_lines() {
        let g = ScrapeGauges {
            ready: true,
            connections: 3,
            presence_members_local: 1,
            presence_members_cluster: 4,
            ..ScrapeGauges::default()
        };
        let text = render(None, &g);
        assert!(text.contains("\nwscluster_ready 1\n"), "{text}");
        assert!(text.contains("\nwscluster_connections 3\n"));
        assert!(text.contains("wscluster_presence_members{scope=\"local\"} 1\n"));
        assert!(text.contains("wscluster_presence_members{scope=\"cluster\"} 4\n"));
        // Every sample line is `name[{labels}] value`, every family has HELP and TYPE.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap_or(("", ""));
            assert!(name.starts_with("wscluster_"), "{line}");
            assert!(value.parse::<u64>().is_ok(), "{line}");
        }
        assert_eq!(
            text.matches("# TYPE ").count(),
            text.matches("# HELP ").count()
        );
    }

    #[test]
    fn a_local_recorder_renders_with_the_buckets() {
        let recorder = PrometheusBuilder::new()
            .set_buckets(HISTOGRAM_BUCKETS)
            .unwrap_or_else(|e| panic!("{e}"))
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("wscluster_test_seconds").record(0.003);
            metrics::counter!(HTTP_REQUESTS, "route" => "health", "status" => "200").increment(1);
        });
        let text = render(Some(&handle), &ScrapeGauges::default());
        assert!(
            text.contains("wscluster_test_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("wscluster_http_requests_total{route=\"health\",status=\"200\"} 1"));
        assert!(text.contains("wscluster_ready 0"));
    }
}
