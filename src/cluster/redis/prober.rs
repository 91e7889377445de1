//! Fast failure detection through Redis: a node's Pub/Sub connection subscribes to its own
//! channel, and Redis drops that subscription the moment the connection closes (a killed
//! process's kernel closes it). Every `probe_interval_ms` a node asks Redis how many subscribers
//! each live peer's channel has (`PUBSUB NUMSUB`); a peer found without one on two probes in a
//! row is down at once, long before `peer_timeout` would notice its silence.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Report, Shared};
use crate::cluster::envelope::Origin;
use crate::cluster::membership::DownReason;

/// Probes in a row that must find a peer unsubscribed before it is declared down (one could
/// fall in the instant a live peer re-subscribes after a reconnect).
const MISSES_TO_DOWN: u32 = 2;

/// The prober task (not started when `probe_interval_ms` is 0).
pub(crate) async fn prober(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut every = tokio::time::interval(shared.cfg.probe_interval());
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut misses: HashMap<Origin, u32> = HashMap::new();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let peers: Vec<Origin> = shared.state.lock().membership.live_peers().collect();
        misses.retain(|o, _| peers.contains(o));
        if peers.is_empty() {
            continue;
        }
        let Some(mut conn) = shared.probe_connection.lock().clone() else {
            continue;
        };
        let names: Vec<String> = peers
            .iter()
            .map(|p| shared.names.node(&p.node_id))
            .collect();
        let probe = redis::cmd("PUBSUB").arg("NUMSUB").arg(&names).to_owned();
        let counts = match tokio::time::timeout(
            shared.cfg.response_timeout(),
            probe.query_async::<HashMap<String, i64>>(&mut conn),
        )
        .await
        {
            Ok(Ok(c)) => c,
            // Redis trouble is the publisher's and subscriber's to report.
            _ => continue,
        };
        let mut gone = Vec::new();
        for (peer, name) in peers.iter().zip(&names) {
            if counts.get(name).copied().unwrap_or(0) > 0 {
                misses.remove(peer);
                continue;
            }
            let m = misses.entry(peer.clone()).or_insert(0);
            *m += 1;
            if *m >= MISSES_TO_DOWN {
                gone.push(peer.clone());
            }
        }
        if gone.is_empty() {
            continue;
        }
        {
            let mut st = shared.state.lock();
            if st.stopped {
                return;
            }
            for peer in &gone {
                misses.remove(peer);
                let changes = st.membership.departed(peer, DownReason::Unsubscribed);
                st.reports.extend(changes.into_iter().map(Report::Change));
            }
        }
        shared.drain_reports();
    }
}
