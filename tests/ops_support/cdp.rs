//! A real headless browser for the status page test: Debian's `chromium`, driven over the Chrome
//! DevTools Protocol (JSON over a WebSocket, here the tokio-websockets client).
//!
//! The browser is `$CHROMIUM` (exported by `scripts/test.sh`, which installs Debian's package when
//! it is missing), else `/usr/bin/chromium`, else `chromium` on `PATH`. Without one the test fails:
//! it is never silently skipped.

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, MaybeTlsStream, Message, WebSocketStream};

/// How long the browser may take to start and open its DevTools port.
const START_WAIT: Duration = Duration::from_secs(30);

/// The browser executable.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).is_file() {
            return Some(PathBuf::from(p));
        }
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("chromium"))
            .find(|p| p.is_file())
    })
}

/// A running headless browser, killed on drop.
pub struct Browser {
    child: Child,
    /// Its profile directory (removed on drop).
    _profile: tempfile::TempDir,
    /// The DevTools HTTP address.
    pub devtools: std::net::SocketAddr,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Browser {
    /// Starts headless chromium with a `width`×`height` window and an empty page.
    pub fn start(width: u32, height: u32) -> Self {
        let exe = find_chromium().unwrap_or_else(|| {
            panic!(
                "chromium not found: run scripts/test.sh (it installs Debian's chromium), or set \
                 CHROMIUM to a Chromium/Chrome executable"
            )
        });
        let profile = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut child = Command::new(&exe)
            .args([
                "--headless",
                // Root in CI containers: the sandbox needs user namespaces it may not have.
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                &format!("--window-size={width},{height}"),
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on standard error.
        let stderr = child.stderr.take().unwrap_or_else(|| unreachable!());
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    // Keep draining so the browser never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + START_WAIT;
        let mut seen = Vec::new();
        let devtools = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(wait).unwrap_or_else(|_| {
                panic!(
                    "chromium did not announce its DevTools port within {START_WAIT:?}:\n{}",
                    seen.join("\n")
                )
            });
            if let Some(rest) = line.split("DevTools listening on ws://").nth(1) {
                let hostport = rest.split('/').next().unwrap_or_default();
                break hostport
                    .parse()
                    .unwrap_or_else(|e| panic!("DevTools address {hostport:?}: {e}"));
            }
            seen.push(line);
        };
        Self {
            child,
            _profile: profile,
            devtools,
        }
    }

    /// Connects to the browser's first page.
    pub async fn page(&self) -> Page {
        let resp = super::raw(
            self.devtools,
            format!(
                "GET /json/list HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                self.devtools
            )
            .as_bytes(),
        )
        .await;
        let targets = resp.json();
        let url = targets
            .as_array()
            .and_then(|t| t.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .unwrap_or_else(|| panic!("no page target: {targets}"))
            .to_owned();
        let (ws, _) = ClientBuilder::new()
            .uri(&url)
            .unwrap_or_else(|e| panic!("DevTools URL {url}: {e}"))
            .connect()
            .await
            .unwrap_or_else(|e| panic!("DevTools connect: {e}"));
        Page { ws, next_id: 1 }
    }
}

/// One page, over its DevTools WebSocket.
pub struct Page {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Page {
    /// Sends a command and returns its `result` (events in between are skipped).
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.ws
            .send(Message::text(msg))
            .await
            .unwrap_or_else(|e| panic!("DevTools send: {e}"));
        let wait = async {
            while let Some(m) = self.ws.next().await {
                let m = m.unwrap_or_else(|e| panic!("DevTools read: {e}"));
                let Some(text) = m.as_text() else { continue };
                let v: Value = serde_json::from_str(text).unwrap_or_default();
                if v["id"] == id {
                    if !v["error"].is_null() {
                        panic!("{method} failed: {}", v["error"]);
                    }
                    return v["result"].clone();
                }
            }
            panic!("DevTools connection closed during {method}");
        };
        tokio::time::timeout(Duration::from_secs(20), wait)
            .await
            .unwrap_or_else(|_| panic!("{method}: no answer within 20 s"))
    }

    /// Opens `url`.
    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `expression` until `cond` holds on its value, or fails after `wait` with the last
    /// value seen.
    pub async fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        wait: Duration,
        cond: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let v = self.eval(expression).await;
            if cond(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page never showed {what} within {wait:?}; last: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A PNG screenshot of the page.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let r = self
            .call("Page.captureScreenshot", json!({ "format": "png" }))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("screenshot data: {e}"))
    }
}
