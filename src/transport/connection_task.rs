//! The life of one upgraded connection, in one task: it reads frames and hands complete messages to
//! the protocol, moves the connection's outbox into the socket, and sends the heartbeat pings. The
//! protocol hears `on_disconnect` once, when the task ends.
//!
//! Why one task and not a reader plus a writer: frames must leave in the order they were caused. A
//! reply queued while handling message N is handed to the WebSocket layer before frame N+1 is read,
//! so when N+1 is a protocol violation the client still gets the reply first and the 1002 close
//! after it (Autobahn 3.2, 4.x, 5.15 check exactly this). Reading never waits for the socket to
//! drain: while a flush is pending the task keeps reading, new frames wait in the bounded outbox, and
//! a client that cannot keep up is closed as a slow consumer as before.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Message, WebSocketStream};

use super::close::{Close, CloseReason};
use super::connection::Connection;
use super::outbox::Outgoing;
use super::protocol::Protocol;
use super::server_state::Phase;
use crate::metrics::{self, ConnectionCounters};

/// How long a closing connection may take to flush its last frames, and then to see the peer's close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

type WsError = tokio_websockets::Error;

/// Heartbeat settings of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// What one poll of the socket produced: a finished flush, a read, or both.
struct Io {
    flushed: Option<Result<(), WsError>>,
    read: Option<Option<Result<Message, WsError>>>,
}

/// Why the main loop stopped.
enum End {
    /// The server closes: the close frame is queued behind the last outbox frames.
    Closing,
    /// The peer closed or the connection failed; the WebSocket layer may have queued its own close
    /// (echo of the peer's close, 1002 on a protocol error, 1009 on an oversized message).
    Ended,
}

/// Runs a connection until it closes, then tells the protocol.
///
/// `phase` is the server's: while it drains (shutdown), a closing connection may take until the
/// deadline to flush what it has queued instead of [`CLOSE_GRACE`]; once it is forced, the
/// connection drops its socket wherever it is (the protocol still hears `on_disconnect`).
///
/// Not an `async fn`: an async function moves its arguments into locals of its state, where they
/// would sit next to the arguments' own room for the connection's whole life; the block uses the
/// captured arguments in place.
#[allow(clippy::manual_async_fn, reason = "arguments used in place, see above")]
pub(crate) fn run<S>(
    mut ws: WebSocketStream<S>,
    conn: Connection,
    protocol: Option<Arc<dyn Protocol>>,
    heartbeat: Option<Heartbeat>,
    counters: ConnectionCounters,
    mut phase: watch::Receiver<Phase>,
) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async move {
        if let Some(p) = &protocol {
            guarded(&conn, "on_connect", || p.on_connect(&conn));
        }
        let end = tokio::select! {
            biased;
            end = serve(&mut ws, &conn, protocol.as_deref(), heartbeat, &counters) => Some(end),
            () = forced(&mut phase) => None,
        };
        conn.outbox().close(Close::NORMAL.into());
        if let Some(end) = end {
            let draining = *phase.borrow() != Phase::Serving;
            // Boxed: the closing handshake's state is the largest of the connection's future and is
            // needed only once, at the end; inline, every idle connection would carry its size.
            tokio::select! {
                biased;
                () = Box::pin(finish(&mut ws, end, draining)) => {}
                () = forced(&mut phase) => {}
            }
        }
        if let Some(p) = &protocol {
            guarded(&conn, "on_disconnect", || p.on_disconnect(&conn));
        }
    }
}

/// Completes once the server forces the remaining connections closed.
async fn forced(phase: &mut watch::Receiver<Phase>) {
    if phase.wait_for(|p| *p == Phase::Forced).await.is_err() {
        // The server is gone without forcing: nothing will.
        std::future::pending::<()>().await;
    }
}

/// Runs a protocol callback (and the application hooks it calls). A panic there is a bug of the
/// application or the protocol: it is logged, the connection is closed with 1011, and the task
/// goes on, so `on_disconnect` still runs and no state (a subscription, a Presence member) of
/// the connection outlives it.
fn guarded(conn: &Connection, what: &'static str, f: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let why = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(
            conn = conn.id(),
            callback = what,
            panic = why,
            "protocol callback panicked"
        );
        conn.close_with(Close::INTERNAL_ERROR);
    }
}

