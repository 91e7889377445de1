//! The publishing side of the NATS engine: one writer task publishes queued envelopes in the
//! order they were numbered, on the engine's one client connection.
//!
//! Nothing is published while the subscription is down (see
//! [`BrokerCore::until_subscribed`](crate::cluster::broker::BrokerCore::until_subscribed)). An
//! envelope the client refuses (too large for the server's `max_payload`, the connection closed)
//! is dropped and counted; its receivers count the gap too.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::Shared;
use crate::cluster::broker::queue::{Outgoing, QueueReceiver, split_batch};

/// Most envelopes taken from the queue at once.
const MAX_BATCH: usize = 512;

/// The envelope header and payload as one NATS message.
fn message(o: &Outgoing) -> Bytes {
    let mut b = BytesMut::with_capacity(o.head.len() + o.body.len());
    b.extend_from_slice(&o.head);
    b.extend_from_slice(&o.body);
    b.freeze()
}

/// Publishes one batch; returns how many envelopes and bytes left, and the first error.
async fn publish(client: &async_nats::Client, out: &[Outgoing]) -> (u64, u64, u64, Option<String>) {
    let (mut sent, mut bytes, mut failed, mut first) = (0u64, 0u64, 0u64, None);
    for o in out {
        let subject = async_nats::Subject::from(&*o.stream);
        match client.publish(subject, message(o)).await {
            Ok(()) => {
                sent += 1;
                bytes += o.len() as u64;
            }
            Err(e) => {
                failed += 1;
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
    (sent, bytes, failed, first)
}

/// The writer task: waits for the subscription, publishes batches in order.
pub(crate) async fn writer(shared: Arc<Shared>, mut rx: QueueReceiver) {
    let core = &shared.core;
    let mut stop = core.stopping();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if !core.until_subscribed(&mut stop).await {
            return;
        }
        let n = tokio::select! {
            n = rx.recv_many(&mut batch, MAX_BATCH) => n,
            _ = stop.changed() => return,
        };
        if n == 0 {
            return;
        }
        let (out, flushes) = split_batch(&rx, &mut batch);
        let client = shared.client.lock().clone();
        let Some(client) = client else {
            core.add_publish_errors(out.len() as u64);
            for f in flushes {
                let _ = f.send(());
            }
            continue;
        };
        let (sent, bytes, failed, error) = tokio::select! {
            r = publish(&client, &out) => r,
            // The client holds what it was given while it reconnects; stopping does not wait.
            _ = stop.changed() => return,
        };
        core.add_out(sent, bytes);
        if failed > 0 {
            core.add_publish_errors(failed);
            tracing::warn!(error = %crate::log_text::Printable(error.as_deref().unwrap_or("")), envelopes = failed, "nats publish failed: envelopes dropped");
        }
        if !flushes.is_empty() {
            let _ = tokio::time::timeout(shared.cfg.response_timeout(), client.flush()).await;
            for f in flushes {
                let _ = f.send(());
            }
        }
    }
}
