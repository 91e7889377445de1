//! Test support: start real nodes on port 0, connect real WebSocket clients, expect frames.
//!
//! Every wait has a deadline ([`DEFAULT_WAIT`]); a frame that never comes fails the test instead of
//! hanging it. To assert that something does *not* arrive, make a round trip that must come back
//! after it (see [`WsClient::expect_next`] and the protocol-specific barriers in the tests).
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Message, WebSocketStream};
use wscluster::config::ServerConfig;

pub mod broker;
pub mod http_client;
pub mod nats;
pub mod process;
pub mod redis;
pub mod redis_cluster;
pub mod sgc;
pub mod tls;
pub mod webhook_receiver;

/// The byte stream under a test client: plain TCP or TLS over TCP.
pub trait ClientIo: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> ClientIo for T {}

/// How long a test waits for an expected frame before failing.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The environment variable that scales latency bounds: [`time_factor`].
pub const TIME_FACTOR_VAR: &str = "WSCLUSTER_TEST_TIME_FACTOR";

/// How much slower than a quiet machine this run may be: `WSCLUSTER_TEST_TIME_FACTOR` (a number
/// of at least 1; 1 when unset). Only latency bounds (how fast something happens) are multiplied
/// by it, never what must happen: counts, orders and frames stay exact. A value that is not such a
/// number fails the test that reads it.
#[allow(dead_code)]
pub fn time_factor() -> f64 {
    match std::env::var(TIME_FACTOR_VAR) {
        Err(_) => 1.0,
        Ok(v) => match v.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f >= 1.0 => f,
            _ => panic!("{TIME_FACTOR_VAR}={v:?}: expected a number of at least 1"),
        },
    }
}

/// A latency bound `bound` scaled by [`time_factor`].
#[allow(dead_code)]
pub fn scaled(bound: Duration) -> Duration {
    bound.mul_f64(time_factor())
}

/// Listener settings for tests: loopback, ephemeral port, defaults otherwise.
pub fn test_server_config() -> ServerConfig {
    ServerConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ServerConfig::default()
    }
}

/// Installs a `tracing` subscriber once, honouring `RUST_LOG` (quiet by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// What a received frame was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
    /// A close, with its code and reason.
    Close(Option<u16>, String),
}

/// A real WebSocket client over TCP (or TLS, see [`tls::connect`]).
pub struct WsClient {
    ws: WebSocketStream<Box<dyn ClientIo>>,
    /// The subprotocol the server chose (`Sec-WebSocket-Protocol` of the 101), if any.
    pub protocol: Option<String>,
}

impl WsClient {
    /// Connects to `ws://addr{path}` offering `protocols` (none when empty).
    pub async fn connect(addr: SocketAddr, path: &str, protocols: &[&str]) -> Result<Self, String> {
        Self::connect_with(addr, path, protocols, &[]).await
    }

