//! Dialing one address for as long as the engine runs: connect and link when no link to the node
//! there exists, back off exponentially with jitter (100 ms to 5 s) after failures.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::handshake::{self, LinkError};
use super::link;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The delay before retry number `attempt` (0-based): doubling from 100 ms, with ±25 % jitter,
/// kept within 100 ms to 5 s.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let jitter = 0.75 + fastrand::f64() * 0.5;
    base.mul_f64(jitter).clamp(BACKOFF_MIN, BACKOFF_MAX)
}

/// Whether a live link to the node at `addr` exists; `None` when the engine stopped or the
/// address is no dial target any more (a `peers_dns` address gone from DNS): stop dialing.
fn linked_node_at(shared: &Shared, addr: &str) -> Option<bool> {
    let st = shared.state.lock();
    if st.stopped {
        return None;
    }
    let linked = st
        .targets
        .get(addr)?
        .node
        .as_ref()
        .and_then(|n| st.peers.get(n))
        .is_some_and(|p| p.link.as_ref().is_some_and(|l| !l.queue.is_closed()));
    Some(linked)
}

fn settle(shared: &Shared, addr: &str) {
    if let Some(t) = shared.state.lock().targets.get_mut(addr) {
        t.settled = true;
    }
}

pub(crate) async fn dial_loop(shared: Arc<Shared>, addr: String) {
    let mut stop = shared.stop.subscribe();
    let mut attempt = 0u32;
    // What the last failed attempt was ("refused" or "failed"): a run of failures of one kind is
    // logged (and a refusal counted) once, a change of kind again.
    let mut last_failure: Option<bool> = None;
    loop {
        // Wait while a link to the node at this address exists.
        loop {
            let changed = shared.link_changed.notified();
            match linked_node_at(&shared, &addr) {
                None => return,
                Some(false) => break,
                Some(true) => {}
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = changed => {}
            }
        }
        match handshake::dial(&shared, &addr).await {
            Ok((est, rd, wr)) => {
                attempt = 0;
                last_failure = None;
                settle(&shared, &addr);
                // The node may announce another address than the one dialled (a proxy, a name):
                // this one reaches it too.
                if let Some(t) = shared.state.lock().targets.get_mut(&addr) {
                    t.node = Some(est.peer.node_id.clone());
                }
                link::run(shared.clone(), est, rd, wr).await;
                continue;
            }
            Err(LinkError::SelfDial) => {
                settle(&shared, &addr);
                return;
            }
            Err(e) => {
                settle(&shared, &addr);
                let refused = matches!(
                    e,
                    LinkError::Refused(_) | LinkError::RefusedByPeer(_) | LinkError::Tls(_)
                );
                if last_failure != Some(refused) {
                    last_failure = Some(refused);
                    link::log_refusal(&shared, &addr, &e);
                }
            }
        }
        let delay = backoff(attempt);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_within_100_ms_to_5_s() {
        for _ in 0..1_000 {
            let first = backoff(0);
            assert!(
                (BACKOFF_MIN..=Duration::from_millis(125)).contains(&first),
                "{first:?}"
            );
            let fourth = backoff(3);
            assert!(
                (Duration::from_millis(600)..=Duration::from_millis(1_000)).contains(&fourth),
                "{fourth:?}"
            );
            let late = backoff(30);
            assert!(
                (Duration::from_millis(3_750)..=BACKOFF_MAX).contains(&late),
                "{late:?}"
            );
        }
    }
}
