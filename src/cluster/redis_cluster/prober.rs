//! Fast failure detection through Redis Cluster (see
//! [`broker::probe`](crate::cluster::broker::probe)): `PUBSUB SHARDNUMSUB` on each live peer's own
//! channel, asked of the master that owns the control slot (sharded subscriptions are known only
//! to the shard that owns their slot).

use std::collections::HashMap;
use std::sync::Arc;

use super::{Shared, master_of};
use crate::cluster::broker::probe::SubscriptionProbe;
use crate::cluster::broker::streams::StreamNames;
use crate::cluster::engine::EngineFuture;

/// Asks the control slot's master how many subscribers each node channel has.
pub(super) struct ShardNumSub(pub(super) Arc<Shared>);

impl SubscriptionProbe for ShardNumSub {
    fn subscribed(&self, streams: Vec<String>) -> EngineFuture<'_, Option<Vec<bool>>> {
        Box::pin(async move {
            let mut conn = self.0.connection()?;
            let probe = ::redis::cmd("PUBSUB")
                .arg("SHARDNUMSUB")
                .arg(&streams)
                .to_owned();
            let reply = tokio::time::timeout(
                self.0.cfg.response_timeout(),
                conn.route_command(probe, master_of(self.0.names.shared())),
            )
            .await
            .ok()?
            .ok()?;
            let counts: HashMap<String, i64> = ::redis::from_redis_value(reply).ok()?;
            Some(
                streams
                    .iter()
                    .map(|s| counts.get(s).copied().unwrap_or(0) > 0)
                    .collect(),
            )
        })
    }
}
