//! The publishing side of the Redis engine: one connection, one writer task, envelopes published
//! in the order they were numbered, pipelined in batches.
//!
//! Nothing is published while the node's own subscription is down (see
//! [`BrokerCore::until_subscribed`](crate::cluster::broker::BrokerCore::until_subscribed)). A
//! batch whose PUBLISH fails is dropped and counted (each dropped envelope is also a gap its
//! receivers count); the connection is then rebuilt with backoff.

use std::sync::Arc;

use bytes::Bytes;

use super::Shared;
use crate::cluster::broker::queue::{QueueReceiver, split_batch};

/// Most envelopes sent in one pipeline.
const MAX_BATCH: usize = 512;

/// One PUBLISH (or SPUBLISH) message made of the envelope header and payload, written as a single
/// argument.
pub(crate) struct Message<'a>(pub(crate) &'a Bytes, pub(crate) &'a Bytes);

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
pub(crate) async fn writer(shared: Arc<Shared>, mut rx: QueueReceiver) {
    let core = &shared.core;
    let mut stop = core.stopping();
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut failures: u32 = 0;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        if conn.is_none() {
            match connect(&shared).await {
                Ok(c) => {
                    *shared.probe_connection.lock() = Some(c.clone());
                    conn = Some(c);
                    failures = 0;
                    core.set_publisher_up(true, None);
                }
                Err(e) => {
                    core.set_publisher_up(false, Some(e));
                    let wait = shared.cfg.backoff(failures);
                    failures = failures.saturating_add(1);
                    tokio::select! {
                        _ = stop.changed() => return,
                        _ = tokio::time::sleep(wait) => continue,
                    }
                }
            }
        }
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
        let mut pipe = redis::pipe();
        let mut bytes = 0usize;
        for o in &out {
            pipe.cmd("PUBLISH")
                .arg(o.stream.as_bytes())
                .arg(Message(&o.head, &o.body))
                .ignore();
            bytes += o.len();
        }
        let count = out.len() as u64;
        if count > 0
            && let Some(c) = conn.as_mut()
        {
            match pipe.query_async::<()>(c).await {
                Ok(()) => core.add_out(count, bytes as u64),
                Err(e) => {
                    core.add_publish_errors(count);
                    tracing::warn!(error = %e, envelopes = count, "redis publish failed: envelopes dropped");
                    core.set_publisher_up(false, Some(e.to_string()));
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
