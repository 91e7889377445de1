//! The fan-out scenarios: `fanout` (sgc publish → `sgc@event`) and `presence-fanout` (Presence
//! `publish@msg` to channel members).
//!
//! One run: connect every receiving client and bring it to its subscribed state (bounded
//! concurrency), connect the publishers; with several nodes, probe until a publish reaches every
//! node (the cluster relays); then publish for a warmup and a measured window, wait for the
//! window's deliveries to drain, and stop everything. A delivery belongs to the window when the
//! publish it carries was *sent* in the window (its body holds the send time), so "expected"
//! (publishes in the window × receivers of their channel at setup) and "received" count the same
//! messages.
//!
//! sgc: subscribers and publishers are separate connections (publishers are not subscribed).
//! Presence: every client is a member in its channels; publishers are the first members on the
//! publishers' node, and receive their own messages like everyone else (docs/wire.md §3.4).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::clock::{dur_ns, now_ns};
use crate::conn::{self, End, Failures, Target};
use crate::latency::{Batch, Latency};
use crate::layout::Layout;
use crate::publisher::{Phase, Publisher};
use crate::report::Report;
use crate::run::{self, CpuWindow, Ready, RunOpts};
use crate::session;
use crate::tally::{OTHER, SAME, Tally};
use crate::wire::{Proto, PublishTemplate};

/// What one fan-out run does.
#[derive(Debug, Clone)]
pub(crate) struct FanoutOpts {
    /// sgc or Presence.
    pub(crate) proto: Proto,
    /// Receiving clients (sgc subscribers, Presence members including publishers).
    pub(crate) receivers: usize,
    /// Number of channels.
    pub(crate) channels: usize,
    /// Channels each receiver is in.
    pub(crate) channels_per_receiver: usize,
    /// Channel names are this prefix and the channel number.
    pub(crate) channel_prefix: String,
    /// Publishing connections.
    pub(crate) publishers: usize,
    /// Total publishes per second over all publishers; 0 = as fast as the in-flight bound allows.
    pub(crate) rate: f64,
    /// Bytes of each message body.
    pub(crate) payload: usize,
    /// Publishing before the measured window.
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) duration: Duration,
    /// Longest wait for the window's deliveries after it ends.
    pub(crate) drain: Duration,
    /// In-flight bound, in publishes (see [`crate::flow`]).
    pub(crate) max_inflight: u64,
    /// In-flight bound, in deliveries (caps `max_inflight`).
    pub(crate) max_inflight_deliveries: u64,
    /// Longest wait for the probe to reach every node (several nodes only).
    pub(crate) probe_timeout: Duration,
    /// Receivers go only to the first this many nodes (`None`: all of them).
    pub(crate) receiver_nodes: Option<usize>,
}

/// One client's part in the run.
#[derive(Debug, Clone)]
struct Role {
    /// Index among the run's clients (names the Presence member `m<index>`).
    index: usize,
    /// Index of its node in the URL list.
    node: usize,
    /// Channels it subscribes to / joins (empty for sgc publishers).
    channels: Vec<usize>,
    /// Counts as a receiver of deliveries.
    receiver: bool,
    /// Its publisher number, if it publishes.
    publisher: Option<usize>,
}

/// Everything a client task needs besides its role.
#[derive(Clone)]
struct ClientCtx {
    /// The run's options.
    o: Arc<FanoutOpts>,
    /// Every node.
    targets: Arc<Vec<Target>>,
    /// The publishers' node.
    publisher_node: usize,
    /// Shared counters.
    tally: Arc<Tally>,
    /// Channel names by number.
    names: Arc<Vec<String>>,
    /// The layout (publish order).
    layout: Layout,
    /// Setup progress.
    ready: Arc<Ready>,
    /// Setup failures.
    failures: Arc<Failures>,
    /// Bounds concurrent connection setups.
    gate: Arc<Semaphore>,
    /// Per-connection setup deadline.
    connect_timeout: Duration,
    /// Turns true when the run stops.
    stop: watch::Receiver<bool>,
    /// Orders for publishers.
    phase: watch::Receiver<Phase>,
}

