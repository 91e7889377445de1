//! The documentation stands alone, and the README's quick start does what it says.
//!
//! - `nothing_points_outside_the_repository`: README, `docs/`, `deploy/`, `bench/`, `scripts/`,
//!   `.ci/`, `src/`, `tests/`, the fuzz targets, the vendored crate's notes, `Cargo.toml` and the
//!   example configuration name no file outside the repository (`/work/…`, `shared/…`, a `../`
//!   path that leaves it, the external specification) and cite no issue numbers; a failure lists
//!   every `file:line`. It fails until the source comments cite `docs/wire.md §N` instead.
//! - `markdown_links_resolve`: every relative link of the Markdown pages names a file of the
//!   repository.
//! - `quick_start_mesh_publish_crosses` / `quick_start_redis_publish_crosses`: the README's
//!   quick-start commands, run as written (see [`rewrite`] for the only changes: the built binary
//!   and free ports), make a three-node cluster on which the README's browser snippet sees a publish
//!   made on node `c` arrive at a subscriber on node `a`, exactly once, and nowhere else.
//! - `wire_reference_examples_are_what_a_node_sends`: the exchanges of `docs/wire.md` marked
//!   `<!-- replay: … -->` are played against a real node, frame by frame, and nothing else may
//!   arrive; `wire_reference_handshake_is_what_a_node_answers` sends its upgrade request and
//!   compares the `101`.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::process::Child;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::WsClient;
use support::redis::RedisServer;

// ---------------------------------------------------------------------------------------------
// References outside the repository
// ---------------------------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The files scanned, relative to the repository root.
const SCANNED: &[&str] = &[
    "README.md",
    "Cargo.toml",
    "wscluster.example.toml",
    "Dockerfile",
    ".dockerignore",
    "docs",
    "deploy",
    "bench",
    "scripts",
    ".ci",
    "src",
    "tests",
    "fuzz/Cargo.toml",
    "fuzz/fuzz_targets",
    "vendor/tokio-websockets/PATCHED.md",
];

/// This file names the forbidden patterns, so it is not scanned.
const SELF: &str = "tests/docs.rs";

fn walk(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            walk(&e, out);
        }
    } else if path.is_file() {
        out.push(path.to_owned());
    }
}

/// Every scanned text file, with its path relative to the repository.
fn scanned_files() -> Vec<(String, String)> {
    let root = repo();
    let mut paths = Vec::new();
    for s in SCANNED {
        walk(&root.join(s), &mut paths);
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(&root).ok()?.to_string_lossy().into_owned();
            if rel == SELF {
                return None;
            }
            // Binary files (pictures, corpora) are not prose.
            let text = std::fs::read_to_string(&p).ok()?;
            Some((rel, text))
        })
        .collect()
}

/// Lexically resolves `target` against `dir` (both relative to the root); `None` when it climbs
/// out of the repository.
fn resolve(dir: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let joined = if let Some(abs) = target.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        dir.join(target)
    };
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            _ => {}
        }
    }
    Some(parts.iter().collect())
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._/-".contains(c)
}

