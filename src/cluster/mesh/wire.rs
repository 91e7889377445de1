//! Bytes on a mesh link: 4-byte big-endian length prefix, then either a handshake message
//! (before the link is authenticated) or an [`Envelope`](crate::cluster::envelope::Envelope).

use std::io;

use bytes::{Bytes, BytesMut};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Handshake magic and version: the first message on every link names it. Version 2: the dialer
/// proves knowledge of the secret first, the acceptor only after checking that proof (version 1
/// sent the acceptor's proof to anyone; its nodes are refused with this reason).
pub const LINK_PROTOCOL: &str = "wscluster-mesh/2";

/// Length of a link nonce (the handshake's hello and its answer each carry one).
pub const NONCE_LEN: usize = 32;

/// A resume point: what a node last received from the other, per the other's incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resume {
    /// The incarnation of the other node those frames came from.
    pub incarnation: u64,
    /// The last sequence number received from it.
    pub last_seq: u64,
}

/// The link handshake, in this order: [`Hello`](HandshakeMsg::Hello) (dialer),
/// [`Challenge`](HandshakeMsg::Challenge) (acceptor, no proof), [`Proof`](HandshakeMsg::Proof)
/// (dialer), [`Welcome`](HandshakeMsg::Welcome) (acceptor's proof, only after it checked the
/// dialer's), or a [`Refuse`](HandshakeMsg::Refuse) at any step. See `auth.rs` for the proofs. The
/// variant order is part of the encoding: `Refuse` keeps its place so that a refusal from a node
/// of another link protocol version is still understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HandshakeMsg {
    /// Dialer → acceptor: who I am.
    Hello {
        /// Always [`LINK_PROTOCOL`].
        protocol: String,
        /// The cluster the dialer belongs to.
        cluster: String,
        /// The dialer's node id.
        node_id: String,
        /// The dialer's incarnation.
        incarnation: u64,
        /// Where the dialer accepts links (used only once the dialer has proved the secret).
        listen: Option<String>,
        /// The dialer's nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// Acceptor → dialer: who I am and my nonce; no proof yet.
    Challenge {
        /// The acceptor's node id.
        node_id: String,
        /// The acceptor's incarnation.
        incarnation: u64,
        /// The acceptor's nonce.
        nonce: [u8; NONCE_LEN],
    },
    /// Dialer → acceptor: the dialer's proof.
    Proof {
        /// HMAC proof of the dialer.
        proof: Vec<u8>,
        /// What the dialer last received from the acceptor.
        resume: Option<Resume>,
    },
    /// Acceptor → dialer, once the dialer's proof checked out: the acceptor's proof; the link is
    /// up for the acceptor.
    Welcome {
        /// HMAC proof of the acceptor.
        proof: Vec<u8>,
        /// Where the acceptor accepts links.
        listen: Option<String>,
        /// What the acceptor last received from the dialer.
        resume: Option<Resume>,
    },
    /// Either way: the link is refused, and why (logged by both ends).
    Refuse {
        /// Human-readable reason.
        reason: String,
    },
}

impl HandshakeMsg {
    /// Encodes the message (postcard).
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_stdvec(self).unwrap_or_default())
    }

    /// Decodes a message; `None` when the bytes are not one.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }
}

/// One frame on its way out: an envelope header and its (shared) payload, written back to back
/// after one length prefix, so a payload going to several peers is never copied.
#[derive(Debug, Clone)]
pub struct WireFrame {
    /// The envelope header (or a whole small frame).
    pub head: Bytes,
    /// The payload, shared between peers.
    pub body: Bytes,
}

impl WireFrame {
    /// A frame that is all head.
    pub fn whole(bytes: Bytes) -> Self {
        Self {
            head: bytes,
            body: Bytes::new(),
        }
    }

    /// Bytes on the wire without the length prefix.
    pub fn len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    /// Whether the frame has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads one length-prefixed frame of at most `max` bytes. `Ok(None)` at a clean end of stream.
pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("mesh frame of {len} bytes exceeds the cap of {max}"),
        ));
    }
    let mut buf = BytesMut::zeroed(len);
    r.read_exact(&mut buf).await?;
    Ok(Some(buf.freeze()))
}

/// Writes frames, each with its length prefix, without flushing.
pub async fn write_frames<W: AsyncWrite + Unpin>(
    w: &mut W,
    frames: impl IntoIterator<Item = WireFrame>,
) -> io::Result<()> {
    for f in frames {
        let len = u32::try_from(f.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mesh frame too large"))?;
        w.write_all(&len.to_be_bytes()).await?;
        w.write_all(&f.head).await?;
        if !f.body.is_empty() {
            w.write_all(&f.body).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_oversize_is_refused() {
        let mut out = Vec::new();
        write_frames(
            &mut out,
            [
                WireFrame {
                    head: Bytes::from_static(b"a"),
                    body: Bytes::from_static(b"bc"),
                },
                WireFrame::whole(Bytes::new()),
            ],
        )
        .await
        .expect("write");
        let mut r: &[u8] = &out;
        assert_eq!(
            read_frame(&mut r, 10).await.expect("read"),
            Some(Bytes::from_static(b"abc"))
        );
        assert_eq!(
            read_frame(&mut r, 10).await.expect("read"),
            Some(Bytes::new())
        );
        assert_eq!(read_frame(&mut r, 10).await.expect("read"), None);
        let mut r: &[u8] = &out;
        assert!(read_frame(&mut r, 2).await.is_err());
    }

    /// The acceptor's first answer carries no proof, and a refusal keeps the variant number it
    /// had in link protocol 1, so a node of the other version still reads why it was refused.
    #[test]
    fn the_challenge_has_no_proof_and_refusals_stay_readable_across_versions() {
        let c = HandshakeMsg::Challenge {
            node_id: "a".into(),
            incarnation: 1,
            nonce: [7; NONCE_LEN],
        };
        // variant, id (length + byte), incarnation, nonce: nothing else.
        assert_eq!(c.encode().len(), 1 + 2 + 1 + NONCE_LEN);
        let r = HandshakeMsg::Refuse { reason: "x".into() };
        assert_eq!(r.encode().first(), Some(&4));
        assert_eq!(LINK_PROTOCOL, "wscluster-mesh/2");
    }

    #[test]
    fn handshake_messages_round_trip_and_garbage_is_none() {
        let m = HandshakeMsg::Refuse {
            reason: "wrong cluster".into(),
        };
        assert_eq!(HandshakeMsg::decode(&m.encode()), Some(m));
        assert_eq!(HandshakeMsg::decode(&[0xff, 0xff, 0xff]), None);
    }
}
