//! The node's log never carries a raw control character from its input: a client whose upgrade,
//! frames, channel names or Presence methods hold newlines and ANSI escapes cannot forge log lines
//! or rewrite the operator's terminal. Checked on the real binary with `--log-level debug` and its
//! human log format, standard error captured byte for byte.

mod presence_support;
mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::process::spawn;
use support::{WsClient, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the attacker puts everywhere: a forged log line and terminal escapes.
const EVIL: &str = "\u{1b}[2J\u{1b}[31mred\r\n2026-01-01T00:00:00Z  INFO forged line\u{7}\u{9b}";

/// Sends raw bytes as a request and reads whatever comes back until the server closes.
async fn raw(addr: SocketAddr, bytes: &[u8]) {
    let Ok(mut s) = TcpStream::connect(addr).await else {
        return;
    };
    let _ = s.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
}

/// Every raw control byte of `log` other than the newline ending each line, with its offset.
fn control_bytes(log: &[u8]) -> Vec<(usize, u8)> {
    log.iter()
        .enumerate()
        .filter(|(_, b)| (**b < 0x20 && **b != b'\n') || **b == 0x7f)
        .map(|(i, b)| (i, *b))
        .collect()
}

#[tokio::test]
async fn control_characters_from_clients_never_reach_the_log_raw() {
    let (mut child, stdout, stderr) = spawn(
        &[
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "esc",
            "--cluster-engine",
            "none",
            "--log-level",
            "debug",
            "--log-format",
            "human",
        ],
        &[],
    );
    let addr: SocketAddr = {
        let line = stdout
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("no listening line: {e}"));
        line.strip_prefix("wscluster listening on ws://")
            .and_then(|r| r.split(' ').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
    };

    // Upgrades carrying control characters in the path, the Origin, the user and the protocol.
    let evil_bytes = EVIL.replace("\r\n", " ");
    for req in [
        format!(
            "GET /{evil_bytes} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ),
        support::upgrade_request(
            "/",
            "esegece.com",
            &format!("Origin: http://{evil_bytes}\r\n"),
        ),
        support::upgrade_request(&format!("/sgc/auth/url/{evil_bytes}/pw"), "esegece.com", ""),
        support::upgrade_request("/", &evil_bytes, &format!("User-Agent: {evil_bytes}\r\n")),
        format!("GET /admin/{evil_bytes} HTTP/1.1\r\nHost: {evil_bytes}\r\n\r\n"),
        format!("{evil_bytes}\r\n\r\n"),
    ] {
        raw(addr, req.as_bytes()).await;
    }

    // Frames: a channel name, an undecodable frame quoting the input, a Presence method.
    let json = serde_json::to_string(EVIL).unwrap_or_default();
    let (mut sgc, _) = WsClient::sgc(addr).await;
    sgc.send(&format!(
        r#"{{"message":{{"method":"sgc@subscribe","channel":{json}}}}}"#
    ))
    .await;
    sgc.send(&format!(r#"{{"message":{{"method":{json}}}}}"#))
        .await;
    sgc.send(&format!(r#"{{"{}":1}}"#, EVIL.replace(['\r', '\n'], "")))
        .await;
    sgc.send(&format!("\u{1b}]0;title\u{7}{EVIL}")).await;
    sgc.barrier().await;
    let mut p = presence_support::PClient::connect(addr).await;
    p.send(&format!(
        r#"{{"jsonrpc":"2.0","method":{},"member":{{"id":"m"}}}}"#,
        serde_json::to_string(&format!("sgc@presence@{EVIL}")).unwrap_or_default()
    ))
    .await;
    p.quiet().await;

    // The node logged about them (so the check below has something to look at)...
    let path = stderr.path().to_owned();
    let read = || std::fs::read(&path).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || {
            let log = String::from_utf8_lossy(&read()).into_owned();
            log.contains("presence: unknown method ignored") && log.contains("frame ignored")
        })
        .await,
        "{}",
        String::from_utf8_lossy(&read())
    );
    let _ = child.kill();
    let _ = child.wait();
    let log = read();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("WebSocket connection refused"), "{text}");
    // ... and none of it raw: no control byte but the line ends, no forged line.
    let bad = control_bytes(&log);
    assert!(
        bad.is_empty(),
        "raw control bytes {bad:?} in the log:\n{text}"
    );
    assert!(
        !text.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a forged line:\n{text}"
    );
    assert!(!text.contains('\u{9b}'), "a raw C1 CSI:\n{text}");
}