/// The name of the scenario for `proto`.
fn scenario_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Sgc => "fanout",
        Proto::Presence => "presence-fanout",
    }
}

/// Runs a fan-out scenario and returns its report.
pub(crate) async fn run(o: &FanoutOpts, r: &RunOpts) -> Result<Report, String> {
    let name = scenario_name(o.proto);
    let nodes = r.targets.len();
    let receiver_nodes = o.receiver_nodes.map_or(nodes, |n| n.clamp(1, nodes));
    let layout = Layout::new(
        o.receivers,
        o.channels,
        o.channels_per_receiver,
        receiver_nodes,
    );
    let roles = roles(o, r, &layout)?;
    let mean_per_channel = (o.receivers * layout.per_sub) as f64 / layout.channels as f64;
    let limit = inflight_limit(o, mean_per_channel);
    let tally = Arc::new(Tally::new(layout.channels, nodes, limit));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (phase_tx, phase_rx) = watch::channel(Phase::Setup);
    let ready = Arc::new(Ready::default());
    let failures = Arc::new(Failures::default());
    let cx = ClientCtx {
        o: Arc::new(o.clone()),
        targets: Arc::new(r.targets.clone()),
        publisher_node: r.publisher_node,
        tally: tally.clone(),
        names: Arc::new(
            (0..layout.channels)
                .map(|c| format!("{}{c}", o.channel_prefix))
                .collect(),
        ),
        layout: layout.clone(),
        ready: ready.clone(),
        failures: failures.clone(),
        gate: Arc::new(Semaphore::new(r.connect_concurrency.max(1))),
        connect_timeout: r.connect_timeout,
        stop: stop_rx,
        phase: phase_rx,
    };
    let mut tasks = JoinSet::new();
    eprintln!(
        "{name}: connecting {} clients ({} receivers, {} publishers) to {nodes} node(s)…",
        roles.len(),
        o.receivers,
        o.publishers,
    );
    let setup_started = Instant::now();
    for role in roles.iter().cloned() {
        tasks.spawn(client(role, cx.clone()));
    }
    drop(cx);
    let done = ready
        .wait_all(roles.len() as u64, setup_started + r.setup_timeout)
        .await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    eprintln!(
        "{name}: setup {setup_s:.1}s: {} ready, {} failed{}",
        ready.ok(),
        ready.failed(),
        if done { "" } else { " (setup timed out)" }
    );
    let publishers_ready = tally.publishers_ready.load(Ordering::Relaxed);
    let problem = if !done {
        Some(format!(
            "setup did not finish within {:?}: {} ready, {} failed of {}",
            r.setup_timeout,
            ready.ok(),
            ready.failed(),
            roles.len()
        ))
    } else if tally.receivers_ready.load(Ordering::Relaxed) == 0 {
        Some("no receiver could subscribe".to_owned())
    } else if publishers_ready < o.publishers as u64 {
        Some(format!(
            "only {publishers_ready} of {} publishers were set up",
            o.publishers
        ))
    } else {
        None
    };
    if let Some(why) = problem {
        let _ = phase_tx.send(Phase::Abort);
        let _ = stop_tx.send(true);
        run::join_all(&mut tasks, Duration::from_secs(10)).await;
        return Err(format!("{why} (setup failures: {})", failures.summary()));
    }

    // Several nodes: publish probes until every node with a receiver of channel 0 got one.
    let mut probe_s = None;
    if nodes > 1 {
        eprintln!("{name}: probing until a publish reaches every node…");
        let probe_started = Instant::now();
        let _ = phase_tx.send(Phase::Probe);
        while !tally.probe_complete() && probe_started.elapsed() < o.probe_timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !tally.probe_complete() {
            let missing: Vec<&str> = tally
                .probe_missing()
                .iter()
                .map(|&n| r.targets[n].url.as_str())
                .collect();
            let _ = phase_tx.send(Phase::Abort);
            let _ = stop_tx.send(true);
            run::join_all(&mut tasks, Duration::from_secs(10)).await;
            return Err(format!(
                "a publish on {} never reached subscribers on {} within {:?}: are the nodes clustered?",
                r.targets[r.publisher_node].url,
                missing.join(", "),
                o.probe_timeout
            ));
        }
        probe_s = Some(probe_started.elapsed().as_secs_f64());
    }

    // Publish: warmup, then the measured window.
    let start = now_ns() + dur_ns(Duration::from_millis(100));
    let window_start = start + dur_ns(o.warmup);
    let window_end = window_start + dur_ns(o.duration);
    tally.window_start.store(window_start, Ordering::Relaxed);
    tally.window_end.store(window_end, Ordering::Relaxed);
    let _ = phase_tx.send(Phase::Go {
        start,
        end: window_end,
    });
    eprintln!(
        "{name}: publishing: {:.1}s warmup, {:.1}s measured…",
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64()
    );
    let cpu = CpuWindow::measure(&r.node_pids, window_start, window_end).await;

    // Drain: wait for the window's deliveries (publishers stop at the window end).
    let drain_deadline = Instant::now() + o.drain;
    while tally.received_total() < tally.expected_total() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    run::join_all(&mut tasks, Duration::from_secs(10)).await;

    let mut rep = Report::new(name);
    rep.section("setup");
    r.add_targets(&mut rep);
    add_setup(&mut rep, o, &layout, &ready, &failures, setup_s, probe_s);
    let secs = o.duration.as_secs_f64().max(1e-9);
    add_results(&mut rep, &tally, secs, nodes > 1);
    cpu.add_to(&mut rep, Some((tally.received_total(), "deliveries")), secs);
    Ok(rep)
}

