//! The inter-node envelope: one versioned binary frame format shared by every engine.
//!
//! ```text
//! offset  size  field
//! 0       1     version (1)
//! 1       1     kind
//! 2       8     incarnation of the origin (big endian)
//! 10      8     per-origin sequence number (big endian; 0 for unsequenced control frames)
//! 18      1     length of the origin node id (n, 1..=255)
//! 19      n     origin node id (UTF-8)
//! 19+n    ...   payload (kind-specific; message payloads are raw bytes, never re-encoded)
//! ```
//!
//! Decoding borrows nothing: the payload is a zero-copy slice of the received `Bytes`.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

/// The envelope format version this node writes and accepts.
pub const VERSION: u8 = 1;

/// Bytes before the node id.
const FIXED_HEADER: usize = 19;

/// What an envelope carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A node announces itself (id, incarnation, cluster name, listen address).
    Hello = 1,
    /// A node is alive.
    Heartbeat = 2,
    /// A node is stopping gracefully: purge its members now.
    Bye = 3,
    /// Receiver's cumulative acknowledgment of sequence numbers (mesh links).
    Ack = 4,
    /// Which channels a node has local subscribers for (interest routing).
    Interest = 5,
    /// "Send me your snapshots": a node that saw this peer come up wants its current state.
    SnapshotRequest = 6,
    /// "This link is replaced by another one to the same node": its close is not a failure.
    Superseded = 7,
    /// A question for one node (`cluster::query`): an 8-byte request id, then the asker's bytes.
    Query = 8,
    /// The answer to a [`Kind::Query`]: the request's id, then the answerer's bytes.
    QueryReply = 9,
    /// An sgc publish.
    SgcPublish = 10,
    /// An sgc broadcast.
    SgcBroadcast = 11,
    /// An sgc retained queue was cleared.
    SgcClearQueue = 12,
    /// The retained queues of a node, for a late joiner.
    SgcRetainedSnapshot = 13,
    /// An sgc publish with an idempotency key (sent to every node).
    SgcPublishOnce = 14,
    /// A Presence change (member or channel membership, publish, invitation).
    PresenceDelta = 20,
    /// The local Presence members of a node, for a late joiner or after a partition.
    PresenceSnapshot = 21,
    /// A survivor delivered the lifecycle webhooks of a crashed node: the other survivors drop
    /// their copies.
    WebhooksDelivered = 30,
    /// A node's open connections (one opened, one closed, or all of them for a new peer), so a
    /// survivor can report them closed when the node crashes.
    WebhooksConnections = 31,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Kind::Hello,
            2 => Kind::Heartbeat,
            3 => Kind::Bye,
            4 => Kind::Ack,
            5 => Kind::Interest,
            6 => Kind::SnapshotRequest,
            7 => Kind::Superseded,
            8 => Kind::Query,
            9 => Kind::QueryReply,
            10 => Kind::SgcPublish,
            11 => Kind::SgcBroadcast,
            12 => Kind::SgcClearQueue,
            13 => Kind::SgcRetainedSnapshot,
            14 => Kind::SgcPublishOnce,
            20 => Kind::PresenceDelta,
            21 => Kind::PresenceSnapshot,
            30 => Kind::WebhooksDelivered,
            31 => Kind::WebhooksConnections,
            _ => return None,
        })
    }
}

/// Who sent an envelope: a node and the incarnation (process start) it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The node's configured or derived name.
    pub node_id: Arc<str>,
    /// Random value drawn at every start of the node's process.
    pub incarnation: u64,
}

/// One inter-node message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// What it carries.
    pub kind: Kind,
    /// Who sent it.
    pub origin: Origin,
    /// Per-origin sequence number (0 when unsequenced).
    pub seq: u64,
    /// Kind-specific payload.
    pub payload: Bytes,
}

/// Why bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Fewer bytes than the header needs.
    #[error("envelope truncated")]
    Truncated,
    /// A version this node does not speak.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// An unknown kind.
    #[error("unknown envelope kind {0}")]
    Kind(u8),
    /// The node id is empty or not UTF-8.
    #[error("invalid origin node id")]
    NodeId,
    /// The node id is longer than 255 bytes.
    #[error("node id longer than 255 bytes")]
    NodeIdTooLong,
}

