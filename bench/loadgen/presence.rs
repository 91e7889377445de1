//! The Presence scenarios that are not plain fan-out (that one is [`crate::fanout`]):
//!
//! - `presence-churn`: members join and leave channels at a steady total rate; measures the
//!   operations per second confirmed by the node and how fast each join/leave event reaches the
//!   members who receive it.
//! - `presence-members`: a channel with many members; one member asks `get@members` again and
//!   again and measures the round trip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::clock::{self, dur_ns, now_ns};
use crate::conn::Failures;
use crate::latency::{Batch, Latency};
use crate::layout::Layout;
use crate::members::{self, Pool, PoolPlan};
use crate::report::Report;
use crate::run::{CpuWindow, RunOpts};
use crate::wire::{self, Incoming};

/// What one `presence-churn` run does.
#[derive(Debug, Clone)]
pub(crate) struct ChurnOpts {
    /// Members connected.
    pub(crate) members: usize,
    /// Channels; member `i` joins and leaves its one channel (spread evenly).
    pub(crate) channels: usize,
    /// Channel names are this prefix and the channel number.
    pub(crate) channel_prefix: String,
    /// Join + leave operations per second over all members (each member alternates).
    pub(crate) rate: f64,
    /// Operations before the measured window.
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) duration: Duration,
    /// Longest wait for the window's confirmations after it ends.
    pub(crate) drain: Duration,
}

/// State shared by the churn scheduler and every member's reader.
struct Churn {
    /// Member GUID → member index, set once setup is over.
    index: OnceLock<HashMap<String, usize>>,
    /// When each member's last operation was sent (clock ns).
    last_op: Vec<AtomicU64>,
    /// True while a member's last operation is not yet confirmed to it.
    pending: Vec<AtomicBool>,
    /// Start of the measured window (clock ns); `u64::MAX` until it is known.
    window_start: AtomicU64,
    /// End of the measured window.
    window_end: AtomicU64,
    /// Operations sent in the window.
    ops_sent: AtomicU64,
    /// Operations of the window confirmed to their member.
    ops_confirmed: AtomicU64,
    /// Operations skipped because the member's previous one was not confirmed yet.
    ops_skipped: AtomicU64,
    /// Join/leave events about window operations received by any member.
    events: AtomicU64,
    /// Join/leave events naming a member this run does not know.
    unknown_events: AtomicU64,
    /// Operation sent → event received, every receiver.
    fanout_latency: Arc<Latency>,
    /// Operation sent → its own member receives the event (the confirmation).
    confirm_latency: Arc<Latency>,
    /// Error frames received, by code and text.
    errors: Failures,
}

impl Churn {
    /// True if an operation sent at `sent` belongs to the measured window.
    fn in_window(&self, sent: u64) -> bool {
        sent >= self.window_start.load(Ordering::Relaxed)
            && sent < self.window_end.load(Ordering::Relaxed)
    }

