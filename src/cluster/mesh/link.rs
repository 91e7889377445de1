//! One mesh link: the authenticated handshake (both roles), then a reader loop (this task) and a
//! writer task that drains the link's bounded queue.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::auth::{self, Role, Transcript};
use super::queue::LinkQueue;
use super::replay::{Arrival, InboundSequence, ReplayWindow};
use super::wire::{self, HandshakeMsg, LINK_PROTOCOL, Resume, WireFrame};
use super::{DialTarget, LinkSlot, Peer, Shared};
use crate::cluster::envelope::{Envelope, Kind, Origin};

/// Why a link could not be established.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("peer closed during the handshake")]
    Closed,
    #[error("unexpected handshake message")]
    Unexpected,
    #[error("refused by peer: {0}")]
    RefusedByPeer(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("dialled ourselves")]
    SelfDial,
}

/// How long a closing link may take to flush what it still has to send.
const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The refusal reason an acceptor gives a node that dialled itself (an address gossiped back).
const SELF_DIAL: &str = "self";

/// What a successful handshake established.
pub(crate) struct Established {
    pub(crate) peer: Origin,
    pub(crate) listen: Option<String>,
    pub(crate) peer_resume: Option<Resume>,
    pub(crate) dialer: Arc<str>,
}

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut stop = shared.stop.subscribe();
    loop {
        let (stream, remote) = tokio::select! {
            _ = stop.changed() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "mesh accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let (mut rd, mut wr) = stream.into_split();
            let hs = tokio::time::timeout(
                shared.cfg.handshake_timeout(),
                accept_handshake(&shared, &mut rd, &mut wr, remote),
            )
            .await
            .unwrap_or(Err(LinkError::Timeout));
            match hs {
                Ok(est) => run(shared, est, rd, wr).await,
                Err(e) => log_refusal(&shared, &remote.to_string(), &e),
            }
        });
    }
}

pub(crate) fn log_refusal(shared: &Shared, addr: &str, e: &LinkError) {
    match e {
        LinkError::Refused(_) | LinkError::RefusedByPeer(_) => {
            shared.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%addr, error = %e, "mesh link refused");
        }
        _ => tracing::debug!(%addr, error = %e, "mesh link failed"),
    }
}

async fn send_msg(wr: &mut OwnedWriteHalf, msg: &HandshakeMsg) -> Result<(), LinkError> {
    wire::write_frames(wr, [WireFrame::whole(msg.encode())]).await?;
    wr.flush().await?;
    Ok(())
}

async fn recv_msg(rd: &mut OwnedReadHalf) -> Result<HandshakeMsg, LinkError> {
    let frame = wire::read_frame(rd, 64 * 1024)
        .await?
        .ok_or(LinkError::Closed)?;
    HandshakeMsg::decode(&frame).ok_or(LinkError::Unexpected)
}

async fn refuse(wr: &mut OwnedWriteHalf, reason: &str) -> LinkError {
    let _ = send_msg(
        wr,
        &HandshakeMsg::Refuse {
            reason: reason.to_owned(),
        },
    )
    .await;
    LinkError::Refused(reason.to_owned())
}

fn resume_for(shared: &Shared, node_id: &str, incarnation: u64) -> Option<Resume> {
    let st = shared.state.lock();
    st.peers
        .get(node_id)
        .filter(|p| p.incarnation == incarnation)
        .map(|p| Resume {
            incarnation,
            last_seq: p.inbound.last(),
        })
}

fn advertised(shared: &Shared) -> String {
    if shared.cfg.advertise.is_empty() {
        shared.local_addr.to_string()
    } else {
        shared.cfg.advertise.clone()
    }
}

