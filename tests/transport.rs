//! The transport over real sockets: upgrade, subprotocol negotiation, the fallback protocol,
//! binary frames, size cap, slow consumers and heartbeat.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use support::*;
use wscluster::{Connection, Protocol, Server};

/// Echoes every text and binary message back: the endpoint Autobahn and these tests drive.
struct Echo(&'static str);

impl Protocol for Echo {
    fn name(&self) -> &'static str {
        self.0
    }
    fn on_connect(&self, _: &Connection) {}
    fn on_text(&self, conn: &Connection, text: &str) {
        let _ = conn.send_str(text);
    }
    fn on_binary(&self, conn: &Connection, data: Bytes) {
        let _ = conn.send_binary(data);
    }
    fn on_disconnect(&self, _: &Connection) {}
}

async fn echo_server(cfg: wscluster::config::ServerConfig) -> wscluster::ServerHandle {
    init_logs();
    Server::new(cfg)
        .protocol(Arc::new(Echo("echo.test")))
        .fallback(Arc::new(Echo("")))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"))
}

#[tokio::test]
async fn fallback_echoes_text_and_binary() {
    let server = echo_server(test_server_config()).await;
    let mut c = WsClient::connect(server.local_addr(), "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.protocol, None);
    c.send("hello").await;
    c.expect("hello").await;
    c.send_binary(&[0, 1, 2, 255]).await;
    assert_eq!(
        c.next_frame().await,
        Some(Frame::Binary(vec![0, 1, 2, 255]))
    );
    server.shutdown().await;
}

#[tokio::test]
async fn negotiates_first_supported_token_in_client_order() {
    let server = echo_server(test_server_config()).await;
    let c = WsClient::connect(server.local_addr(), "/", &["nope", "echo.test"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.protocol.as_deref(), Some("echo.test"));
    let resp = raw_http(
        server.local_addr(),
        &upgrade_request("/", "chat, superchat", ""),
    )
    .await;
    assert!(
        resp.starts_with("HTTP/1.1 400"),
        "unsupported protocol must be refused: {resp}"
    );
}

#[tokio::test]
async fn bad_upgrades_are_refused_with_http_errors() {
    let server = echo_server(test_server_config()).await;
    let addr = server.local_addr();
    let v8 = upgrade_request("/", "", "").replace("Version: 13", "Version: 8");
    assert!(raw_http(addr, &v8).await.starts_with("HTTP/1.1 426"));
    let nokey =
        upgrade_request("/", "", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(raw_http(addr, &nokey).await.starts_with("HTTP/1.1 400"));
    assert!(
        raw_http(addr, "GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 404")
    );
    assert!(
        raw_http(addr, "garbage\r\n\r\n")
            .await
            .starts_with("HTTP/1.1 400")
    );
    // The node still serves after all that.
    let mut c = WsClient::connect(addr, "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.send("still here").await;
    c.expect("still here").await;
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let mut cfg = test_server_config();
    cfg.max_message_size = 1024;
    let server = echo_server(cfg).await;
    let mut c = WsClient::connect(server.local_addr(), "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.send(&"x".repeat(2000)).await;
    let (code, _) = c.expect_close().await;
    assert_eq!(code, Some(1009));
}

#[tokio::test]
async fn client_that_never_reads_is_closed_as_slow_consumer_without_delaying_others() {
    let mut cfg = test_server_config();
    cfg.max_outbox_bytes = 64 * 1024;
    let server = echo_server(cfg).await;
    let addr = server.local_addr();
    // The stuck client: it never reads, while we flood it through the echo.
    let mut stuck = WsClient::connect(addr, "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let stuck_conn = {
        let mut found = None;
        assert!(
            eventually(DEFAULT_WAIT, || {
                found = first_conn(&server);
                found.is_some()
            })
            .await
        );
        found.unwrap_or_else(|| panic!("no connection"))
    };
    let mut healthy = WsClient::connect(addr, "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let chunk = Bytes::from(vec![b'a'; 16 * 1024]);
    let mut overflowed = false;
    for _ in 0..100_000 {
        if stuck_conn.send_text(chunk.clone()).is_err() {
            overflowed = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(overflowed, "the outbox must refuse frames past its cap");
    // Others are not slowed.
    let t0 = std::time::Instant::now();
    healthy.send("ping?").await;
    healthy.expect("ping?").await;
    assert!(t0.elapsed() < Duration::from_secs(1));
    // The stuck client gets a 1008 close once it reads (or a reset).
    let (code, reason) = stuck.expect_closed_within(Duration::from_secs(10)).await;
    if let Some(code) = code {
        assert_eq!(code, 1008, "{reason}");
    }
    assert!(
        eventually(DEFAULT_WAIT, || server
            .connection(stuck_conn.id())
            .is_none())
        .await
    );
}

fn first_conn(server: &wscluster::ServerHandle) -> Option<Connection> {
    // Test-only lookup: the server exposes connections by GUID; find any.
    server.connections().into_iter().next()
}

#[tokio::test]
async fn silent_client_is_dropped_by_heartbeat() {
    let mut cfg = test_server_config();
    // Pings every 50 ms; a connection silent for 400 ms after a ping is dropped (a margin wide
    // enough for a loaded machine, and the well-behaved client below spans several intervals).
    cfg.heartbeat_interval_ms = 50;
    cfg.heartbeat_timeout_ms = 400;
    let timeout = Duration::from_millis(cfg.heartbeat_timeout_ms);
    let server = echo_server(cfg).await;
    // A raw TCP client that upgrades and then never reads nor answers pings.
    let mut s = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    tokio::io::AsyncWriteExt::write_all(&mut s, upgrade_request("/", "", "").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(eventually(DEFAULT_WAIT, || server.connection_count() == 1).await);
    assert!(
        eventually(DEFAULT_WAIT, || server.connection_count() == 0).await,
        "heartbeat must drop it"
    );
    // A normal client answers pings (the client library does while it reads) and stays: watched
    // for three heartbeat timeouts while it sends nothing, so only its pongs can keep it.
    let mut c = WsClient::connect(server.local_addr(), "/", &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    c.send("m0").await;
    c.expect("m0").await;
    let watched = tokio::time::timeout(timeout * 3, c.next_frame()).await;
    assert!(
        watched.is_err(),
        "the client answering pings got {watched:?} within {:?}",
        timeout * 3
    );
    assert_eq!(
        server.connection_count(),
        1,
        "the client answering pings was dropped"
    );
    c.send("m1").await;
    c.expect("m1").await;
}

/// A protocol whose handler panics on "boom" and records disconnects.
struct Panicky(Arc<std::sync::atomic::AtomicUsize>);

impl Protocol for Panicky {
    fn name(&self) -> &'static str {
        "panic.test"
    }
    fn on_connect(&self, _: &Connection) {}
    fn on_text(&self, conn: &Connection, text: &str) {
        if text == "boom" {
            panic!("application bug");
        }
        let _ = conn.send_str(text);
    }
    fn on_disconnect(&self, _: &Connection) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_panicking_handler_closes_its_connection_with_1011_and_still_disconnects_cleanly() {
    init_logs();
    let gone = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let server = Server::new(test_server_config())
        .protocol(Arc::new(Panicky(gone.clone())))
        .bind()
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let mut bad = WsClient::connect(server.local_addr(), "/", &["panic.test"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut good = WsClient::connect(server.local_addr(), "/", &["panic.test"])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    bad.send("boom").await;
    let (code, _) = bad.expect_close().await;
    assert_eq!(code, Some(1011));
    assert!(
        eventually(DEFAULT_WAIT, || gone
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await,
        "on_disconnect ran"
    );
    good.send("still fine").await;
    good.expect("still fine").await;
}

/// One masked client frame (mask 0: the payload goes as is).
fn client_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// `total` bytes of text as frames of at most `chunk` bytes (one frame when `chunk >= total`).
fn text_message(total: usize, chunk: usize) -> Vec<Vec<u8>> {
    let body = vec![b'x'; total];
    let parts: Vec<&[u8]> = body.chunks(chunk).collect();
    let last = parts.len() - 1;
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| client_frame(if i == 0 { 0x1 } else { 0x0 }, i == last, p))
        .collect()
}

/// The server's frames on a raw socket: (opcode, payload) in order, until a close frame, a frame
/// with opcode `until`, the end of the stream or the deadline. The frames are written by a separate task meanwhile, so a server
/// that stops reading halfway cannot stall the test.
async fn send_and_read_frames(
    s: tokio::net::TcpStream,
    frames: Vec<Vec<u8>>,
    until: u8,
) -> Vec<(u8, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        for f in frames {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        // Keep the write half open until the test is done reading.
        std::future::pending::<()>().await;
    });
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEFAULT_WAIT, async {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            // Parse what is complete.
            loop {
                if buf.len() < 2 {
                    break;
                }
                let (mut len, mut at) = ((buf[1] & 0x7F) as usize, 2);
                if len == 126 {
                    if buf.len() < 4 {
                        break;
                    }
                    len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
                    at = 4;
                } else if len == 127 {
                    if buf.len() < 10 {
                        break;
                    }
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&buf[2..10]);
                    len = u64::from_be_bytes(b) as usize;
                    at = 10;
                }
                if buf.len() < at + len {
                    break;
                }
                let opcode = buf[0] & 0x0F;
                out.push((opcode, buf[at..at + len].to_vec()));
                buf.drain(..at + len);
                if opcode == 0x8 || opcode == until {
                    return;
                }
            }
            match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    writer.abort();
    out
}

/// The close code of the last frame if it is a close.
fn close_code(frames: &[(u8, Vec<u8>)]) -> Option<u16> {
    match frames.last() {
        Some((0x8, p)) if p.len() >= 2 => Some(u16::from_be_bytes([p[0], p[1]])),
        _ => None,
    }
}

#[tokio::test]
async fn oversized_messages_close_with_1009_whole_or_fragmented() {
    const MIB: usize = 1024 * 1024;
    let mut cfg = test_server_config();
    cfg.max_message_size = MIB;
    let server = echo_server(cfg).await;
    let addr = server.local_addr();
    for (shape, chunk) in [
        ("one 2 MiB frame", 2 * MIB),
        ("2 MiB in 64 KiB fragments", 64 * 1024),
    ] {
        let s = support::raw_upgraded(addr, "").await;
        let frames = send_and_read_frames(s, text_message(2 * MIB, chunk), 0x8).await;
        assert_eq!(
            close_code(&frames),
            Some(1009),
            "{shape}: expected a 1009 close, got {:?}",
            frames
                .iter()
                .map(|(op, p)| (op, p.len()))
                .collect::<Vec<_>>()
        );
        assert!(
            frames.iter().all(|(op, _)| *op == 0x8),
            "{shape}: nothing echoed before the close"
        );
    }
    // Under the cap, fragments still make one message.
    let s = support::raw_upgraded(addr, "").await;
    let got = send_and_read_frames(s, text_message(MIB / 2, 64 * 1024), 0x1).await;
    assert_eq!(
        got.first().map(|(op, p)| (*op, p.len())),
        Some((0x1, MIB / 2))
    );
    server.shutdown().await;
}
