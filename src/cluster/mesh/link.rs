//! One mesh link once its handshake (`handshake.rs`) succeeded: a reader loop (this task) and a
//! writer task that drains the link's bounded queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;

use super::handshake::{
    CLOSE_GRACE, Established, LinkError, OwnedReadHalf, OwnedWriteHalf, accept_handshake,
    accept_stream, advertised, known_reason,
};
use super::queue::LinkQueue;
use super::replay::{Arrival, InboundSequence, ReplayWindow};
use super::wire::{self, WireFrame};
use super::{DialTarget, LinkSlot, Peer, Shared};
use crate::cluster::engine::{Report, ResyncCause};
use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::log_text::{Printable, escape_control};
use crate::metrics::{self, PeerCounters};
use crate::transport::token_bucket::TokenBucket;

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.stop.subscribe();
    // A failing accept (out of file descriptors) is logged once until one succeeds again.
    let mut failing = false;
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "mesh accept failed (logged once until it works again)");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        failing = false;
        // An address that keeps failing handshakes is closed before anything is read.
        if !shared.guard.admit(remote.ip(), Instant::now()) {
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let hs = tokio::time::timeout(shared.cfg.handshake_timeout(), async {
                let (mut rd, mut wr) = accept_stream(&shared, stream).await?;
                let est = accept_handshake(&shared, &mut rd, &mut wr, remote).await?;
                Ok((est, rd, wr))
            })
            .await
            .unwrap_or(Err(LinkError::Timeout));
            if let Err(e) = &hs
                && counts_as_failure(e)
            {
                shared.guard.failed(remote.ip(), Instant::now());
            }
            match hs {
                Ok((est, rd, wr)) => run(shared, est, rd, wr).await,
                Err(LinkError::Tls(why)) => log_tls_refusal(&shared, remote, why),
                Err(e) => log_refusal(&shared, &remote.to_string(), &e),
            }
        });
    }
}

/// Whether an accepted connection's handshake failure counts against its source address: a
/// refusal, garbage, silence past the timeout, a failed TLS handshake. A connection closed before
/// saying anything (a port probe), a node that dialled itself, or an I/O error do not.
fn counts_as_failure(e: &LinkError) -> bool {
    matches!(
        e,
        LinkError::Refused(_) | LinkError::Unexpected | LinkError::Timeout | LinkError::Tls(_)
    )
}

/// Counts a connection refused during its TLS handshake, and logs it at warn once per run of
/// refusals with the same source IP and reason (a refused node retries every few seconds from a
/// new port); repeats are logged at debug.
fn log_tls_refusal(shared: &Shared, remote: std::net::SocketAddr, why: String) {
    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!(metrics::BACKPLANE_LINKS_REFUSED, "by" => "tls").increment(1);
    let key = (remote.ip(), why);
    let mut last = shared.last_tls_refusal.lock();
    if last.as_ref() == Some(&key) {
        tracing::debug!(addr = %remote, error = %Printable(&key.1), "mesh link refused during TLS (again)");
    } else {
        tracing::warn!(addr = %remote, error = %Printable(&key.1), "mesh link refused during TLS");
        *last = Some(key);
    }
}

/// Logs (at warn) and counts a refused link handshake; other failures (connection refused, a
/// timeout, a peer that hung up) are logged at debug. Dialers call it once per run of failures of
/// one kind. A reason the peer gave is unauthenticated: the warn line shows it only when it is one
/// this node knows, the raw text goes to debug (escaped).
pub(crate) fn log_refusal(shared: &Shared, addr: &str, e: &LinkError) {
    let addr = Printable(addr);
    if !count_refusal(shared, e) {
        tracing::debug!(%addr, error = %Printable(&e.to_string()), "mesh link failed");
        return;
    }
    if let LinkError::RefusedByPeer(reason) = e {
        tracing::debug!(%addr, reason = ?reason, "mesh link refused by peer (its reason)");
    }
    tracing::warn!(%addr, error = %refusal_text(e), "mesh link refused");
}

/// What a warn line may say of a link error: a peer's refusal reason only when it is one this node
/// knows (it is unauthenticated), anything else with its control characters escaped.
pub(crate) fn refusal_text(e: &LinkError) -> String {
    match e {
        LinkError::RefusedByPeer(reason) => format!("refused by peer: {}", known_reason(reason)),
        other => escape_control(&other.to_string()).into_owned(),
    }
}

