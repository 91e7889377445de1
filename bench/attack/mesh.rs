//! Attacks on the mesh cluster port: is it listening on the network with no secret, does a
//! stranger's `Hello` get the acceptor's HMAC proof back (an offline oracle for the secret), and
//! does a second node with no secret join and reach the victim's subscribers.
//!
//! The handshake messages are the crate's own (`wscluster::internals::cluster::mesh::wire`), so the tool
//! always speaks the wire format of the code it is built with; only the framing (a 4-byte
//! big-endian length, then the postcard bytes) is written here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use wscluster::internals::cluster::mesh::wire::{HandshakeMsg, LINK_PROTOCOL};

use crate::Ctx;
use crate::node::{Expect, Node};
use crate::report::{Outcome, Row};
use crate::sgc;
use crate::ws::Msg;

/// The listening TCP sockets of process `pid`, from `/proc/net/tcp{,6}` and the process's
/// file descriptors: (address, port).
fn listening_sockets(pid: u32) -> Result<Vec<(IpAddr, u16)>, String> {
    let mut inodes = std::collections::HashSet::new();
    let fds =
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| format!("/proc/{pid}/fd: {e}"))?;
    for fd in fds.flatten() {
        if let Ok(target) = std::fs::read_link(fd.path()) {
            let t = target.to_string_lossy().into_owned();
            if let Some(inode) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
                inodes.insert(inode.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() < 10 || cols[3] != "0A" || !inodes.contains(cols[9]) {
                continue;
            }
            let Some((addr, port)) = cols[1].split_once(':') else {
                continue;
            };
            let Ok(port) = u16::from_str_radix(port, 16) else {
                continue;
            };
            let ip = if v6 { parse_v6(addr) } else { parse_v4(addr) };
            if let Some(ip) = ip {
                out.push((ip, port));
            }
        }
    }
    Ok(out)
}

/// `/proc/net/tcp` writes an IPv4 address as one native-endian (little-endian here) u32 in hex.
fn parse_v4(hex: &str) -> Option<IpAddr> {
    let n = u32::from_str_radix(hex, 16).ok()?;
    Some(IpAddr::V4(Ipv4Addr::from(n.to_le_bytes())))
}

/// `/proc/net/tcp6` writes an IPv6 address as four native-endian u32 in hex.
fn parse_v6(hex: &str) -> Option<IpAddr> {
    if hex.len() != 32 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..4 {
        let word = u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    let v6 = Ipv6Addr::from(bytes);
    Some(match v6.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(v6),
    })
}

/// Starts the victim of the mesh attacks: a node as shipped, on ephemeral ports, logging at
/// debug (the log-injection attack reads its standard error).
pub(crate) fn victim(ctx: &Ctx) -> Result<Node, String> {
    Node::start(
        &ctx.bin,
        &[
            "--cluster-port".into(),
            "0".into(),
            "--log-level".into(),
            "debug".into(),
        ],
        Expect {
            mesh: true,
            admin: false,
        },
    )
}

/// Attack 1: the cluster port listens on a non-loopback address with no secret. Only reads
/// `/proc`: nothing is sent to a non-loopback address.
pub(crate) fn open_port(ctx: &Ctx, node: &Node) -> (Row, bool) {
    const NAME: &str = "open-cluster-port";
    let Some(mesh) = node.mesh else {
        return (Row::error(NAME, "the node printed no mesh address"), false);
    };
    let sockets = match listening_sockets(node.pid()) {
        Ok(s) => s,
        Err(e) => return (Row::error(NAME, e), false),
    };
    let on_port: Vec<IpAddr> = sockets
        .iter()
        .filter(|(_, p)| *p == mesh.port())
        .map(|(ip, _)| *ip)
        .collect();
    if on_port.is_empty() {
        return (
            Row::error(
                NAME,
                format!("no listening socket on the mesh port {}", mesh.port()),
            ),
            false,
        );
    }
    let exposed: Vec<String> = on_port
        .iter()
        .filter(|ip| !ip.is_loopback())
        .map(|ip| ip.to_string())
        .collect();
    let secret = ctx.config_str("cluster.secret").unwrap_or_default();
    let listed = on_port
        .iter()
        .map(|ip| format!("{ip}:{}", mesh.port()))
        .collect::<Vec<_>>()
        .join(", ");
    if exposed.is_empty() {
        (
            Row::new(
                NAME,
                Outcome::Refused,
                "mesh port on loopback only",
                format!("listening on {listed}"),
            ),
            false,
        )
    } else if secret.is_empty() {
        (
            Row::new(
                NAME,
                Outcome::Vulnerable,
                "no secret, no mTLS",
                format!(
                    "cluster port listening on {listed} (all interfaces) with an empty cluster.secret"
                ),
            ),
            true,
        )
    } else {
        (
            Row::new(
                NAME,
                Outcome::Refused,
                "secret set",
                format!("listening on {listed} with a secret"),
            ),
            true,
        )
    }
}