    /// Like [`WsClient::connect`] with extra request headers.
    pub async fn connect_with(
        addr: SocketAddr,
        path: &str,
        protocols: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<Self, String> {
        let stream = tokio::time::timeout(DEFAULT_WAIT, TcpStream::connect(addr))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let uri = format!("ws://{addr}{path}");
        Self::connect_on(Box::new(stream), &uri, protocols, headers).await
    }

    /// Upgrades an already connected `stream` (plain or TLS) with a request for `uri`.
    pub async fn connect_on(
        stream: Box<dyn ClientIo>,
        uri: &str,
        protocols: &[&str],
        headers: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut b = ClientBuilder::new().uri(uri).map_err(|e| e.to_string())?;
        if !protocols.is_empty() {
            b = b
                .add_header(
                    http::header::SEC_WEBSOCKET_PROTOCOL,
                    http::HeaderValue::from_str(&protocols.join(", "))
                        .map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
        }
        for (n, v) in headers {
            b = b
                .add_header(
                    http::HeaderName::from_bytes(n.as_bytes()).map_err(|e| e.to_string())?,
                    http::HeaderValue::from_str(v).map_err(|e| e.to_string())?,
                )
                .map_err(|e| e.to_string())?;
        }
        let (ws, resp) = tokio::time::timeout(DEFAULT_WAIT, b.connect_on(stream))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| e.to_string())?;
        let protocol = resp
            .headers()
            .get(http::header::SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Self { ws, protocol })
    }

    /// Connects with the sgc protocol and returns the client with the session GUID of its S1 frame.
    pub async fn sgc(addr: SocketAddr) -> (Self, String) {
        let mut c = Self::connect(addr, "/", &["esegece.com"])
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        let s1 = c.recv_json().await;
        assert_eq!(
            s1["result"]["method"], "sgc@session",
            "first frame must be S1: {s1}"
        );
        let guid = s1["result"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        (c, guid)
    }

    /// Sends a text frame.
    pub async fn send(&mut self, text: &str) {
        self.ws
            .send(Message::text(text.to_owned()))
            .await
            .unwrap_or_else(|e| panic!("send failed: {e}"));
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, data: &[u8]) {
        self.ws
            .send(Message::binary(data.to_vec()))
            .await
            .unwrap_or_else(|e| panic!("send failed: {e}"));
    }

    /// Sends a raw WebSocket message (ping, close, ...).
    pub async fn send_message(&mut self, msg: Message) -> Result<(), String> {
        self.ws.send(msg).await.map_err(|e| e.to_string())
    }

    /// The next frame (pings and pongs skipped), or `None` when the stream ended, within `wait`.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => panic!("no frame within {wait:?}"),
                Ok(None) | Ok(Some(Err(_))) => return None,
                Ok(Some(Ok(m))) => m,
            };
            if let Some(t) = msg.as_text() {
                return Some(Frame::Text(t.to_owned()));
            }
            if msg.is_binary() {
                return Some(Frame::Binary(msg.into_payload().to_vec()));
            }
            if let Some((code, reason)) = msg.as_close() {
                return Some(Frame::Close(Some(u16::from(code)), reason.to_owned()));
            }
            if msg.is_close() {
                return Some(Frame::Close(None, String::new()));
            }
        }
    }

    /// The next frame, waiting at most [`DEFAULT_WAIT`].
    pub async fn next_frame(&mut self) -> Option<Frame> {
        self.next_frame_within(DEFAULT_WAIT).await
    }

    /// The next text frame; fails the test on anything else.
    pub async fn recv(&mut self) -> String {
        match self.next_frame().await {
            Some(Frame::Text(t)) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// The next text frame parsed as JSON.
    pub async fn recv_json(&mut self) -> serde_json::Value {
        let t = self.recv().await;
        serde_json::from_str(&t).unwrap_or_else(|e| panic!("not JSON ({e}): {t}"))
    }

    /// Expects the next text frame to be exactly `expected`.
    pub async fn expect(&mut self, expected: &str) {
        let got = self.recv().await;
        assert_eq!(got, expected, "unexpected frame");
    }

    /// Expects the next frame to be a close; returns its code and reason.
    pub async fn expect_close(&mut self) -> (Option<u16>, String) {
        loop {
            match self.next_frame().await {
                Some(Frame::Close(c, r)) => return (c, r),
                None => return (None, String::new()),
                Some(_) => continue,
            }
        }
    }

    /// Expects the connection to end (close frame or EOF) within `wait`, skipping other frames.
    pub async fn expect_closed_within(&mut self, wait: Duration) -> (Option<u16>, String) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_frame_within(left).await {
                Some(Frame::Close(c, r)) => return (c, r),
                None => return (None, String::new()),
                Some(_) => continue,
            }
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close().await;
    }
}

/// Sends a raw HTTP request and returns the whole response text (the server closes after it).
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    s.write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEFAULT_WAIT, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A well-formed upgrade request for `path` offering `protocols`.
pub fn upgrade_request(path: &str, protocols: &str, extra_headers: &str) -> String {
    let proto = if protocols.is_empty() {
        String::new()
    } else {
        format!("Sec-WebSocket-Protocol: {protocols}\r\n")
    };
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}{extra_headers}\r\n"
    )
}

/// A raw client socket past an upgrade offering `protocols` (empty: none, the echo fallback), so
/// frames can be written exactly as a test needs them: fragmented, oversized, unfinished.
pub async fn raw_upgraded(addr: SocketAddr, protocols: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}"));
    s.write_all(upgrade_request("/", protocols, "").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("write: {e}"));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).await.unwrap_or(0);
        assert_eq!(n, 1, "the upgrade is answered");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{head:?}");
    s
}

/// Sends signal `name` (`TERM`, `INT`, `STOP`, `CONT`) to process `pid` with the shell's `kill`
/// builtin.
pub fn send_signal(pid: u32, name: &str) {
    let status = std::process::Command::new("sh")
        .args(["-c", "kill -s \"$1\" \"$2\"", "sh", name])
        .arg(pid.to_string())
        .status()
        .unwrap_or_else(|e| panic!("cannot run kill: {e}"));
    assert!(status.success(), "kill -s {name} {pid} failed");
}

/// Polls `cond` every few milliseconds until it holds or `wait` passes; returns whether it held.
pub async fn eventually(wait: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
