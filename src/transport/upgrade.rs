//! The upgrade path of one accepted socket: read the request head, answer plain HTTP (the
//! operations routes, the server API, sgc session tokens) or refuse, check origin, credentials
//! and admission, then upgrade to the negotiated protocol and run the connection.

use crate::log_text::Printable;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio_websockets::{Limits, ServerBuilder, WebSocketStream};

use super::admission::AdmissionSlot;
use super::admit::{Admitted, Gate, admit};
use super::close::Close;
use super::connection::{Connection, ConnectionInfo, new_guid};
use super::connection_task::{self, Heartbeat};
use super::handshake::{self, Prefixed, Request};
use super::limits::ConnectionLimits;
use super::protocol::Protocol;
use super::refusal::Refusal;
use crate::metrics::ConnectionCounters;

use super::server_state::{Phase, Shared};

/// Serves one accepted socket (plain or TLS) until its connection ends.
///
/// Not an `async fn`, for the reason given at [`connection_task::run`]: the block keeps its
/// captured arguments in place instead of copies of them.
#[allow(clippy::manual_async_fn, reason = "arguments used in place, see above")]
pub(super) fn handle_socket<S>(
    stream: S,
    peer: SocketAddr,
    shared: Arc<Shared>,
    slot: AdmissionSlot,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        // Boxed: the handshake's locals (the request, the admission decision, the read buffer)
        // would otherwise keep their room in every connection's future for the connection's whole
        // life (a moved-out local still holds its place in an async function's state).
        let Some(Upgraded {
            ws,
            conn,
            protocol,
            heartbeat,
        }) = Box::pin(upgrade(stream, peer, &shared)).await
        else {
            return;
        };
        let counters = ConnectionCounters::opened(conn.protocol());
        let phase = shared.phase.subscribe();
        connection_task::run(ws, conn.clone(), protocol, heartbeat, counters, phase).await;
        shared.connections.lock().remove(conn.id());
        shared.gone.notify_waiters();
        tracing::debug!(conn = conn.id(), "disconnected");
        // The admission slot is released with the connection.
        drop(slot);
    }
}

/// An upgraded connection, ready to run.
struct Upgraded<S> {
    ws: WebSocketStream<Prefixed<S>>,
    conn: Connection,
    protocol: Option<Arc<dyn Protocol>>,
    heartbeat: Option<Heartbeat>,
}

