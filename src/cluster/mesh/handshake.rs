//! The link handshake, both roles: the dialer's hello, the acceptor's challenge (its id and nonce,
//! no proof), the dialer's proof, then, only once that proof checked out, the acceptor's welcome
//! with its own proof (or a refusal with its reason at any step). See `auth.rs` for the proofs and `wire.rs` for the
//! messages. A successful handshake yields an [`Established`] link for `link.rs` to run.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;
use super::auth::{self, Role, Transcript};
use super::wire::{self, HandshakeMsg, LINK_PROTOCOL, Resume, WireFrame};
use crate::cluster::envelope::Origin;

/// Why a link could not be established.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("handshake timed out")]
    Timeout,
    #[error("peer closed during the handshake")]
    Closed,
    #[error("unexpected handshake message")]
    Unexpected,
    #[error("refused by peer: {0}")]
    RefusedByPeer(String),
    #[error("refused: {0}")]
    Refused(String),
    #[error("dialled ourselves")]
    SelfDial,
    /// The TLS handshake failed (a certificate not signed by the cluster CA, a missing client
    /// certificate, a peer not speaking TLS): no cluster frame was exchanged.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The reading half of a link: plain TCP or TLS.
pub(crate) type OwnedReadHalf = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a link: plain TCP or TLS.
pub(crate) type OwnedWriteHalf = Box<dyn AsyncWrite + Send + Unpin>;

/// Splits a plain TCP link (its own halves, no lock between reader and writer).
fn split_tcp(stream: TcpStream) -> (OwnedReadHalf, OwnedWriteHalf) {
    let (rd, wr) = stream.into_split();
    (Box::new(rd), Box::new(wr))
}

/// Splits a TLS link (the halves share the session).
fn split_tls<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
    stream: S,
) -> (OwnedReadHalf, OwnedWriteHalf) {
    let (rd, wr) = tokio::io::split(stream);
    (Box::new(rd), Box::new(wr))
}

/// With TLS 1.3 the dialer's handshake completes before the acceptor has checked the dialer's
/// certificate: a refusal (a TLS alert) shows up at the first read of the link handshake. That
/// I/O error is a TLS refusal, and is reported as one.
fn tls_failure(e: LinkError) -> LinkError {
    match e {
        LinkError::Io(io) => match io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(t) => LinkError::Tls(t.to_string()),
            None => LinkError::Io(io),
        },
        other => other,
    }
}

/// Wraps an accepted connection in TLS when mesh TLS is on: the peer's certificate is checked
/// (and with `require_client_cert` required) before any cluster frame is read.
pub(crate) async fn accept_stream(
    shared: &Shared,
    stream: TcpStream,
) -> Result<(OwnedReadHalf, OwnedWriteHalf), LinkError> {
    let _ = stream.set_nodelay(true);
    match &shared.tls {
        None => Ok(split_tcp(stream)),
        Some(tls) => {
            let s = tls
                .acceptor()
                .accept(stream)
                .await
                .map_err(|e| LinkError::Tls(e.to_string()))?;
            Ok(split_tls(s))
        }
    }
}

/// How long a closing link may take to flush what it still has to send.
pub(crate) const CLOSE_GRACE: std::time::Duration = std::time::Duration::from_millis(500);

/// The refusal reason an acceptor gives a node that dialled itself (an address gossiped back).
const SELF_DIAL: &str = "self";

/// What a successful handshake established.
pub(crate) struct Established {
    pub(crate) peer: Origin,
    pub(crate) listen: Option<String>,
    pub(crate) peer_resume: Option<Resume>,
    pub(crate) dialer: Arc<str>,
}

async fn send_msg(wr: &mut OwnedWriteHalf, msg: &HandshakeMsg) -> Result<(), LinkError> {
    wire::write_frames(wr, [WireFrame::whole(msg.encode())]).await?;
    wr.flush().await?;
    Ok(())
}

async fn recv_msg(rd: &mut OwnedReadHalf) -> Result<HandshakeMsg, LinkError> {
    let frame = wire::read_frame(rd, 64 * 1024)
        .await?
        .ok_or(LinkError::Closed)?;
    HandshakeMsg::decode(&frame).ok_or(LinkError::Unexpected)
}

async fn refuse(wr: &mut OwnedWriteHalf, reason: &str) -> LinkError {
    let _ = send_msg(
        wr,
        &HandshakeMsg::Refuse {
            reason: reason.to_owned(),
        },
    )
    .await;
    LinkError::Refused(reason.to_owned())
}

