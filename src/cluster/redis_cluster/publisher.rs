//! The publishing side of the Redis Cluster engine: one writer task takes queued envelopes in the
//! order they were numbered, groups a batch by hash tag (one slot each) and sends each group as
//! one pipeline of SPUBLISH to the slot's master, the groups at once. A stream is always in one
//! group and the next batch waits for this one, so each stream's envelopes leave in order.
//!
//! Nothing is published while the control subscription is down (see
//! [`BrokerCore::until_subscribed`](crate::cluster::broker::BrokerCore::until_subscribed)). A
//! group whose SPUBLISH fails (its master is away) is dropped and counted (its receivers count
//! the gap too), and the subscriber is told to check its subscriptions; the other groups are
//! unaffected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Shared;
use super::names::hash_tag;
use crate::cluster::broker::queue::{Outgoing, QueueReceiver, split_batch};
use crate::cluster::redis::publisher::Message;

/// Most envelopes taken from the queue at once.
const MAX_BATCH: usize = 512;

/// Least time between two warnings about failed publishes.
const WARN_SPACING: Duration = Duration::from_secs(1);

/// The envelopes of a batch, grouped by hash tag, each group in queue order.
fn by_slot(out: &[Outgoing]) -> BTreeMap<&str, Vec<&Outgoing>> {
    let mut groups: BTreeMap<&str, Vec<&Outgoing>> = BTreeMap::new();
    for o in out {
        groups.entry(hash_tag(&o.stream)).or_default().push(o);
    }
    groups
}

/// The writer task: waits for the control subscription, publishes batches slot by slot.
pub(crate) async fn writer(shared: Arc<Shared>, mut rx: QueueReceiver) {
    let core = &shared.core;
    let mut stop = core.stopping();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_warning: Option<Instant> = None;
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
        match shared.connection() {
            Some(conn) => {
                let timeout = shared.cfg.response_timeout();
                let sends = by_slot(&out).into_values().map(|group| {
                    let mut conn = conn.clone();
                    let mut pipe = ::redis::pipe();
                    let mut bytes = 0usize;
                    for o in &group {
                        pipe.cmd("SPUBLISH")
                            .arg(o.stream.as_bytes())
                            .arg(Message(&o.head, &o.body))
                            .ignore();
                        bytes += o.len();
                    }
                    let count = group.len() as u64;
                    async move {
                        let r =
                            tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await;
                        let r = match r {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(e)) => Err(e.to_string()),
                            Err(_) => Err("redis cluster did not answer SPUBLISH in time".into()),
                        };
                        (r, count, bytes)
                    }
                });
                for (r, count, bytes) in futures_util::future::join_all(sends).await {
                    match r {
                        Ok(()) => core.add_out(count, bytes as u64),
                        Err(e) => {
                            core.add_publish_errors(count);
                            if last_warning.is_none_or(|t| t.elapsed() >= WARN_SPACING) {
                                last_warning = Some(Instant::now());
                                tracing::warn!(error = %crate::log_text::Printable(&e), envelopes = count, "redis-cluster publish failed: envelopes dropped");
                            }
                            shared.trouble.notify_one();
                        }
                    }
                }
            }
            None => {
                // The control subscription fell between the wait and now.
                core.add_publish_errors(out.len() as u64);
            }
        }
        for f in flushes {
            let _ = f.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn out(stream: &str, n: u8) -> Outgoing {
        Outgoing {
            stream: Arc::from(stream),
            head: Bytes::from(vec![n]),
            body: Bytes::new(),
        }
    }

    #[test]
    fn a_batch_splits_by_slot_and_keeps_each_streams_order() {
        let batch = vec![
            out("w:{p1}", 1),
            out("w:{ctl}", 2),
            out("w:{p1}", 3),
            out("w:{ctl}:node:a", 4),
            out("w:{p2}:ch:x", 5),
        ];
        let groups = by_slot(&batch);
        let heads = |tag: &str| -> Vec<u8> { groups[tag].iter().map(|o| o.head[0]).collect() };
        assert_eq!(groups.len(), 3);
        assert_eq!(heads("p1"), vec![1, 3]);
        assert_eq!(heads("ctl"), vec![2, 4]);
        assert_eq!(heads("p2"), vec![5]);
    }
}
