//! The Presence protocol (`presence.esegece.com`, spec §3 and §5.3). STUB: being written.

use serde::{Deserialize, Serialize};

/// The subprotocol token of the Presence protocol.
pub const PROTOCOL_NAME: &str = "presence.esegece.com";

/// Options of the Presence protocol.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PresenceConfig {
    /// Encode every outgoing string value as `sgc@b64:…` (spec §1.4).
    pub encode_base64: bool,
}

/// The Presence protocol (stub).
#[derive(Clone, Debug, Default)]
pub struct PresenceProtocol;