async fn serve<S>(
    ws: &mut WebSocketStream<S>,
    conn: &Connection,
    protocol: Option<&dyn Protocol>,
    heartbeat: Option<Heartbeat>,
    counters: &ConnectionCounters,
) -> End
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = VecDeque::new();
    // Outbox bytes handed to the WebSocket layer and not yet flushed; released from the outbox's
    // byte count once the flush completes, so the cap covers them until they reach the socket.
    let mut in_flight: usize = 0;
    // Whether frames were handed to the WebSocket layer since its last completed flush. While true,
    // the outbox is not drained (except to close): frames wait there, counted against the cap.
    let mut unflushed = false;
    let far = Duration::from_secs(86_400 * 365);
    let mut next_ping = Instant::now() + heartbeat.map_or(far, |h| h.interval);
    let mut pong_deadline: Option<Instant> = None;
    let mut pong_seen = true;
    // One timer for the connection's life, moved only when its deadline changes: registering a
    // fresh timer on every pass of the loop would cost a timer-wheel insert and remove per frame.
    let timer = tokio::time::sleep_until(next_ping);
    tokio::pin!(timer);
    loop {
        let deadline = pong_deadline.map_or(next_ping, |d| d.min(next_ping));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        let closing = conn.outbox().is_closed();
        tokio::select! {
            biased;
            close = conn.outbox().take(&mut batch), if !unflushed || closing => {
                in_flight += hand_over(ws, &mut batch, counters);
                if let Some(reason) = close {
                    let _ = Pin::new(&mut *ws).start_send(close_message(&reason));
                    return End::Closing;
                }
                // Usually the socket takes it at once: flush now rather than on another pass.
                match poll_fn(|cx| Poll::Ready(Pin::new(&mut *ws).poll_flush(cx))).await {
                    Poll::Ready(Ok(())) => {
                        conn.outbox().written(std::mem::take(&mut in_flight));
                    }
                    Poll::Ready(Err(e)) => {
                        tracing::debug!(conn = conn.id(), error = %e, "connection write failed");
                        return End::Ended;
                    }
                    Poll::Pending => unflushed = true,
                }
            }
            // A close asked for while a flush is stuck: loop so the arm above takes it.
            _ = conn.outbox().closed(), if unflushed && !closing => {}
            io = poll_fn(|cx| poll_io(ws, cx, unflushed)) => {
                if let Some(flushed) = io.flushed {
                    if let Err(e) = flushed {
                        tracing::debug!(conn = conn.id(), error = %e, "connection write failed");
                        return End::Ended;
                    }
                    unflushed = false;
                    conn.outbox().written(std::mem::take(&mut in_flight));
                }
                match io.read {
                    None => {}
                    Some(Some(Ok(msg))) => {
                        pong_seen = true;
                        dispatch(conn, protocol, msg, counters);
                    }
                    Some(Some(Err(e))) => {
                        if matches!(e, WsError::PayloadTooLong { .. }) {
                            // Closed with 1009 by the WebSocket layer.
                            metrics::limit_refused(metrics::Limit::MessageSize);
                        }
                        tracing::debug!(conn = conn.id(), error = %e, "connection read failed");
                        return End::Ended;
                    }
                    Some(None) => return End::Ended,
                }
            }
            _ = &mut timer => {
                let now = Instant::now();
                if let Some(deadline) = pong_deadline {
                    if pong_seen {
                        pong_deadline = None;
                    } else if now >= deadline {
                        tracing::debug!(conn = conn.id(), "heartbeat timeout");
                        ::metrics::counter!(metrics::WS_HEARTBEAT_TIMEOUTS).increment(1);
                        conn.outbox().close(Close::HEARTBEAT_TIMEOUT.into());
                        continue;
                    }
                }
                if let (Some(h), true) = (heartbeat, now >= next_ping) {
                    next_ping = now + h.interval;
                    if pong_deadline.is_none() {
                        pong_seen = false;
                        pong_deadline = Some(now + h.timeout);
                    }
                    let ping = Message::ping(bytes::Bytes::from(ping_stamp()));
                    if Pin::new(&mut *ws).start_send(ping).is_ok() {
                        unflushed = true;
                    }
                }
            }
        }
    }
}

