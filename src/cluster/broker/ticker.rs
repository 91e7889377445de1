//! The broker core's clock: heartbeats, failure detection by silence, resynchronisations that
//! had to wait, and forgetting peers long departed.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::{BrokerCore, FORGET_DEPARTED_AFTER, RESYNC_SPACING, TICK};
use crate::cluster::engine::{Report, ResyncCause};
use crate::cluster::envelope::Kind;

/// Heartbeats, failure detection by silence, and resynchronisations that had to wait.
pub(super) async fn ticker(core: Arc<BrokerCore>) {
    let mut stop = core.stop.subscribe();
    let mut every = tokio::time::interval(TICK.min(core.settings.heartbeat_interval));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heartbeat = Instant::now();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let now = Instant::now();
        if now.duration_since(last_heartbeat) >= core.settings.heartbeat_interval {
            last_heartbeat = now;
            if core.subscriber_up() {
                core.send_all(Kind::Heartbeat, Bytes::new());
            }
        }
        {
            let mut st = core.state.lock();
            if st.stopped {
                return;
            }
            let changes = st.membership.tick(now);
            core.reports.push(Report::changes(changes));
            let gone: Vec<Arc<str>> = st
                .departed
                .iter()
                .filter(|(_, t)| now.duration_since(**t) >= FORGET_DEPARTED_AFTER)
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                st.departed.remove(&id);
                st.inbound.forget_origin(&id);
            }
            let due: Vec<Arc<str>> = st
                .pending_resync
                .keys()
                .filter(|id| {
                    st.last_resync
                        .get(*id)
                        .is_none_or(|t| now.duration_since(*t) >= RESYNC_SPACING)
                })
                .cloned()
                .collect();
            for id in due {
                if let Some((origin, lost)) = st.pending_resync.remove(&id) {
                    st.last_resync.insert(id, now);
                    core.stats.add_resync();
                    core.reports
                        .push_one(Report::Resync(origin, ResyncCause::Lost(lost)));
                }
            }
        }
        core.drain_reports();
    }
}