/// Writes one length-prefixed handshake message.
async fn send_msg(s: &mut TcpStream, msg: &HandshakeMsg) -> Result<(), String> {
    let bytes = msg.encode();
    let len = u32::try_from(bytes.len()).map_err(|_| "message too long")?;
    s.write_all(&len.to_be_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    s.write_all(&bytes).await.map_err(|e| format!("write: {e}"))
}

/// Reads length-prefixed frames until the peer closes or `deadline`; at most `max` frames.
async fn read_frames(s: &mut TcpStream, deadline: Instant, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < max {
        let mut len = [0u8; 4];
        match tokio::time::timeout_at(deadline, s.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > 1 << 20 {
            break;
        }
        let mut buf = vec![0u8; len];
        match tokio::time::timeout_at(deadline, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) => out.push(buf),
            _ => break,
        }
    }
    out
}

/// A stranger's `Hello`: valid protocol and cluster name, a fresh nonce.
fn hello(cluster: &str, node_id: &str, protocol: &str) -> HandshakeMsg {
    let mut nonce = [0u8; 32];
    fastrand::fill(&mut nonce);
    HandshakeMsg::Hello {
        protocol: protocol.to_owned(),
        cluster: cluster.to_owned(),
        node_id: node_id.to_owned(),
        incarnation: 1,
        listen: None,
        nonce,
    }
}

/// Whether a decoded handshake message carries a non-empty `proof` (read from its `Debug` form,
/// so the check holds whatever the variant is called and wherever the proof moves).
fn carries_proof(msg: &HandshakeMsg) -> bool {
    let text = format!("{msg:?}");
    text.match_indices("proof: [")
        .any(|(i, m)| !text[i + m.len()..].starts_with(']'))
}

/// Sends `hello` to the mesh port and returns the handshake messages that came back (decoded,
/// with the count of frames that did not decode).
async fn knock(
    mesh: SocketAddr,
    hello: &HandshakeMsg,
) -> Result<(Vec<HandshakeMsg>, usize), String> {
    let target = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), mesh.port());
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(target))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect {target}: {e}"))?;
    send_msg(&mut s, hello).await?;
    let frames = read_frames(&mut s, Instant::now() + Duration::from_secs(3), 4).await;
    let mut msgs = Vec::new();
    let mut undecoded = 0;
    for f in frames {
        match HandshakeMsg::decode(&f) {
            Some(m) => msgs.push(m),
            None => undecoded += 1,
        }
    }
    Ok((msgs, undecoded))
}

