//! Attack 7: messages past `server.max_message_size`, fragmented (2 MiB in 64 KiB fragments) and
//! whole (one 2 MiB frame). The node must close with 1009 in both shapes.

use std::time::Duration;

use tokio::time::Instant;

use crate::Ctx;
use crate::report::{Outcome, Row};
use crate::sgc;
use crate::ws::{self, Msg};

const TOTAL: usize = 2 * 1024 * 1024;
const FRAGMENT: usize = 64 * 1024;

/// Sends `TOTAL` bytes of one text message (fragmented or not) while reading what the node sends
/// back; returns how the connection ended.
async fn oversize(addr: std::net::SocketAddr, fragmented: bool) -> Result<Msg, String> {
    let ws = sgc::client(addr).await?;
    let (mut rd, mut wr) = ws.split();
    let reader = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match rd.recv(deadline).await {
                Msg::Text(_) => {}
                other => return other,
            }
        }
    });
    let payload = vec![b'f'; TOTAL];
    if fragmented {
        for (i, chunk) in payload.chunks(FRAGMENT).enumerate() {
            let op = if i == 0 { ws::TEXT } else { ws::CONTINUATION };
            let fin = (i + 1) * FRAGMENT >= TOTAL;
            if ws::write_frame(&mut wr, op, fin, chunk).await.is_err() {
                break;
            }
        }
    } else {
        let _ = ws::write_frame(&mut wr, ws::TEXT, true, &payload).await;
    }
    reader.await.map_err(|e| format!("reader: {e}"))
}

fn row(name: &'static str, cap: usize, end: Msg, shape: &str) -> Row {
    let bound = format!("max_message_size {cap} B");
    match end {
        Msg::Close(Some(1009), _) => Row::new(
            name,
            Outcome::Refused,
            bound,
            format!("{shape}: closed with 1009"),
        ),
        Msg::Close(code, reason) => Row::new(
            name,
            Outcome::Vulnerable,
            bound,
            format!("{shape}: closed with {code:?} {reason:?}, not 1009"),
        ),
        Msg::Eof(why) => Row::new(
            name,
            Outcome::Vulnerable,
            bound,
            format!("{shape}: no close frame ({why}), not 1009"),
        ),
        Msg::Timeout => Row::new(
            name,
            Outcome::Vulnerable,
            bound,
            format!("{shape}: still open after 10 s"),
        ),
        Msg::Text(_) => Row::error(name, "unreachable"),
    }
}

/// Attack 7, both shapes, on `addr`.
pub(crate) async fn run(ctx: &Ctx, addr: std::net::SocketAddr) -> Vec<Row> {
    let mut rows = Vec::new();
    for (name, fragmented, shape) in [
        ("oversize-fragmented", true, "2 MiB in 64 KiB fragments"),
        ("oversize-frame", false, "one 2 MiB frame"),
    ] {
        rows.push(match oversize(addr, fragmented).await {
            Ok(end) => row(name, ctx.max_message, end, shape),
            Err(e) => Row::error(name, e),
        });
    }
    rows
}
