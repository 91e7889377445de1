//! Options of the Presence protocol.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options of the Presence protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Encode every outgoing string value except `jsonrpc` as `sgc@b64:…` (docs/wire.md §1.4), the
    /// `method` included. Entries of `members` lists stay plain (see `docs/presence.md`): clients
    /// read them without decoding. Incoming `sgc@b64:` values are always decoded.
    pub encode_base64: bool,
    /// The optional server-side acknowledgment mode (docs/wire.md §3.5). Acks of client frames that carry
    /// an id are sent whatever this says.
    pub acknowledgment: AckConfig,
    /// The most channels one member may be in; a join past it is refused with error 10. 0 means
    /// no limit. Guards the node against a client that joins channels in a loop.
    pub max_channels_per_member: usize,
    /// A connection authenticated as a user (URL, session, Basic, user list, bearer token: its
    /// identity claim) may create only the member whose id is that user; another id gets error 2
    /// (`member@new` denied). Connections without a user (authentication off, or anonymous access
    /// allowed) are not bound.
    pub bind_member_id_to_user: bool,
    /// Longest member id (bytes, after `sgc@b64:` decoding) a client may create; a longer one
    /// gets error 2 ("Create New Member request has been denied.").
    pub max_member_id_length: usize,
    /// Longest member name a client may create, as for the id.
    pub max_member_name_length: usize,
    /// Longest member info a client may create, as for the id.
    pub max_member_info_length: usize,
}

impl Default for PresenceConfig {
    fn default() -> Self {
        Self {
            encode_base64: false,
            acknowledgment: AckConfig::default(),
            max_channels_per_member: 10_000,
            bind_member_id_to_user: true,
            max_member_id_length: 256,
            max_member_name_length: 256,
            max_member_info_length: 4096,
        }
    }
}

/// The server-side acknowledgment mode: ids on outgoing frames, resent until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AckConfig {
    /// Add `"id":"<new GUID>"` to every outgoing frame (acks excepted) and resend it until the
    /// client acknowledges it. Off by default, as in the reference server.
    pub enabled: bool,
    /// How often unacknowledged frames are checked, in milliseconds (reference: 300 s).
    pub interval_ms: u64,
    /// Age after which an unacknowledged frame is resent, in milliseconds (reference: 240 s).
    pub timeout_ms: u64,
    /// Most unacknowledged frames kept per connection; past it the oldest is forgotten (and
    /// logged), so a client that never acks cannot grow the node's memory without bound.
    pub max_pending_per_connection: usize,
    /// Most bytes of unacknowledged frames kept per connection; past it the oldest are forgotten
    /// first (the newest is always kept).
    pub max_pending_bytes_per_connection: usize,
}

impl Default for AckConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_ms: 300_000,
            timeout_ms: 240_000,
            max_pending_per_connection: 4096,
            max_pending_bytes_per_connection: 4 * 1024 * 1024,
        }
    }
}

impl PresenceConfig {
    /// Which of `member`'s fields is longer than its cap, if any (`"id"`, `"name"` or `"info"`).
    pub fn member_too_long(&self, member: &crate::hub::roster::Member) -> Option<&'static str> {
        if member.id.len() > self.max_member_id_length {
            Some("id")
        } else if member.name.len() > self.max_member_name_length {
            Some("name")
        } else if member.info.len() > self.max_member_info_length {
            Some("info")
        } else {
            None
        }
    }
}

impl AckConfig {
    /// The sweep interval (at least 1 ms).
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms.max(1))
    }

    /// The resend age.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_reference_and_unknown_fields_are_refused() {
        let c: PresenceConfig = toml::from_str("encode_base64 = true").unwrap_or_default();
        assert!(c.encode_base64);
        assert_eq!(c.acknowledgment.interval_ms, 300_000);
        assert_eq!(c.acknowledgment.timeout_ms, 240_000);
        assert!(toml::from_str::<PresenceConfig>("nope = 1").is_err());
        assert!(toml::from_str::<PresenceConfig>("[acknowledgment]\nnope = 1").is_err());
    }
}