/// Counts a refused link handshake (returns `true`); other failures are not counted (`false`).
pub(crate) fn count_refusal(shared: &Shared, e: &LinkError) -> bool {
    let by = match e {
        LinkError::Refused(_) => "us",
        LinkError::RefusedByPeer(_) => "peer",
        LinkError::Tls(_) => "tls",
        _ => return false,
    };
    shared.stats.refused.fetch_add(1, Ordering::Relaxed);
    ::metrics::counter!(metrics::BACKPLANE_LINKS_REFUSED, "by" => by).increment(1);
    true
}

/// Registers an established link, runs it until it closes, then unregisters it.
pub(crate) async fn run(
    shared: Arc<Shared>,
    est: Established,
    rd: OwnedReadHalf,
    wr: OwnedWriteHalf,
) {
    let queue = Arc::new(LinkQueue::new(shared.cfg.link_queue_bytes));
    let link = LinkSlot {
        id: shared.next_link_id.fetch_add(1, Ordering::Relaxed),
        dialer: est.dialer.clone(),
        queue: queue.clone(),
    };
    let Some((new_addr, counters)) = register(&shared, &est, &link) else {
        // The other side may have installed this link: tell it the close is no failure.
        let mut wr = wr;
        if let Ok(head) = Envelope::encode_header(Kind::Superseded, &shared.me, 0) {
            let _ = tokio::time::timeout(CLOSE_GRACE, async {
                wire::write_frames(&mut wr, [WireFrame::whole(head)]).await?;
                wr.flush().await
            })
            .await;
        }
        return;
    };
    if let Some(addr) = new_addr {
        let _ = shared.dial_tx.send(addr);
    }
    let writer = tokio::spawn(write_loop(
        shared.clone(),
        queue.clone(),
        wr,
        counters.clone(),
    ));
    let superseded = read_loop(&shared, &est.peer, &link, rd, &counters).await;
    queue.close();
    let _ = writer.await;
    let mut watch = false;
    {
        let mut st = shared.state.lock();
        if let Some(p) = st.peers.get_mut(&est.peer.node_id)
            && p.link.as_ref().is_some_and(|l| l.id == link.id)
        {
            p.link = None;
            p.unlinked_since = Some(Instant::now());
            if superseded {
                // Its replacement is on its way; if it does not come, the peer is down.
                watch = true;
            } else {
                let changes = st.membership.link_closed(&est.peer.node_id);
                shared.queue_changes(&st, changes);
            }
        }
    }
    shared.link_changed.notify_waiters();
    shared.drain_reports();
    if watch {
        let (shared, peer) = (shared.clone(), est.peer.clone());
        tokio::spawn(async move {
            tokio::time::sleep(shared.cfg.handshake_timeout()).await;
            {
                let mut st = shared.state.lock();
                let unlinked = st.peers.get(&peer.node_id).is_none_or(|p| p.link.is_none());
                if unlinked && st.membership.is_live(&peer) {
                    let changes = st.membership.link_closed(&peer.node_id);
                    shared.queue_changes(&st, changes);
                }
            }
            shared.drain_reports();
        });
    }
}

/// Installs `link` as the peer's link (or refuses a duplicate), replays what the peer missed.
/// Returns `None` when the link must not run, else a newly learned address to dial and the peer's
/// metric handles.
fn register(
    shared: &Arc<Shared>,
    est: &Established,
    link: &LinkSlot,
) -> Option<(Option<String>, PeerCounters)> {
    let now = Instant::now();
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
    Some((new_addr, counters))
}

async fn write_loop(
    shared: Arc<Shared>,
    queue: Arc<LinkQueue>,
    wr: OwnedWriteHalf,
    counters: PeerCounters,
) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut batch = Vec::new();
    loop {
        let closed = queue.take(&mut batch).await;
        let bytes: usize = batch.iter().map(|f| f.len() + 4).sum();
        shared
            .stats
            .bytes_out
            .fetch_add(bytes as u64, Ordering::Relaxed);
        counters.bytes_out.increment(bytes as u64);
        let write = async {
            wire::write_frames(&mut wr, batch.drain(..)).await?;
            wr.flush().await
        };
        // A peer that stops reading must not hold the writer: once the queue closes (overflow,
        // stop, reader gone) the pending write gets a short grace and is then abandoned.
        let ok = if closed {
            tokio::time::timeout(CLOSE_GRACE, write)
                .await
                .is_ok_and(|r| r.is_ok())
        } else {
            tokio::select! {
                r = write => r.is_ok(),
                _ = queue.closed() => false,
            }
        };
        if closed || !ok {
            queue.close();
            let _ = tokio::time::timeout(CLOSE_GRACE, wr.shutdown()).await;
            return;
        }
    }
}