pub(crate) async fn dial_handshake(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
) -> Result<Established, LinkError> {
    let nonce = auth::new_nonce();
    send_msg(
        wr,
        &HandshakeMsg::Hello {
            protocol: LINK_PROTOCOL.into(),
            cluster: shared.cfg.cluster_name.clone(),
            node_id: shared.me.node_id.to_string(),
            incarnation: shared.me.incarnation,
            listen: Some(advertised(shared)),
            nonce,
        },
    )
    .await?;
    let (node_id, incarnation, listen, their_nonce, proof, resume) = match recv_msg(rd).await? {
        HandshakeMsg::Welcome {
            node_id,
            incarnation,
            listen,
            nonce,
            proof,
            resume,
        } => (node_id, incarnation, listen, nonce, proof, resume),
        HandshakeMsg::Refuse { reason } if reason == SELF_DIAL => return Err(LinkError::SelfDial),
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    };
    if *node_id == *shared.me.node_id {
        let _ = refuse(wr, "same node id").await;
        return Err(LinkError::SelfDial);
    }
    let t = Transcript {
        cluster: &shared.cfg.cluster_name,
        dialer_id: &shared.me.node_id,
        acceptor_id: &node_id,
        dialer_nonce: &nonce,
        acceptor_nonce: &their_nonce,
    };
    let secret = shared.cfg.secret.as_bytes();
    if !auth::verify(secret, Role::Acceptor, &t, &proof) {
        return Err(refuse(wr, "authentication failed: wrong cluster secret").await);
    }
    let my_proof = auth::proof(secret, Role::Dialer, &t);
    let my_resume = resume_for(shared, &node_id, incarnation);
    send_msg(
        wr,
        &HandshakeMsg::Proof {
            proof: my_proof,
            resume: my_resume,
        },
    )
    .await?;
    match recv_msg(rd).await? {
        HandshakeMsg::Ready => {}
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    }
    Ok(Established {
        peer: Origin {
            node_id: Arc::from(node_id),
            incarnation,
        },
        listen,
        peer_resume: resume,
        dialer: shared.me.node_id.clone(),
    })
}

async fn accept_handshake(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    remote: SocketAddr,
) -> Result<Established, LinkError> {
    let (protocol, cluster, node_id, incarnation, listen, their_nonce) = match recv_msg(rd).await? {
        HandshakeMsg::Hello {
            protocol,
            cluster,
            node_id,
            incarnation,
            listen,
            nonce,
        } => (protocol, cluster, node_id, incarnation, listen, nonce),
        _ => return Err(refuse(wr, "expected a hello").await),
    };
    if protocol != LINK_PROTOCOL {
        return Err(refuse(wr, &format!("unsupported link protocol {protocol}")).await);
    }
    if cluster != shared.cfg.cluster_name {
        return Err(refuse(wr, &format!("wrong cluster name {cluster:?}")).await);
    }
    if *node_id == *shared.me.node_id && incarnation == shared.me.incarnation {
        let _ = send_msg(
            wr,
            &HandshakeMsg::Refuse {
                reason: SELF_DIAL.into(),
            },
        )
        .await;
        return Err(LinkError::SelfDial);
    }
    if node_id.is_empty() || node_id.len() > 255 || *node_id == *shared.me.node_id {
        return Err(refuse(wr, "unusable or duplicate node id").await);
    }
    let nonce = auth::new_nonce();
    let t = Transcript {
        cluster: &shared.cfg.cluster_name,
        dialer_id: &node_id,
        acceptor_id: &shared.me.node_id,
        dialer_nonce: &their_nonce,
        acceptor_nonce: &nonce,
    };
    let secret = shared.cfg.secret.as_bytes();
    send_msg(
        wr,
        &HandshakeMsg::Welcome {
            node_id: shared.me.node_id.to_string(),
            incarnation: shared.me.incarnation,
            listen: Some(advertised(shared)),
            nonce,
            proof: auth::proof(secret, Role::Acceptor, &t),
            resume: resume_for(shared, &node_id, incarnation),
        },
    )
    .await?;
    let (proof, resume) = match recv_msg(rd).await? {
        HandshakeMsg::Proof { proof, resume } => (proof, resume),
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    };
    if !auth::verify(secret, Role::Dialer, &t, &proof) {
        return Err(refuse(wr, "authentication failed: wrong cluster secret").await);
    }
    send_msg(wr, &HandshakeMsg::Ready).await?;
    Ok(Established {
        peer: Origin {
            node_id: Arc::from(node_id.as_str()),
            incarnation,
        },
        listen: listen.map(|l| reachable(&l, remote)),
        peer_resume: resume,
        dialer: Arc::from(node_id),
    })
}