impl Envelope {
    /// Encodes the envelope into one buffer.
    pub fn encode(&self) -> Result<Bytes, EnvelopeError> {
        let head = Self::encode_header(self.kind, &self.origin, self.seq)?;
        let mut out = BytesMut::with_capacity(head.len() + self.payload.len());
        out.put_slice(&head);
        out.put_slice(&self.payload);
        Ok(out.freeze())
    }

    /// Encodes just the header of an envelope whose payload travels separately (see the mesh's
    /// `WireFrame`): header followed by payload is exactly [`Envelope::encode`].
    pub fn encode_header(kind: Kind, origin: &Origin, seq: u64) -> Result<Bytes, EnvelopeError> {
        let id = origin.node_id.as_bytes();
        if id.is_empty() {
            return Err(EnvelopeError::NodeId);
        }
        let id_len = u8::try_from(id.len()).map_err(|_| EnvelopeError::NodeIdTooLong)?;
        let mut out = BytesMut::with_capacity(FIXED_HEADER + id.len());
        out.put_u8(VERSION);
        out.put_u8(kind as u8);
        out.put_u64(origin.incarnation);
        out.put_u64(seq);
        out.put_u8(id_len);
        out.put_slice(id);
        Ok(out.freeze())
    }

    /// Decodes an envelope; the payload shares `bytes`.
    pub fn decode(bytes: Bytes) -> Result<Self, EnvelopeError> {
        if bytes.len() < FIXED_HEADER {
            return Err(EnvelopeError::Truncated);
        }
        if bytes[0] != VERSION {
            return Err(EnvelopeError::Version(bytes[0]));
        }
        let kind = Kind::from_u8(bytes[1]).ok_or(EnvelopeError::Kind(bytes[1]))?;
        let incarnation = u64::from_be_bytes(fixed8(&bytes[2..10]));
        let seq = u64::from_be_bytes(fixed8(&bytes[10..18]));
        let id_len = usize::from(bytes[18]);
        let id_end = FIXED_HEADER + id_len;
        if id_len == 0 {
            return Err(EnvelopeError::NodeId);
        }
        let id_bytes = bytes
            .get(FIXED_HEADER..id_end)
            .ok_or(EnvelopeError::Truncated)?;
        let node_id = std::str::from_utf8(id_bytes).map_err(|_| EnvelopeError::NodeId)?;
        Ok(Self {
            kind,
            origin: Origin {
                node_id: Arc::from(node_id),
                incarnation,
            },
            seq,
            payload: bytes.slice(id_end..),
        })
    }
}

fn fixed8(s: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn env(kind: Kind, payload: &[u8]) -> Envelope {
        Envelope {
            kind,
            origin: Origin {
                node_id: Arc::from("node-a"),
                incarnation: 0xDEAD_BEEF_0102_0304,
            },
            seq: 42,
            payload: Bytes::copy_from_slice(payload),
        }
    }

    #[test]
    fn round_trip() {
        let e = env(Kind::SgcPublish, b"hello");
        let bytes = e.encode().expect("encode");
        assert_eq!(Envelope::decode(bytes), Ok(e));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(
            Envelope::decode(Bytes::from_static(b"\x01")),
            Err(EnvelopeError::Truncated)
        );
        let mut b = env(Kind::Hello, b"").encode().expect("encode").to_vec();
        b[0] = 9;
        assert_eq!(
            Envelope::decode(Bytes::from(b.clone())),
            Err(EnvelopeError::Version(9))
        );
        b[0] = VERSION;
        b[1] = 200;
        assert_eq!(
            Envelope::decode(Bytes::from(b.clone())),
            Err(EnvelopeError::Kind(200))
        );
        b[1] = 1;
        b[18] = 200;
        assert_eq!(
            Envelope::decode(Bytes::from(b)),
            Err(EnvelopeError::Truncated)
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Envelope::decode(Bytes::from(data));
        }

        #[test]
        fn any_envelope_round_trips(id in "[a-z0-9-]{1,40}", inc in any::<u64>(), seq in any::<u64>(),
                                    payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let e = Envelope { kind: Kind::PresenceDelta, origin: Origin { node_id: Arc::from(id.as_str()), incarnation: inc }, seq, payload: Bytes::from(payload) };
            let bytes = e.encode().expect("encode");
            prop_assert_eq!(Envelope::decode(bytes), Ok(e));
        }
    }
}