fn resume_for(shared: &Shared, node_id: &str, incarnation: u64) -> Option<Resume> {
    let st = shared.state.lock();
    st.peers
        .get(node_id)
        .filter(|p| p.incarnation == incarnation)
        .map(|p| Resume {
            incarnation,
            last_seq: p.inbound.last(),
        })
}

pub(crate) fn advertised(shared: &Shared) -> String {
    if shared.cfg.advertise.is_empty() {
        shared.local_addr.to_string()
    } else {
        shared.cfg.advertise.clone()
    }
}

/// Refusal reasons this node sends. They never quote what the peer sent (that is logged at debug,
/// escaped), so they are safe to log at warn on both ends.
pub(crate) const REFUSE_SECRET: &str = "authentication failed: wrong cluster secret";
const REFUSE_CLUSTER: &str = "wrong cluster name";
const REFUSE_PROTOCOL: &str = "unsupported link protocol";
const REFUSE_NODE_ID: &str = "unusable or duplicate node id";
const REFUSE_NO_HELLO: &str = "expected a hello";
const REFUSE_SAME_ID: &str = "same node id";
const REFUSE_ACCEPTOR_PROOF: &str = "authentication failed: the acceptor's proof is wrong";

/// The reason a peer gave for refusing a link, as safe text for a warn line: one of the reasons
/// this node knows (a peer's reason is unauthenticated input), else a placeholder; the raw reason
/// goes to debug, escaped.
pub(crate) fn known_reason(reason: &str) -> &'static str {
    [
        REFUSE_SECRET,
        REFUSE_CLUSTER,
        REFUSE_PROTOCOL,
        REFUSE_NODE_ID,
        REFUSE_NO_HELLO,
        REFUSE_SAME_ID,
        REFUSE_ACCEPTOR_PROOF,
    ]
    .into_iter()
    .find(|known| reason.starts_with(known))
    .unwrap_or("another reason (logged at debug)")
}

pub(crate) async fn dial_handshake(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
) -> Result<Established, LinkError> {
    let nonce = auth::new_nonce();
    send_msg(
        wr,
        &HandshakeMsg::Hello {
            protocol: LINK_PROTOCOL.into(),
            cluster: shared.cfg.cluster_name.clone(),
            node_id: shared.me.node_id.to_string(),
            incarnation: shared.me.incarnation,
            listen: Some(advertised(shared)),
            nonce,
        },
    )
    .await?;
    let (node_id, incarnation, their_nonce) = match recv_msg(rd).await? {
        HandshakeMsg::Challenge {
            node_id,
            incarnation,
            nonce,
        } => (node_id, incarnation, nonce),
        HandshakeMsg::Refuse { reason } if reason == SELF_DIAL => return Err(LinkError::SelfDial),
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    };
    if *node_id == *shared.me.node_id {
        let _ = refuse(wr, REFUSE_SAME_ID).await;
        return Err(LinkError::SelfDial);
    }
    let t = Transcript {
        cluster: &shared.cfg.cluster_name,
        dialer_id: &shared.me.node_id,
        acceptor_id: &node_id,
        dialer_nonce: &nonce,
        acceptor_nonce: &their_nonce,
    };
    let secret = shared.cfg.secret.as_bytes();
    send_msg(
        wr,
        &HandshakeMsg::Proof {
            proof: auth::proof(secret, Role::Dialer, &t),
            resume: resume_for(shared, &node_id, incarnation),
        },
    )
    .await?;
    let (proof, listen, resume) = match recv_msg(rd).await? {
        HandshakeMsg::Welcome {
            proof,
            listen,
            resume,
        } => (proof, listen, resume),
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    };
    if !auth::verify(secret, Role::Acceptor, &t, &proof) {
        return Err(refuse(wr, REFUSE_ACCEPTOR_PROOF).await);
    }
    Ok(Established {
        peer: Origin {
            node_id: Arc::from(node_id),
            incarnation,
        },
        listen,
        peer_resume: resume,
        dialer: shared.me.node_id.clone(),
    })
}

