//! The connection side of the NATS engine: one client connection, subscribed to the shared
//! subject, this node's own subject and (per-channel routing) the subjects of the channels with
//! local subscribers.
//!
//! Until the first connection succeeds it is retried with backoff, `ready` false and the reason
//! (an unreachable server, refused credentials) in `last_error`. Afterwards async-nats keeps the
//! connection up itself: when it is lost, `ready` turns false; when it is back, the client has
//! subscribed again to every subject, and this node says hello again so nodes that timed it out
//! take it back at once. Requests on the node's own subject are subscription probes from peers
//! and are answered with an empty message.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use tokio::sync::{mpsc, oneshot, watch};

use super::Shared;
use crate::cluster::broker::interest::{Command, ReadyOnce};
use crate::cluster::broker::streams::StreamNames;
use crate::log_text::Printable;

/// Most subscription commands carried out in one go.
const COMMAND_BATCH: usize = 1024;

/// The per-channel subscriptions of one connection: their messages, and how to leave each.
struct Channels {
    messages: SelectAll<BoxStream<'static, async_nats::Message>>,
    leave: HashMap<Arc<str>, oneshot::Sender<()>>,
}

impl Channels {
    fn new() -> Self {
        Self {
            messages: SelectAll::new(),
            leave: HashMap::new(),
        }
    }

    /// Subscribes to `subject` unless already subscribed (see [`confirm`]).
    async fn join(&mut self, client: &async_nats::Client, subject: Arc<str>) -> Result<(), String> {
        if self.leave.contains_key(&subject) {
            return Ok(());
        }
        let sub = client
            .subscribe(subject.to_string())
            .await
            .map_err(|e| format!("nats subscribe failed: {e}"))?;
        let (tx, rx) = oneshot::channel();
        // Leaving ends the stream; the subscriber is then dropped, which unsubscribes.
        self.messages.push(sub.take_until(rx).boxed());
        self.leave.insert(subject, tx);
        Ok(())
    }

    fn leave(&mut self, subject: &str) {
        if let Some(tx) = self.leave.remove(subject) {
            let _ = tx.send(());
        }
    }
}

/// The subscriptions every node has: the shared subject and its own.
struct Base {
    shared: async_nats::Subscriber,
    own: async_nats::Subscriber,
}

/// Connects (one attempt, bounded in time) with `events` receiving the client's events.
async fn connect(
    shared: &Shared,
    events: mpsc::UnboundedSender<async_nats::Event>,
) -> Result<async_nats::Client, String> {
    let options = shared.options.clone().event_callback(move |e| {
        let events = events.clone();
        async move {
            let _ = events.send(e);
        }
    });
    let attempts = u32::try_from(shared.servers.len()).unwrap_or(u32::MAX);
    let timeout = shared.cfg.connect_timeout() * attempts.saturating_add(1);
    match tokio::time::timeout(timeout, options.connect(shared.servers.clone())).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(format!("cannot connect to nats: {e}")),
        Err(_) => Err("timed out connecting to nats".into()),
    }
}

/// Subscribes to the base subjects and the channels with local subscribers; confirmed by a round
/// trip through the server.
async fn subscribe_all(
    shared: &Shared,
    client: &async_nats::Client,
    channels: &mut Channels,
) -> Result<Base, String> {
    let names = &shared.names;
    let sub = |s: String| async move {
        client
            .subscribe(s)
            .await
            .map_err(|e| format!("nats subscribe failed: {e}"))
    };
    let base = Base {
        shared: sub(names.shared().to_string()).await?,
        own: sub(names.node(&shared.core.origin().node_id)).await?,
    };
    let keys: Vec<Arc<str>> = shared.keys.lock().iter().cloned().collect();
    for k in keys {
        channels.join(client, Arc::from(names.channel(&k))).await?;
    }
    confirm(shared, client).await?;
    Ok(base)
}

/// Proves the server has processed every operation this connection sent before, the
/// subscriptions included (a server handles one connection's operations in order): a request to
/// the cluster's confirmation subject, which nothing subscribes to, is answered "no responders" by
/// the server itself once it reached it. (`Client::flush` only empties the client's write buffer
/// into the socket, and a publish from another node's connection can still reach the server
/// before a subscription written that way; a message to this connection's own inbox would never
/// come back, the server does not echo a node's own publishes.)
async fn confirm(shared: &Shared, client: &async_nats::Client) -> Result<(), String> {
    let timeout = shared.cfg.response_timeout();
    let request = async_nats::Request::new().timeout(Some(timeout));
    match client
        .send_request(shared.names.confirmation().to_owned(), request)
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::TimedOut => {
            Err("nats did not confirm the subscriptions in time".into())
        }
        Err(e) => Err(format!("nats did not confirm the subscriptions: {e}")),
    }
}

/// The connection is up (again): publish, probe and say hello.
fn came_up(shared: &Shared, client: &async_nats::Client, again: bool) {
    *shared.client.lock() = Some(client.clone());
    if again {
        *shared.reconnected_at.lock() = Some(Instant::now());
    }
    shared.core.set_publisher_up(true, None);
    shared.core.set_subscriber_up(true, None);
    // Tell everyone this incarnation is here (again): nodes that timed it out take it back at
    // once, and it learns of them from their answers.
    shared.core.announce();
}

