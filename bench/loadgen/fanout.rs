//! The fan-out scenarios: `fanout` (sgc publish → `sgc@event`) and `presence-fanout` (Presence
//! `publish@msg` to channel members).
//!
//! One run: connect every receiving client and bring it to its subscribed state (bounded
//! concurrency), connect the publishers, then publish for a warmup and a measured window, wait for
//! the window's deliveries to drain, stop everything. A delivery belongs to the window when the
//! publish it carries was *sent* in the window (its body holds the send time), so "expected"
//! (publishes in the window × receivers of their channel) and "received" count the same messages.
//!
//! sgc: subscribers and publishers are separate connections (publishers are not subscribed).
//! Presence: every client is a member in its channels; publishers are the first members on the
//! publisher's node, and receive their own messages like everyone else (spec §3.4).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_websockets::Message;

use crate::clock::{self, dur_ns, now_ns};
use crate::conn::{self, End, Failures, Target};
use crate::flow::Flow;
use crate::latency::{Batch, Latency};
use crate::layout::Layout;
use crate::report::Report;
use crate::run::{self, CpuWindow, Ready, RunOpts};
use crate::session;
use crate::wire::{self, Incoming, Proto, PublishTemplate};

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
}

/// Index of the "same node as the publishers" class in per-class arrays.
const SAME: usize = 0;
/// Index of the "another node" class.
const OTHER: usize = 1;

/// Counters shared by every task of a run.
struct Shared {
    /// Start of the measured window (clock ns); `u64::MAX` until publishing starts.
    window_start: AtomicU64,
    /// End of the measured window (clock ns).
    window_end: AtomicU64,
    /// Deliveries of window publishes received, by class.
    received: [AtomicU64; 2],
    /// Deliveries of warmup publishes (not measured).
    received_outside: AtomicU64,
    /// `sgc@event` / `publish@msg` frames whose body is not ours.
    foreign: AtomicU64,
    /// Publish→deliver latency of window deliveries, by class.
    latency: [Arc<Latency>; 2],
    /// Publishes sent in the window.
    published: AtomicU64,
    /// Publishes sent in all.
    published_total: AtomicU64,
    /// Deliveries the window's publishes should produce, by class.
    expected: [AtomicU64; 2],
    /// Receivers subscribed, per channel and class (fixed once setup ends).
    subscribed: Vec<[AtomicU64; 2]>,
    /// Receivers still connected, per channel (publishers count these in flight).
    live: Vec<AtomicU64>,
    /// The in-flight bound.
    flow: Flow,
    /// Connections lost while the run was going (not stopped by it), by reason.
    lost: Failures,
    /// Receivers that finished setup.
    receivers_ready: AtomicU64,
    /// Publishers that finished setup.
    publishers_ready: AtomicU64,
}

