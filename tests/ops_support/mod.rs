//! Helpers for the operations tests: in-process nodes with the sgc and Presence protocols, a mesh
//! cluster and the operations routes (on the WebSocket port and optionally an admin port), and a
//! small HTTP/1.1 client over a real socket.
#![allow(dead_code, unreachable_pub)]

pub mod cdp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use wscluster::internals::cluster::{Cluster, ClusterConfig, PresenceAdapter, SgcAdapter};
use wscluster::internals::ops::{AdminConfig, HttpConfig, Listener, Ops};
use wscluster::internals::protocol::presence::{PresenceConfig, PresenceProtocol};
use wscluster::internals::protocol::sgc::{SgcConfig, SgcProtocol};
use wscluster::internals::transport::HttpServer;
use wscluster::{Server, ServerHandle};

use crate::support::{self, eventually};

/// The admin token most tests configure.
pub const TOKEN: &str = "t0ken+for/tests";

/// How a test node is set up.
#[derive(Clone)]
pub struct NodeSpec {
    /// Node id.
    pub name: String,
    /// Mesh addresses to dial.
    pub peers: Vec<String>,
    /// `admin.token`.
    pub token: String,
    /// Serve the routes on the WebSocket port.
    pub on_websocket_port: bool,
    /// Also start an admin listener on an ephemeral loopback port.
    pub admin_port: bool,
    /// Attach the operations surface to the cluster (answers other nodes' questions).
    pub answer_queries: bool,
    /// Mesh handshake timeout, in milliseconds.
    pub handshake_timeout_ms: u64,
    /// `http.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `http.metrics_token_required`.
    pub metrics_token_required: bool,
}

impl NodeSpec {
    /// Node `name` with the test token, routes on the WebSocket port, no admin port.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            peers: Vec::new(),
            token: TOKEN.to_owned(),
            on_websocket_port: true,
            admin_port: false,
            answer_queries: true,
            handshake_timeout_ms: 5_000,
            max_body_bytes: HttpConfig::default().max_body_bytes,
            metrics_token_required: false,
        }
    }

    /// Dials `addr` at start.
    pub fn peer(mut self, addr: impl ToString) -> Self {
        self.peers.push(addr.to_string());
        self
    }
}

/// A running in-process node.
pub struct OpsNode {
    /// Its id.
    pub name: String,
    /// The WebSocket server.
    pub server: Arc<ServerHandle>,
    /// The sgc protocol.
    pub sgc: SgcProtocol,
    /// The Presence protocol.
    pub presence: PresenceProtocol,
    /// The cluster.
    pub cluster: Cluster,
    /// The operations surface.
    pub ops: Arc<Ops>,
    /// The admin listener, when asked for.
    pub admin: Option<HttpServer>,
}

impl OpsNode {
    /// Starts a node per `spec`.
    pub async fn start(spec: NodeSpec) -> Self {
        support::init_logs();
        let sgc = SgcProtocol::new(SgcConfig::default());
        let presence = PresenceProtocol::new(PresenceConfig::default());
        let http = HttpConfig {
            on_websocket_port: spec.on_websocket_port,
            max_body_bytes: spec.max_body_bytes,
            metrics_token_required: spec.metrics_token_required,
            ..HttpConfig::default()
        };
        let admin_cfg = AdminConfig {
            token: spec.token.clone(),
            ..AdminConfig::default()
        };
        let ops = Arc::new(
            Ops::new(http, admin_cfg)
                .sgc(sgc.clone())
                .presence(presence.clone()),
        );
        let mut server = Server::new(support::test_server_config())
            .protocol(Arc::new(sgc.clone()))
            .protocol(Arc::new(presence.clone()));
        if spec.on_websocket_port {
            server = server.http(ops.handler(Listener::WebSocket));
        }
        let server = Arc::new(server.bind().await.unwrap_or_else(|e| panic!("bind: {e}")));
        ops.attach_server(&server);
        let mut config = ClusterConfig {
            heartbeat_interval_ms: 100,
            peer_timeout_ms: 1_000,
            ..ClusterConfig::loopback_mesh(spec.peers.clone(), "test-secret")
        };
        config.mesh.handshake_timeout_ms = spec.handshake_timeout_ms;
        let cluster = Cluster::new(spec.name.as_str(), config);
        cluster.attach(SgcAdapter::new(sgc.clone()));
        cluster.attach(PresenceAdapter::new(presence.clone()));
        cluster
            .start()
            .await
            .unwrap_or_else(|e| panic!("cluster start: {e}"));
        if spec.answer_queries {
            ops.attach_cluster(&cluster);
        }
        let admin = if spec.admin_port {
            Some(
                HttpServer::bind(
                    SocketAddr::from(([127, 0, 0, 1], 0)),
                    ops.handler(Listener::Admin),
                )
                .await
                .unwrap_or_else(|e| panic!("admin bind: {e}")),
            )
        } else {
            None
        };
        Self {
            name: spec.name,
            server,
            sgc,
            presence,
            cluster,
            ops,
            admin,
        }
    }

