//! Fast failure detection through the broker: a node's subscription to its own stream vanishes
//! the moment its connection closes (a killed process's kernel closes it). An engine whose
//! broker can say whether a stream has subscribers asks it every probe interval for each live
//! peer's stream; a peer found without one on two probes in a row is down at once, long before
//! `peer_timeout` would notice its silence.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::BrokerCore;
use crate::cluster::engine::EngineFuture;
use crate::cluster::envelope::Origin;
use crate::cluster::membership::DownReason;

/// Probes in a row that must find a peer unsubscribed before it is declared down (one could
/// fall in the instant a live peer re-subscribes after a reconnect).
pub(crate) const MISSES_TO_DOWN: u32 = 2;

/// How an engine asks its broker about subscriptions.
pub(crate) trait SubscriptionProbe: Send + Sync + 'static {
    /// For each stream, whether it has a subscriber; `None` when the broker could not be asked
    /// (its trouble is the writer's and subscriber's to report).
    fn subscribed(&self, streams: Vec<String>) -> EngineFuture<'_, Option<Vec<bool>>>;
}

/// Counts probes that found a peer unsubscribed, sans I/O.
#[derive(Debug, Default)]
pub(crate) struct Misses {
    misses: HashMap<Origin, u32>,
}

impl Misses {
    /// Takes one probe's answers for `peers` (the live peers when it was sent); returns the
    /// peers now down.
    pub(crate) fn probed(&mut self, peers: &[Origin], subscribed: &[bool]) -> Vec<Origin> {
        self.misses.retain(|o, _| peers.contains(o));
        let mut gone = Vec::new();
        for (peer, up) in peers.iter().zip(subscribed) {
            if *up {
                self.misses.remove(peer);
                continue;
            }
            let m = self.misses.entry(peer.clone()).or_insert(0);
            *m += 1;
            if *m >= MISSES_TO_DOWN {
                self.misses.remove(peer);
                gone.push(peer.clone());
            }
        }
        gone
    }
}

/// The prober task: every `interval`, asks `probe` about each live peer's stream.
pub(crate) async fn prober(
    core: Arc<BrokerCore>,
    interval: Duration,
    probe: impl SubscriptionProbe,
) {
    let mut stop = core.stopping();
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses = Misses::default();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let peers = core.live_peers();
        if peers.is_empty() {
            misses.probed(&[], &[]);
            continue;
        }
        let names: Vec<String> = peers
            .iter()
            .map(|p| core.names().node(&p.node_id))
            .collect();
        let Some(subscribed) = probe.subscribed(names).await else {
            continue;
        };
        let gone = misses.probed(&peers, &subscribed);
        if !gone.is_empty() {
            core.departed(&gone, DownReason::Unsubscribed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(id: &str) -> Origin {
        Origin {
            node_id: Arc::from(id),
            incarnation: 1,
        }
    }

    #[test]
    fn a_peer_is_down_after_two_misses_in_a_row_only() {
        let mut m = Misses::default();
        let (a, b) = (o("a"), o("b"));
        let peers = [a.clone(), b.clone()];
        assert!(m.probed(&peers, &[false, true]).is_empty());
        assert!(m.probed(&peers, &[true, false]).is_empty(), "a came back");
        assert_eq!(m.probed(&peers, &[false, false]), vec![b.clone()]);
        assert_eq!(m.probed(&peers, &[false, true]), vec![a]);
    }
}
