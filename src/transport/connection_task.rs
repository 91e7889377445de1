//! The life of one upgraded connection: a reader loop (this task) that hands complete messages to the
//! protocol, and a writer task that drains the connection's outbox into the socket and sends the
//! heartbeat pings. Either side ending closes the other; the protocol hears `on_disconnect` once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_websockets::{CloseCode, Message, WebSocketStream};

use super::connection::Connection;
use super::outbox::{CLOSE_HEARTBEAT_TIMEOUT, CloseReason, Outgoing};
use crate::protocol::Protocol;

/// How long a closing connection may take to flush its last frames and see the peer's close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Heartbeat settings of one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Heartbeat {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// Runs a connection until it closes, then tells the protocol.
pub(crate) async fn run<S>(
    ws: WebSocketStream<S>,
    conn: Connection,
    protocol: Option<Arc<dyn Protocol>>,
    heartbeat: Option<Heartbeat>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sink, stream) = ws.split();
    let pong_seen = Arc::new(AtomicBool::new(true));
    let writer = tokio::spawn(write_loop(sink, conn.clone(), heartbeat, pong_seen.clone()));
    if let Some(p) = &protocol {
        p.on_connect(&conn);
    }
    read_loop(stream, &conn, protocol.as_deref(), &pong_seen).await;
    conn.outbox()
        .close(CloseReason::new(1000, "connection closed"));
    let _ = tokio::time::timeout(CLOSE_GRACE * 2, writer).await;
    if let Some(p) = &protocol {
        p.on_disconnect(&conn);
    }
}

async fn read_loop<S>(
    mut stream: SplitStream<WebSocketStream<S>>,
    conn: &Connection,
    protocol: Option<&dyn Protocol>,
    pong_seen: &AtomicBool,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let item = tokio::select! {
            biased;
            _ = conn.outbox().closed() => break,
            item = stream.next() => item,
        };
        match item {
            Some(Ok(msg)) => {
                pong_seen.store(true, Ordering::Relaxed);
                if msg.is_text() {
                    if let (Some(p), Some(text)) = (protocol, msg.as_text()) {
                        p.on_text(conn, text);
                    }
                } else if msg.is_binary() {
                    if let Some(p) = protocol {
                        p.on_binary(conn, msg.into_payload().into());
                    }
                }
                // Pings are answered by the WebSocket layer; pongs only prove liveness; a close
                // is answered by the WebSocket layer and the stream then ends.
            }
            Some(Err(e)) => {
                tracing::debug!(conn = conn.id(), error = %e, "connection read failed");
                // Let the WebSocket layer flush the close frame it queued for a protocol error.
                drain_until_end(&mut stream).await;
                return;
            }
            None => return,
        }
    }
    // The server asked to close: the writer sends the close frame; wait briefly for the peer's.
    drain_until_end(&mut stream).await;
}

async fn drain_until_end<S>(stream: &mut SplitStream<WebSocketStream<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    conn: Connection,
    heartbeat: Option<Heartbeat>,
    pong_seen: Arc<AtomicBool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut batch = VecDeque::new();
    let far = Duration::from_secs(86_400 * 365);
    let mut next_ping = Instant::now() + heartbeat.map_or(far, |h| h.interval);
    let mut pong_deadline: Option<Instant> = None;
    loop {
        let timer = pong_deadline.map_or(next_ping, |d| d.min(next_ping));
        tokio::select! {
            close = conn.outbox().take(&mut batch) => {
                let ok = write_batch(&mut sink, &conn, &mut batch, close.is_some()).await;
                if let Some(reason) = close {
                    send_close(&mut sink, reason).await;
                    return;
                }
                if !ok {
                    conn.outbox().close(CloseReason::new(1006, "write failed"));
                    return;
                }
            }
            _ = tokio::time::sleep_until(timer) => {
                let now = Instant::now();
                if let Some(deadline) = pong_deadline {
                    if pong_seen.load(Ordering::Relaxed) {
                        pong_deadline = None;
                    } else if now >= deadline {
                        tracing::debug!(conn = conn.id(), "heartbeat timeout");
                        conn.outbox().close(CloseReason::new(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout"));
                        continue;
                    }
                }
                if let (Some(h), true) = (heartbeat, now >= next_ping) {
                    next_ping = now + h.interval;
                    if pong_deadline.is_none() {
                        pong_seen.store(false, Ordering::Relaxed);
                        pong_deadline = Some(now + h.timeout);
                    }
                    let stamp = ping_stamp();
                    if sink.send(Message::ping(bytes::Bytes::from(stamp))).await.is_err() {
                        conn.outbox().close(CloseReason::new(1006, "write failed"));
                        return;
                    }
                }
            }
        }
    }
}

/// Writes a drained batch and flushes once. A close asked for meanwhile (slow consumer, shutdown)
/// gives the write [`CLOSE_GRACE`] to finish, then gives up on it.
async fn write_batch<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    conn: &Connection,
    batch: &mut VecDeque<Outgoing>,
    closing: bool,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let bytes: usize = batch
        .iter()
        .map(|o| match o {
            Outgoing::Text(b) | Outgoing::Binary(b) => b.len(),
        })
        .sum();
    let result = {
        let write = async {
            while let Some(item) = batch.pop_front() {
                let msg = match item {
                    Outgoing::Text(b) => Message::text(b),
                    Outgoing::Binary(b) => Message::binary(b),
                };
                sink.feed(msg).await?;
            }
            sink.flush().await
        };
        tokio::pin!(write);
        if closing {
            tokio::time::timeout(CLOSE_GRACE, &mut write)
                .await
                .unwrap_or(Ok(()))
        } else {
            tokio::select! {
                r = &mut write => r,
                _ = conn.outbox().closed() => tokio::time::timeout(CLOSE_GRACE, &mut write).await.unwrap_or(Ok(())),
            }
        }
    };
    batch.clear();
    conn.outbox().written(bytes);
    result.is_ok()
}

async fn send_close<S>(sink: &mut SplitSink<WebSocketStream<S>, Message>, reason: CloseReason)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let code = CloseCode::try_from(reason.code)
        .ok()
        .filter(|c| !c.is_reserved())
        .unwrap_or(CloseCode::NORMAL_CLOSURE);
    let _ = tokio::time::timeout(
        CLOSE_GRACE,
        sink.send(Message::close(Some(code), &reason.reason)),
    )
    .await;
}

/// The ping payload: the current time as `yyyymmddhhnnsszzz` (spec §1.8), UTC.
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