/// Reads the link until it ends; returns whether the peer said the link was superseded.
async fn read_loop(
    shared: &Arc<Shared>,
    peer: &Origin,
    link: &LinkSlot,
    rd: OwnedReadHalf,
    counters: &PeerCounters,
) -> bool {
    // Buffered: a frame is a length prefix and a body, and many frames arrive together; one read
    // call takes them all instead of two per frame.
    let mut rd = tokio::io::BufReader::with_capacity(64 * 1024, rd);
    let mut stop = shared.stop.subscribe();
    let mut since_ack = 0u32;
    let budget = shared.cfg.max_control_frames_per_sec;
    let mut control =
        (budget > 0).then(|| TokenBucket::new(f64::from(budget), budget, Instant::now()));
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return false,
            _ = link.queue.closed() => return false,
            f = wire::read_frame(&mut rd, shared.cfg.max_frame_bytes) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return false,
            Err(e) => {
                tracing::debug!(peer = %Printable(&peer.node_id), error = %e, "mesh link read failed");
                return false;
            }
        };
        if link.queue.is_closed() {
            return false;
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
                return false;
            }
            Err(e) => {
                tracing::warn!(peer = %Printable(&peer.node_id), error = %Printable(&e.to_string()), "malformed mesh frame: closing link");
                return false;
            }
        };
        shared.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        counters.envelopes_in.increment(1);
        let now = Instant::now();
        let is_control = matches!(env.kind, Kind::Heartbeat | Kind::Ack | Kind::Hello);
        if is_control && control.as_mut().is_some_and(|b| !b.take(now)) {
            metrics::limit_refused(metrics::Limit::MeshControlRate);
            tracing::warn!(
                peer = %Printable(&peer.node_id),
                limit = budget,
                "mesh peer flooding control frames (over cluster.mesh.max_control_frames_per_sec): resetting the link"
            );
            return false;
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
            }
            Kind::Superseded => return true,
            Kind::Hello => {
                let addrs: Vec<String> = postcard::from_bytes(&env.payload).unwrap_or_default();
                learn(shared, addrs);
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
                return false;
            }
            _ => {
                let (arrival, ack) = {
                    let mut st = shared.state.lock();
                    let Some(p) = st.peers.get_mut(&peer.node_id) else {
                        return false;
                    };
                    let arrival = p.inbound.arrive(env.seq);
                    let last = p.inbound.last();
                    let changes = st.membership.heard(peer, now);
                    shared.queue_changes(&st, changes);
                    (arrival, last)
                };
                shared.drain_reports();
                match arrival {
                    Arrival::Duplicate => continue,
                    Arrival::AfterGap { missing } => {
                        shared.stats.lost.fetch_add(missing, Ordering::Relaxed);
                        counters.lost_in.increment(missing);
                        tracing::warn!(peer = %Printable(&peer.node_id), missing, "mesh frames missing from peer");
                    }
                    Arrival::InOrder => {}
                }
                shared.handler.on_envelope(env);
                since_ack += 1;
                if since_ack >= 64 {
                    since_ack = 0;
                    shared.send_control(
                        link,
                        Kind::Ack,
                        Bytes::copy_from_slice(&ack.to_be_bytes()),
                    );
                }
            }
        }
    }
}

/// Longest peer address kept, in bytes.
const MAX_ADDRESS_LEN: usize = 255;

/// Whether one more address fits in the dial set (`cluster.mesh.max_known_addresses`); when it
/// does not, the refusal is counted and logged once until an address fits again.
fn room_for_address(shared: &Shared, st: &mut super::State) -> bool {
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
/// `cluster.mesh.max_known_addresses`) and starts dialing the new ones. An unspecified IP (a
/// peer's bind address) is nobody's address; the node's own addresses are never dialled.
fn learn(shared: &Arc<Shared>, addrs: Vec<String>) {
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
