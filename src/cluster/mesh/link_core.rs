//! The mesh's rules, sans I/O: what a new link, a frame read from a link, a closed link and the
//! clock do to the peers' state, and what must then be sent, reported or dialled.
//!
//! Socket tasks (`link.rs`) only read and write bytes: they hand each event to a function here
//! with the time it happened and carry out the answer (deliver an envelope, close the link, dial
//! an address). Everything these functions touch is memory: the state under its lock, the links'
//! send queues, the report queue and the dial channel. Tests (`link_core_tests.rs`) drive them with a
//! made-up clock, frames built by hand and no socket.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;

use super::handshake::{Established, advertised};
use super::replay::{Arrival, InboundSequence, ReplayWindow};
use super::{DialTarget, LinkSlot, Peer, Shared, State};
use crate::cluster::engine::{Report, ResyncCause};
use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::log_text::Printable;
use crate::metrics::{self, PeerCounters};
use crate::transport::token_bucket::TokenBucket;

/// Frames between two cumulative acknowledgments a reader sends (heartbeats carry one too).
pub(crate) const ACK_EVERY: u32 = 64;

/// Longest peer address kept, in bytes.
const MAX_ADDRESS_LEN: usize = 255;

/// What one link's reader keeps between frames.
pub(crate) struct LinkRules {
    /// Frames delivered since the last acknowledgment sent.
    since_ack: u32,
    /// The control-frame budget (`cluster.mesh.max_control_frames_per_sec`; none when 0).
    control: Option<TokenBucket>,
}

impl LinkRules {
    /// The rules of a link opened at `now`.
    pub(crate) fn new(shared: &Shared, now: Instant) -> Self {
        let budget = shared.cfg.max_control_frames_per_sec;
        Self {
            since_ack: 0,
            control: (budget > 0).then(|| TokenBucket::new(f64::from(budget), budget, now)),
        }
    }
}

/// What a link's reader must do after a frame.
#[derive(Debug)]
pub(crate) enum FrameOutcome {
    /// Keep reading; hand `deliver` to the handler first, when there is one.
    Continue {
        /// An envelope from the peer, in order and not seen before.
        deliver: Option<Envelope>,
    },
    /// Close the link. `superseded`: the peer replaced it with another link (no failure).
    Close {
        /// The peer said a newer link replaces this one.
        superseded: bool,
    },
}

impl FrameOutcome {
    fn keep() -> Self {
        FrameOutcome::Continue { deliver: None }
    }
    fn close() -> Self {
        FrameOutcome::Close { superseded: false }
    }
}

/// What a newly registered link needs.
pub(crate) struct LinkUp {
    /// An address the peer listens on that was not known: dial it.
    pub(crate) new_addr: Option<String>,
    /// The peer's metric handles.
    pub(crate) counters: PeerCounters,
}

