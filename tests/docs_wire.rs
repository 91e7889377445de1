//! The wire reference's examples are what a node does: the exchanges of `docs/wire.md` marked
//! `<!-- replay: … -->` are played against a real node, frame by frame, and nothing else may
//! arrive (`wire_reference_examples_are_what_a_node_sends`); its upgrade request is sent and the
//! `101` compared (`wire_reference_handshake_is_what_a_node_answers`).

mod docs_support;
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use docs_support::Node;
use support::WsClient;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The wire reference's examples
// ---------------------------------------------------------------------------------------------

/// The connection GUID the wire reference's examples use; replaced by the real one.
const DOC_GUID: &str = "3F2504E04F8941D39A0C0305E82C3301";

/// One replayable exchange of `docs/wire.md`: the subprotocol of a new connection (`None`:
/// continue on the previous block's connection), the `→`/`←` lines, and where it is.
struct Exchange {
    protocol: Option<String>,
    lines: Vec<String>,
    line: usize,
}

/// Every block of `docs/wire.md` preceded by `<!-- replay: <protocol> -->` or
/// `<!-- replay: continue -->`.
fn exchanges() -> Vec<Exchange> {
    let text = std::fs::read_to_string(repo().join("docs/wire.md"))
        .unwrap_or_else(|e| panic!("docs/wire.md: {e}"));
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let Some(tag) = l
            .trim()
            .strip_prefix("<!-- replay: ")
            .and_then(|r| r.strip_suffix(" -->"))
        else {
            continue;
        };
        assert_eq!(
            lines.get(n + 1).map(|l| l.trim()),
            Some("```text"),
            "docs/wire.md:{}: a replay marker goes right before a ```text block",
            n + 1
        );
        let body: Vec<String> = lines[n + 2..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.trim().to_owned())
            .filter(|l| !l.is_empty())
            .collect();
        out.push(Exchange {
            protocol: (tag != "continue").then(|| tag.to_owned()),
            lines: body,
            line: n + 1,
        });
    }
    out
}

/// Round trip proving nothing else was queued: a request whose answer must be the next frame.
async fn barrier(c: &mut WsClient, protocol: &str, at: &str) {
    let (ask, answer) = if protocol == "esegece.com" {
        (
            r#"{"jsonrpc":"2.0","method":"sgc@protocol"}"#,
            "esegece.com",
        )
    } else {
        (
            r#"{"jsonrpc":"2.0","method":"sgc@presence@barrier","id":"barrier"}"#,
            r#"{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":"barrier"}"#,
        )
    };
    c.send(ask).await;
    let got = c.recv().await;
    assert_eq!(
        got, answer,
        "{at}: a frame the example does not show arrived"
    );
}

/// The second Presence member of the wire reference's flows: bob, in `room-42` before alice came.
const BOB: &str = r#"{"id":"8A4B2C1D0E9F48A7B6C5D4E3F2A1B0C9","name":"bob","info":""}"#;

