//! The README's quick start does what it says: `quick_start_mesh_publish_crosses`,
//! `quick_start_redis_publish_crosses` and `quick_start_nats_publish_crosses` run the quick-start
//! commands as written (see [`rewrite`] for
//! the only changes: the built binary and free ports), make a three-node cluster on which the
//! README's browser snippet sees a publish made on node `c` arrive at a subscriber on node `a`,
//! exactly once, and nowhere else.

mod docs_support;
mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use docs_support::{Node, WAIT};
use support::WsClient;
use support::nats::NatsServer;
use support::redis::RedisServer;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// The quick start
// ---------------------------------------------------------------------------------------------

/// The first fenced block of language `lang` after the line `<!-- quick-start: {marker} -->`.
fn readme_block(marker: &str, lang: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md"))
        .unwrap_or_else(|e| panic!("README.md: {e}"));
    let tag = format!("<!-- quick-start: {marker} -->");
    let (_, after) = readme
        .split_once(&tag)
        .unwrap_or_else(|| panic!("README.md has no `{tag}` before its quick-start block"));
    let fence = format!("```{lang}\n");
    let start = after
        .find(&fence)
        .unwrap_or_else(|| panic!("no ```{lang} block after `{tag}`"));
    let body = &after[start + fence.len()..];
    let end = body
        .find("```")
        .unwrap_or_else(|| panic!("unclosed block after `{tag}`"));
    body[..end].lines().map(str::to_owned).collect()
}

/// The commands of a quick-start shell block: lines joined across `\`, comments and blank
/// lines dropped.
fn commands(block: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in block {
        let line = line.split(" #").next().unwrap_or("").trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(head) = line.strip_suffix('\\') {
            cur.push_str(head);
            cur.push(' ');
        } else {
            cur.push_str(line);
            out.push(std::mem::take(&mut cur));
        }
    }
    out
}

/// The README's port numbers mapped to the ones the test's nodes really got.
#[derive(Default)]
struct Ports {
    /// README `--listen` port → the node's WebSocket address.
    ws: HashMap<u16, SocketAddr>,
    /// README `--cluster-port` → the node's real mesh port.
    mesh: HashMap<u16, u16>,
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in `{addr}`"))
}

