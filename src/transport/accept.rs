//! Accepting sockets: the accept loops (plain and TLS), the admission check at accept with its
//! early answer, the TLS handshake, and the certificate polling; then each connection goes to
//! [`super::server`]'s upgrade path.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::future::Either;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::admit::admit_socket;
use super::refusal::Refusal;
use super::server_state::{Phase, Shared};
use super::upgrade::handle_socket;
use crate::tls::CertReloader;

/// Polls the certificate files every `every` while the server serves; a change reloads them.
pub(super) async fn poll_certificate(
    reloader: Arc<CertReloader>,
    every: std::time::Duration,
    mut phase: watch::Receiver<Phase>,
) {
    loop {
        tokio::select! {
            _ = phase.wait_for(|p| *p != Phase::Serving) => return,
            () = tokio::time::sleep(every) => {}
        }
        // Reading a certificate is a few small blocking reads: harmless on a runtime thread.
        reloader.reload_if_changed();
    }
}

/// Accepts until the server stops serving; the listener is dropped (closed) on return. `tls`:
/// whether connections start with a TLS handshake (done in the connection's task).
pub(super) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tls: bool) {
    let mut phase = shared.phase.subscribe();
    // Whether the last accept failed: a failure is logged once, until an accept succeeds again
    // (out of file descriptors, it would fail 50 times a second).
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            _ = phase.wait_for(|p| *p != Phase::Serving) => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                if failing {
                    failing = false;
                    tracing::info!("accepting connections again");
                }
                let _ = stream.set_nodelay(true);
                if tls {
                    shared
                        .sockets
                        .spawn(handle_tls(stream, peer, shared.clone()));
                } else {
                    shared
                        .sockets
                        .spawn(handle_plain(stream, peer, shared.clone()));
                }
            }
            Err(e) => {
                if !failing {
                    failing = true;
                    tracing::warn!(error = %e, "accept failed (logged once until it works again)");
                }
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// A plain connection: its admission slot (held from accept to close, handshake included, so
/// stalled handshakes count too), then the upgrade or the HTTP request.
///
/// The slot is taken when the task is made, and the task is the connection's own future, not an
/// `async fn` around it that would hold a second copy of the socket, address and server state.
fn handle_plain(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
) -> impl Future<Output = ()> + Send + 'static {
    match admit_socket(&shared.admission, peer) {
        Ok(slot) => Either::Left(handle_socket(stream, peer, shared, slot)),
        // Boxed: the refusal's future (with its 4 KiB read buffer) would otherwise be part of
        // every connection task's future for the connection's whole life (+2.4 KiB per idle
        // connection, measured with -Zprint-type-sizes).
        Err(refused) => Either::Right(Box::pin(refuse_at_accept(stream, peer, refused))),
    }
}

/// Takes the admission slot (a refused socket is closed: a plain answer means nothing to a TLS
/// client), runs the TLS handshake within the handshake timeout, then serves the connection as a
/// plain one. Existing connections keep the certificate they were accepted with.
async fn handle_tls(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let slot = match admit_socket(&shared.admission, peer) {
        Ok(slot) => slot,
        Err(refusal) => {
            // Counted and logged like a plain refusal, then closed: a plain answer means
            // nothing to a client expecting a TLS handshake.
            refusal.without_answer().log(peer);
            return;
        }
    };
    let Some(acceptor) = shared.tls.as_ref().map(|r| r.acceptor()) else {
        return;
    };
    let stream = match tokio::time::timeout(
        shared.config.handshake_timeout(),
        acceptor.accept(stream),
    )
    .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            Refusal::tls_handshake(&e).log(peer);
            return;
        }
        Err(_) => {
            Refusal::TLS_TIMEOUT.log(peer);
            return;
        }
    };
    handle_socket(stream, peer, shared, slot).await;
}

/// Answers a connection the `[limits]` refused at accept (503 or 429 with `Retry-After`), without
/// reading its request: the answer is written at once, then what the client sends is read and
/// dropped for a short while (bounded in time and bytes) so the close does not reset the
/// connection before the client reads the answer.
async fn refuse_at_accept(mut stream: TcpStream, peer: SocketAddr, refusal: Refusal) {
    refusal.send(&mut stream, peer).await;
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 64 * 1024;
        while left > 0 {
            match tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}
