//! A pool of Presence members for the Presence scenarios: each connection joins as a member (and
//! possibly channels), then keeps reading, handing every frame to a scenario-provided handler,
//! while the scenario sends on its behalf through a shared sink.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::SplitSink;
use tokio::sync::{Mutex as AsyncMutex, Semaphore, mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_websockets::Message;

use crate::conn::{self, End, Failures, Ws};
use crate::layout::Layout;
use crate::report::Report;
use crate::run::{self, Ready, RunOpts};
use crate::session;
use crate::wire::Proto;

/// The sending half of a member's connection, shared by the scenario's tasks.
pub(crate) type Sink = Arc<AsyncMutex<SplitSink<Ws, Message>>>;

/// A member that is set up.
pub(crate) struct Member {
    /// Its index in the run (names it `m<index>`).
    pub(crate) index: usize,
    /// Its session GUID, which is its member id.
    pub(crate) guid: String,
    /// Where to send its frames.
    pub(crate) sink: Sink,
}

/// The members of a run and the tasks reading for them.
pub(crate) struct Pool {
    /// The members that were set up, by index.
    pub(crate) members: Vec<Member>,
    /// Setup progress.
    pub(crate) ready: Arc<Ready>,
    /// Setup failures by kind.
    pub(crate) failures: Arc<Failures>,
    /// Connections lost after setup, by reason.
    pub(crate) lost: Arc<Failures>,
    /// Seconds the setup took.
    pub(crate) setup_s: f64,
    /// True if every connection was set up or failed before the setup deadline.
    pub(crate) complete: bool,
    /// The reading tasks.
    tasks: JoinSet<()>,
    /// Stops the reading tasks.
    stop: watch::Sender<bool>,
}

/// How a scenario lays out and handles its members.
pub(crate) struct PoolPlan<F> {
    /// How many members.
    pub(crate) members: usize,
    /// Node and channel of each member (one channel per member).
    pub(crate) layout: Layout,
    /// Join the member's layout channel during setup (else only register as a member).
    pub(crate) join_channel: bool,
    /// The name of each channel of the layout, by number.
    pub(crate) channel_names: Vec<String>,
    /// Makes the frame handler of member `index` with GUID `guid`.
    pub(crate) handler: F,
}

impl Pool {
    /// Connects every member (bounded concurrency), registers it, joins its channel if asked, and
    /// starts its reader; returns when all are set up or failed, or at the setup deadline.
    pub(crate) async fn open<F, H>(plan: PoolPlan<F>, r: &RunOpts, name: &str) -> Self
    where
        F: Fn(usize, &str) -> H + Send + Sync + 'static,
        H: FnMut(&str) + Send + 'static,
    {
        let (stop, stop_rx) = watch::channel(false);
        let ready = Arc::new(Ready::default());
        let failures = Arc::new(Failures::default());
        let lost = Arc::new(Failures::default());
        let gate = Arc::new(Semaphore::new(r.connect_concurrency.max(1)));
        let handler = Arc::new(plan.handler);
        let (member_tx, mut member_rx) = mpsc::unbounded_channel::<Member>();
        let mut tasks = JoinSet::new();
        eprintln!(
            "{name}: connecting {} members to {} node(s)…",
            plan.members,
            r.targets.len()
        );
        let started = Instant::now();
        for index in 0..plan.members {
            let node = plan.layout.node_of(index);
            let target = r.targets[node].clone();
            let channels: Vec<String> = if plan.join_channel {
                plan.layout
                    .channels_of(index)
                    .iter()
                    .filter_map(|&c| plan.channel_names.get(c).cloned())
                    .collect()
            } else {
                Vec::new()
            };
            let (ready, failures, lost, gate, handler, member_tx) = (
                ready.clone(),
                failures.clone(),
                lost.clone(),
                gate.clone(),
                handler.clone(),
                member_tx.clone(),
            );
            let mut stop = stop_rx.clone();
            let connect_timeout = r.connect_timeout;
            tasks.spawn(async move {
                let opened = {
                    let _permit = gate.acquire().await;
                    let deadline = Instant::now() + connect_timeout;
                    let member_name = format!("m{index}");
                    session::open(&target, Proto::Presence, &member_name, &channels, deadline).await
                };
                let (ws, guid) = match opened {
                    Ok(ok) => ok,
                    Err(e) => {
                        failures.add(&e);
                        ready.failed_one();
                        return;
                    }
                };
                let mut on_text = handler(index, &guid);
                let (sink, mut stream) = ws.split();
                let _ = member_tx.send(Member {
                    index,
                    guid,
                    sink: Arc::new(AsyncMutex::new(sink)),
                });
                drop(member_tx);
                ready.ok_one();
                if let End::Lost(why) =
                    conn::read_until_stopped(&mut stream, &mut stop, &mut on_text).await
                {
                    lost.add(&why);
                }
            });
        }
        drop(member_tx);
        let complete = ready
            .wait_all(plan.members as u64, started + r.setup_timeout)
            .await;
        let setup_s = started.elapsed().as_secs_f64();
        let mut members = Vec::new();
        while let Ok(m) = member_rx.try_recv() {
            members.push(m);
        }
        members.sort_by_key(|m| m.index);
        eprintln!(
            "{name}: setup {setup_s:.1}s: {} members ready, {} failed{}",
            ready.ok(),
            ready.failed(),
            if complete { "" } else { " (setup timed out)" }
        );
        Self {
            members,
            ready,
            failures,
            lost,
            setup_s,
            complete,
            tasks,
            stop,
        }
    }

    /// Stops every reader and waits for them (closing the connections).
    pub(crate) async fn close(mut self) {
        let _ = self.stop.send(true);
        self.members.clear();
        run::join_all(&mut self.tasks, Duration::from_secs(30)).await;
    }

    /// Adds the setup figures to a report.
    pub(crate) fn add_setup(&self, rep: &mut Report, requested: usize) {
        rep.int("members", "members requested", requested as u64, "");
        rep.int("members_ready", "members ready", self.ready.ok(), "");
        rep.int("setup_failures", "setup failures", self.ready.failed(), "");
        rep.text(
            "setup_failure_kinds",
            "setup failure kinds",
            self.failures.summary(),
        );
        rep.float("setup_s", "setup time", self.setup_s, 2, "s");
    }
}

/// Sends one frame through a member's sink.
pub(crate) async fn send(sink: &Sink, text: String) -> Result<(), String> {
    use futures_util::SinkExt;
    sink.lock()
        .await
        .send(Message::text(text))
        .await
        .map_err(|e| format!("send: {e}"))
}