/// The acceptor's side. Nothing computed with the secret is sent before the dialer's proof has
/// been checked; what the dialer claims before that (its cluster, id, listen address) is logged at
/// debug only, escaped, and its listen address is used only once the link is authenticated.
pub(crate) async fn accept_handshake(
    shared: &Shared,
    rd: &mut OwnedReadHalf,
    wr: &mut OwnedWriteHalf,
    remote: SocketAddr,
) -> Result<Established, LinkError> {
    let (protocol, cluster, node_id, incarnation, listen, their_nonce) = match recv_msg(rd).await? {
        HandshakeMsg::Hello {
            protocol,
            cluster,
            node_id,
            incarnation,
            listen,
            nonce,
        } => (protocol, cluster, node_id, incarnation, listen, nonce),
        _ => return Err(refuse(wr, REFUSE_NO_HELLO).await),
    };
    tracing::debug!(
        addr = %remote,
        ?protocol,
        ?cluster,
        ?node_id,
        ?listen,
        "mesh hello (not yet authenticated)"
    );
    if protocol != LINK_PROTOCOL {
        return Err(refuse(
            wr,
            &format!("{REFUSE_PROTOCOL}: this node speaks {LINK_PROTOCOL}; every node of a cluster must run a version speaking the same link protocol"),
        )
        .await);
    }
    if cluster != shared.cfg.cluster_name {
        return Err(refuse(wr, REFUSE_CLUSTER).await);
    }
    if *node_id == *shared.me.node_id && incarnation == shared.me.incarnation {
        let _ = send_msg(
            wr,
            &HandshakeMsg::Refuse {
                reason: SELF_DIAL.into(),
            },
        )
        .await;
        return Err(LinkError::SelfDial);
    }
    if node_id.is_empty() || node_id.len() > 255 || *node_id == *shared.me.node_id {
        return Err(refuse(wr, REFUSE_NODE_ID).await);
    }
    let nonce = auth::new_nonce();
    send_msg(
        wr,
        &HandshakeMsg::Challenge {
            node_id: shared.me.node_id.to_string(),
            incarnation: shared.me.incarnation,
            nonce,
        },
    )
    .await?;
    let (proof, resume) = match recv_msg(rd).await? {
        HandshakeMsg::Proof { proof, resume } => (proof, resume),
        HandshakeMsg::Refuse { reason } => return Err(LinkError::RefusedByPeer(reason)),
        _ => return Err(LinkError::Unexpected),
    };
    let t = Transcript {
        cluster: &shared.cfg.cluster_name,
        dialer_id: &node_id,
        acceptor_id: &shared.me.node_id,
        dialer_nonce: &their_nonce,
        acceptor_nonce: &nonce,
    };
    let secret = shared.cfg.secret.as_bytes();
    if !auth::verify(secret, Role::Dialer, &t, &proof) {
        return Err(refuse(wr, REFUSE_SECRET).await);
    }
    // Authenticated from here on.
    send_msg(
        wr,
        &HandshakeMsg::Welcome {
            proof: auth::proof(secret, Role::Acceptor, &t),
            listen: Some(advertised(shared)),
            resume: resume_for(shared, &node_id, incarnation),
        },
    )
    .await?;
    Ok(Established {
        peer: Origin {
            node_id: Arc::from(node_id.as_str()),
            incarnation,
        },
        listen: listen.map(|l| reachable(&l, remote)),
        peer_resume: resume,
        dialer: Arc::from(node_id),
    })
}

/// An advertised `0.0.0.0:port` (or `[::]:port`) is reached at the address the peer came from.
fn reachable(listen: &str, remote: SocketAddr) -> String {
    match listen.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => SocketAddr::new(remote.ip(), a.port()).to_string(),
        _ => listen.to_owned(),
    }
}

/// Dials `addr` once: connect, handshake.
pub(crate) async fn dial(
    shared: &Shared,
    addr: &str,
) -> Result<(Established, OwnedReadHalf, OwnedWriteHalf), LinkError> {
    let go = async {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let remote = stream.peer_addr()?;
        let tls = shared.tls.is_some();
        let (mut rd, mut wr) = match &shared.tls {
            None => split_tcp(stream),
            Some(tls) => {
                let s = tls
                    .connector()
                    .connect(crate::tls::MeshTls::server_name(), stream)
                    .await
                    .map_err(|e| LinkError::Tls(e.to_string()))?;
                split_tls(s)
            }
        };
        let mut est = dial_handshake(shared, &mut rd, &mut wr)
            .await
            .map_err(|e| if tls { tls_failure(e) } else { e })?;
        est.listen = est.listen.map(|l| reachable(&l, remote));
        Ok::<_, LinkError>((est, rd, wr))
    };
    tokio::time::timeout(shared.cfg.handshake_timeout(), go)
        .await
        .unwrap_or(Err(LinkError::Timeout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reasons_a_node_sends_reach_the_warn_line() {
        assert_eq!(known_reason(REFUSE_SECRET), REFUSE_SECRET);
        assert_eq!(
            known_reason("unsupported link protocol: this node speaks wscluster-mesh/9"),
            REFUSE_PROTOCOL
        );
        let forged = "ok\n2026-01-01 INFO peer connected peer=admin\u{1b}[2J";
        assert_eq!(known_reason(forged), "another reason (logged at debug)");
    }
}