    /// The WebSocket (and public HTTP) address.
    pub fn ws(&self) -> SocketAddr {
        self.server.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
            .as_ref()
            .map(HttpServer::local_addr)
            .unwrap_or_else(|| panic!("node {} has no admin port", self.name))
    }

    /// The mesh address (for peers to dial).
    pub fn mesh(&self) -> String {
        self.cluster
            .mesh()
            .map(|m| m.local_addr().to_string())
            .unwrap_or_default()
    }
}

/// Waits until every node has every other one as a linked peer.
pub async fn linked(nodes: &[&OpsNode]) {
    let want = nodes.len() - 1;
    assert!(
        eventually(Duration::from_secs(10), || nodes
            .iter()
            .all(|n| n.cluster.connected_peer_count() == want))
        .await,
        "full mesh"
    );
}

/// Three linked nodes a, b, c (b and c dial a).
pub async fn three_nodes() -> (OpsNode, OpsNode, OpsNode) {
    let a = OpsNode::start(NodeSpec::new("a")).await;
    let b = OpsNode::start(NodeSpec::new("b").peer(a.mesh())).await;
    let c = OpsNode::start(NodeSpec::new("c").peer(a.mesh())).await;
    linked(&[&a, &b, &c]).await;
    (a, b, c)
}

/// An HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    /// The status code.
    pub status: u16,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Resp {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

/// Sends one request and reads the whole response (the server closes after it, or
/// `Content-Length` says where it ends). `token` adds `Authorization: Bearer`.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Resp {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(body.unwrap_or(""));
    raw(addr, head.as_bytes()).await
}

/// Sends raw bytes and parses the response.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let work = async {
        let mut s = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.write_all(bytes)
            .await
            .unwrap_or_else(|e| panic!("write: {e}"));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(r) = parse(&buf) {
                return r;
            }
            let n = s.read(&mut chunk).await.unwrap_or(0);
            if n == 0 {
                return parse(&buf).unwrap_or_else(|| {
                    panic!("incomplete response: {:?}", String::from_utf8_lossy(&buf))
                });
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .unwrap_or_else(|_| panic!("no response from {addr} within 10 s"))
}

/// A whole response in `buf`, if it is complete (by `Content-Length`).
fn parse(buf: &[u8]) -> Option<Resp> {
    let text = String::from_utf8_lossy(buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())?;
    (body.len() >= len).then(|| Resp {
        status,
        headers,
        body: body[..len].to_owned(),
    })
}

/// `GET target` with the test token.
pub async fn get(addr: SocketAddr, target: &str) -> Resp {
    request(addr, "GET", target, Some(TOKEN), None).await
}

/// `POST target body` with the test token.
pub async fn post(addr: SocketAddr, target: &str, body: &str) -> Resp {
    request(addr, "POST", target, Some(TOKEN), Some(body)).await
}
