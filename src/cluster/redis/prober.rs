//! Fast failure detection through Redis (see
//! [`broker::probe`](crate::cluster::broker::probe)): `PUBSUB NUMSUB` on each live peer's own
//! channel, over the publishing connection.

use std::collections::HashMap;
use std::sync::Arc;

use super::Shared;
use crate::cluster::broker::probe::SubscriptionProbe;
use crate::cluster::engine::EngineFuture;

/// Asks Redis how many subscribers each stream has.
pub(super) struct NumSub(pub(super) Arc<Shared>);

impl SubscriptionProbe for NumSub {
    fn subscribed(&self, streams: Vec<String>) -> EngineFuture<'_, Option<Vec<bool>>> {
        Box::pin(async move {
            let mut conn = self.0.probe_connection.lock().clone()?;
            let probe = redis::cmd("PUBSUB").arg("NUMSUB").arg(&streams).to_owned();
            let counts = tokio::time::timeout(
                self.0.cfg.response_timeout(),
                probe.query_async::<HashMap<String, i64>>(&mut conn),
            )
            .await
            .ok()?
            .ok()?;
            Some(
                streams
                    .iter()
                    .map(|s| counts.get(s).copied().unwrap_or(0) > 0)
                    .collect(),
            )
        })
    }
}
