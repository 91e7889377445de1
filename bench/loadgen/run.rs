//! What every scenario shares: the targets and limits of a run, setup progress, CPU sampling over
//! the measured window, and stopping the tasks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock;
use crate::conn::Target;
use crate::procfs;
use crate::report::Report;

/// Options common to every scenario.
#[derive(Debug, Clone)]
pub(crate) struct RunOpts {
    /// The nodes (`--url`, in order).
    pub(crate) targets: Vec<Target>,
    /// Index in `targets` of the node publishers connect to (`--publisher-url`).
    pub(crate) publisher_node: usize,
    /// Node processes to measure (`--node-pid`).
    pub(crate) node_pids: Vec<String>,
    /// Connections being set up at once.
    pub(crate) connect_concurrency: usize,
    /// Longest setup of one connection (connect, upgrade, session, subscriptions).
    pub(crate) connect_timeout: Duration,
    /// Longest setup of all connections.
    pub(crate) setup_timeout: Duration,
}

impl RunOpts {
    /// Adds the targets to a report.
    pub(crate) fn add_targets(&self, rep: &mut Report) {
        let urls: Vec<&str> = self.targets.iter().map(|t| t.url.as_str()).collect();
        rep.text("urls", "node URLs", urls.join(" "));
        rep.int("nodes", "nodes", self.targets.len() as u64, "");
        if let Some(t) = self.targets.get(self.publisher_node) {
            rep.text("publisher_url", "publishers' node", t.url.clone());
        }
        rep.text("node_pids", "measured node PIDs", self.node_pids.join(" "));
    }
}

/// Setup progress of a run's connections.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// Connections set up.
    ok: AtomicU64,
    /// Connections that failed to set up.
    failed: AtomicU64,
    /// Signalled on every change.
    changed: Notify,
}

impl Ready {
    /// One more connection is set up.
    pub(crate) fn ok_one(&self) {
        self.ok.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// One more connection failed.
    pub(crate) fn failed_one(&self) {
        self.failed.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Connections set up so far.
    pub(crate) fn ok(&self) -> u64 {
        self.ok.load(Ordering::Acquire)
    }

    /// Connections failed so far.
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Acquire)
    }

    /// Waits until `total` connections are set up or failed; false if `deadline` came first.
    /// Prints progress to stderr every few seconds.
    pub(crate) async fn wait_all(&self, total: u64, deadline: Instant) -> bool {
        let mut last_print = Instant::now();
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.ok() + self.failed() >= total {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            let wake = deadline.min(Instant::now() + Duration::from_millis(500));
            let _ = tokio::time::timeout_at(wake, notified).await;
            if last_print.elapsed() >= Duration::from_secs(5) {
                last_print = Instant::now();
                eprintln!(
                    "  … {} ready, {} failed of {total}",
                    self.ok(),
                    self.failed()
                );
            }
        }
    }
}

/// CPU used over a measured window by the node processes and by the load generator.
#[derive(Debug, Clone, Default)]
pub(crate) struct CpuWindow {
    /// CPU seconds of all measured nodes together; `None` without `--node-pid` or on error.
    pub(crate) server_s: Option<f64>,
    /// CPU seconds of this process.
    pub(crate) loadgen_s: Option<f64>,
    /// Why the node's CPU could not be read, if it could not.
    pub(crate) error: Option<String>,
}

impl CpuWindow {
    /// Sleeps until `start`, samples, sleeps until `end`, samples again (clock ns).
    pub(crate) async fn measure(pids: &[String], start: u64, end: u64) -> Self {
        tokio::time::sleep_until(clock::instant_at(start)).await;
        let before = Self::sample(pids);
        tokio::time::sleep_until(clock::instant_at(end)).await;
        let after = Self::sample(pids);
        Self::between(&before, &after)
    }

    /// Samples now; pair two samples with [`CpuWindow::between`].
    pub(crate) fn sample(pids: &[String]) -> (Result<Option<f64>, String>, Option<f64>) {
        let server = if pids.is_empty() {
            Ok(None)
        } else {
            pids.iter()
                .map(|p| procfs::cpu_seconds(p))
                .sum::<Result<f64, String>>()
                .map(Some)
        };
        (server, procfs::cpu_seconds("self").ok())
    }

    /// The CPU used between two samples.
    pub(crate) fn between(
        before: &(Result<Option<f64>, String>, Option<f64>),
        after: &(Result<Option<f64>, String>, Option<f64>),
    ) -> Self {
        let (server_s, error) = match (&before.0, &after.0) {
            (Ok(Some(a)), Ok(Some(b))) => (Some(b - a), None),
            (Err(e), _) | (_, Err(e)) => (None, Some(e.clone())),
            _ => (None, None),
        };
        let loadgen_s = match (before.1, after.1) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Self {
            server_s,
            loadgen_s,
            error,
        }
    }

    /// Adds the CPU figures over a window of `secs` seconds; `work` is the count of the run's unit
    /// of work in that window and its name (deliveries, events, requests), when CPU per million
    /// units means something.
    pub(crate) fn add_to(&self, rep: &mut Report, work: Option<(u64, &str)>, secs: f64) {
        rep.section("CPU over the measured window");
        rep.opt_float("server_cpu_s", "node CPU (user+sys)", self.server_s, 2, "s");
        rep.opt_float(
            "server_cores",
            "node cores busy (CPU s / window s)",
            self.server_s.map(|c| c / secs),
            2,
            "",
        );
        if let Some((count, unit)) = work {
            rep.opt_float(
                "server_core_s_per_million",
                &format!("node core-seconds per million {unit}"),
                self.server_s
                    .filter(|_| count > 0)
                    .map(|c| c / (count as f64 / 1e6)),
                3,
                "core-s",
            );
        }
        rep.opt_float(
            "loadgen_cpu_s",
            "load generator CPU",
            self.loadgen_s,
            2,
            "s",
        );
        rep.opt_float(
            "loadgen_cores",
            "load generator cores busy",
            self.loadgen_s.map(|c| c / secs),
            2,
            "",
        );
        if let Some(e) = &self.error {
            rep.text("server_cpu_error", "node CPU error", e.clone());
        }
    }
}

/// Waits for every task to finish, aborting those still running after `grace`.
pub(crate) async fn join_all(tasks: &mut JoinSet<()>, grace: Duration) {
    let deadline = Instant::now() + grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next()).await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                eprintln!(
                    "  … {} tasks did not stop in time: aborting them",
                    tasks.len()
                );
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                break;
            }
        }
    }
}