/// An advertised `0.0.0.0:port` (or `[::]:port`) is reached at the address the peer came from.
fn reachable(listen: &str, remote: SocketAddr) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => SocketAddr::new(remote.ip(), a.port()).to_string(),
        _ => listen.to_owned(),
    }
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
    let Some(new_addr) = register(&shared, &est, &link) else {
        return;
    };
    if let Some(addr) = new_addr {
        let _ = shared.dial_tx.send(addr);
    }
    let writer = tokio::spawn(write_loop(queue.clone(), wr));
    read_loop(&shared, &est.peer, &link, rd).await;
    queue.close();
    let _ = writer.await;
    let changes = {
        let mut st = shared.state.lock();
        let mut changes = Vec::new();
        if let Some(p) = st.peers.get_mut(&est.peer.node_id)
            && p.link.as_ref().is_some_and(|l| l.id == link.id)
        {
            p.link = None;
            p.unlinked_since = Some(Instant::now());
            changes = st.membership.link_closed(&est.peer.node_id);
        }
        changes
    };
    shared.link_changed.notify_waiters();
    shared.report(changes);
}

/// Installs `link` as the peer's link (or refuses a duplicate), replays what the peer missed.
/// Returns `None` when the link must not run, else a newly learned address to dial.
fn register(shared: &Arc<Shared>, est: &Established, link: &LinkSlot) -> Option<Option<String>> {
    let now = Instant::now();
    let (changes, new_addr, gap) = {
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
                tracing::debug!(peer = %est.peer.node_id, "duplicate mesh link refused");
                return None;
            }
            existing.queue.close();
        }
        if peer.ever_linked {
            shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
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
                gap = Some(g.through - g.from + 1);
                peer.window.ack(g.through);
                peer.window.replay_after(g.through).unwrap_or_default()
            }
        };
        shared
            .stats
            .replayed
            .fetch_add(frames.len() as u64, Ordering::Relaxed);
        for (_, f) in frames {
            let _ = link.queue.push(f);
        }
        peer.link = Some(link.clone());
        let mut new_addr = None;
        if let Some(addr) = &est.listen {
            let t = st.targets.entry(addr.clone()).or_insert_with(|| {
                new_addr = Some(addr.clone());
                DialTarget::default()
            });
            t.node = Some(est.peer.node_id.clone());
        }
        let changes = st.membership.heard(&est.peer, now);
        // Gossip the addresses we know, so a new node needs only one reachable peer.
        let mut known: Vec<String> = st.targets.keys().cloned().collect();
        known.push(advertised(shared));
        if let Ok(payload) = postcard::to_stdvec(&known) {
            shared.send_control(link, Kind::Hello, Bytes::from(payload));
        }
        (changes, new_addr, gap)
    };
    if let Some(lost) = gap {
        shared.stats.lost.fetch_add(lost, Ordering::Relaxed);
        tracing::warn!(peer = %est.peer.node_id, lost, "frames to peer lost beyond the replay window: resynchronising");
        shared.handler.on_resync_needed(&est.peer, lost);
    }
    shared.link_changed.notify_waiters();
    shared.report(changes);
    Some(new_addr)
}