/// Installs `link` as the link to `est.peer` (or refuses a duplicate: `None`, the link must not
/// run), queues on it what the peer missed, and says hello with the addresses this node knows.
pub(crate) fn link_up(
    shared: &Arc<Shared>,
    est: &Established,
    link: &LinkSlot,
    now: Instant,
) -> Option<LinkUp> {
    let (new_addr, gap, counters) = {
        let mut st = shared.state.lock();
        if st.stopped {
            return None;
        }
        let cfg = &shared.cfg;
        let peer = st
            .peers
            .entry(est.peer.node_id.clone())
            .or_insert_with(|| Peer {
                incarnation: est.peer.incarnation,
                window: ReplayWindow::new(cfg.replay_window(), cfg.replay_window_bytes),
                inbound: InboundSequence::default(),
                link: None,
                listen: None,
                ever_linked: false,
                unlinked_since: None,
                counters: PeerCounters::new(&est.peer.node_id),
            });
        if peer.incarnation != est.peer.incarnation {
            // A new process under the same name: nothing of the old stream applies.
            if let Some(old) = peer.link.take() {
                old.queue.close();
            }
            peer.incarnation = est.peer.incarnation;
            peer.window = ReplayWindow::new(cfg.replay_window(), cfg.replay_window_bytes);
            peer.inbound = InboundSequence::default();
            peer.ever_linked = false;
        }
        if let Some(existing) = &peer.link
            && !existing.queue.is_closed()
        {
            let preferred: &str = std::cmp::min(&*shared.me.node_id, &*est.peer.node_id);
            if &*existing.dialer == preferred && &*link.dialer != preferred {
                tracing::debug!(peer = %Printable(&est.peer.node_id), "duplicate mesh link refused");
                return None;
            }
            shared.send_control(existing, Kind::Superseded, Bytes::new());
            existing.queue.close();
        }
        if peer.ever_linked {
            shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            peer.counters.reconnects.increment(1);
        }
        peer.ever_linked = true;
        peer.unlinked_since = None;
        peer.listen = est.listen.clone().or(peer.listen.take());
        let resume_from = match est.peer_resume {
            Some(r) if r.incarnation == shared.me.incarnation => r.last_seq,
            _ => 0,
        };
        let mut gap = None;
        let frames = match peer.window.replay_after(resume_from) {
            Ok(f) => f,
            Err(g) => {
                let lost = peer.window.newly_lost(g);
                gap = (lost > 0).then_some(lost);
                peer.window.ack(g.through);
                peer.window.replay_after(g.through).unwrap_or_default()
            }
        };
        shared
            .stats
            .replayed
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        peer.counters.replayed.increment(frames.len() as u64);
        peer.counters.envelopes_out.increment(frames.len() as u64);
        if let Some(lost) = gap {
            peer.counters.lost_out.increment(lost);
        }
        let counters = peer.counters.clone();
        for (_, f) in frames {
            let _ = link.queue.push(f);
        }
        peer.link = Some(link.clone());
        let mut new_addr = None;
        if let Some(addr) = est
            .listen
            .as_ref()
            .filter(|a| a.len() <= MAX_ADDRESS_LEN && !shared.is_own(&st, a))
        {
            if !st.targets.contains_key(addr) && room_for_address(shared, &mut st) {
                st.targets.insert(addr.clone(), DialTarget::default());
                new_addr = Some(addr.clone());
            }
            if let Some(t) = st.targets.get_mut(addr) {
                t.node = Some(est.peer.node_id.clone());
            }
        }
        let changes = st.membership.heard(&est.peer, now);
        if changes.is_empty() {
            // Already live (a replaced link): the peer may have purged us meanwhile, so it asks
            // for our state, and we for its, as after any link.
            shared
                .reports
                .push_one(Report::Resync(est.peer.clone(), ResyncCause::Relinked));
        }
        shared.queue_changes(&st, changes);
        // Gossip the addresses we know, so a new node needs only one reachable peer. Addresses
        // found through DNS are left out: every node resolves the names itself, and an old pod's
        // address must not outlive its DNS record by spreading from node to node.
        let mut known: Vec<String> = st
            .targets
            .iter()
            .filter(|(_, t)| !t.dns)
            .map(|(k, _)| k.clone())
            .collect();
        known.push(advertised(shared));
        if let Ok(payload) = postcard::to_stdvec(&known) {
            shared.send_control(link, Kind::Hello, Bytes::from(payload));
        }
        (new_addr, gap, counters)
    };
    if let Some(lost) = gap {
        shared.stats.lost.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(peer = %Printable(&est.peer.node_id), lost, "frames to peer lost beyond the replay window: resynchronising");
        shared.handler.on_resync_needed(&est.peer, lost);
    }
    shared.link_changed.notify_waiters();
    shared.drain_reports();
    Some(LinkUp { new_addr, counters })
}