/// The connection is down: nothing is published or probed until it is back.
fn went_down(shared: &Shared, why: String) {
    shared.core.set_subscriber_up(false, Some(why.clone()));
    shared.core.set_publisher_up(false, Some(why));
}

/// The connection task: connect, subscribe, receive; reconnect from scratch only if the client
/// gives up.
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
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let attempt = tokio::select! {
            _ = stop.changed() => return,
            c = connect(&shared, events_tx) => c,
        };
        let why = match attempt {
            Ok(client) => {
                let mut channels = Channels::new();
                match subscribe_all(&shared, &client, &mut channels).await {
                    Ok(base) => {
                        failures = 0;
                        if connected_before {
                            core.add_reconnect();
                        }
                        came_up(&shared, &client, connected_before);
                        connected_before = true;
                        let why = receive(
                            &shared,
                            &client,
                            base,
                            channels,
                            &mut events,
                            &mut commands,
                            &mut stop,
                        )
                        .await;
                        shared.client.lock().take();
                        match why {
                            Some(why) => why,
                            None => return,
                        }
                    }
                    Err(e) => e,
                }
            }
            Err(e) => e,
        };
        went_down(&shared, why);
        // Whatever waits on a subscription must not wait for NATS to come back.
        while let Ok(cmd) = commands.try_recv() {
            cmd.give_up();
        }
        let wait = shared.cfg.backoff(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Receives until the client gives up (returns why) or the engine stops (returns `None`).
async fn receive(
    shared: &Shared,
    client: &async_nats::Client,
    mut base: Base,
    mut channels: Channels,
    events: &mut mpsc::UnboundedReceiver<async_nats::Event>,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    stop: &mut watch::Receiver<bool>,
) -> Option<String> {
    let core = &shared.core;
    let mut slow_logged = false;
    // The client reports each message it dropped for a full subscription.
    let slow_consumer = metrics::counter!(crate::metrics::BACKPLANE_DROPPED, "protocol" => "nats", "reason" => "slow_consumer");
    // Whether the client lost its connection (its first `Connected` came before this loop).
    let mut down = false;
    loop {
        let msg = tokio::select! {
            _ = stop.changed() => return None,
            m = base.shared.next() => m,
            m = base.own.next() => m,
            m = channels.messages.next(), if !channels.messages.is_empty() => {
                match m {
                    Some(m) => Some(m),
                    None => continue,
                }
            }
            event = events.recv() => {
                match event {
                    Some(async_nats::Event::Disconnected) => {
                        down = true;
                        shared.client.lock().take();
                        went_down(shared, "lost the connection to nats: reconnecting".into());
                    }
                    Some(async_nats::Event::Connected) if down => {
                        down = false;
                        core.add_reconnect();
                        came_up(shared, client, true);
                    }
                    Some(async_nats::Event::Closed) | None => {
                        return Some("the nats connection was closed".into());
                    }
                    Some(async_nats::Event::SlowConsumer(sid)) => {
                        slow_consumer.increment(1);
                        if !std::mem::replace(&mut slow_logged, true) {
                            tracing::warn!(subscription = sid, "nats messages dropped: this node takes them too slowly (cluster.nats.subscription_capacity)");
                        }
                    }
                    Some(async_nats::Event::ServerError(e)) => {
                        let e = format!("nats server error: {e}");
                        if !core.subscriber_up() {
                            went_down(shared, e);
                        } else {
                            tracing::warn!(error = %Printable(&e), "nats server error");
                        }
                    }
                    Some(other) => {
                        tracing::debug!(event = %other, "nats event");
                    }
                }
                continue;
            }
            cmd = commands.recv() => {
                let cmd = cmd?;
                let mut batch = vec![cmd];
                while batch.len() < COMMAND_BATCH {
                    match commands.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                apply(shared, client, &mut channels, batch).await;
                continue;
            }
        };
        let Some(m) = msg else {
            return Some("a nats subscription ended".into());
        };
        match &m.reply {
            // A peer's probe: answer it (being subscribed already told it this node is here).
            Some(reply) => {
                let _ = client.publish(reply.clone(), Bytes::new()).await;
            }
            None => core.on_message(&m.subject, m.payload),
        }
    }
}

/// Carries out subscription changes in order; first subscribers' callbacks run once the server
/// confirmed their subscriptions (or at once while the connection is down).
async fn apply(
    shared: &Shared,
    client: &async_nats::Client,
    channels: &mut Channels,
    batch: Vec<Command>,
) {
    let mut waiting: Vec<ReadyOnce> = Vec::new();
    for cmd in batch {
        match cmd {
            Command::Subscribe(name, ready) => {
                if let Err(e) = channels.join(client, name).await {
                    tracing::warn!(error = %Printable(&e), "nats subscribe failed");
                }
                waiting.push(ready);
            }
            Command::Unsubscribe(name) => {
                shared.core.forget_stream(&name);
                channels.leave(&name);
            }
        }
    }
    if !waiting.is_empty()
        && shared.core.subscriber_up()
        && let Err(e) = confirm(shared, client).await
    {
        tracing::warn!(error = %Printable(&e), "nats subscriptions not confirmed: first subscribers answered anyway");
    }
    for ready in waiting {
        ready.fire();
    }
}