/// Reads the request head and answers it: plain HTTP, a refusal, or the upgrade, which is
/// returned (`None`: the socket was answered and is done).
async fn upgrade<S>(mut stream: S, peer: SocketAddr, shared: &Shared) -> Option<Upgraded<S>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let cfg = &shared.config;
    let mut buf = BytesMut::new();
    let head = tokio::time::timeout(
        cfg.handshake_timeout(),
        handshake::peek_head(&mut stream, &mut buf, cfg.max_request_head),
    )
    .await;
    let req = match head {
        Ok(Ok((req, len))) => {
            if !req.is_websocket_upgrade()
                && !is_session_request(&req)
                && let Some(handler) = shared.http.as_ref()
                && let Some(keep_alive) = handler.keep_alive(req.path_only())
            {
                // The whole connection goes to the persistent HTTP server, this request included.
                // Boxed: hyper's connection state is large, and inline it would be allocated with
                // every socket's handshake, most of which become WebSocket connections.
                drop(req);
                let stop = phase_leaves_serving(shared.phase.subscribe());
                let io = Prefixed::new(buf.freeze(), stream);
                let serve =
                    super::keep_alive::serve(io, peer, None, handler.clone(), keep_alive, stop);
                Box::pin(serve).await;
                return None;
            }
            buf.advance(len);
            req
        }
        Ok(Err(handshake::HeadError::TooLarge(_))) => {
            Refusal::HEAD_TOO_LARGE.send(&mut stream, peer).await;
            return None;
        }
        Ok(Err(e)) => {
            if matches!(e, handshake::HeadError::Eof | handshake::HeadError::Io(_)) {
                // The client went away before asking for anything (a TCP probe, a port scan).
                tracing::debug!(%peer, error = %Printable(&e.to_string()), "connection closed before a request");
            } else {
                Refusal::bad_request(e.to_string())
                    .send(&mut stream, peer)
                    .await;
            }
            return None;
        }
        Err(_) => {
            Refusal::TIMEOUT.send(&mut stream, peer).await;
            return None;
        }
    };
    if !req.is_websocket_upgrade() {
        if let Some(handler) = shared.http.as_ref().filter(|_| !is_session_request(&req)) {
            let timeout = cfg.handshake_timeout();
            // The local address is not needed there: admin routes need the token on this port.
            // Boxed: an HTTP request is rare next to an upgrade, and inline its state would be
            // allocated with every socket's handshake.
            Box::pin(super::http::answer(
                &mut stream,
                buf,
                req,
                peer,
                None,
                &**handler,
                timeout,
            ))
            .await;
            return None;
        }
        serve_http(&mut stream, &req, peer, shared).await;
        return None;
    }
    // Counted before the check: a shutdown either refuses this upgrade here or waits for it.
    let upgrading = shared.upgrading.start(&shared.gone);
    // The gate is a temporary of this statement: nothing of it stays in the connection's future.
    let decision = admit(
        &req,
        peer,
        &Gate {
            serving: shared.serving(),
            origins: &shared.origins,
            registry: &shared.registry,
            authenticator: &shared.authenticator,
        },
    );
    let Admitted {
        key,
        protocol,
        identity,
    } = match decision {
        Ok(admitted) => admitted,
        Err(refusal) => {
            refusal.send(&mut stream, peer).await;
            return None;
        }
    };
    let token = protocol
        .as_ref()
        .map(|p| p.name())
        .filter(|n| !n.is_empty());
    if stream
        .write_all(&handshake::switching_protocols(&key, token))
        .await
        .is_err()
    {
        return None;
    }
    let conn = Connection::with_limits(
        ConnectionInfo {
            id: Arc::from(new_guid()),
            protocol: token,
            peer_addr: peer,
            path: shared.authenticator.redacted_path(&req.path),
            user: Some(identity.user).filter(|u| !u.is_empty()),
            origin: req.header("origin").map(str::to_owned),
            claims: identity.claims,
        },
        cfg.max_outbox_bytes,
        ConnectionLimits::new(&shared.limits),
    );
    // The request head is not needed for the connection's life.
    drop(req);
    let ws = ServerBuilder::new()
        .limits(
            Limits::default().max_payload_len(Some(
                shared
                    .limits
                    .max_message_size(protocol.as_deref(), cfg.max_message_size),
            )),
        )
        .serve(Prefixed::new(leftover(buf), stream));
    let heartbeat = cfg.heartbeat_interval().map(|interval| Heartbeat {
        interval,
        timeout: cfg.heartbeat_timeout(),
    });
    shared
        .connections
        .lock()
        .insert(conn.id_arc(), conn.clone());
    drop(upgrading);
    // A shutdown that took its snapshot of the connections before this one was added has already
    // set the phase: the connection closes itself.
    if !shared.serving() {
        conn.close_with(Close::SHUTDOWN);
    }
    tracing::debug!(conn = conn.id(), %peer, protocol = token.unwrap_or(""), "connected");
    Some(Upgraded {
        ws,
        conn,
        protocol,
        heartbeat,
    })
}

/// Completes when the server stops serving (a keep-alive connection then closes after its
/// request in progress).
async fn phase_leaves_serving(mut phase: watch::Receiver<Phase>) {
    let _ = phase.wait_for(|p| *p != Phase::Serving).await;
}

/// Bytes a client sent after its request head (it did not wait for the 101), kept for the
/// WebSocket layer. Usually none: then the handshake buffer is freed now instead of living as long
/// as the connection (an empty `Bytes` slice would still hold its allocation).
fn leftover(buf: BytesMut) -> bytes::Bytes {
    if buf.is_empty() {
        bytes::Bytes::new()
    } else {
        bytes::Bytes::copy_from_slice(&buf)
    }
}

/// A request for an sgc session token, which the server answers itself.
fn is_session_request(req: &Request) -> bool {
    req.method == "GET" && req.path_only().starts_with("/sgc/req/auth/session/")
}

async fn serve_http<S: AsyncWrite + Unpin>(
    stream: &mut S,
    req: &Request,
    peer: SocketAddr,
    shared: &Shared,
) {
    let path = req.path_only();
    if is_session_request(req) {
        match shared.authenticator.issue_session(path, peer) {
            Some(token) => {
                let body = format!("{token}\r\n\r\n\r\n");
                let _ = stream
                    .write_all(&handshake::http_response(
                        200,
                        "OK",
                        "text/plain",
                        "",
                        body.as_bytes(),
                    ))
                    .await;
            }
            None => Refusal::SESSION_TOKEN.send(stream, peer).await,
        }
        return;
    }
    Refusal::NOT_FOUND.send(stream, peer).await;
}
