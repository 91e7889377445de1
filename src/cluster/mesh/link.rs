//! One mesh link once its handshake (`handshake.rs`) succeeded: a reader loop (this task) and a
//! writer task that drains the link's bounded queue.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::TcpListener;

use super::handshake::{
    CLOSE_GRACE, Established, LinkError, OwnedReadHalf, OwnedWriteHalf, accept_handshake,
    accept_stream, known_reason,
};
use super::link_core::{self, FrameOutcome, LinkRules};
use super::queue::LinkQueue;
use super::wire::{self, WireFrame};
use super::{LinkSlot, Shared};
use crate::cluster::envelope::{Envelope, Kind, Origin};
use crate::log_text::{Printable, escape_control};
use crate::metrics::{self, PeerCounters};

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
        let task_shared = shared.clone();
        shared.tasks.spawn(async move {
            let shared = task_shared;
            let mut stop = shared.stop.subscribe();
            if *stop.borrow() {
                return;
            }
            let handshake = tokio::time::timeout(shared.cfg.handshake_timeout(), async {
                let (mut rd, mut wr) = accept_stream(&shared, stream).await?;
                let est = accept_handshake(&shared, &mut rd, &mut wr, remote).await?;
                Ok((est, rd, wr))
            });
            // A handshake in flight when the engine stops is abandoned.
            let hs = tokio::select! {
                _ = stop.changed() => return,
                r = handshake => r.unwrap_or(Err(LinkError::Timeout)),
            };
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

/// Registers an established link, runs it until it closes, then unregisters it. The rules are
/// in `link_core.rs`; this task only moves bytes and carries out what they decide.
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
    let Some(up) = link_core::link_up(&shared, &est, &link, Instant::now()) else {
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
    if let Some(addr) = up.new_addr {
        let _ = shared.dial_tx.send(addr);
    }
    // The writer is a task of its own (reads and writes proceed in parallel) owned by the
    // engine's tasks like this one; this one waits for it before unregistering the link.
    let (written, writer_done) = tokio::sync::oneshot::channel::<()>();
    let writer = write_loop(shared.clone(), queue.clone(), wr, up.counters.clone());
    shared.tasks.spawn(async move {
        writer.await;
        let _ = written.send(());
    });
    let superseded = read_loop(&shared, &est.peer, &link, rd, &up.counters).await;
    queue.close();
    let _ = writer_done.await;
    if link_core::link_down(&shared, &est.peer, link.id, superseded, Instant::now()) {
        // Its replacement is on its way; if it does not come, the peer is down.
        let (task_shared, peer) = (shared.clone(), est.peer.clone());
        shared.tasks.spawn(async move {
            tokio::time::sleep(task_shared.cfg.handshake_timeout()).await;
            link_core::replacement_overdue(&task_shared, &peer);
        });
    }
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
    let mut rules = LinkRules::new(shared, Instant::now());
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
        match link_core::on_frame(
            shared,
            peer,
            link,
            &mut rules,
            counters,
            frame,
            Instant::now(),
        ) {
            FrameOutcome::Continue { deliver: None } => {}
            FrameOutcome::Continue { deliver: Some(env) } => shared.handler.on_envelope(env),
            FrameOutcome::Close { superseded } => return superseded,
        }
    }
}