/// The in-flight bound in deliveries: `max_inflight` publishes to channels of the mean size,
/// capped at `max_inflight_deliveries`, and never below one publish.
fn inflight_limit(o: &FanoutOpts, mean_per_channel: f64) -> u64 {
    let per_publish = mean_per_channel.max(1.0);
    let by_publishes = o.max_inflight as f64 * per_publish;
    by_publishes
        .min(o.max_inflight_deliveries as f64)
        .max(per_publish)
        .ceil() as u64
}

/// Every client of the run and what it does.
fn roles(o: &FanoutOpts, r: &RunOpts, layout: &Layout) -> Result<Vec<Role>, String> {
    let mut roles: Vec<Role> = (0..o.receivers)
        .map(|i| Role {
            index: i,
            node: layout.node_of(i),
            channels: layout.channels_of(i),
            receiver: true,
            publisher: None,
        })
        .collect();
    match o.proto {
        Proto::Sgc => {
            for p in 0..o.publishers {
                roles.push(Role {
                    index: o.receivers + p,
                    node: r.publisher_node,
                    channels: Vec::new(),
                    receiver: false,
                    publisher: Some(p),
                });
            }
        }
        Proto::Presence => {
            let on_node = roles
                .iter_mut()
                .filter(|role| role.node == r.publisher_node);
            for (p, role) in on_node.take(o.publishers).enumerate() {
                role.publisher = Some(p);
            }
            let assigned = roles.iter().filter(|r| r.publisher.is_some()).count();
            if assigned < o.publishers {
                return Err(format!(
                    "only {assigned} members are on the publishers' node: ask for fewer publishers"
                ));
            }
        }
    }
    Ok(roles)
}

