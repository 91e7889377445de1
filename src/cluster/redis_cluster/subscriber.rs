//! The receiving side of the Redis Cluster engine: one cluster connection (RESP3, a connection
//! per master inside the client) whose sharded subscriptions are kept whole, slot by slot.
//!
//! The subscriptions are grouped by hash tag (one slot each). A group is *pending* until its
//! SSUBSCRIBE is confirmed; everything is pending after a connection to a node was lost, after
//! the server dropped a subscription (its slot moved: the SUNSUBSCRIBE push) and after a failed
//! publish or ping, and pending groups are subscribed again with backoff. The control group (the
//! shared channel and this node's own) decides readiness, and every heartbeat interval the
//! control slot's master is asked whether this node's own channel really has its subscriber (a
//! confirmation is not proof when the client's slot map is stale). After [`REBUILD_AFTER`]
//! failures (or failed checks) in a row the whole connection is made anew (the seeds are asked for
//! the cluster again).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use ::redis::cluster_async::ClusterConnection;
use ::redis::{PushInfo, PushKind, Value};
use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Shared;
use super::names::hash_tag;
use crate::cluster::broker::interest::Command;
use crate::cluster::broker::streams::StreamNames;
use crate::cluster::redis::RedisRouting;

/// Most Redis channels named in one SSUBSCRIBE.
const SUBSCRIBE_CHUNK: usize = 1024;

/// Failed attempts (or checks) in a row at the control subscription before the connection is
/// made anew.
const REBUILD_AFTER: u32 = 3;

type Pushes = mpsc::UnboundedReceiver<PushInfo>;

/// A fresh cluster connection whose pushes (messages, subscription changes, disconnections)
/// arrive on the returned receiver.
async fn connect(shared: &Shared) -> Result<(ClusterConnection, Pushes), String> {
    let (tx, rx) = mpsc::unbounded_channel();
    let client = shared.cfg.client(Some(tx)).map_err(|e| e.to_string())?;
    let timeout = shared.cfg.connect_timeout() + shared.cfg.response_timeout();
    let conn = tokio::time::timeout(timeout, client.get_async_connection())
        .await
        .map_err(|_| "timed out connecting to the redis cluster".to_string())?
        .map_err(|e| e.to_string())?;
    Ok((conn, rx))
}

