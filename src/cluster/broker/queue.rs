//! The bounded publish queue between a broker engine's senders and its writer task.
//!
//! The queue is bounded in bytes: while the broker is slow or away, envelopes wait up to the cap
//! and are then dropped and counted (each dropped one is also a gap its receivers count).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

/// One envelope to publish: its stream, the envelope header and the payload (written as one
/// broker message without joining them first where the client allows it).
pub(crate) struct Outgoing {
    pub(crate) stream: Arc<str>,
    pub(crate) head: Bytes,
    pub(crate) body: Bytes,
}

impl Outgoing {
    /// The bytes it holds in the queue.
    pub(crate) fn len(&self) -> usize {
        self.stream.len() + self.head.len() + self.body.len()
    }
}

/// What the writer task takes from the queue.
pub(crate) enum Item {
    Publish(Outgoing),
    /// Answered once everything queued before it was handed to the broker (or given up).
    Flush(oneshot::Sender<()>),
}

/// The receiving end, for the writer task.
pub(crate) struct QueueReceiver {
    rx: mpsc::UnboundedReceiver<Item>,
    bytes: Arc<AtomicUsize>,
}

impl QueueReceiver {
    /// Waits for up to `max` items (0: the queue is closed).
    pub(crate) async fn recv_many(&mut self, into: &mut Vec<Item>, max: usize) -> usize {
        self.rx.recv_many(into, max).await
    }

    /// `len` bytes left the queue (taken by the writer).
    pub(crate) fn taken(&self, len: usize) {
        self.bytes.fetch_sub(len, Ordering::Relaxed);
    }
}

/// The bounded queue in front of the writer task.
pub(crate) struct PublishQueue {
    tx: mpsc::UnboundedSender<Item>,
    bytes: Arc<AtomicUsize>,
    cap: usize,
}

/// Why an envelope was not queued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum QueueError {
    Full,
    Closed,
}

impl PublishQueue {
    pub(crate) fn new(cap: usize) -> (Self, QueueReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let bytes = Arc::new(AtomicUsize::new(0));
        (
            Self {
                tx,
                bytes: bytes.clone(),
                cap,
            },
            QueueReceiver { rx, bytes },
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
}

/// Splits a batch taken from the queue into the envelopes to publish and the flushes to answer
/// once they are handed over; counts the bytes as taken.
pub(crate) fn split_batch(
    rx: &QueueReceiver,
    batch: &mut Vec<Item>,
) -> (Vec<Outgoing>, Vec<oneshot::Sender<()>>) {
    let mut out = Vec::with_capacity(batch.len());
    let mut flushes = Vec::new();
    let mut bytes = 0;
    for item in batch.drain(..) {
        match item {
            Item::Publish(o) => {
                bytes += o.len();
                out.push(o);
            }
            Item::Flush(tx) => flushes.push(tx),
        }
    }
    rx.taken(bytes);
    (out, flushes)
}
