//! The task that POSTs the queue: one batch at a time from the front, signed; on failure the same
//! events are retried with [`Backoff`] until their deadline; stopped by its owner
//! ([`Sender::stop`]) after the queue is flushed or a deadline passes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use sha2::Sha256;
use tokio::sync::Notify;

use super::client::Client;
use super::queue::{Backoff, Left, Queue};
use super::takeover::SetKey;
use crate::metrics;
use crate::tasks::Tasks;

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `X-Wscluster-Signature` header's value.
pub(crate) fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Told which crashed nodes' sets left the queue.
pub(super) type SetsDone = Box<dyn Fn(Vec<SetKey>) + Send + Sync>;

/// What the producers and the task share.
pub(super) struct Shared {
    queue: Mutex<Queue>,
    wake: Notify,
    stopping: AtomicBool,
}

impl Shared {
    /// Queues one event's JSON (see [`Queue::push`]); counts a drop.
    pub(super) fn push(&self, json: String, deadline: Instant, set: Option<SetKey>) {
        let queued = {
            let mut q = self.queue.lock();
            let ok = q.push(json, deadline, set);
            metrics::webhook_queue_bytes(q.bytes());
            ok
        };
        if queued {
            self.wake.notify_one();
        } else {
            metrics::webhook_dropped("queue_full", 1);
            tracing::debug!("webhook queue full (webhooks.queue_bytes): event dropped");
        }
    }

    /// Events waiting.
    pub(super) fn queued(&self) -> usize {
        self.queue.lock().len()
    }
}

/// The sending task and its queue.
pub(super) struct Sender {
    shared: Arc<Shared>,
    /// The sending task.
    tasks: Tasks,
}

/// How the task posts.
pub(super) struct Settings {
    /// The target's client.
    pub(super) client: Client,
    /// The signing key.
    pub(super) secret: Vec<u8>,
    /// Most events per POST.
    pub(super) max_batch: usize,
    /// Bytes the queue may hold.
    pub(super) queue_bytes: usize,
}

impl Sender {
    /// Starts the task on the current runtime; `sets_done` hears which crashed nodes' sets left
    /// the queue (delivered or expired).
    pub(super) fn start(settings: Settings, sets_done: SetsDone) -> Self {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(settings.queue_bytes)),
            wake: Notify::new(),
            stopping: AtomicBool::new(false),
        });
        let tasks = Tasks::new();
        tasks.spawn(run(shared.clone(), settings, sets_done));
        Self { shared, tasks }
    }

    /// The queue producers push to.
    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Lets the task deliver what is queued until `deadline`, then stops it and waits for it.
    pub(super) async fn stop(&self, deadline: tokio::time::Instant) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let grace = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !self.tasks.stop(grace).await {
            let left = self.shared.queued();
            tracing::warn!(
                events = left,
                "webhooks not delivered before the shutdown deadline"
            );
        }
    }

    /// Whether the sending task runs (0 or 1; none once `stop` returned).
    pub(super) fn task_count(&self) -> usize {
        self.tasks.len()
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        self.tasks.cancel();
    }
}

fn finished(left: Left, sets_done: &SetsDone) {
    if !left.sets_done.is_empty() {
        sets_done(left.sets_done);
    }
}

async fn run(shared: Arc<Shared>, s: Settings, sets_done: SetsDone) {
    let mut backoff = Backoff::default();
    let mut failing = false;
    loop {
        let expired = shared.queue.lock().expire(Instant::now());
        if expired.events > 0 {
            metrics::webhook_dropped("expired", expired.events);
            tracing::warn!(
                events = expired.events,
                "webhook events dropped: not delivered within webhooks.retry_max_ms"
            );
        }
        finished(expired, &sets_done);
        let (body, n) = shared.queue.lock().batch(s.max_batch);
        if n == 0 {
            if shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            shared.wake.notified().await;
            continue;
        }
        let sig = signature(&s.secret, body.as_bytes());
        let outcome = s.client.post(body.as_bytes(), &sig).await;
        match outcome {
            Ok(status) if (200..300).contains(&status) => {
                metrics::webhook_post("ok");
                metrics::webhook_delivered(n);
                backoff.succeeded();
                if failing {
                    tracing::info!("webhook target reachable again");
                    failing = false;
                }
                let left = {
                    let mut q = shared.queue.lock();
                    let left = q.delivered(n);
                    metrics::webhook_queue_bytes(q.bytes());
                    left
                };
                finished(left, &sets_done);
            }
            other => {
                let reason = match &other {
                    Ok(status) => format!("status {status}"),
                    Err(e) => e.to_string(),
                };
                metrics::webhook_post(if other.is_ok() { "refused" } else { "failed" });
                if failing {
                    tracing::debug!(error = %reason, events = n, "webhook POST failed again");
                } else {
                    tracing::warn!(error = %reason, events = n, "webhook POST failed: retrying with backoff");
                    failing = true;
                }
                tokio::time::sleep(backoff.failed()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
