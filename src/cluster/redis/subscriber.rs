//! The receiving side of the Redis engine: one Pub/Sub connection subscribed to the shared
//! channel, this node's own channel and (per-channel routing) the channels with local
//! subscribers. A lost connection turns `ready` false and is rebuilt with backoff; every
//! subscription is made again before `ready` turns true.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::Shared;
use crate::cluster::broker::interest::Command;
use crate::cluster::broker::streams::StreamNames;

/// Most Redis channels named in one SUBSCRIBE.
const SUBSCRIBE_CHUNK: usize = 1024;

type Sink = redis::aio::PubSubSink;
type Stream = redis::aio::PubSubStream;

async fn connect(shared: &Shared) -> Result<(Sink, Stream), String> {
    let timeout = shared.cfg.connect_timeout() + shared.cfg.response_timeout();
    let pubsub = tokio::time::timeout(timeout, shared.client.get_async_pubsub())
        .await
        .map_err(|_| "timed out connecting to redis".to_string())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    let mut names: Vec<String> = vec![
        shared.names.shared().to_string(),
        shared.names.node(&shared.core.origin().node_id),
    ];
    names.extend(shared.keys.lock().iter().map(|k| shared.names.channel(k)));
    for chunk in names.chunks(SUBSCRIBE_CHUNK) {
        tokio::time::timeout(shared.cfg.response_timeout(), sink.subscribe(chunk))
            .await
            .map_err(|_| "timed out subscribing on redis".to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok((sink, stream))
}

/// The subscriber task: connect, subscribe, receive until the connection is lost, repeat.
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
        match connect(&shared).await {
            Ok((sink, stream)) => {
                failures = 0;
                if connected_before {
                    core.add_reconnect();
                }
                connected_before = true;
                core.set_subscriber_up(true, None);
                // Tell everyone this incarnation is here (again): nodes that timed it out take
                // it back at once, and it learns of them from their answers.
                core.announce();
                let why = receive(&shared, sink, stream, &mut commands, &mut stop).await;
                core.set_subscriber_up(false, why);
                // Whatever waits on a subscription must not wait for Redis to come back.
                while let Ok(cmd) = commands.try_recv() {
                    cmd.give_up();
                }
            }
            Err(e) => core.set_subscriber_up(false, Some(e)),
        }
        let wait = shared.cfg.backoff(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Receives until the connection is lost (returns why) or the engine stops (returns `None`).
async fn receive(
    shared: &Shared,
    mut sink: Sink,
    mut stream: Stream,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Option<String> {
    let mut ping = tokio::time::interval(shared.cfg.heartbeat_interval());
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    let timeout = shared.cfg.response_timeout();
    loop {
        tokio::select! {
            _ = stop.changed() => return None,
            msg = stream.next() => match msg {
                Some(m) => shared.core.on_message(m.get_channel_name(), Bytes::copy_from_slice(m.get_payload_bytes())),
                None => return Some("redis subscription connection closed".into()),
            },
            cmd = commands.recv() => {
                let cmd = cmd?;
                let mut batch = vec![cmd];
                while batch.len() < SUBSCRIBE_CHUNK {
                    match commands.try_recv() {
                        Ok(c) => batch.push(c),
                        Err(_) => break,
                    }
                }
                if let Err(e) = apply(shared, &mut sink, batch, timeout).await {
                    return Some(e);
                }
            }
            _ = ping.tick() => {
                match tokio::time::timeout(timeout, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Some(format!("redis ping failed: {e}")),
                    Err(_) => return Some("redis did not answer a ping in time".into()),
                }
            }
        }
    }
}

/// Carries out subscription changes in order; a first subscriber's callback runs once Redis has
/// confirmed its subscription.
async fn apply(
    shared: &Shared,
    sink: &mut Sink,
    batch: Vec<Command>,
    timeout: std::time::Duration,
) -> Result<(), String> {
    for cmd in batch {
        match cmd {
            Command::Subscribe(name, ready) => {
                let r = tokio::time::timeout(timeout, sink.subscribe(&*name)).await;
                ready.fire();
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("redis subscribe failed: {e}")),
                    Err(_) => return Err("redis did not confirm a subscription in time".into()),
                }
            }
            Command::Unsubscribe(name) => {
                shared.core.forget_stream(&name);
                match tokio::time::timeout(timeout, sink.unsubscribe(&*name)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(format!("redis unsubscribe failed: {e}")),
                    Err(_) => return Err("redis did not confirm an unsubscription in time".into()),
                }
            }
        }
    }
    Ok(())
}
