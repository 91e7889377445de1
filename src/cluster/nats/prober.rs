//! Fast failure detection through NATS (see
//! [`broker::probe`](crate::cluster::broker::probe)): a request on each live peer's own subject,
//! with a short timeout. A killed peer's subscription vanishes with its connection, and the
//! server answers such a request "no responders" at once (NATS 2.2 and later, with headers); a
//! live peer answers it. No answer in time means "could not tell" and counts as still there.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;

use super::Shared;
use crate::cluster::broker::probe::SubscriptionProbe;
use crate::cluster::engine::EngineFuture;

/// Asks the server, by a request, whether each peer's subject has a subscriber.
pub(super) struct Requests(pub(super) Arc<Shared>);

impl Requests {
    /// How long after this node's connection came back up probes wait: peers that lost the
    /// server at the same time need a moment to subscribe again.
    fn settling(&self) -> Duration {
        self.0.cfg.peer_timeout()
    }
}

impl SubscriptionProbe for Requests {
    fn subscribed(&self, streams: Vec<String>) -> EngineFuture<'_, Option<Vec<bool>>> {
        Box::pin(async move {
            let shared = &self.0;
            let client = shared.client.lock().clone()?;
            let settling = shared
                .reconnected_at
                .lock()
                .is_some_and(|t| t.elapsed() < self.settling());
            if settling || !shared.core.subscriber_up() {
                return None;
            }
            let timeout = shared.cfg.probe_timeout();
            let asks = streams.into_iter().map(|s| {
                let client = client.clone();
                async move {
                    let request = async_nats::Request::new().timeout(Some(timeout));
                    match client.send_request(s, request).await {
                        Err(e) => e.kind() != async_nats::RequestErrorKind::NoResponders,
                        Ok(_) => true,
                    }
                }
            });
            Some(join_all(asks).await)
        })
    }
}
