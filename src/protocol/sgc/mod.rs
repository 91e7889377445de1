//! The sgc protocol (`esegece.com`, spec §2 and §5.2). STUB: being written.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::protocol::Protocol;
use crate::transport::Connection;

/// The subprotocol token of the sgc protocol.
pub const PROTOCOL_NAME: &str = "esegece.com";

/// Options of the sgc protocol.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgcConfig {
    /// The server's QoS level written in session, RPC result and error frames (0, 1 or 2).
    pub qos_level: u8,
}

impl Default for SgcConfig {
    fn default() -> Self {
        Self { qos_level: 0 }
    }
}

/// Connection lists for server-side publish and broadcast.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    /// Only these connection GUIDs (empty: no restriction).
    pub include: Vec<String>,
    /// Never these connection GUIDs.
    pub exclude: Vec<String>,
}

/// The sgc protocol: a cheap, cloneable handle.
#[derive(Clone)]
pub struct SgcProtocol {
    inner: Arc<SgcConfig>,
}

impl SgcProtocol {
    /// A protocol with these options.
    pub fn new(config: SgcConfig) -> Self {
        Self {
            inner: Arc::new(config),
        }
    }

    /// Broadcasts `message` to `channel`'s subscribers ("" = every sgc connection).
    pub fn broadcast(&self, message: &str, channel: &str, targets: &Targets) {
        let _ = (message, channel, targets, &self.inner);
    }
}

impl Protocol for SgcProtocol {
    fn name(&self) -> &'static str {
        PROTOCOL_NAME
    }
    fn on_connect(&self, _conn: &Connection) {}
    fn on_text(&self, _conn: &Connection, _text: &str) {}
    fn on_disconnect(&self, _conn: &Connection) {}
}