/// One client: set up, then read (and publish, for publishers) until stopped.
async fn client(role: Role, mut cx: ClientCtx) {
    let names: Vec<String> = role.channels.iter().map(|&c| cx.names[c].clone()).collect();
    let opened = {
        let _permit = cx.gate.acquire().await;
        let deadline = Instant::now() + cx.connect_timeout;
        let member_name = format!("m{}", role.index);
        let target = &cx.targets[role.node];
        session::open(target, cx.o.proto, &member_name, &names, deadline).await
    };
    let (ws, guid) = match opened {
        Ok(ok) => ok,
        Err(e) => {
            cx.failures.add(&e);
            cx.ready.failed_one();
            return;
        }
    };
    let class = if role.node == cx.publisher_node {
        SAME
    } else {
        OTHER
    };
    if role.receiver {
        cx.tally.receiver_ready(role.node, class, &role.channels);
    }
    if role.publisher.is_some() {
        cx.tally.publishers_ready.fetch_add(1, Ordering::Relaxed);
    }
    cx.ready.ok_one();
    let (sink, mut stream) = ws.split();
    let writer = role.publisher.map(|p| {
        let publisher = Publisher {
            publishers: cx.o.publishers,
            p,
            rate: cx.o.rate,
            payload: cx.o.payload,
            layout: cx.layout.clone(),
            templates: cx
                .names
                .iter()
                .map(|n| PublishTemplate::new(cx.o.proto, n, &guid))
                .collect(),
        };
        tokio::spawn(publisher.run(sink, cx.tally.clone(), cx.phase.clone()))
    });
    let mut batches = [
        Batch::new(cx.tally.latency[SAME].clone()),
        Batch::new(cx.tally.latency[OTHER].clone()),
    ];
    let tally = cx.tally.clone();
    let end = conn::read_until_stopped(&mut stream, &mut cx.stop, |text| {
        if role.receiver {
            tally.on_text(text, role.node, class, &mut batches);
        }
    })
    .await;
    if let End::Lost(why) = end {
        cx.tally.lost.add(&why);
        if role.receiver {
            cx.tally.receiver_lost(&role.channels);
        }
    }
    if let Some(w) = writer {
        w.abort();
    }
}

/// Adds what the run set up.
fn add_setup(
    rep: &mut Report,
    o: &FanoutOpts,
    layout: &Layout,
    ready: &Ready,
    failures: &Failures,
    setup_s: f64,
    probe_s: Option<f64>,
) {
    let receivers = match o.proto {
        Proto::Sgc => "subscribers",
        Proto::Presence => "members",
    };
    rep.int("receivers", receivers, o.receivers as u64, "");
    rep.int("channels", "channels", layout.channels as u64, "");
    let per = layout.per_sub as u64;
    rep.int("channels_per_receiver", "channels per receiver", per, "");
    let cells: Vec<u64> = layout
        .subscribers_per_channel_node()
        .into_iter()
        .flatten()
        .collect();
    let (min, max) = (cells.iter().min(), cells.iter().max());
    rep.text(
        "receivers_per_channel_node",
        "receivers per channel per node (min-max)",
        format!("{}-{}", min.unwrap_or(&0), max.unwrap_or(&0)),
    );
    rep.int("publishers", "publishers", o.publishers as u64, "");
    rep.int("clients_ready", "clients ready", ready.ok(), "");
    rep.int("setup_failures", "setup failures", ready.failed(), "");
    rep.text(
        "setup_failure_kinds",
        "setup failure kinds",
        failures.summary(),
    );
    rep.float("setup_s", "setup time", setup_s, 2, "s");
    if let Some(probe_s) = probe_s {
        rep.float("probe_s", "cross-node probe time", probe_s, 2, "s");
    }
    rep.section("load");
    rep.float(
        "target_rate",
        "target rate (0 = max)",
        o.rate,
        0,
        "publishes/s",
    );
    rep.int("payload_bytes", "payload", o.payload as u64, "bytes");
    rep.int("max_inflight", "max in flight", o.max_inflight, "publishes");
    let mean = (o.receivers * layout.per_sub) as f64 / layout.channels as f64;
    rep.int(
        "inflight_limit_deliveries",
        "in-flight bound in force",
        inflight_limit(o, mean),
        "deliveries",
    );
    rep.float("warmup_s", "warmup", o.warmup.as_secs_f64(), 1, "s");
    rep.float(
        "duration_s",
        "measured window",
        o.duration.as_secs_f64(),
        1,
        "s",
    );
}

