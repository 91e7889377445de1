//! The publishing side of the Redis engine: one connection, one writer task, envelopes published
//! in the order they were numbered, pipelined in batches.
//!
//! Nothing is published while the node's own subscription is down (a peer that hears this node
//! answers on this node's channel, and the answer would be lost).
//!
//! The queue is bounded in bytes: while Redis is slow or away, envelopes wait up to the cap and
//! are then dropped and counted (each dropped one is also a gap its receivers count). A batch
//! whose PUBLISH fails is dropped and counted the same way; the connection is then rebuilt with
//! backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// Most envelopes sent in one pipeline.
const MAX_BATCH: usize = 512;

/// One envelope to publish: its Redis channel, the envelope header and the payload (written as
/// one PUBLISH message without joining them first).
pub(crate) struct Outgoing {
    pub(crate) channel: Arc<str>,
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
}

impl Outgoing {
    fn len(&self) -> usize {
        self.channel.len() + self.head.len() + self.body.len()
    }
}

pub(crate) enum Item {
    Publish(Outgoing),
    /// Answered once everything queued before it was handed to Redis (or given up).
    Flush(oneshot::Sender<()>),
}

/// The bounded queue in front of the writer task.
pub(crate) struct PublishQueue {
    tx: mpsc::UnboundedSender<Item>,
    bytes: AtomicUsize,
    cap: usize,
}

/// Why an envelope was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    Full,
    Closed,
}

impl PublishQueue {
    pub(crate) fn new(cap: usize) -> (Self, mpsc::UnboundedReceiver<Item>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Self {
                tx,
                bytes: AtomicUsize::new(0),
                cap,
            },
            rx,
        )
    }

    pub(crate) fn push(&self, out: Outgoing) -> Result<(), QueueError> {
        let len = out.len();
        if self.bytes.fetch_add(len, Ordering::Relaxed) + len > self.cap {
            self.bytes.fetch_sub(len, Ordering::Relaxed);
            return Err(QueueError::Full);
        }
        self.tx
            .send(Item::Publish(out))
            .map_err(|_| QueueError::Closed)
    }

    pub(crate) fn flush(&self) -> Option<oneshot::Receiver<()>> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Item::Flush(tx)).ok().map(|_| rx)
    }

    fn taken(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

/// One PUBLISH message made of the envelope header and payload, written as a single argument.
struct Message<'a>(&'a Bytes, &'a Bytes);

impl redis::ToRedisArgs for Message<'_> {
    fn write_redis_args<W: ?Sized + redis::RedisWrite>(&self, out: &mut W) {
        use std::io::Write;
        let mut w = out.writer_for_next_arg();
        // Writing into the command's own buffer cannot fail.
        let _ = w.write_all(self.0);
        let _ = w.write_all(self.1);
    }
}

async fn connect(shared: &Shared) -> Result<redis::aio::MultiplexedConnection, String> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.cfg.connect_timeout()))
        .set_response_timeout(Some(shared.cfg.response_timeout()));
    shared
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| e.to_string())
}

/// The writer task: connects, publishes batches in order, reconnects with backoff.
pub(crate) async fn writer(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Item>) {
    let mut stop = shared.stop.subscribe();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut failures: u32 = 0;
    let mut batch: Vec<Item> = Vec::with_capacity(MAX_BATCH);
    loop {
        if conn.is_none() {
            match connect(&shared).await {
                Ok(c) => {
                    *shared.probe_connection.lock() = Some(c.clone());
                    conn = Some(c);
                    failures = 0;
                    shared.set_publisher_up(true, None);
                }
                Err(e) => {
                    shared.set_publisher_up(false, Some(e));
                    let wait = shared.cfg.backoff(failures);
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            }
        }
        // Nothing leaves while this node's own subscription is down: whoever hears an envelope
        // from this node answers on this node's channel (snapshot requests, hellos), and those
        // answers would be lost. Envelopes wait in the queue meanwhile (within its cap).
        while !shared
            .subscriber_up
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            tokio::select! {
                _ = stop.changed() => return,
                _ = shared.subscribed.notified() => {}
                _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
            }
        }
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = stop.changed() => return,
        };
        if n == 0 {
            return;
        }
        let mut pipe = redis::pipe();
        let mut count = 0u64;
        let mut bytes = 0usize;
        let mut flushes = Vec::new();
        for item in &batch {
            match item {
                Item::Publish(out) => {
                    pipe.cmd("PUBLISH")
                        .arg(out.channel.as_bytes())
                        .arg(Message(&out.head, &out.body))
                        .ignore();
                    count += 1;
                    bytes += out.len();
                }
                Item::Flush(_) => {}
            }
        }
        for item in batch.drain(..) {
            if let Item::Flush(tx) = item {
                flushes.push(tx);
            }
        }
        shared.queue.taken(bytes);
        if count > 0
            && let Some(c) = conn.as_mut()
        {
            match pipe.query_async::<()>(c).await {
                Ok(()) => {
                    shared.add_out(count, bytes as u64);
                }
                Err(e) => {
                    shared.add_publish_errors(count);
                    tracing::warn!(error = %e, envelopes = count, "redis publish failed: envelopes dropped");
                    shared.set_publisher_up(false, Some(e.to_string()));
                    *shared.probe_connection.lock() = None;
                    conn = None;
                }
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}