async fn write_loop(queue: Arc<LinkQueue>, wr: OwnedWriteHalf) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    let mut batch = Vec::new();
    loop {
        let closed = queue.take(&mut batch).await;
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

async fn read_loop(shared: &Arc<Shared>, peer: &Origin, link: &LinkSlot, mut rd: OwnedReadHalf) {
    let mut stop = shared.stop.subscribe();
    let mut since_ack = 0u32;
    loop {
        let frame = tokio::select! {
            _ = stop.changed() => return,
            _ = link.queue.closed() => return,
            f = wire::read_frame(&mut rd, shared.cfg.max_frame_bytes) => f,
        };
        let frame = match frame {
            Ok(Some(f)) => f,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(peer = %peer.node_id, error = %e, "mesh link read failed");
                return;
            }
        };
        if link.queue.is_closed() {
            return;
        }
        shared
            .stats
            .bytes_in
            .fetch_add(frame.len() as u64 + 4, Ordering::Relaxed);
        let env = match Envelope::decode(frame) {
            Ok(e) if e.origin == *peer => e,
            Ok(e) => {
                tracing::warn!(peer = %peer.node_id, claimed = %e.origin.node_id, "mesh frame with a foreign origin: closing link");
                return;
            }
            Err(e) => {
                tracing::warn!(peer = %peer.node_id, error = %e, "malformed mesh frame: closing link");
                return;
            }
        };
        shared.stats.frames_in.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        match env.kind {
            Kind::Heartbeat | Kind::Ack => {
                let acked = env.payload.get(..8).map(|b| {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    u64::from_be_bytes(a)
                });
                let changes = {
                    let mut st = shared.state.lock();
                    if let (Some(seq), Some(p)) = (acked, st.peers.get_mut(&peer.node_id)) {
                        p.window.ack(seq);
                    }
                    st.membership.heard(peer, now)
                };
                shared.report(changes);
            }
            Kind::Hello => {
                let addrs: Vec<String> = postcard::from_bytes(&env.payload).unwrap_or_default();
                learn(shared, addrs);
            }
            Kind::Bye => {
                let changes = {
                    let mut st = shared.state.lock();
                    let _ = st
                        .peers
                        .get_mut(&peer.node_id)
                        .map(|p| p.inbound.arrive(env.seq));
                    st.membership.bye(peer)
                };
                shared.report(changes);
                return;
            }
            _ => {
                let (arrival, changes, ack) = {
                    let mut st = shared.state.lock();
                    let Some(p) = st.peers.get_mut(&peer.node_id) else {
                        return;
                    };
                    let arrival = p.inbound.arrive(env.seq);
                    let last = p.inbound.last();
                    (arrival, st.membership.heard(peer, now), last)
                };
                shared.report(changes);
                match arrival {
                    Arrival::Duplicate => continue,
                    Arrival::AfterGap { missing } => {
                        shared.stats.lost.fetch_add(missing, Ordering::Relaxed);
                        tracing::warn!(peer = %peer.node_id, missing, "mesh frames missing from peer");
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

/// Adds gossiped addresses to the dial set and starts dialing the new ones.
fn learn(shared: &Arc<Shared>, addrs: Vec<String>) {
    let mine = advertised(shared);
    let fresh: Vec<String> = {
        let mut st = shared.state.lock();
        if st.stopped {
            return;
        }
        addrs
            .into_iter()
            .filter(|a| *a != mine && a.len() < 256)
            .take(1024)
            .filter(|a| {
                if st.targets.contains_key(a) {
                    false
                } else {
                    st.targets.insert(a.clone(), DialTarget::default());
                    true
                }
            })
            .collect()
    };
    for a in fresh {
        let _ = shared.dial_tx.send(a);
    }
}

/// Dials `addr` once: connect, handshake.
pub(crate) async fn dial(
    shared: &Shared,
    addr: &str,
) -> Result<(Established, OwnedReadHalf, OwnedWriteHalf), LinkError> {
    let go = async {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (mut rd, mut wr) = stream.into_split();
        let est = dial_handshake(shared, &mut rd, &mut wr).await?;
        Ok::<_, LinkError>((est, rd, wr))
    };
    tokio::time::timeout(shared.cfg.handshake_timeout(), go)
        .await
        .unwrap_or(Err(LinkError::Timeout))
}