/// Adds the results of a window of `secs` seconds; `by_node` splits loss and latency between the
/// publishers' node and the others.
fn add_results(rep: &mut Report, t: &Tally, secs: f64, by_node: bool) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let published = load(&t.published);
    let (expected, received) = (t.expected_total(), t.received_total());
    let lost = expected.saturating_sub(received);
    rep.section("results (publishes sent in the measured window)");
    rep.int("publishes", "publishes", published, "");
    rep.float(
        "publishes_per_s",
        "publishes/s",
        published as f64 / secs,
        0,
        "/s",
    );
    rep.int("deliveries_expected", "deliveries expected", expected, "");
    rep.int("deliveries_received", "deliveries received", received, "");
    rep.int("deliveries_lost", "deliveries lost", lost, "");
    let pct = if expected > 0 {
        100.0 * lost as f64 / expected as f64
    } else {
        0.0
    };
    rep.float("loss_pct", "loss", pct, 3, "%");
    if by_node {
        for (class, key, label) in [
            (SAME, "same_node", "same node"),
            (OTHER, "other_nodes", "other nodes"),
        ] {
            let lost = load(&t.expected[class]).saturating_sub(load(&t.received[class]));
            rep.int(
                &format!("deliveries_lost_{key}"),
                &format!("deliveries lost, {label}"),
                lost,
                "",
            );
        }
    }
    let extra = received.saturating_sub(expected);
    rep.int("deliveries_extra", "deliveries beyond expected", extra, "");
    rep.float(
        "deliveries_per_s",
        "deliveries/s",
        received as f64 / secs,
        0,
        "/s",
    );
    rep.int(
        "flow_stalls",
        "in-flight waits given up",
        t.flow.stalls(),
        "",
    );
    rep.int("connections_lost", "connections lost", t.lost.total(), "");
    rep.text(
        "connections_lost_kinds",
        "connections lost kinds",
        t.lost.summary(),
    );
    rep.int(
        "foreign_events",
        "events not from this run",
        load(&t.foreign),
        "",
    );
    rep.section("publish → deliver latency");
    let [same, other] = &t.latency;
    Latency::summary_of(&[same, other]).add_to(rep, "latency", "all");
    if by_node {
        same.summary().add_to(rep, "latency_same_node", "same node");
        other
            .summary()
            .add_to(rep, "latency_other_node", "other nodes");
    }
    rep.section("load generator lateness (paced publish due → sent)");
    t.lateness
        .summary()
        .add_to(rep, "publish_lateness", "lateness");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(max_inflight: u64, max_inflight_deliveries: u64) -> FanoutOpts {
        FanoutOpts {
            proto: Proto::Sgc,
            receivers: 0,
            channels: 1,
            channels_per_receiver: 1,
            channel_prefix: String::new(),
            publishers: 1,
            rate: 0.0,
            payload: 0,
            warmup: Duration::ZERO,
            duration: Duration::ZERO,
            drain: Duration::ZERO,
            max_inflight,
            max_inflight_deliveries,
            probe_timeout: Duration::ZERO,
            receiver_nodes: None,
        }
    }

    #[test]
    fn the_inflight_bound_is_capped_but_allows_one_publish() {
        // 1 000 subscribers over 100 channels: 256 publishes × 10.
        assert_eq!(inflight_limit(&opts(256, 20_000), 10.0), 2_560);
        // 10 000 members in one channel: capped at 20 000 deliveries (2 publishes).
        assert_eq!(inflight_limit(&opts(256, 20_000), 10_000.0), 20_000);
        assert_eq!(inflight_limit(&opts(256, 100_000), 10_000.0), 100_000);
        // A channel bigger than the cap still gets one publish in flight.
        assert_eq!(inflight_limit(&opts(256, 20_000), 50_000.0), 50_000);
        // Channels with no receivers count as one.
        assert_eq!(inflight_limit(&opts(4, 20_000), 0.0), 4);
    }
}