    /// Handles one frame received by member `me`.
    fn on_text(&self, me: usize, text: &str, batch: &mut Batch) {
        match wire::classify(text) {
            Incoming::ChannelMember { id, .. } => {
                let now = now_ns();
                let Some(&who) = self.index.get().and_then(|m| m.get(id.as_ref())) else {
                    self.unknown_events.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let sent = self.last_op[who].load(Ordering::Acquire);
                let measured = self.in_window(sent);
                if measured {
                    self.events.fetch_add(1, Ordering::Relaxed);
                    batch.record(now.saturating_sub(sent));
                }
                if who == me && self.pending[me].swap(false, Ordering::AcqRel) && measured {
                    self.ops_confirmed.fetch_add(1, Ordering::Relaxed);
                    self.confirm_latency.record(now.saturating_sub(sent));
                }
            }
            Incoming::Error { code, text } => {
                // Errors go to the member whose operation failed: it may try again.
                self.errors.add(&format!("{code} {text}"));
                self.pending[me].store(false, Ordering::Release);
            }
            _ => {}
        }
    }
}

/// Runs `presence-churn` and returns its report.
pub(crate) async fn churn(o: &ChurnOpts, r: &RunOpts) -> Result<Report, String> {
    let n = o.members;
    let layout = Layout::new(n, o.channels, 1, r.targets.len());
    let state = Arc::new(Churn {
        index: OnceLock::new(),
        last_op: (0..n).map(|_| AtomicU64::new(0)).collect(),
        pending: (0..n).map(|_| AtomicBool::new(false)).collect(),
        window_start: AtomicU64::new(u64::MAX),
        window_end: AtomicU64::new(u64::MAX),
        ops_sent: AtomicU64::new(0),
        ops_confirmed: AtomicU64::new(0),
        ops_skipped: AtomicU64::new(0),
        events: AtomicU64::new(0),
        unknown_events: AtomicU64::new(0),
        fanout_latency: Latency::new(),
        confirm_latency: Latency::new(),
        errors: Failures::default(),
    });
    let st = state.clone();
    let plan = PoolPlan {
        members: n,
        layout: layout.clone(),
        join_channel: false,
        channel_names: (0..layout.channels)
            .map(|c| format!("{}{c}", o.channel_prefix))
            .collect(),
        handler: move |me: usize, _guid: &str| {
            let st = st.clone();
            let mut batch = Batch::new(st.fanout_latency.clone());
            move |text: &str| st.on_text(me, text, &mut batch)
        },
    };
    let pool = Pool::open(plan, r, "presence-churn").await;
    if !pool.complete || pool.members.is_empty() {
        let why = format!(
            "setup incomplete: {} ready, {} failed of {n} ({})",
            pool.ready.ok(),
            pool.ready.failed(),
            pool.failures.summary()
        );
        pool.close().await;
        return Err(why);
    }
    let _ = state.index.set(
        pool.members
            .iter()
            .map(|m| (m.guid.clone(), m.index))
            .collect(),
    );

    let start = now_ns() + dur_ns(Duration::from_millis(100));
    let window_start = start + dur_ns(o.warmup);
    let window_end = window_start + dur_ns(o.duration);
    state.window_start.store(window_start, Ordering::Relaxed);
    state.window_end.store(window_end, Ordering::Relaxed);
    eprintln!(
        "presence-churn: {:.0} ops/s over {} members: {:.1}s warmup, {:.1}s measured…",
        o.rate,
        pool.members.len(),
        o.warmup.as_secs_f64(),
        o.duration.as_secs_f64()
    );
    let cpu_pids = r.node_pids.clone();
    let cpu =
        tokio::spawn(async move { CpuWindow::measure(&cpu_pids, window_start, window_end).await });

    // The scheduler: operation k is done by member k mod n, alternating join and leave.
    let interval_ns = 1e9 / o.rate.max(0.001);
    let mut joined = vec![false; pool.members.len()];
    let mut send_errors = 0u64;
    let mut k: u64 = 0;
    tokio::time::sleep_until(clock::instant_at(start)).await;
    loop {
        let now = now_ns();
        if now >= window_end {
            break;
        }
        let due = ((now - start) as f64 / interval_ns) as u64 + 1;
        if k >= due {
            let next = start + (k as f64 * interval_ns) as u64;
            tokio::time::sleep_until(clock::instant_at(next.min(window_end))).await;
            continue;
        }
        while k < due {
            let slot = (k % pool.members.len() as u64) as usize;
            k += 1;
            let m = &pool.members[slot];
            if state.pending[m.index].load(Ordering::Acquire) {
                state.ops_skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let channel = format!("{}{}", o.channel_prefix, layout.channels_of(m.index)[0]);
            let join = !joined[slot];
            let frame = wire::presence_channel_member(&m.guid, &channel, join);
            let sent = now_ns();
            state.pending[m.index].store(true, Ordering::Release);
            state.last_op[m.index].store(sent, Ordering::Release);
            if members::send(&m.sink, frame).await.is_err() {
                send_errors += 1;
                state.pending[m.index].store(false, Ordering::Release);
                continue;
            }
            joined[slot] = join;
            if state.in_window(sent) {
                state.ops_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let cpu = cpu.await.unwrap_or_default();
    let drain_deadline = Instant::now() + o.drain;
    while state.pending.iter().any(|p| p.load(Ordering::Acquire)) && Instant::now() < drain_deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let mut rep = Report::new("presence-churn");
    rep.section("setup");
    r.add_targets(&mut rep);
    pool.add_setup(&mut rep, n);
    rep.int("channels", "channels", layout.channels as u64, "");
    rep.section("load");
    rep.float("target_rate", "target join+leave rate", o.rate, 0, "ops/s");
    rep.float("warmup_s", "warmup", o.warmup.as_secs_f64(), 1, "s");
    rep.float(
        "duration_s",
        "measured window",
        o.duration.as_secs_f64(),
        1,
        "s",
    );
    let secs = o.duration.as_secs_f64().max(1e-9);
    let sent = state.ops_sent.load(Ordering::Relaxed);
    let confirmed = state.ops_confirmed.load(Ordering::Relaxed);
    let events = state.events.load(Ordering::Relaxed);
    rep.section("results (operations sent in the measured window)");
    rep.int("ops_sent", "join/leave operations sent", sent, "");
    rep.int("ops_confirmed", "operations confirmed", confirmed, "");
    rep.float(
        "ops_per_s",
        "confirmed operations/s",
        confirmed as f64 / secs,
        0,
        "/s",
    );
    rep.int(
        "ops_unconfirmed",
        "operations never confirmed",
        sent.saturating_sub(confirmed),
        "",
    );
    rep.int(
        "ops_skipped_busy",
        "operations skipped (member's previous one unconfirmed)",
        state.ops_skipped.load(Ordering::Relaxed),
        "",
    );
    rep.int("send_errors", "send errors", send_errors, "");
    rep.int("events_received", "join/leave events received", events, "");
    rep.float(
        "events_per_s",
        "events received/s",
        events as f64 / secs,
        0,
        "/s",
    );
    rep.float(
        "events_per_op",
        "events per operation (fan-out)",
        if confirmed > 0 {
            events as f64 / confirmed as f64
        } else {
            0.0
        },
        1,
        "",
    );
    rep.int(
        "unknown_member_events",
        "events about unknown members",
        state.unknown_events.load(Ordering::Relaxed),
        "",
    );
    rep.int("error_frames", "error frames", state.errors.total(), "");
    rep.text("error_kinds", "error kinds", state.errors.summary());
    rep.int(
        "connections_lost",
        "connections lost",
        pool.lost.total(),
        "",
    );
    rep.text(
        "connections_lost_kinds",
        "connections lost kinds",
        pool.lost.summary(),
    );
    pool.close().await;
    rep.section("latency");
    state
        .confirm_latency
        .summary()
        .add_to(&mut rep, "confirm_latency", "op → own event");
    state
        .fanout_latency
        .summary()
        .add_to(&mut rep, "event_latency", "op → every event");
    cpu.add_to(&mut rep, Some((confirmed, "operations")), secs);
    Ok(rep)
}

/// What one `presence-members` run does.
#[derive(Debug, Clone)]
pub(crate) struct MembersOpts {
    /// Members, all in one channel.
    pub(crate) members: usize,
    /// The channel's name.
    pub(crate) channel: String,
    /// Measured `get@members` requests, one after the other.
    pub(crate) requests: usize,
    /// Requests before the measured ones.
    pub(crate) warmup_requests: usize,
    /// Longest wait for the node to go quiet after setup.
    pub(crate) settle_timeout: Duration,
    /// Longest wait for one reply.
    pub(crate) reply_timeout: Duration,
}

/// A `send@members` reply as the requester's reader saw it.
struct Reply {
    /// When it arrived (clock ns).
    at: u64,
    /// Entries in its `members` array.
    members: usize,
    /// Its size in bytes.
    bytes: usize,
}

/// Runs `presence-members` and returns its report.
pub(crate) async fn members(o: &MembersOpts, r: &RunOpts) -> Result<Report, String> {
    let n = o.members;
    let layout = Layout::new(n, 1, 1, r.targets.len());
    // The requester is the first member on the publishers' node.
    let requester = (0..n)
        .find(|&i| layout.node_of(i) == r.publisher_node)
        .ok_or("no member on the publishers' node")?;
    let (reply_tx, mut reply_rx) = mpsc::unbounded_channel::<Reply>();
    let frames = Arc::new(AtomicU64::new(0));
    let (frames_h, channel) = (frames.clone(), o.channel.clone());
    let plan = PoolPlan {
        members: n,
        layout,
        join_channel: true,
        channel_names: vec![o.channel.clone()],
        handler: move |me: usize, _guid: &str| {
            let (reply_tx, frames, channel) = (reply_tx.clone(), frames_h.clone(), channel.clone());
            move |text: &str| {
                let at = now_ns();
                frames.fetch_add(1, Ordering::Relaxed);
                if me != requester {
                    return;
                }
                if let Incoming::SendMembers {
                    channel: ch,
                    members,
                } = wire::classify(text)
                    && ch == channel.as_str()
                {
                    let _ = reply_tx.send(Reply {
                        at,
                        members,
                        bytes: text.len(),
                    });
                }
            }
        },
    };
    let pool = Pool::open(plan, r, "presence-members").await;
    if !pool.complete || pool.members.is_empty() {
        let why = format!(
            "setup incomplete: {} ready, {} failed of {n} ({})",
            pool.ready.ok(),
            pool.ready.failed(),
            pool.failures.summary()
        );
        pool.close().await;
        return Err(why);
    }
    let Some(asker) = pool.members.iter().find(|m| m.index == requester) else {
        pool.close().await;
        return Err("the requesting member failed to set up".to_owned());
    };

    // Wait until the join storm has drained: no frame for half a second.
    let settle_deadline = Instant::now() + o.settle_timeout;
    let mut last = frames.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = frames.load(Ordering::Relaxed);
        if now == last || Instant::now() >= settle_deadline {
            break;
        }
        last = now;
    }

    let latency = Latency::new();
    let frame = wire::presence_get_members(&asker.guid, &o.channel);
    let mut last_reply: Option<Reply> = None;
    let mut timeouts = 0u64;
    let mut cpu_before = None;
    let mut measured_start = Instant::now();
    for i in 0..o.warmup_requests + o.requests {
        if i == o.warmup_requests {
            cpu_before = Some(CpuWindow::sample(&r.node_pids));
            measured_start = Instant::now();
        }
        let sent = now_ns();
        members::send(&asker.sink, frame.clone()).await?;
        match tokio::time::timeout(o.reply_timeout, reply_rx.recv()).await {
            Ok(Some(reply)) => {
                if i >= o.warmup_requests {
                    latency.record(reply.at.saturating_sub(sent));
                }
                last_reply = Some(reply);
            }
            Ok(None) => return Err("the requester's connection ended".to_owned()),
            Err(_) => timeouts += 1,
        }
    }
    let measured_s = measured_start.elapsed().as_secs_f64().max(1e-9);
    let cpu = match cpu_before {
        Some(before) => CpuWindow::between(&before, &CpuWindow::sample(&r.node_pids)),
        None => CpuWindow::default(),
    };

    let mut rep = Report::new("presence-members");
    rep.section("setup");
    r.add_targets(&mut rep);
    pool.add_setup(&mut rep, n);
    rep.text("channel", "channel", o.channel.clone());
    rep.section("get@members from one member");
    rep.int("requests", "measured requests", o.requests as u64, "");
    rep.int("reply_timeouts", "requests without reply", timeouts, "");
    rep.float(
        "requests_per_s",
        "requests/s (one at a time)",
        o.requests as f64 / measured_s,
        0,
        "/s",
    );
    rep.int(
        "members_listed",
        "members in the last reply",
        last_reply.as_ref().map_or(0, |r| r.members as u64),
        "",
    );
    rep.int(
        "reply_bytes",
        "reply size",
        last_reply.as_ref().map_or(0, |r| r.bytes as u64),
        "bytes",
    );
    rep.int(
        "connections_lost",
        "connections lost",
        pool.lost.total(),
        "",
    );
    pool.close().await;
    latency.summary().add_to(&mut rep, "latency", "get@members");
    cpu.add_to(&mut rep, Some((o.requests as u64, "requests")), measured_s);
    Ok(rep)
}
