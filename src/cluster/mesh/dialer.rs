//! Dialing one address for as long as the engine runs: connect and link when no link to the node
//! there exists, back off exponentially with jitter (100 ms to 5 s) after failures. An address the
//! operator gave is said unreachable at warn (see `reach.rs`); an address that answers as this
//! node is dropped and never dialled again.

use std::sync::Arc;
use std::time::Duration;

use super::Shared;
use super::handshake::{self, LinkError};
use super::link;
use super::reach::ReachLog;

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

/// The address answered as this node: forget it as a target and never dial it again.
fn forget_own(shared: &Shared, addr: &str) {
    let mut st = shared.state.lock();
    st.targets.remove(addr);
    if st.own.len() < 64 {
        st.own.insert(addr.to_owned());
    }
    tracing::debug!(%addr, "this address is this node: not dialled again");
}

/// The address is linked: says so once if the operator gave it. Returns nothing to do otherwise.
fn note_linked(shared: &Shared, addr: &str) {
    let log = shared
        .state
        .lock()
        .targets
        .get_mut(addr)
        .and_then(|t| t.reach.as_mut())
        .and_then(|r| r.linked(std::time::Instant::now()));
    if let Some(ReachLog::Linked { after }) = log {
        match after {
            Some(d) => {
                tracing::info!(peer = %addr, unreachable_for_s = d.as_secs(), "configured peer linked")
            }
            None => tracing::info!(peer = %addr, "configured peer linked"),
        }
    }
}

/// An attempt failed: for an address the operator gave, decides what to say (`reach.rs`) and
/// returns `true`; `false` for a learned address (logged the old way).
fn note_failed(shared: &Shared, addr: &str, e: &LinkError) -> bool {
    let error = link::refusal_text(e);
    let log = {
        let mut st = shared.state.lock();
        let Some(reach) = st.targets.get_mut(addr).and_then(|t| t.reach.as_mut()) else {
            return false;
        };
        reach.failed(std::time::Instant::now(), &error)
    };
    match log {
        Some(ReachLog::Unreachable) => tracing::warn!(
            peer = %addr,
            %error,
            "configured peer unreachable (retrying; reminded at most once a minute)"
        ),
        Some(ReachLog::StillUnreachable { down_for, failures }) => tracing::warn!(
            peer = %addr,
            %error,
            down_for_s = down_for.as_secs(),
            failures,
            "configured peer still unreachable"
        ),
        Some(ReachLog::Linked { .. }) | None => {}
    }
    true
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
                Some(true) => note_linked(&shared, &addr),
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
                note_linked(&shared, &addr);
                link::run(shared.clone(), est, rd, wr).await;
                continue;
            }
            Err(LinkError::SelfDial) => {
                settle(&shared, &addr);
                forget_own(&shared, &addr);
                return;
            }
            Err(e) => {
                settle(&shared, &addr);
                let refused = matches!(
                    e,
                    LinkError::Refused(_) | LinkError::RefusedByPeer(_) | LinkError::Tls(_)
                );
                if note_failed(&shared, &addr, &e) {
                    // Said by `note_failed`; a refusal is still counted.
                    if refused && last_failure != Some(refused) {
                        link::count_refusal(&shared, &e);
                    }
                    last_failure = Some(refused);
                } else if last_failure != Some(refused) {
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