/// Attack 2: a stranger's `Hello` gets the acceptor's HMAC proof back.
pub(crate) async fn oracle(ctx: &Ctx, node: &Node) -> Row {
    const NAME: &str = "handshake-oracle";
    let Some(mesh) = node.mesh else {
        return Row::error(NAME, "the node printed no mesh address");
    };
    let cluster = ctx
        .config_str("cluster.name")
        .unwrap_or_else(|| "wscluster".into());
    let (msgs, undecoded) = match knock(mesh, &hello(&cluster, "stranger", LINK_PROTOCOL)).await {
        Ok(r) => r,
        Err(e) => return Row::error(NAME, e),
    };
    let seen = msgs
        .iter()
        .map(|m| {
            format!("{m:?}")
                .split([' ', '{', '('])
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join(", ");
    if msgs.iter().any(carries_proof) {
        Row::new(
            NAME,
            Outcome::Vulnerable,
            "proof before the dialer proved anything",
            format!(
                "an unauthenticated Hello got [{seen}] back, with the acceptor's HMAC proof: an offline oracle for the secret"
            ),
        )
    } else {
        Row::new(
            NAME,
            Outcome::Refused,
            "no proof to a stranger",
            format!(
                "an unauthenticated Hello got [{seen}] back ({undecoded} undecodable), no proof"
            ),
        )
    }
}

/// Attack 3: a second node with no secret joins the victim and its publishes reach the victim's
/// subscribers. Refused when it cannot, or when the victim's cluster port is on loopback only
/// (then only a process on the same host can join: the network cannot).
pub(crate) async fn stranger_joins(ctx: &Ctx, node: &Node, exposed: bool) -> Row {
    const NAME: &str = "stranger-joins";
    let Some(mesh) = node.mesh else {
        return Row::error(NAME, "the node printed no mesh address");
    };
    let target = format!("127.0.0.1:{}", mesh.port());
    let stranger = match Node::start(
        &ctx.bin,
        &["--cluster-port".into(), "0".into(), "--peer".into(), target],
        Expect {
            mesh: true,
            admin: false,
        },
    ) {
        Ok(n) => n,
        Err(e) => return Row::error(NAME, format!("the stranger node: {e}")),
    };
    let channel = "open-cluster";
    let mut sub = match sgc::client(node.ws).await {
        Ok(ws) => ws,
        Err(e) => return Row::error(NAME, e),
    };
    if let Err(m) = sgc::sync(&mut sub, channel, Duration::from_secs(5)).await {
        return Row::error(NAME, format!("subscribe: {m:?}"));
    }
    let mut publisher = match sgc::client(stranger.ws).await {
        Ok(ws) => ws,
        Err(e) => return Row::error(NAME, e),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut reached = false;
    while Instant::now() < deadline && !reached {
        if let Err(e) = publisher
            .send(&sgc::publish(channel, "from-a-stranger", "queueLevel0"))
            .await
        {
            return Row::error(NAME, format!("publish on the stranger: {e}"));
        }
        let step = Instant::now() + Duration::from_millis(250);
        loop {
            match sub.recv(step).await {
                Msg::Text(t) if sgc::is_event(&t, channel, "from-a-stranger") => {
                    reached = true;
                    break;
                }
                Msg::Text(_) => {}
                Msg::Timeout => break,
                other => return Row::error(NAME, format!("the subscriber was closed: {other:?}")),
            }
        }
    }
    drop(stranger);
    match (reached, exposed) {
        (true, true) => Row::new(
            NAME,
            Outcome::Vulnerable,
            "no secret, port open to the network",
            "a node with no secret joined with --peer and its publish reached the victim's subscriber",
        ),
        (true, false) => Row::new(
            NAME,
            Outcome::Refused,
            "mesh port on loopback only",
            "a node on the same host joined (no secret); the network cannot reach the port",
        ),
        (false, _) => Row::new(
            NAME,
            Outcome::Refused,
            "join refused",
            "a node with no secret did not reach the victim's subscriber within 10 s",
        ),
    }
}

/// The markers the mesh log injection leaves when a string reaches the log raw.
pub(crate) const MESH_MARKERS: [&[u8]; 2] = [b"\x1b[7mATK-MESH", b"\nFORGED-MESH"];

/// Attack 10, mesh half: control characters and ANSI escapes in the pre-authentication strings
/// of a `Hello` (link protocol, node id). The victim's log is read by [`crate::logs`].
pub(crate) async fn inject(ctx: &Ctx, node: &Node) -> Result<(), String> {
    let mesh = node.mesh.ok_or("the node printed no mesh address")?;
    let cluster = ctx
        .config_str("cluster.name")
        .unwrap_or_else(|| "wscluster".into());
    let evil = "x\x1b[7mATK-MESH\x1b[0m\nFORGED-MESH INFO wscluster: forged line\r";
    knock(mesh, &hello(&cluster, "stranger", evil)).await?;
    knock(mesh, &hello(&cluster, evil, LINK_PROTOCOL)).await?;
    knock(mesh, &hello(evil, "stranger", LINK_PROTOCOL)).await?;
    Ok(())
}