/// Polls the socket: the pending flush first (if any), then the next frame. Reads are polled on
/// every call, so a stream of outgoing frames never starves them.
fn poll_io<S>(
    ws: &mut WebSocketStream<S>,
    cx: &mut std::task::Context<'_>,
    unflushed: bool,
) -> Poll<Io>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let flushed = if unflushed {
        match Pin::new(&mut *ws).poll_flush(cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    } else {
        None
    };
    // After a failed write there is nothing left to read for.
    let read = if matches!(flushed, Some(Err(_))) {
        None
    } else {
        match Pin::new(&mut *ws).poll_next(cx) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    };
    if flushed.is_none() && read.is_none() {
        Poll::Pending
    } else {
        Poll::Ready(Io { flushed, read })
    }
}

/// Hands a drained outbox batch to the WebSocket layer (a memory queue: no I/O here) and returns its
/// size in bytes. Frames the layer refuses (it saw a close) are dropped.
fn hand_over<S>(
    ws: &mut WebSocketStream<S>,
    batch: &mut VecDeque<Outgoing>,
    counters: &ConnectionCounters,
) -> usize
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut bytes = 0;
    if !batch.is_empty() {
        counters.frames_out.increment(batch.len() as u64);
    }
    for item in batch.drain(..) {
        let msg = match item {
            Outgoing::Text(b) => {
                bytes += b.len();
                Message::text(b)
            }
            Outgoing::Binary(b) => {
                bytes += b.len();
                Message::binary(b)
            }
        };
        let _ = Pin::new(&mut *ws).start_send(msg);
    }
    // The emptied queue is freed rather than kept for the next batch (the outbox starts a new
    // one at its next frame): an idle connection then holds no queue at all, for one allocation
    // per wake-up of a busy one.
    *batch = VecDeque::new();
    if bytes > 0 {
        counters.bytes_out.increment(bytes as u64);
    }
    bytes
}

/// Hands a complete message to the protocol. Pings are answered by the WebSocket layer, pongs only
/// prove liveness, and a close is answered by the WebSocket layer (the stream then ends).
fn dispatch(
    conn: &Connection,
    protocol: Option<&dyn Protocol>,
    msg: Message,
    counters: &ConnectionCounters,
) {
    if msg.is_text() || msg.is_binary() {
        counters.frames_in.increment(1);
        counters.bytes_in.increment(msg.as_payload().len() as u64);
    }
    let Some(p) = protocol else { return };
    if msg.is_text() {
        if let Some(text) = msg.as_text() {
            guarded(conn, "on_text", || p.on_text(conn, text));
        }
    } else if msg.is_binary() {
        guarded(conn, "on_binary", || {
            p.on_binary(conn, msg.into_payload().into())
        });
    }
}

/// Flushes what is queued (the server's close, or the WebSocket layer's reply to the peer's close or
/// to a protocol error) and waits briefly for the peer to finish the close handshake. Each step is
/// bounded by [`CLOSE_GRACE`]: a peer that stopped reading or answering cannot hold the task.
/// While the server drains (`draining`), the flush is bounded by the shutdown deadline instead
/// (the caller races this against it), so a slow reader gets its backlog until then.
async fn finish<S>(ws: &mut WebSocketStream<S>, end: End, draining: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let End::Closing = end {
        if draining {
            let _ = ws.flush().await;
        } else if tokio::time::timeout(CLOSE_GRACE, ws.flush()).await.is_err() {
            return;
        }
    }
    // Reading on flushes the layer's own queued close and ends at the peer's close (or EOF).
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// The close frame for `reason`; codes a server may not send become 1000.
fn close_message(reason: &CloseReason) -> Message {
    let code = CloseCode::try_from(reason.code)
        .ok()
        .filter(|c| !c.is_reserved())
        .unwrap_or(CloseCode::NORMAL_CLOSURE);
    Message::close(Some(code), &reason.reason)
}

/// The ping payload: the current time as `yyyymmddhhnnsszzz` (docs/wire.md §1.8), UTC.
fn ping_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let ms = now.as_millis() as u64;
    let (secs, millis) = (ms / 1000, ms % 1000);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}{millis:03}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a (year, month, day) date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_599), (2026, 5, 26));
        assert_eq!(ping_stamp().len(), 17);
    }
}