/// Why `line` (of file `rel`) points outside the repository or cites an issue, if it does.
fn problems(rel: &str, line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let lower = line.to_ascii_lowercase();
    if lower.contains("/work/") {
        found.push("names a path on another machine (`/work/…`)".to_owned());
    }
    // `shared/…` as the start of a path (not e.g. "the redis shared/channel routing").
    for (i, _) in lower.match_indices("shared/") {
        let before = lower[..i].chars().next_back();
        let token: String = lower[i..]
            .chars()
            .take_while(|&c| is_path_char(c))
            .collect();
        let deeper = token["shared/".len()..].contains(['/', '.']);
        if deeper && before.is_none_or(|c| " `'\"(/[<".contains(c)) {
            found.push("names a file outside the repository (`shared/…`)".to_owned());
            break;
        }
    }
    if lower.contains("client-protocols") {
        found.push(
            "names the external protocol specification (the wire reference is docs/wire.md)"
                .to_owned(),
        );
    }
    let spec_section = lower.match_indices("spec ").any(|(i, _)| {
        let rest = &lower[i + "spec ".len()..];
        rest.starts_with('§') || rest.starts_with(|c: char| c.is_ascii_digit())
    });
    if spec_section || lower.contains("spec's §") {
        found.push("cites the external specification (cite `docs/wire.md §N`)".to_owned());
    }
    // Any `../` path must stay inside the repository.
    let dir = Path::new(rel).parent().unwrap_or(Path::new(""));
    for (i, _) in line.match_indices("../") {
        if i > 0 && line[..i].ends_with('.') {
            continue; // the second `../` of `../../`, handled with the first
        }
        if i > 0 && line[..i].ends_with(|c: char| is_path_char(c) && c != '/') {
            continue;
        }
        let token: String = line[i..].chars().take_while(|&c| is_path_char(c)).collect();
        if resolve(dir, &token).is_none() {
            found.push(format!("`{token}` leaves the repository"));
        }
    }
    // "issue 7", "issues #3 and #4", "Issue#12".
    let bytes = lower.as_bytes();
    for (i, _) in lower.match_indices("issue") {
        if i > 0 && bytes[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let mut j = i + "issue".len();
        if bytes.get(j) == Some(&b's') {
            j += 1;
        }
        let mut k = j;
        while bytes.get(k).is_some_and(|b| *b == b' ' || *b == b'#') {
            k += 1;
        }
        if k > j && k - j <= 2 && bytes.get(k).is_some_and(u8::is_ascii_digit) {
            found.push("cites an issue number".to_owned());
            break;
        }
    }
    // "#12" in prose. Not `PKCS#8` (a letter before it), not `#[derive]`, not a colour in a
    // stylesheet or a page.
    let styled = rel.ends_with(".html") || rel.ends_with(".css") || rel.ends_with(".svg");
    if !styled {
        for (i, _) in line.match_indices('#') {
            let before = line[..i].chars().next_back();
            if !before.is_none_or(|c| " ([,`".contains(c)) {
                continue;
            }
            let digits: String = line[i + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let after = line[i + 1 + digits.len()..].chars().next();
            if !digits.is_empty() && !after.is_some_and(|c| c.is_ascii_alphanumeric()) {
                found.push(format!("`#{digits}` reads as an issue number"));
            }
        }
    }
    found
}

#[test]
fn nothing_points_outside_the_repository() {
    let files = scanned_files();
    assert!(
        files.iter().any(|(f, _)| f == "README.md") && files.len() > 50,
        "the scan found too few files: {}",
        files.len()
    );
    let mut report = Vec::new();
    for (rel, text) in &files {
        for (n, line) in text.lines().enumerate() {
            for p in problems(rel, line) {
                report.push(format!("{rel}:{}: {p}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        report.is_empty(),
        "{} references outside the repository or to issue numbers:\n{}",
        report.len(),
        report.join("\n")
    );
}

#[test]
fn the_scanner_tells_references_from_lookalikes() {
    let bad = [
        ("docs/x.md", "see /work/shared/spec/x.md"),
        ("docs/x.md", "where `shared/design/cluster.md` left room"),
        ("README.md", "[spec](../shared/spec.md)"),
        ("src/a.rs", "//! the wire (spec §2.3)"),
        (
            "wscluster.example.toml",
            "# as \"sgc@b64:...\" (spec 1.4); member lists",
        ),
        ("bench/x.rs", "//! `client-protocols.md` §3.4"),
        ("src/a.rs", "// TLS for links is issue 7's"),
        (
            "tests/a.rs",
            "//! Resource exhaustion (Issue #7): a slowloris",
        ),
        ("docs/x.md", "fixed in #12, see also (#3)"),
    ];
    for (f, l) in bad {
        assert!(!problems(f, l).is_empty(), "{f}: {l}");
    }
    let good = [
        (
            "src/a.rs",
            r#"let s = include_str!("../wscluster.example.toml");"#,
        ),
        ("docs/x.md", "routing: shared/channel"),
        (
            "docs/x.md",
            "a PKCS#8 key, RFC 6455 §7.4, `docs/wire.md §2.3`",
        ),
        ("src/a.rs", "#[derive(Debug)] r#\"{}\"#"),
        ("src/ops/status.html", "color: #333;"),
        ("docs/x.md", "an open issue of the client, #define X"),
    ];
    for (f, l) in good {
        assert!(problems(f, l).is_empty(), "{f}: {l}: {:?}", problems(f, l));
    }
}

/// Relative link targets of a Markdown text: `[text](target)`, without the `#anchor`.
fn markdown_links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            let Some(end) = rest.find(')') else { continue };
            let target = rest[..end].split_whitespace().next().unwrap_or("");
            let target = target.split('#').next().unwrap_or("");
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            out.push((n + 1, target.to_owned()));
        }
    }
    out
}

#[test]
fn markdown_links_resolve() {
    let root = repo();
    let mut report = Vec::new();
    let mut checked = 0;
    for (rel, text) in scanned_files() {
        if !rel.ends_with(".md") {
            continue;
        }
        let dir = Path::new(&rel).parent().unwrap_or(Path::new("")).to_owned();
        for (n, target) in markdown_links(&text) {
            checked += 1;
            match resolve(&dir, &target) {
                Some(p) if root.join(&p).exists() => {}
                Some(p) => report.push(format!(
                    "{rel}:{n}: `{target}` ({}) does not exist",
                    p.display()
                )),
                None => report.push(format!("{rel}:{n}: `{target}` leaves the repository")),
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} links found: is the parser broken?"
    );
    assert!(report.is_empty(), "broken links:\n{}", report.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The quick start
// ---------------------------------------------------------------------------------------------

/// How long the nodes may take to start and link.
const WAIT: Duration = Duration::from_secs(20);

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
/// - `--redis-url URL` is the test's own `redis-server` on an ephemeral port.
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
            ("--redis-url", Some(_)) => {
                let url =
                    redis_url.unwrap_or_else(|| panic!("--redis-url outside the Redis block"));
                args.extend(["--redis-url".to_owned(), url.to_owned()]);
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

/// A node started from a README command, killed when dropped (its log printed if the test failed).
struct Node {
    command: String,
    child: Child,
    _stdout: mpsc::Receiver<String>,
    stderr: tempfile::NamedTempFile,
    ws: SocketAddr,
    mesh_port: Option<u16>,
}

impl Node {
    fn start(command: &str, args: &[String], mesh: bool) -> Node {
        let (child, stdout, stderr) = support::process::spawn(args, &[]);
        let deadline = Instant::now() + WAIT;
        let (mut ws, mut mesh_port) = (None, None);
        while ws.is_none() || (mesh && mesh_port.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("wscluster listening on ws://") {
                        ws = rest.split(' ').next().and_then(|a| a.parse().ok());
                    } else if let Some(rest) = line.strip_prefix("wscluster cluster mesh on ") {
                        mesh_port = rest
                            .split(' ')
                            .next()
                            .and_then(|a| a.parse::<SocketAddr>().ok())
                            .map(|a| a.port());
                    }
                }
                Err(e) => panic!(
                    "`{command}` did not announce its addresses ({e}); log:\n{}",
                    std::fs::read_to_string(stderr.path()).unwrap_or_default()
                ),
            }
        }
        Node {
            command: command.to_owned(),
            child,
            _stdout: stdout,
            stderr,
            ws: ws.unwrap_or_else(|| unreachable!()),
            mesh_port,
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "---- log of `{}` ----\n{}",
                self.command,
                std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
            );
        }
    }
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
