//! Fast failure detection through Redis Cluster (see
//! [`broker::probe`](crate::cluster::broker::probe)): `PUBSUB SHARDNUMSUB` on each live peer's own
//! channel, asked of the master that owns the control slot (sharded subscriptions are known only
//! to the shard that owns their slot). The subscriber asks the same of this node's own channel, to
//! check that its control subscription really is in place.

use std::collections::HashMap;
use std::sync::Arc;

use ::redis::Value;
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};

use super::Shared;
use crate::cluster::broker::probe::SubscriptionProbe;
use crate::cluster::broker::streams::StreamNames;
use crate::cluster::engine::EngineFuture;

/// How many subscribers each of `streams` (control channels) has, as the master that owns the
/// control slot counts them; `None` when it could not be asked.
///
/// The question travels with a keyed command on the control slot in one pipeline: the cluster
/// client sends a request to any node when the slot's own connection is being repaired, and a
/// node that does not own the slot answers `PUBSUB SHARDNUMSUB` with zeros (no error), which would
/// declare live peers dead; the keyed command makes such a node answer MOVED instead.
pub(super) async fn shard_numsub(
    shared: &Shared,
    conn: &mut ClusterConnection,
    streams: &[String],
) -> Option<Vec<i64>> {
    let control = shared.names.shared().to_string();
    let mut pipe = ::redis::pipe();
    pipe.cmd("EXISTS")
        .arg(&control)
        .cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(streams);
    let route =
        SingleNodeRoutingInfo::SpecificNode(Route::with_key(control.as_bytes(), SlotAddr::Master));
    let values = tokio::time::timeout(
        shared.cfg.response_timeout(),
        conn.route_pipeline(pipe, 0, 2, route),
    )
    .await
    .ok()?
    .ok()?;
    let [Value::Int(_), counts] = values.as_slice() else {
        return None;
    };
    let counts: HashMap<String, i64> = ::redis::from_redis_value(counts.clone()).ok()?;
    Some(
        streams
            .iter()
            .map(|s| counts.get(s).copied().unwrap_or(0))
            .collect(),
    )
}

/// Asks the control slot's master how many subscribers each node channel has.
pub(super) struct ShardNumSub(pub(super) Arc<Shared>);

impl SubscriptionProbe for ShardNumSub {
    fn subscribed(&self, streams: Vec<String>) -> EngineFuture<'_, Option<Vec<bool>>> {
        Box::pin(async move {
            let mut conn = self.0.connection()?;
            let counts = shard_numsub(&self.0, &mut conn, &streams).await?;
            Some(counts.into_iter().map(|n| n > 0).collect())
        })
    }
}

/// Whether this node's own channel is subscribed at the control slot's master (`None`: could not
/// be asked).
pub(super) async fn own_subscription(
    shared: &Shared,
    conn: &mut ClusterConnection,
) -> Option<bool> {
    let own = shared.names.node(&shared.core.origin().node_id);
    let counts = shard_numsub(shared, conn, std::slice::from_ref(&own)).await?;
    Some(counts.first().is_some_and(|n| *n > 0))
}