/// One frame read from the link to `peer` at `now` (its length prefix already taken off).
pub(crate) fn on_frame(
    shared: &Arc<Shared>,
    peer: &Origin,
    link: &LinkSlot,
    rules: &mut LinkRules,
    counters: &PeerCounters,
    frame: Bytes,
    now: Instant,
) -> FrameOutcome {
    if link.queue.is_closed() {
        return FrameOutcome::close();
    }
    shared
        .stats
        .bytes_in
        .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
    counters.bytes_in.increment(frame.len() as u64 + 4);
    let env = match Envelope::decode(frame) {
        Ok(e) if e.origin == *peer => e,
        Ok(e) => {
            tracing::warn!(peer = %Printable(&peer.node_id), claimed = %Printable(&e.origin.node_id), "mesh frame with a foreign origin: closing link");
            return FrameOutcome::close();
        }
        Err(e) => {
            tracing::warn!(peer = %Printable(&peer.node_id), error = %Printable(&e.to_string()), "malformed mesh frame: closing link");
            return FrameOutcome::close();
        }
    };
    shared.stats.frames_in.fetch_add(1, Ordering::Relaxed);
    counters.envelopes_in.increment(1);
    let is_control = matches!(env.kind, Kind::Heartbeat | Kind::Ack | Kind::Hello);
    if is_control && rules.control.as_mut().is_some_and(|b| !b.take(now)) {
        metrics::limit_refused(metrics::Limit::MeshControlRate);
        tracing::warn!(
            peer = %Printable(&peer.node_id),
            limit = shared.cfg.max_control_frames_per_sec,
            "mesh peer flooding control frames (over cluster.mesh.max_control_frames_per_sec): resetting the link"
        );
        return FrameOutcome::close();
    }
    match env.kind {
        Kind::Heartbeat | Kind::Ack => {
            let acked = env.payload.get(..8).map(|b| {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_be_bytes(a)
            });
            {
                let mut st = shared.state.lock();
                if let (Some(seq), Some(p)) = (acked, st.peers.get_mut(&peer.node_id)) {
                    p.window.ack(seq);
                }
                let changes = st.membership.heard(peer, now);
                shared.queue_changes(&st, changes);
            }
            shared.drain_reports();
            FrameOutcome::keep()
        }
        Kind::Superseded => FrameOutcome::Close { superseded: true },
        Kind::Hello => {
            let addrs: Vec<String> = postcard::from_bytes(&env.payload).unwrap_or_default();
            learn(shared, addrs);
            FrameOutcome::keep()
        }
        Kind::Bye => {
            {
                let mut st = shared.state.lock();
                let _ = st
                    .peers
                    .get_mut(&peer.node_id)
                    .map(|p| p.inbound.arrive(env.seq));
                let changes = st.membership.bye(peer);
                shared.queue_changes(&st, changes);
            }
            shared.drain_reports();
            FrameOutcome::close()
        }
        _ => {
            let (arrival, last) = {
                let mut st = shared.state.lock();
                let Some(p) = st.peers.get_mut(&peer.node_id) else {
                    return FrameOutcome::close();
                };
                let arrival = p.inbound.arrive(env.seq);
                let last = p.inbound.last();
                let changes = st.membership.heard(peer, now);
                shared.queue_changes(&st, changes);
                (arrival, last)
            };
            shared.drain_reports();
            match arrival {
                Arrival::Duplicate => return FrameOutcome::keep(),
                Arrival::AfterGap { missing } => {
                    shared.stats.lost.fetch_add(missing, Ordering::Relaxed);
                    counters.lost_in.increment(missing);
                    tracing::warn!(peer = %Printable(&peer.node_id), missing, "mesh frames missing from peer");
                }
                Arrival::InOrder => {}
            }
            rules.since_ack += 1;
            if rules.since_ack >= ACK_EVERY {
                rules.since_ack = 0;
                shared.send_control(link, Kind::Ack, Bytes::copy_from_slice(&last.to_be_bytes()));
            }
            FrameOutcome::Continue { deliver: Some(env) }
        }
    }
}

/// The link `link_id` to `peer` ended at `now`. Returns true when the peer said it was superseded
/// and it is still unlinked: its replacement is due, and if it does not come within the handshake
/// timeout ([`replacement_overdue`]) the peer is down.
pub(crate) fn link_down(
    shared: &Shared,
    peer: &Origin,
    link_id: u64,
    superseded: bool,
    now: Instant,
) -> bool {
    let mut watch = false;
    {
        let mut st = shared.state.lock();
        if let Some(p) = st.peers.get_mut(&peer.node_id)
            && p.link.as_ref().is_some_and(|l| l.id == link_id)
        {
            p.link = None;
            p.unlinked_since = Some(now);
            if st.stopped {
                // This node is stopping: it reports every peer down itself (a local stop).
            } else if superseded {
                watch = true;
            } else {
                let changes = st.membership.link_closed(&peer.node_id);
                shared.queue_changes(&st, changes);
            }
        }
    }
    shared.link_changed.notify_waiters();
    shared.drain_reports();
    watch
}

