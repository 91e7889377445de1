//! The decoders of what peers relay (the protocol adapters' envelope payloads), for the fuzz
//! targets in `fuzz/`; not an API. Each decodes a payload and, when it decodes, encodes the event
//! again and decodes that (which must give the same event back).

use bytes::Bytes;

use super::envelope::Kind;
use super::{presence_adapter, sgc_adapter};
use crate::protocol::presence::PresenceEvent;
use crate::protocol::sgc::SgcEvent;
use crate::protocol::sgc::retained::RetainedSnapshot;

/// A `PresenceDelta` / `PresenceSnapshot` payload, and its round trip.
pub fn presence(payload: &[u8]) -> Option<(PresenceEvent, Option<PresenceEvent>)> {
    let event = presence_adapter::decode(payload)?;
    let again = presence_adapter::decode(&presence_adapter::encode(&event).1);
    Some((event, again))
}

/// An sgc publish, broadcast or clear-queue payload of `kind`, and its round trip.
pub fn sgc(kind: Kind, payload: &Bytes) -> Option<(SgcEvent, Option<SgcEvent>)> {
    let (event, _) = sgc_adapter::decode_stamped(kind, payload)?;
    let (kind, bytes) = sgc_adapter::encode(&event);
    let again = sgc_adapter::decode_stamped(kind, &bytes).map(|(e, _)| e);
    Some((event, again))
}

/// An `SgcRetainedSnapshot` payload, and its round trip.
pub fn sgc_snapshot(payload: &[u8]) -> Option<(RetainedSnapshot, Option<RetainedSnapshot>)> {
    let snapshot = sgc_adapter::decode_snapshot(payload)?;
    let again = sgc_adapter::decode_snapshot(&sgc_adapter::encode_snapshot(&snapshot));
    Some((snapshot, again))
}
