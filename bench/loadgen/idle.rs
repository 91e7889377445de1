//! The `idle` scenario: how much memory a node spends per idle, subscribed sgc connection.
//!
//! Read the nodes' RSS, open K connections (each subscribes to one channel and waits for its S3),
//! let the node settle, read RSS again, hold the connections idle for a while (measuring the
//! node's CPU: heartbeats and timers only), close them, and read RSS once more. With several
//! `--url`s the connections are dealt to the nodes in turn and RSS is summed over `--node-pid`s.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::{dur_ns, now_ns};
use crate::conn::{self, End, Failures};
use crate::layout::Layout;
use crate::procfs;
use crate::report::Report;
use crate::run::{self, CpuWindow, Ready, RunOpts};
use crate::session;
use crate::wire::Proto;

/// What one idle run does.
#[derive(Debug, Clone)]
pub(crate) struct IdleOpts {
    /// Connections to open.
    pub(crate) connections: usize,
    /// Channels they subscribe to (one each, spread evenly).
    pub(crate) channels: usize,
    /// Channel names are this prefix and the channel number.
    pub(crate) channel_prefix: String,
    /// Wait after the last confirmation before reading RSS.
    pub(crate) settle: Duration,
    /// How long the connections are then held idle (node CPU is measured over it).
    pub(crate) hold: Duration,
    /// The process's open-file limit (to warn before running out).
    pub(crate) nofile: u64,
}

/// Sum of the nodes' RSS in bytes, `None` without `--node-pid`.
fn nodes_rss(pids: &[String]) -> Result<Option<u64>, String> {
    if pids.is_empty() {
        return Ok(None);
    }
    pids.iter()
        .map(|p| procfs::rss_bytes(p))
        .sum::<Result<u64, String>>()
        .map(Some)
}

/// Runs the idle scenario and returns its report.
pub(crate) async fn run(o: &IdleOpts, r: &RunOpts) -> Result<Report, String> {
    let k = o.connections;
    if k as u64 + 64 > o.nofile {
        return Err(format!(
            "{k} connections need more open files than the limit of {} (raise `ulimit -n`)",
            o.nofile
        ));
    }
    let layout = Layout::new(k, o.channels, 1, r.targets.len());
    let rss_before = nodes_rss(&r.node_pids)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let ready = Arc::new(Ready::default());
    let failures = Arc::new(Failures::default());
    let lost = Arc::new(Failures::default());
    let gate = Arc::new(Semaphore::new(r.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();
    eprintln!(
        "idle: opening {k} connections to {} node(s)…",
        r.targets.len()
    );
    let started = Instant::now();
    for i in 0..k {
        let target = r.targets[layout.node_of(i)].clone();
        let channel = format!("{}{}", o.channel_prefix, layout.channels_of(i)[0]);
        let (ready, failures, lost, gate) =
            (ready.clone(), failures.clone(), lost.clone(), gate.clone());
        let mut stop = stop_rx.clone();
        let connect_timeout = r.connect_timeout;
        tasks.spawn(async move {
            let opened = {
                let _permit = gate.acquire().await;
                let deadline = Instant::now() + connect_timeout;
                session::open(&target, Proto::Sgc, "", &[channel], deadline).await
            };
            let mut ws = match opened {
                Ok((ws, _guid)) => ws,
                Err(e) => {
                    failures.add(&e);
                    ready.failed_one();
                    return;
                }
            };
            ready.ok_one();
            if let End::Lost(why) = conn::read_until_stopped(&mut ws, &mut stop, |_| {}).await {
                lost.add(&why);
            }
        });
    }
    let done = ready.wait_all(k as u64, started + r.setup_timeout).await;
    let setup_s = started.elapsed().as_secs_f64();
    eprintln!(
        "idle: {} subscribed, {} failed in {setup_s:.1}s{}",
        ready.ok(),
        ready.failed(),
        if done { "" } else { " (setup timed out)" }
    );
    tokio::time::sleep(o.settle).await;
    let rss_after = nodes_rss(&r.node_pids)?;
    let lost_before_hold = lost.total();
    let hold_start = now_ns();
    let cpu = CpuWindow::measure(&r.node_pids, hold_start, hold_start + dur_ns(o.hold)).await;
    let lost_during_hold = lost.total() - lost_before_hold;
    let open_at_end = ready.ok() - lost.total();

    let _ = stop_tx.send(true);
    run::join_all(&mut tasks, Duration::from_secs(30)).await;
    drop(tasks);
    tokio::time::sleep(o.settle).await;
    let rss_closed = nodes_rss(&r.node_pids)?;

    let mut rep = Report::new("idle");
    rep.section("setup");
    r.add_targets(&mut rep);
    rep.int("connections", "connections requested", k as u64, "");
    rep.int("channels", "channels", layout.channels as u64, "");
    rep.int("nofile_limit", "open-file limit (soft)", o.nofile, "");
    rep.int(
        "connections_ready",
        "connections subscribed",
        ready.ok(),
        "",
    );
    rep.int("connect_failures", "connections failed", ready.failed(), "");
    rep.text("connect_failure_kinds", "failure kinds", failures.summary());
    rep.int(
        "connections_pending",
        "connections still pending at setup timeout",
        (k as u64).saturating_sub(ready.ok() + ready.failed()),
        "",
    );
    rep.float("setup_s", "connect + subscribe time", setup_s, 2, "s");
    rep.float(
        "connects_per_s",
        "connections subscribed per second",
        ready.ok() as f64 / setup_s.max(1e-9),
        0,
        "/s",
    );
    rep.int(
        "connections_lost_during_hold",
        "connections lost while idle",
        lost_during_hold,
        "",
    );
    rep.text(
        "connections_lost_kinds",
        "connections lost kinds",
        lost.summary(),
    );
    rep.int(
        "connections_open_at_end",
        "connections open at the end",
        open_at_end,
        "",
    );

    rep.section("node memory (VmRSS, summed over --node-pid)");
    let mib = |b: Option<u64>| b.map(|b| b as f64 / (1024.0 * 1024.0));
    rep.opt_float(
        "rss_before_mib",
        "RSS before connecting",
        mib(rss_before),
        1,
        "MiB",
    );
    rep.opt_float(
        "rss_connected_mib",
        "RSS with the connections",
        mib(rss_after),
        1,
        "MiB",
    );
    rep.opt_float(
        "rss_closed_mib",
        "RSS after closing them",
        mib(rss_closed),
        1,
        "MiB",
    );
    let per_conn = match (rss_before, rss_after) {
        (Some(b), Some(a)) if ready.ok() > 0 => {
            Some((a as f64 - b as f64) / ready.ok() as f64 / 1024.0)
        }
        _ => None,
    };
    rep.opt_float(
        "rss_per_connection_kib",
        "RSS per idle connection",
        per_conn,
        2,
        "KiB",
    );
    rep.float(
        "hold_s",
        "idle hold (CPU window)",
        o.hold.as_secs_f64(),
        1,
        "s",
    );
    cpu.add_to(&mut rep, None, o.hold.as_secs_f64().max(1e-9));
    Ok(rep)
}