/// The replacement of a superseded link to `peer` did not come in time: the peer is down unless a
/// link formed meanwhile.
pub(crate) fn replacement_overdue(shared: &Shared, peer: &Origin) {
    {
        let mut st = shared.state.lock();
        let unlinked = st.peers.get(&peer.node_id).is_none_or(|p| p.link.is_none());
        if unlinked && !st.stopped && st.membership.is_live(peer) {
            let changes = st.membership.link_closed(&peer.node_id);
            shared.queue_changes(&st, changes);
        }
    }
    shared.drain_reports();
}

/// One heartbeat tick at `now`: a heartbeat (with the cumulative acknowledgment) on every link,
/// replay windows trimmed, silent peers declared down (their links are closed), and peers away
/// longer than the replay window forgotten.
pub(crate) fn on_tick(shared: &Shared, now: Instant) {
    let to_close = {
        let mut st = shared.state.lock();
        if st.stopped {
            return;
        }
        for peer in st.peers.values_mut() {
            peer.window.trim(now);
            if let Some(link) = &peer.link {
                let ack = Bytes::copy_from_slice(&peer.inbound.last().to_be_bytes());
                shared.send_control(link, Kind::Heartbeat, ack);
            }
        }
        let changes = st.membership.tick(now);
        let mut to_close = Vec::new();
        for c in &changes {
            if let crate::cluster::membership::PeerChange::Down(o, _) = c
                && let Some(p) = st.peers.get(&o.node_id)
            {
                to_close.extend(p.link.clone());
            }
        }
        let window = shared.cfg.replay_window();
        st.peers.retain(|_, p| {
            p.link.is_some()
                || p.unlinked_since
                    .is_none_or(|t| now.duration_since(t) <= window)
        });
        shared.queue_changes(&st, changes);
        to_close
    };
    for l in to_close {
        l.queue.close();
    }
    shared.drain_reports();
}

/// Whether one more address fits in the dial set (`cluster.mesh.max_known_addresses`); when it
/// does not, the refusal is counted and logged once until an address fits again.
fn room_for_address(shared: &Shared, st: &mut State) -> bool {
    if st.targets.len() < shared.cfg.max_known_addresses {
        st.addresses_full = false;
        return true;
    }
    metrics::limit_refused(metrics::Limit::MeshAddresses);
    if !st.addresses_full {
        st.addresses_full = true;
        tracing::warn!(
            limit = shared.cfg.max_known_addresses,
            "peer addresses past cluster.mesh.max_known_addresses are not kept or dialled"
        );
    }
    false
}

/// `0.0.0.0:port` or `[::]:port`.
fn unspecified(addr: &str) -> bool {
    addr.parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_unspecified())
}

/// Adds addresses gossiped by an authenticated peer to the dial set (within
/// `cluster.mesh.max_known_addresses`) and asks for the new ones to be dialled. An unspecified IP
/// (a peer's bind address) is nobody's address; the node's own addresses are never dialled.
fn learn(shared: &Shared, addrs: Vec<String>) {
    let mine = advertised(shared);
    let fresh: Vec<String> = {
        let mut st = shared.state.lock();
        if st.stopped {
            return;
        }
        let mut fresh = Vec::new();
        for a in addrs {
            if a == mine
                || a.len() > MAX_ADDRESS_LEN
                || unspecified(&a)
                || shared.is_own(&st, &a)
                || st.targets.contains_key(&a)
            {
                continue;
            }
            if !room_for_address(shared, &mut st) {
                break;
            }
            st.targets.insert(a.clone(), DialTarget::default());
            fresh.push(a);
        }
        fresh
    };
    for a in fresh {
        let _ = shared.dial_tx.send(a);
    }
}