/// One README command turned into the arguments the test runs. The only rewrites:
/// - `cargo run --release --` is the binary cargo built for this test (`CARGO_BIN_EXE_wscluster`);
/// - `--listen HOST:PORT` listens on `HOST:0` and `--cluster-port PORT` is `0` (free ports, so
///   the test runs beside anything else on the machine; the printed addresses say which);
/// - `--peer HOST:PORT` dials the real mesh port of the earlier node whose README command had
///   `--cluster-port PORT`;
/// - `--redis-url URL` (`--nats-url URL`) is the test's own `redis-server` (`nats-server`) on an
///   ephemeral port.
///
/// Returns the arguments, the README's listen port and (mesh) cluster port.
fn rewrite(
    command: &str,
    ports: &Ports,
    redis_url: Option<&str>,
) -> (Vec<String>, u16, Option<u16>) {
    assert!(
        !command.contains(['"', '\'']),
        "quote-free commands only: {command}"
    );
    let rest = command
        .strip_prefix("cargo run --release -- ")
        .unwrap_or_else(|| {
            panic!("a quick-start command starts with `cargo run --release --`: {command}")
        });
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (mut args, mut listen, mut cluster) = (Vec::new(), None, None);
    let mut i = 0;
    while i < words.len() {
        let flag = words[i];
        let value = words.get(i + 1).copied();
        match (flag, value) {
            ("--listen", Some(v)) => {
                let (host, _) = v.rsplit_once(':').unwrap_or_else(|| panic!("--listen {v}"));
                listen = Some(port_of(v));
                args.extend(["--listen".to_owned(), format!("{host}:0")]);
            }
            ("--cluster-port", Some(v)) => {
                cluster = Some(port_of(&format!(":{v}")));
                args.extend(["--cluster-port".to_owned(), "0".to_owned()]);
            }
            ("--peer", Some(v)) => {
                let (host, port) = v.rsplit_once(':').unwrap_or_else(|| panic!("--peer {v}"));
                let real = ports.mesh.get(&port_of(v)).unwrap_or_else(|| {
                    panic!("--peer {v}: no earlier command has --cluster-port {port}")
                });
                args.extend(["--peer".to_owned(), format!("{host}:{real}")]);
            }
            ("--redis-url" | "--nats-url", Some(_)) => {
                let url = redis_url.unwrap_or_else(|| panic!("{flag} outside a broker block"));
                args.extend([flag.to_owned(), url.to_owned()]);
            }
            _ => {
                args.push(flag.to_owned());
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    let listen = listen.unwrap_or_else(|| panic!("a quick-start node needs --listen: {command}"));
    (args, listen, cluster)
}

/// The value of the `wscluster_peers` gauge a node's `/metrics` shows (the README's way to see
/// the nodes linked), if the scrape answered.
async fn live_peers(addr: SocketAddr) -> Option<u64> {
    let resp = support::raw_http(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    resp.lines()
        .find_map(|l| l.strip_prefix("wscluster_peers "))
        .and_then(|v| v.trim().parse().ok())
}

/// Runs the README block `marker`'s commands and waits until every node links every other one.
async fn start_quick_start(marker: &str, redis_url: Option<&str>) -> (Vec<Node>, Ports) {
    let cmds = commands(&readme_block(marker, "sh"));
    assert_eq!(
        cmds.len(),
        3,
        "the {marker} quick start is three commands: {cmds:#?}"
    );
    let mut ports = Ports::default();
    let mut nodes = Vec::new();
    for c in &cmds {
        let (args, listen, cluster) = rewrite(c, &ports, redis_url);
        let node = Node::start(c, &args, redis_url.is_none());
        ports.ws.insert(listen, node.ws);
        if let (Some(readme), Some(real)) = (cluster, node.mesh_port) {
            ports.mesh.insert(readme, real);
        }
        nodes.push(node);
    }
    let want = nodes.len() as u64 - 1;
    let deadline = Instant::now() + WAIT;
    for n in &nodes {
        loop {
            let got = live_peers(n.ws).await;
            if got == Some(want) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "`{}` shows wscluster_peers {got:?}, not {want}, after {WAIT:?}",
                n.command
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    (nodes, ports)
}

/// The README's browser snippet: sockets in order (name, README port, subprotocol), the frame
/// each one sends once open, which one prints what it receives, and what it prints.
struct Snippet {
    sockets: Vec<(String, u16, String)>,
    sends: HashMap<String, String>,
    printer: String,
    printed: String,
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = s.find(open)? + open.len();
    let len = s[start..].find(close)?;
    Some(&s[start..start + len])
}

fn snippet() -> Snippet {
    let js = readme_block("see a publish cross", "js");
    let mut sockets = Vec::new();
    let mut sends = HashMap::new();
    let mut printer = None;
    for line in &js {
        let line = line.trim();
        if let Some(url) = between(line, "new WebSocket(\"ws://", "\"") {
            let name = line.split(" = ").next().unwrap_or("").trim().to_owned();
            let proto = between(line, "\", \"", "\"").unwrap_or_default().to_owned();
            sockets.push((name, port_of(url), proto));
        } else if line.contains(".onmessage") && line.contains("console.log") {
            printer = Some(line.split('.').next().unwrap_or("").to_owned());
        } else if line.contains(".onopen") {
            let name = line.split('.').next().unwrap_or("").to_owned();
            let frame = between(line, ".send('", "')")
                .unwrap_or_else(|| panic!("no .send('…') in `{line}`"));
            sends.insert(name, frame.to_owned());
        }
    }
    let printed = readme_block("see a publish cross", "text");
    let printed: Vec<&String> = printed.iter().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(printed.len(), 1, "one printed frame expected: {printed:?}");
    assert!(sockets.len() >= 2, "a subscriber and a publisher: {js:#?}");
    Snippet {
        sockets,
        sends,
        printer: printer.unwrap_or_else(|| panic!("no socket prints (onmessage): {js:#?}")),
        printed: printed[0].clone(),
    }
}

/// Plays the README snippet against the nodes: the printing socket must receive the printed
/// frame exactly once, and no socket anything else beyond its own session and confirmations.
async fn publish_crosses(ports: &Ports) {
    let s = snippet();
    let mut clients: Vec<(String, WsClient)> = Vec::new();
    for (name, port, proto) in &s.sockets {
        let addr = *ports
            .ws
            .get(port)
            .unwrap_or_else(|| panic!("socket {name}: no quick-start node listens on port {port}"));
        let mut c = WsClient::connect(addr, "/", &[proto])
            .await
            .unwrap_or_else(|e| panic!("socket {name} to {addr}: {e}"));
        let s1 = c.recv_json().await;
        assert_eq!(s1["result"]["method"], "sgc@session", "{name}: {s1}");
        if let Some(frame) = s.sends.get(name) {
            c.send(frame).await;
            let sent: serde_json::Value =
                serde_json::from_str(frame).unwrap_or_else(|e| panic!("{name} sends JSON: {e}"));
            if sent["method"] == "sgc@subscribe" {
                // The confirmation: once it arrived, every peer knows of the subscription.
                let s3 = c.recv_json().await;
                assert_eq!(s3["result"]["method"], "sgc@subscribe", "{name}: {s3}");
                assert_eq!(
                    s3["result"]["channel"], sent["params"]["channel"],
                    "{name}: {s3}"
                );
            }
        }
        clients.push((name.clone(), c));
    }
    for (name, c) in &mut clients {
        if *name == s.printer {
            c.expect(&s.printed).await;
        }
        // Nothing else, nothing twice: the reply to `sgc@protocol` is the very next frame.
        c.send(r#"{"jsonrpc":"2.0","method":"sgc@protocol"}"#).await;
        c.expect("esegece.com").await;
    }
}

#[tokio::test]
async fn quick_start_mesh_publish_crosses() {
    let (_nodes, ports) = start_quick_start("mesh", None).await;
    assert_eq!(
        ports.mesh.len(),
        3,
        "three mesh nodes with a cluster port each"
    );
    publish_crosses(&ports).await;
}

#[tokio::test]
async fn quick_start_redis_publish_crosses() {
    let redis = RedisServer::start().await;
    let (_nodes, ports) = start_quick_start("redis", Some(&redis.url())).await;
    publish_crosses(&ports).await;
}

#[tokio::test]
async fn quick_start_nats_publish_crosses() {
    let nats = NatsServer::start().await;
    let (_nodes, ports) = start_quick_start("nats", Some(&nats.url())).await;
    publish_crosses(&ports).await;
}
