//! [`SgcConfig`]: every option of the sgc protocol and its default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Options of the sgc protocol (`esegece.com`). Every limit exists so a single client cannot make
/// the node hold unbounded state; the defaults suit ordinary sgcWebSockets applications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SgcConfig {
    /// The server's QoS level (0, 1 or 2; higher values count as 2). It is written as
    /// `"qos":"qosLevelN"` in session (S1), RPC result (S9) and RPC error (S10) frames; at 1 or more
    /// the server also resends those id'd frames until the client acknowledges them (docs/wire.md §2.6).
    pub qos_level: u8,
    /// Period of the QoS resend scan, in milliseconds (the reference server's `QoS.Interval`).
    pub qos_interval_ms: u64,
    /// A frame not acknowledged after this many milliseconds is resent at every scan until it is
    /// acknowledged or the connection ends (`QoS.Timeout`).
    pub qos_timeout_ms: u64,
    /// At most this many unacknowledged server frames are tracked per connection; the oldest is
    /// forgotten (no longer resent) when a new one would pass the cap.
    pub qos_max_pending: usize,
    /// At most this many bytes of unacknowledged server frames (and their ids) are tracked per
    /// connection; the oldest is forgotten first, as for [`SgcConfig::qos_max_pending`].
    pub qos_max_pending_bytes: usize,
    /// At most this many QoS-2 messages (received, PubRec sent, waiting for PubRel) are stored per
    /// connection. A new one past the cap gets no PubRec (the client will retry later).
    pub qos2_max_pending: usize,
    /// At most this many bytes of QoS-2 messages are stored per connection (same rule as
    /// [`SgcConfig::qos2_max_pending`]).
    pub qos2_max_pending_bytes: usize,
    /// Expand channel names of subscribe, unsubscribe and publish as Delphi `MatchesMask` patterns
    /// (`*`, `?`, `[set]`, case-insensitive) against the channels that exist on this node
    /// (docs/wire.md §2.8). Off by default, like the reference server's `UseMatchesMask`.
    pub use_matches_mask: bool,
    /// Most messages kept for one channel by `queueLevel2` publishes; the oldest is dropped first.
    pub queue_level2_cap: usize,
    /// Most channels that hold retained (`queueLevel1`/`queueLevel2`) messages; a publish that would
    /// start a new retained channel past the cap is delivered but not stored.
    pub max_retained_channels: usize,
    /// Most channels one subscribe, unsubscribe or publish request may name (after comma split or
    /// mask expansion); the rest are ignored.
    pub max_channels_per_request: usize,
    /// Most channels one connection may be subscribed to; further subscriptions are refused
    /// silently, like a denied subscription. 0 means unlimited.
    pub max_subscriptions_per_connection: usize,
    /// Most transactions one connection may have open at once; `sgc@transaction` past the cap is
    /// ignored.
    pub transaction_max_open: usize,
    /// Most messages one open transaction may queue; further messages for it are dropped.
    pub transaction_max_messages: usize,
    /// Most bytes (frames as received) one open transaction may hold. A message that would pass
    /// it discards every open transaction of the connection and closes it with 1008
    /// "transaction too large".
    pub transaction_max_bytes: usize,
    /// Most bytes all the open transactions of one connection may hold together; past it, the
    /// same answer as [`SgcConfig::transaction_max_bytes`].
    pub transaction_max_bytes_per_connection: usize,
    /// Most bytes (stored S5 frames) one channel's retained messages may take; the oldest are
    /// evicted first, and a message bigger than this is delivered but not retained.
    pub retained_max_bytes_per_channel: usize,
    /// Most bytes the retained messages of every channel may take together on this node
    /// (including those received from other nodes and in snapshots); the oldest message of the
    /// node, whatever its channel, is evicted first.
    pub retained_max_bytes: usize,
    /// Most RPC requests one connection may have waiting for the application's reply; a request
    /// past the cap is answered with error -32000 at once.
    pub rpc_max_pending: usize,
    /// Most bytes of request ids one connection may have waiting for the application's reply
    /// (ids are opaque client text); a request past it gets error -32000 at once, like
    /// [`SgcConfig::rpc_max_pending`].
    pub rpc_max_pending_bytes: usize,
    /// Check RPC calls against [`SgcConfig::rpc_auth_methods`] and the application's RPC
    /// authentication hook (the reference server's `RPCAuthentication.Enabled`, docs/wire.md §2.9).
    pub rpc_auth_enabled: bool,
    /// Methods anyone may call (`"method"`) or that one authenticated user may call
    /// (`"method=user"`). Compared case-insensitively, like a Delphi `TStringList`.
    pub rpc_auth_methods: Vec<String>,
}

impl Default for SgcConfig {
    fn default() -> Self {
        Self {
            qos_level: 0,
            qos_interval_ms: 60_000,
            qos_timeout_ms: 300_000,
            qos_max_pending: 1024,
            qos_max_pending_bytes: 4 * 1024 * 1024,
            qos2_max_pending: 256,
            qos2_max_pending_bytes: 4 * 1024 * 1024,
            use_matches_mask: false,
            queue_level2_cap: 1000,
            max_retained_channels: 100_000,
            max_channels_per_request: 1000,
            max_subscriptions_per_connection: 10_000,
            transaction_max_open: 64,
            transaction_max_messages: 1000,
            transaction_max_bytes: 4 * 1024 * 1024,
            transaction_max_bytes_per_connection: 16 * 1024 * 1024,
            retained_max_bytes_per_channel: 2 * 1024 * 1024,
            retained_max_bytes: 32 * 1024 * 1024,
            rpc_max_pending: 1024,
            rpc_max_pending_bytes: 256 * 1024,
            rpc_auth_enabled: false,
            rpc_auth_methods: Vec::new(),
        }
    }
}

impl SgcConfig {
    /// The server's QoS level as written on the wire (`qosLevel0`, `qosLevel1` or `qosLevel2`).
    pub fn qos_name(&self) -> &'static str {
        match self.qos_level {
            0 => "qosLevel0",
            1 => "qosLevel1",
            _ => "qosLevel2",
        }
    }

    /// The period of the QoS resend scan (at least 1 ms).
    pub fn qos_interval(&self) -> Duration {
        Duration::from_millis(self.qos_interval_ms.max(1))
    }

    /// How old an unacknowledged frame must be before it is resent.
    pub fn qos_timeout(&self) -> Duration {
        Duration::from_millis(self.qos_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_partial_toml() {
        let c: SgcConfig = toml::from_str("qos_level = 1\nuse_matches_mask = true").expect("toml");
        assert_eq!(c.qos_name(), "qosLevel1");
        assert!(c.use_matches_mask);
        assert_eq!(c.queue_level2_cap, SgcConfig::default().queue_level2_cap);
        assert!(toml::from_str::<SgcConfig>("nope = 1").is_err());
        let c = SgcConfig {
            qos_level: 9,
            ..SgcConfig::default()
        };
        assert_eq!(c.qos_name(), "qosLevel2");
    }
}