impl Shared {
    /// Accounts one text frame received by a receiver of class `class`.
    fn on_text(&self, text: &str, class: usize, batch: &mut Batch, batch_other: &mut Batch) {
        let Incoming::Event(sent) = wire::classify(text) else {
            return;
        };
        let Some(sent) = sent else {
            self.foreign.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let now = now_ns();
        self.flow.delivered();
        let start = self.window_start.load(Ordering::Relaxed);
        let end = self.window_end.load(Ordering::Relaxed);
        if sent >= start && sent < end {
            self.received[class].fetch_add(1, Ordering::Relaxed);
            let lat = now.saturating_sub(sent);
            if class == SAME {
                batch.record(lat);
            } else {
                batch_other.record(lat);
            }
        } else {
            self.received_outside.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Deliveries of window publishes received, all classes.
    fn received_total(&self) -> u64 {
        self.received
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// Deliveries the window's publishes should produce, all classes.
    fn expected_total(&self) -> u64 {
        self.expected
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }
}

/// One client's part in the run.
#[derive(Debug, Clone)]
struct Role {
    /// Index among the run's clients (names the Presence member).
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

/// The publishing schedule, sent to publishers when setup is done.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    /// When publishing starts (clock ns); the warmup runs from here to the window start.
    start: u64,
    /// When publishing stops: the end of the window.
    end: u64,
}

/// Runs a fan-out scenario and returns its report.
pub(crate) async fn run(o: &FanoutOpts, r: &RunOpts) -> Result<Report, String> {
    let nodes = r.targets.len();
    let layout = Layout::new(o.receivers, o.channels, o.channels_per_receiver, nodes);
    let roles = roles(o, r, &layout)?;
    let mean_per_channel = (o.receivers * layout.per_sub) as f64 / layout.channels as f64;
    let limit = (o.max_inflight as f64 * mean_per_channel.max(1.0)).ceil() as u64;
    let shared = Arc::new(Shared {
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        received: Default::default(),
        received_outside: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        latency: [Latency::new(), Latency::new()],
        published: AtomicU64::new(0),
        published_total: AtomicU64::new(0),
        expected: Default::default(),
        subscribed: (0..layout.channels).map(|_| Default::default()).collect(),
        live: (0..layout.channels).map(|_| AtomicU64::new(0)).collect(),
        flow: Flow::new(limit),
        lost: Failures::default(),
        receivers_ready: AtomicU64::new(0),
        publishers_ready: AtomicU64::new(0),
    });
    let channel_names: Arc<Vec<String>> = Arc::new(
        (0..layout.channels)
            .map(|c| format!("{}{c}", o.channel_prefix))
            .collect(),
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    let (go_tx, go_rx) = watch::channel(None::<Schedule>);
    let ready = Arc::new(Ready::default());
    let setup_failures = Arc::new(Failures::default());
    let gate = Arc::new(Semaphore::new(r.connect_concurrency.max(1)));
    let mut tasks = JoinSet::new();

    eprintln!(
        "{}: connecting {} clients ({} receivers, {} publishers) to {} node(s)…",
        scenario_name(o.proto),
        roles.len(),
        o.receivers,
        o.publishers,
        nodes
    );
    let setup_started = Instant::now();
    for role in roles.iter().cloned() {
        let ctx = ClientCtx {
            o: o.clone(),
            target: r.targets[role.node].clone(),
            class: if role.node == r.publisher_node {
                SAME
            } else {
                OTHER
            },
            shared: shared.clone(),
            names: channel_names.clone(),
            layout: layout.clone(),
            ready: ready.clone(),
            failures: setup_failures.clone(),
            gate: gate.clone(),
            connect_timeout: r.connect_timeout,
            stop: stop_rx.clone(),
            go: go_rx.clone(),
        };
        tasks.spawn(client(role, ctx));
    }
    let done = ready
        .wait_all(roles.len() as u64, setup_started + r.setup_timeout)
        .await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    let receivers_ready = shared.receivers_ready.load(Ordering::Relaxed);
    let publishers_ready = shared.publishers_ready.load(Ordering::Relaxed);
    eprintln!(
        "{}: setup {setup_s:.1}s: {} ready, {} failed{}",
        scenario_name(o.proto),
        ready.ok(),
        ready.failed(),
        if done { "" } else { " (setup timed out)" }
    );
    let abort = |why: String| {
        let _ = stop_tx.send(true);
        Err(format!(
            "{why} (setup failures: {})",
            setup_failures.summary()
        ))
    };
    if !done {
        return abort(format!(
            "setup did not finish within {:?}: {} ready, {} failed of {}",
            r.setup_timeout,
            ready.ok(),
            ready.failed(),
            roles.len()
        ));
    }
    if receivers_ready == 0 {
        return abort("no receiver could subscribe".to_owned());
    }
    if publishers_ready < o.publishers as u64 {
        return abort(format!(
            "only {publishers_ready} of {} publishers connected",
            o.publishers
        ));
    }

    // Publish: warmup, then the measured window.
    let start = now_ns() + dur_ns(Duration::from_millis(100));
    let window_start = start + dur_ns(o.warmup);
    let window_end = window_start + dur_ns(o.duration);
    shared.window_start.store(window_start, Ordering::Relaxed);
    shared.window_end.store(window_end, Ordering::Relaxed);
    let _ = go_tx.send(Some(Schedule {
        start,
        end: window_end,
    }));
    eprintln!(
        "{}: publishing: {:.1}s warmup, {:.1}s measured…",
        scenario_name(o.proto),
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64()
    );
    let cpu = CpuWindow::measure(&r.node_pids, window_start, window_end).await;

    // Drain: wait for the window's deliveries (publishers have stopped at the window end).
    let drain_deadline = Instant::now() + o.drain;
    while shared.received_total() < shared.expected_total() && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    run::join_all(&mut tasks, Duration::from_secs(10)).await;

    Ok(report(
        o,
        r,
        &layout,
        &shared,
        &cpu,
        setup_s,
        &ready,
        &setup_failures,
    ))
}

/// The name of the scenario for `proto`.
fn scenario_name(proto: Proto) -> &'static str {
    match proto {
        Proto::Sgc => "fanout",
        Proto::Presence => "presence-fanout",
    }
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
            let mut p = 0;
            for role in roles
                .iter_mut()
                .filter(|role| role.node == r.publisher_node)
            {
                if p == o.publishers {
                    break;
                }
                role.publisher = Some(p);
                p += 1;
            }
            if p < o.publishers {
                return Err(format!(
                    "only {p} members are on the publisher's node: ask for fewer publishers"
                ));
            }
        }
    }
    Ok(roles)
}

/// Everything a client task needs.
struct ClientCtx {
    /// The run's options.
    o: FanoutOpts,
    /// Its node.
    target: Target,
    /// Its latency class.
    class: usize,
    /// Shared counters.
    shared: Arc<Shared>,
    /// Channel names by index.
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
    /// Carries the schedule to publishers.
    go: watch::Receiver<Option<Schedule>>,
}

/// One client: set up, then read (and publish, for publishers) until stopped.
async fn client(role: Role, mut cx: ClientCtx) {
    let names: Vec<String> = role.channels.iter().map(|&c| cx.names[c].clone()).collect();
    let opened = {
        let _permit = cx.gate.acquire().await;
        let deadline = Instant::now() + cx.connect_timeout;
        session::open(
            &cx.target,
            cx.o.proto,
            &format!("m{}", role.index),
            &names,
            deadline,
        )
        .await
    };
    let (ws, guid) = match opened {
        Ok(ok) => ok,
        Err(e) => {
            cx.failures.add(&e);
            cx.ready.failed_one();
            return;
        }
    };
    if role.receiver {
        for &c in &role.channels {
            cx.shared.subscribed[c][cx.class].fetch_add(1, Ordering::Relaxed);
            cx.shared.live[c].fetch_add(1, Ordering::Relaxed);
        }
        cx.shared.receivers_ready.fetch_add(1, Ordering::Relaxed);
    }
    if role.publisher.is_some() {
        cx.shared.publishers_ready.fetch_add(1, Ordering::Relaxed);
    }
    cx.ready.ok_one();
    let (sink, mut stream) = ws.split();
    let mut writer = None;
    if let Some(p) = role.publisher {
        let shared = cx.shared.clone();
        let go = cx.go.clone();
        let plan = Publisher {
            o: cx.o.clone(),
            layout: cx.layout.clone(),
            templates: cx
                .names
                .iter()
                .map(|n| PublishTemplate::new(cx.o.proto, n, &guid))
                .collect(),
            p,
        };
        writer = Some(tokio::spawn(plan.run(sink, shared, go)));
    }
    let mut same = Batch::new(cx.shared.latency[SAME].clone());
    let mut other = Batch::new(cx.shared.latency[OTHER].clone());
    let shared = cx.shared.clone();
    let class = cx.class;
    let end = conn::read_until_stopped(&mut stream, &mut cx.stop, |text| {
        if role.receiver {
            shared.on_text(text, class, &mut same, &mut other);
        }
    })
    .await;
    if let End::Lost(why) = end {
        cx.shared.lost.add(&why);
        if role.receiver {
            for &c in &role.channels {
                cx.shared.live[c].fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
    if let Some(w) = writer {
        w.abort();
    }
}

/// A publisher's plan.
struct Publisher {
    /// The run's options.
    o: FanoutOpts,
    /// The layout (publish order).
    layout: Layout,
    /// One frame template per channel.
    templates: Vec<PublishTemplate>,
    /// Its publisher number.
    p: usize,
}

impl Publisher {
    /// Publishes on schedule until the window ends (or the connection fails).
    async fn run<S>(
        self,
        mut sink: S,
        shared: Arc<Shared>,
        mut go: watch::Receiver<Option<Schedule>>,
    ) where
        S: futures_util::Sink<Message, Error = tokio_websockets::Error> + Unpin,
    {
        let Ok(schedule) = go.wait_for(Option::is_some).await.map(|s| *s) else {
            return;
        };
        let Some(Schedule { start, end }) = schedule else {
            return;
        };
        tokio::time::sleep_until(clock::instant_at(start)).await;
        let window_start = shared.window_start.load(Ordering::Relaxed);
        // Nanoseconds between two publishes of this publisher; 0 = no pacing.
        let interval_ns = if self.o.rate > 0.0 {
            self.o.publishers.max(1) as f64 * 1e9 / self.o.rate
        } else {
            0.0
        };
        let mut k: u64 = 0;
        loop {
            let now = now_ns();
            if now >= end {
                break;
            }
            let mut batch = 64u64;
            if interval_ns > 0.0 {
                let due = ((now - start) as f64 / interval_ns) as u64 + 1;
                if k >= due {
                    let next = start + (k as f64 * interval_ns) as u64;
                    tokio::time::sleep_until(clock::instant_at(next.min(end))).await;
                    continue;
                }
                batch = batch.min(due - k);
            }
            for _ in 0..batch {
                let ch = self.layout.publish_channel(self.p, k, self.o.publishers);
                if !shared.flow.has_room() && sink.flush().await.is_err() {
                    return;
                }
                shared
                    .flow
                    .admit(shared.live[ch].load(Ordering::Relaxed))
                    .await;
                let sent = now_ns();
                if sent >= end {
                    break;
                }
                let frame = self.templates[ch].frame(sent, self.o.payload);
                if sink.feed(Message::text(frame)).await.is_err() {
                    return;
                }
                k += 1;
                shared.published_total.fetch_add(1, Ordering::Relaxed);
                if sent >= window_start {
                    shared.published.fetch_add(1, Ordering::Relaxed);
                    for class in [SAME, OTHER] {
                        let n = shared.subscribed[ch][class].load(Ordering::Relaxed);
                        shared.expected[class].fetch_add(n, Ordering::Relaxed);
                    }
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _ = sink.flush().await;
    }
}

/// The figures of a finished run.
#[allow(clippy::too_many_arguments)]
fn report(
    o: &FanoutOpts,
    r: &RunOpts,
    layout: &Layout,
    s: &Shared,
    cpu: &CpuWindow,
    setup_s: f64,
    ready: &Ready,
    setup_failures: &Failures,
) -> Report {
    let mut rep = Report::new(scenario_name(o.proto));
    rep.section("setup");
    r.add_targets(&mut rep);
    rep.int(
        "receivers",
        receivers_label(o.proto),
        o.receivers as u64,
        "",
    );
    rep.int("channels", "channels", o.channels as u64, "");
    rep.int(
        "channels_per_receiver",
        "channels per receiver",
        o.channels_per_receiver as u64,
        "",
    );
    let planned = layout.subscribers_per_channel_node();
    let per_cell = planned.iter().flatten().copied();
    rep.text(
        "receivers_per_channel_node",
        "receivers per channel per node (min-max)",
        format!(
            "{}-{}",
            per_cell.clone().min().unwrap_or(0),
            per_cell.max().unwrap_or(0)
        ),
    );
    rep.int("publishers", "publishers", o.publishers as u64, "");
    rep.int("clients_ready", "clients ready", ready.ok(), "");
    rep.int("setup_failures", "setup failures", ready.failed(), "");
    rep.text(
        "setup_failure_kinds",
        "setup failure kinds",
        setup_failures.summary(),
    );
    rep.float("setup_s", "setup time", setup_s, 2, "s");
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
    rep.float("warmup_s", "warmup", o.warmup.as_secs_f64(), 1, "s");
    rep.float(
        "duration_s",
        "measured window",
        o.duration.as_secs_f64(),
        1,
        "s",
    );

    let secs = o.duration.as_secs_f64().max(1e-9);
    let published = s.published.load(Ordering::Relaxed);
    let expected = s.expected_total();
    let received = s.received_total();
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
    rep.int(
        "deliveries_lost",
        "deliveries lost",
        expected.saturating_sub(received),
        "",
    );
    rep.float(
        "loss_pct",
        "loss",
        if expected > 0 {
            100.0 * expected.saturating_sub(received) as f64 / expected as f64
        } else {
            0.0
        },
        3,
        "%",
    );
    rep.int(
        "deliveries_extra",
        "deliveries beyond expected",
        received.saturating_sub(expected),
        "",
    );
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
        s.flow.stalls(),
        "",
    );
    rep.int("connections_lost", "connections lost", s.lost.total(), "");
    rep.text(
        "connections_lost_kinds",
        "connections lost kinds",
        s.lost.summary(),
    );
    rep.int(
        "foreign_events",
        "events not from this run",
        s.foreign.load(Ordering::Relaxed),
        "",
    );

    rep.section("publish → deliver latency");
    Latency::summary_of(&[&s.latency[SAME], &s.latency[OTHER]]).add_to(&mut rep, "latency", "all");
    s.latency[SAME]
        .summary()
        .add_to(&mut rep, "latency_same_node", "same node");
    if r.targets.len() > 1 {
        s.latency[OTHER]
            .summary()
            .add_to(&mut rep, "latency_other_node", "other nodes");
    }
    cpu.add_to(&mut rep, received, secs);
    rep
}

/// How the receivers are called in the report.
fn receivers_label(proto: Proto) -> &'static str {
    match proto {
        Proto::Sgc => "subscribers",
        Proto::Presence => "members",
    }
}
