//! [`LimitsConfig`]: the admission limits of the `[limits]` section. Every limit is off at 0; the
//! defaults are off except the channel name length (256 bytes), which bounds what a client makes
//! the node hold per channel name.
//! `docs/security.md` ("Limits and origins") says what each one answers.

use serde::{Deserialize, Serialize};

/// Admission limits: connections per node and per client address, connection rate per address,
/// message size per protocol, publish rate and channel name length per connection.
///
/// Subscriptions per connection are capped by the protocols' own options
/// (`sgc.max_subscriptions_per_connection`, `presence.max_channels_per_member`), which answer as
/// their spec says (sgc: silently refused; Presence: error 10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Most open connections on the WebSocket port, counting those still in their handshake;
    /// more are answered 503 with `Retry-After`. 0 = off.
    pub max_connections: usize,
    /// Most open connections from one client IP address (same counting); more get 429. 0 = off.
    pub max_connections_per_ip: usize,
    /// New connections one IP address may open per second (token bucket); faster gets 429 with
    /// `Retry-After`. 0 = off.
    pub connections_per_ip_per_second: u32,
    /// Connections one IP address may open at once above its rate (the bucket's size); 0 = the rate.
    pub connections_per_ip_burst: u32,
    /// Largest message an sgc (`esegece.com`) client may send, in bytes; bigger closes with 1009.
    /// 0 = `server.max_message_size` (which also caps this).
    pub max_message_size_sgc: usize,
    /// Largest message a Presence client may send, as for sgc.
    pub max_message_size_presence: usize,
    /// Publishes (sgc `sgc@publish` and `sgc@broadcast`, Presence `publish@msg`) one connection may
    /// make per second (token bucket); faster closes it with 1008 "publish rate exceeded". 0 = off.
    pub publishes_per_second_per_connection: u32,
    /// Publishes one connection may make at once above its rate; 0 = the rate.
    pub publish_burst: u32,
    /// Longest channel name a client may subscribe or publish to, in bytes (each name of an sgc
    /// comma list). Longer: an sgc subscribe or publish is ignored (the wire reference sends nothing on a
    /// refused subscription), a Presence join gets error 10. 0 = off. Default 256.
    pub max_channel_name_length: usize,
}

/// The default of [`LimitsConfig::max_channel_name_length`], in bytes.
pub(crate) const DEFAULT_MAX_CHANNEL_NAME_LENGTH: usize = 256;

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            max_connections_per_ip: 0,
            connections_per_ip_per_second: 0,
            connections_per_ip_burst: 0,
            max_message_size_sgc: 0,
            max_message_size_presence: 0,
            publishes_per_second_per_connection: 0,
            publish_burst: 0,
            max_channel_name_length: DEFAULT_MAX_CHANNEL_NAME_LENGTH,
        }
    }
}

impl LimitsConfig {
    /// Whether any per-address limit is on (only then are addresses tracked).
    pub fn tracks_ips(&self) -> bool {
        self.max_connections_per_ip > 0 || self.connections_per_ip_per_second > 0
    }

    /// The burst of the connection-rate bucket.
    pub fn connection_burst(&self) -> u32 {
        if self.connections_per_ip_burst == 0 {
            self.connections_per_ip_per_second
        } else {
            self.connections_per_ip_burst
        }
    }

    /// The burst of the publish-rate bucket.
    pub fn publish_burst(&self) -> u32 {
        if self.publish_burst == 0 {
            self.publishes_per_second_per_connection
        } else {
            self.publish_burst
        }
    }

    /// Whether `name` (one channel) is longer than allowed.
    pub fn channel_too_long(&self, name: &str) -> bool {
        self.max_channel_name_length > 0 && name.len() > self.max_channel_name_length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_but_channel_names() {
        let l = LimitsConfig::default();
        assert!(!l.tracks_ips());
        assert!(!l.channel_too_long(&"x".repeat(256)));
        assert!(l.channel_too_long(&"x".repeat(257)));
        let off = LimitsConfig {
            max_channel_name_length: 0,
            ..l.clone()
        };
        assert!(!off.channel_too_long(&"x".repeat(100_000)));
        let l = LimitsConfig {
            max_channel_name_length: 3,
            ..l
        };
        assert!(l.channel_too_long("abcd"));
        assert!(!l.channel_too_long("abc"));
    }
}

/// The limits one connection carries (set at its upgrade from [`LimitsConfig`]); protocols ask
/// through [`Connection::publish_allowed`](super::Connection::publish_allowed) and
/// [`Connection::channel_allowed`](super::Connection::channel_allowed).
#[derive(Debug, Default)]
pub(crate) struct ConnectionLimits {
    publish: Option<parking_lot::Mutex<super::token_bucket::TokenBucket>>,
    max_channel_name_length: usize,
    /// A refusal of this connection was logged at info: later ones go to debug.
    logged: std::sync::atomic::AtomicBool,
}

impl ConnectionLimits {
    /// The limits of a new connection under `config`.
    pub(crate) fn new(config: &LimitsConfig) -> Self {
        let rate = config.publishes_per_second_per_connection;
        Self {
            publish: (rate > 0).then(|| {
                parking_lot::Mutex::new(super::token_bucket::TokenBucket::new(
                    f64::from(rate),
                    config.publish_burst(),
                    std::time::Instant::now(),
                ))
            }),
            max_channel_name_length: config.max_channel_name_length,
            logged: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Takes a publish token (true), or says the rate is exceeded.
    pub(crate) fn take_publish(&self) -> bool {
        self.publish
            .as_ref()
            .is_none_or(|b| b.lock().take(std::time::Instant::now()))
    }

    /// Whether this is the connection's first refusal (to be logged at info).
    pub(crate) fn first_refusal(&self) -> bool {
        !self.logged.swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether a channel of this name is allowed.
    pub(crate) fn channel_allowed(&self, name: &str) -> bool {
        self.max_channel_name_length == 0 || name.len() <= self.max_channel_name_length
    }
}