/// Connects bob to the node, makes him a member and has him join `room-42`.
async fn bob(addr: SocketAddr) -> WsClient {
    let mut b = WsClient::connect(addr, "/", &["presence.esegece.com"])
        .await
        .unwrap_or_else(|e| panic!("bob: {e}"));
    let _session = b.recv().await;
    let new = format!(r#"{{"jsonrpc":"2.0","method":"sgc@presence@member@new","member":{BOB}}}"#);
    b.send(&new).await;
    b.expect(&new).await;
    let join = format!(
        r#"{{"jsonrpc":"2.0","method":"sgc@presence@channel@member@new","member":{BOB},"channel":{{"name":"room-42"}}}}"#
    );
    b.send(&join).await;
    b.expect(&join).await;
    b
}

/// Reads bob's frames up to and including the answer to a barrier: what earlier examples sent
/// him and do not show.
async fn drain(b: &mut WsClient) {
    b.send(r#"{"jsonrpc":"2.0","method":"sgc@presence@barrier","id":"drain"}"#)
        .await;
    let ack = r#"{"jsonrpc":"2.0","method":"sgc@presence@acknowledgment","id":"drain"}"#;
    while b.recv().await != ack {}
}

#[tokio::test]
async fn wire_reference_examples_are_what_a_node_sends() {
    let all = exchanges();
    assert!(all.len() >= 10, "only {} replayable examples", all.len());
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--cluster-engine", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let node = Node::start("wscluster (wire reference)", &args, false);
    let mut current: Option<(String, WsClient, String)> = None;
    let mut second: Option<WsClient> = None;
    for ex in all {
        let at = format!("docs/wire.md:{}", ex.line);
        if let Some(protocol) = &ex.protocol {
            let mut c = WsClient::connect(node.ws, "/", &[protocol])
                .await
                .unwrap_or_else(|e| panic!("{at}: {e}"));
            let session = c.recv().await;
            let v: serde_json::Value =
                serde_json::from_str(&session).unwrap_or_else(|e| panic!("{at}: {e}"));
            let guid = v["result"]["message"]
                .as_str()
                .or(v["message"]["text"].as_str())
                .unwrap_or_else(|| panic!("{at}: not a session frame: {session}"))
                .to_owned();
            assert_eq!(guid.len(), 32, "{at}: {session}");
            // A block that starts with the session frame checks it.
            let mut lines = ex.lines.iter().peekable();
            if let Some(first) = lines.peek()
                && first.contains("session")
                && let Some(want) = first.strip_prefix("← ")
            {
                assert_eq!(session, want.replace(DOC_GUID, &guid), "{at}");
            }
            // Presence flows have a second member, bob, set up before alice is a member (so
            // she hears none of it).
            second = if protocol == "presence.esegece.com" {
                Some(bob(node.ws).await)
            } else {
                None
            };
            current = Some((protocol.clone(), c, guid));
        }
        let Some((protocol, c, guid)) = current.as_mut() else {
            panic!("{at}: `replay: continue` with no connection before it");
        };
        if let Some(b) = second.as_mut() {
            drain(b).await;
        }
        let mut to_bob = false;
        for line in &ex.lines {
            let line = line.replace(DOC_GUID, guid);
            if let Some(frame) = line.strip_prefix("→ ") {
                c.send(frame).await;
            } else if let Some(want) = line.strip_prefix("← (to bob") {
                // `← (to bob) {…}` or `← (to bob, in room-42) {…}`: the next frame bob receives.
                let want = want.split_once(") ").map(|(_, f)| f).unwrap_or_default();
                let b = second
                    .as_mut()
                    .unwrap_or_else(|| panic!("{at}: no bob in an sgc example"));
                let got = b.recv().await;
                assert_eq!(got, want, "{at} (bob)");
                to_bob = true;
            } else if let Some(want) = line.strip_prefix("← ") {
                if ex.protocol.is_some() && want.contains("session") {
                    continue; // checked above
                }
                let got = c.recv().await;
                assert_eq!(got, want, "{at}");
            } else {
                panic!("{at}: a replayed line starts with → or ←: {line}");
            }
        }
        barrier(c, protocol, &at).await;
        if to_bob && let Some(b) = second.as_mut() {
            barrier(b, protocol, &format!("{at} (bob)")).await;
        }
    }
}

/// The fenced ```http blocks of `docs/wire.md`, in order.
fn http_blocks() -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(repo().join("docs/wire.md"))
        .unwrap_or_else(|e| panic!("docs/wire.md: {e}"));
    let mut out = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in text.lines() {
        let t = line.trim();
        match current.as_mut() {
            None if t == "```http" => current = Some(Vec::new()),
            None => {}
            Some(_) if t == "```" => out.extend(current.take()),
            Some(block) => block.push(t.to_owned()),
        }
    }
    out
}

#[tokio::test]
async fn wire_reference_handshake_is_what_a_node_answers() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let blocks = http_blocks();
    let (request, response) = (&blocks[0], &blocks[1]);
    assert!(request[0].starts_with("GET / "), "{request:?}");
    assert!(response[0].starts_with("HTTP/1.1 101"), "{response:?}");
    let args: Vec<String> = ["--listen", "127.0.0.1:0", "--cluster-engine", "none"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let node = Node::start("wscluster (wire reference)", &args, false);
    let mut s = tokio::net::TcpStream::connect(node.ws)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    let sent = format!("{}\r\n\r\n", request.join("\r\n"));
    s.write_all(sent.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no answer head within 5 s: {got:?}"))
            .unwrap_or_else(|e| panic!("read: {e}"));
        assert!(n > 0, "closed before the answer head: {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    let head = text.split("\r\n\r\n").next().unwrap_or_default();
    assert_eq!(head, response.join("\r\n"), "docs/wire.md §1.1");
}
