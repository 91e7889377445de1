//! Attack 10: strings from the network that reach the node's log with their control characters
//! (forged lines, terminal escape codes). The mesh half is sent by [`crate::mesh::inject`]; this
//! module sends the WebSocket half (path, `Origin`, subprotocol of an upgrade; the path of a plain
//! HTTP request) and reads the node's standard error for the markers both leave when unescaped.

use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::mesh::MESH_MARKERS;
use crate::node::Node;
use crate::report::{Outcome, Row};
use crate::ws::{self, Upgrade};

/// What the WebSocket injection leaves in the log when unescaped: a raw ESC or a C1 CSI
/// (U+009B, valid UTF-8 and a terminal control) before the marker, or the marker at the start
/// of a line.
const WS_MARKERS: [&[u8]; 3] = [b"\x1b[7mATK-WS", b"\xc2\x9b7mATK-WS", b"\nFORGED-WS"];

/// Sends the WebSocket-side injections to `node`.
pub(crate) async fn inject_ws(node: &Node) -> Result<(), String> {
    let c1 = "\u{9b}7mATK-WS\u{9b}0m";
    let path = format!("/{c1}?x={c1}");
    let origin = format!("http://{c1}.example");
    // An upgrade refused for its subprotocol, one accepted, one with a raw ESC (invalid HTTP).
    for (proto, path) in [
        ("bogus\u{9b}7mATK-WS", path.as_bytes().to_vec()),
        ("esegece.com", path.as_bytes().to_vec()),
        ("esegece.com", b"/\x1b[7mATK-WS".to_vec()),
    ] {
        match ws::upgrade(node.ws, &path, proto, &[("Origin", origin.as_bytes())]).await {
            Ok(Upgrade::Open(ws)) => ws.close().await,
            Ok(Upgrade::Refused(_)) | Err(_) => {}
        }
    }
    // Plain HTTP requests: an unknown path, and an authentication session request.
    for target in [
        format!("/{c1}"),
        format!("/sgc/req/auth/session/{c1}/x\u{9b}"),
    ] {
        let mut s = TcpStream::connect(node.ws)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let req = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nOrigin: {origin}\r\nConnection: close\r\n\r\n",
            node.ws
        );
        let _ = s.write_all(req.as_bytes()).await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            tokio::io::AsyncReadExt::read_to_end(&mut s, &mut sink),
        )
        .await;
    }
    Ok(())
}

fn found(log: &[u8], markers: &[&[u8]]) -> Vec<String> {
    markers
        .iter()
        .filter(|m| log.windows(m.len()).any(|w| w == **m))
        .map(|m| String::from_utf8_lossy(m).escape_debug().to_string())
        .collect()
}

/// The two rows of attack 10, from `node`'s standard error after the injections.
pub(crate) fn check(
    node: &Node,
    mesh_sent: Result<(), String>,
    ws_sent: Result<(), String>,
) -> Vec<Row> {
    // Let the node write what it logs about the last connections.
    std::thread::sleep(Duration::from_millis(500));
    let log = node.stderr();
    let mut rows = Vec::new();
    for (name, sent, markers, what) in [
        (
            "log-injection-mesh",
            mesh_sent,
            &MESH_MARKERS[..],
            "mesh Hello (protocol, node id, cluster)",
        ),
        (
            "log-injection-ws",
            ws_sent,
            &WS_MARKERS[..],
            "upgrade path, Origin, subprotocol; HTTP path",
        ),
    ] {
        rows.push(match sent {
            Err(e) => Row::error(name, e),
            Ok(()) => {
                let hits = found(&log, markers);
                if hits.is_empty() {
                    Row::new(
                        name,
                        Outcome::Refused,
                        "escaped",
                        format!(
                            "{what}: no raw control character in {} B of debug log",
                            log.len()
                        ),
                    )
                } else {
                    Row::new(
                        name,
                        Outcome::Vulnerable,
                        "raw in the log",
                        format!("{what}: the log has {}", hits.join(", ")),
                    )
                }
            }
        });
    }
    rows
}