/// The subscriber task: connect, keep the subscriptions whole until the connection must be made
/// anew, repeat.
pub(crate) async fn subscriber(
    shared: Arc<Shared>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) {
    let core = &shared.core;
    let mut stop = core.stopping();
    let mut failures: u32 = 0;
    let mut connected_before = false;
    loop {
        if *stop.borrow() {
            return;
        }
        let connected = tokio::select! {
            c = connect(&shared) => c,
            _ = stop.changed() => return,
        };
        match connected {
            Ok((conn, pushes)) => {
                failures = 0;
                let mut session = Session {
                    shared: &shared,
                    conn,
                    subscribed: HashSet::new(),
                    pending: BTreeSet::new(),
                    up: false,
                    connected_before: &mut connected_before,
                };
                let why = session.run(pushes, &mut commands, &mut stop).await;
                shared.connection.lock().take();
                core.set_subscriber_up(false, why.clone());
                core.set_publisher_up(false, why);
                // Whatever waits on a subscription must not wait for the cluster to come back.
                while let Ok(cmd) = commands.try_recv() {
                    cmd.give_up();
                }
            }
            Err(e) => {
                core.set_subscriber_up(false, Some(e.clone()));
                core.set_publisher_up(false, Some(e));
            }
        }
        let wait = shared.cfg.backoff(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One cluster connection and the state of its subscriptions.
struct Session<'a> {
    shared: &'a Shared,
    conn: ClusterConnection,
    /// The Redis channels whose subscription is confirmed.
    subscribed: HashSet<Arc<str>>,
    /// The hash tags whose channels must be subscribed (again).
    pending: BTreeSet<String>,
    /// Whether the control group is subscribed (the engine is up).
    up: bool,
    connected_before: &'a mut bool,
}

impl Session<'_> {
    /// Every Redis channel this node wants, by hash tag.
    fn wanted(&self) -> BTreeMap<String, Vec<String>> {
        let names = &self.shared.names;
        let mut all = names.fixed(&self.shared.core.origin().node_id);
        if self.shared.cfg.routing == RedisRouting::Channel {
            all.extend(self.shared.keys.lock().iter().map(|k| names.channel(k)));
        }
        let mut by_tag: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for name in all {
            by_tag
                .entry(hash_tag(&name).to_owned())
                .or_default()
                .push(name);
        }
        by_tag
    }

    /// Marks every group pending (a node connection was lost, or something failed).
    fn all_pending(&mut self) {
        self.pending = self.wanted().into_keys().collect();
    }

    async fn ssubscribe(&mut self, names: &[String]) -> Result<(), String> {
        for chunk in names.chunks(SUBSCRIBE_CHUNK) {
            tokio::time::timeout(
                self.shared.cfg.response_timeout(),
                self.conn.ssubscribe(chunk),
            )
            .await
            .map_err(|_| "redis cluster did not confirm a subscription in time".to_string())?
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Subscribes the pending groups, the control group first; stops at a control failure.
    /// Returns how many groups stay pending, or why the control group failed.
    async fn subscribe_pending(&mut self) -> Result<usize, String> {
        let mut wanted = self.wanted();
        let control = hash_tag(self.shared.names.shared()).to_owned();
        let mut order: Vec<String> = self.pending.iter().cloned().collect();
        order.sort_by_key(|t| *t != control);
        let mut first_error = None;
        for tag in order {
            let Some(names) = wanted.remove(&tag) else {
                self.pending.remove(&tag);
                continue;
            };
            match self.ssubscribe(&names).await {
                Ok(()) => {
                    self.subscribed.extend(names.into_iter().map(Arc::from));
                    self.pending.remove(&tag);
                }
                Err(error) if tag == control => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            tracing::warn!(pending = self.pending.len(), error = %crate::log_text::Printable(&error), "redis-cluster: some partitions are not subscribed (their master is away?); retrying");
        }
        Ok(self.pending.len())
    }

    /// The control group is subscribed: the engine is up (again).
    fn came_up(&mut self) {
        if self.up {
            return;
        }
        self.up = true;
        let core = &self.shared.core;
        *self.shared.connection.lock() = Some(self.conn.clone());
        if *self.connected_before {
            core.add_reconnect();
        }
        *self.connected_before = true;
        core.set_publisher_up(true, None);
        core.set_subscriber_up(true, None);
        // Tell everyone this incarnation is here (again): nodes that timed it out take it back
        // at once, and it learns of them from their answers.
        core.announce();
    }

    fn went_down(&mut self, error: String) {
        if self.up {
            self.up = false;
            self.shared.connection.lock().take();
        }
        self.shared
            .core
            .set_subscriber_up(false, Some(error.clone()));
        self.shared.core.set_publisher_up(false, Some(error));
    }

    /// Runs until the connection must be made anew (returns why) or the engine stops (`None`).
    async fn run(
        &mut self,
        mut pushes: Pushes,
        commands: &mut mpsc::UnboundedReceiver<Command>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Option<String> {
        let cfg = &self.shared.cfg;
        let mut ping = tokio::time::interval(cfg.heartbeat_interval());
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        self.all_pending();
        let mut retry_at = Instant::now();
        let mut control_failures: u32 = 0;
        let mut group_failures: u32 = 0;
        let mut check_misses: u32 = 0;
        loop {
            if !self.pending.is_empty() && Instant::now() >= retry_at {
                match self.subscribe_pending().await {
                    Ok(left) => {
                        control_failures = 0;
                        self.came_up();
                        group_failures = if left == 0 { 0 } else { group_failures + 1 };
                        retry_at = Instant::now() + cfg.backoff(group_failures);
                    }
                    Err(error) => {
                        self.went_down(error.clone());
                        control_failures += 1;
                        if control_failures >= REBUILD_AFTER {
                            return Some(error);
                        }
                        retry_at = Instant::now() + cfg.backoff(control_failures);
                    }
                }
            }
            let waiting = !self.pending.is_empty();
            tokio::select! {
                _ = stop.changed() => return None,
                push = pushes.recv() => {
                    let push = push?;
                    if self.on_push(push) && self.up {
                        retry_at = Instant::now();
                    }
                }
                cmd = commands.recv() => {
                    let cmd = cmd?;
                    self.apply(cmd).await;
                }
                _ = self.shared.trouble.notified() => {
                    self.all_pending();
                }
                _ = ping.tick(), if self.up => {
                    // Checks the control subscription is really in place at the slot's master
                    // (and that master answers): a confirmation is not enough when the client's
                    // slot map is stale.
                    match super::prober::own_subscription(self.shared, &mut self.conn).await {
                        Some(true) => check_misses = 0,
                        found => {
                            check_misses += 1;
                            if check_misses >= REBUILD_AFTER {
                                return Some("this node's control subscription could not be confirmed at its master".into());
                            }
                            if found == Some(false) {
                                tracing::info!("redis-cluster: this node's own subscription is missing at the control slot's master; subscribing again");
                            }
                            self.all_pending();
                            retry_at = Instant::now();
                        }
                    }
                }
                _ = tokio::time::sleep_until(retry_at), if waiting => {}
            }
        }
    }

    /// Takes one push; true when subscriptions must be made again at once.
    fn on_push(&mut self, push: PushInfo) -> bool {
        match push.kind {
            PushKind::SMessage => {
                if let [Value::BulkString(channel), Value::BulkString(payload), ..] =
                    push.data.as_slice()
                {
                    let channel = String::from_utf8_lossy(channel);
                    self.shared
                        .core
                        .on_message(&channel, Bytes::copy_from_slice(payload));
                }
                false
            }
            PushKind::Disconnection => {
                tracing::debug!("redis-cluster: a node connection was lost; subscribing again");
                self.all_pending();
                true
            }
            PushKind::SUnsubscribe => {
                // Ours (an unsubscribe this node asked for) was removed from `subscribed` first;
                // any other was dropped by the server: its slot moved.
                let Some(Value::BulkString(channel)) = push.data.first() else {
                    return false;
                };
                let channel = String::from_utf8_lossy(channel);
                if self.subscribed.remove(channel.as_ref()) {
                    tracing::info!(channel = %crate::log_text::Printable(channel.as_ref()), "redis-cluster dropped a subscription (slot moved): subscribing again");
                    self.pending.insert(hash_tag(&channel).to_owned());
                    return true;
                }
                false
            }
            _ => false,
        }
    }

    /// Carries out one subscription change; a first subscriber's callback runs once the
    /// subscription is confirmed (or has failed: it is retried with its group).
    async fn apply(&mut self, cmd: Command) {
        match cmd {
            Command::Subscribe(name, ready) => {
                if !self.up {
                    // Made with the others when the control subscription is back.
                    self.pending.insert(hash_tag(&name).to_owned());
                    ready.fire();
                    return;
                }
                let r = self.ssubscribe(&[name.to_string()]).await;
                ready.fire();
                match r {
                    Ok(()) => {
                        self.subscribed.insert(name);
                    }
                    Err(e) => {
                        tracing::debug!(error = %crate::log_text::Printable(&e), "redis-cluster subscribe failed; retrying with its partition");
                        self.pending.insert(hash_tag(&name).to_owned());
                    }
                }
            }
            Command::Unsubscribe(name) => {
                self.shared.core.forget_stream(&name);
                self.subscribed.remove(&name);
                let r = tokio::time::timeout(
                    self.shared.cfg.response_timeout(),
                    self.conn.sunsubscribe(&*name),
                )
                .await;
                if !matches!(r, Ok(Ok(()))) {
                    tracing::debug!(
                        "redis-cluster unsubscribe not confirmed (its master is away?)"
                    );
                }
            }
        }
    }
}
