//! Options of the Redis engine (`[cluster.redis]`) and how they become a Redis client.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a channel's sgc traffic travels through Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RedisRouting {
    /// Everything on one Redis channel (`channel`): every node receives every envelope.
    #[default]
    Shared,
    /// A channel's live traffic on its own Redis channel (`<channel>:ch:<name>`), which a node
    /// subscribes to on its first local subscriber and leaves after its last: nodes receive only
    /// what they need. Control, Presence and retained traffic stay on the shared channel.
    Channel,
}

impl std::str::FromStr for RedisRouting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(RedisRouting::Shared),
            "channel" => Ok(RedisRouting::Channel),
            other => Err(format!(
                "unknown redis routing {other:?} (expected shared or channel)"
            )),
        }
    }
}

/// How a node reaches Redis (the `[cluster.redis]` section). The fields marked "from
/// `[cluster]`" are filled by the cluster from its engine-independent options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// A `redis://[user:password@]host:port/db` or `rediss://...` (TLS) URL; when set it wins over
    /// `host`, `port`, `db` and `tls` (a `username`/`password` given separately still applies
    /// when the URL has none).
    pub url: String,
    /// Redis host name or address.
    pub host: String,
    /// Redis port.
    pub port: u16,
    /// ACL user name (empty: the default user).
    pub username: String,
    /// Password (empty: none).
    pub password: String,
    /// Database number (Pub/Sub ignores it, but AUTH/SELECT still run).
    pub db: i64,
    /// Connect with TLS (`rediss://`).
    pub tls: bool,
    /// A PEM file of CA certificates trusted for the TLS connection (empty: the system's roots).
    pub ca_file: PathBuf,
    /// The shared Redis channel, also the prefix of per-node and per-channel Redis channels.
    pub channel: String,
    /// `shared` (one Redis channel for everything) or `channel` (a Redis channel per channel).
    pub routing: RedisRouting,
    /// Time allowed to connect (TCP, TLS, AUTH), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed for a reply (PUBLISH, SUBSCRIBE, PING), in milliseconds.
    pub response_timeout_ms: u64,
    /// First reconnect delay after Redis was lost, in milliseconds (doubles up to the maximum).
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Cap, in bytes, of envelopes waiting to be published; beyond it new envelopes are dropped
    /// and counted (the receivers count the gap too).
    pub queue_bytes: usize,
    /// Largest envelope accepted from Redis, in bytes; larger ones are dropped and counted.
    pub max_message_bytes: usize,
    /// How often Redis is asked whether each live peer still has its subscription (`PUBSUB
    /// NUMSUB`), in milliseconds: a peer without one on two probes in a row (a killed process) is
    /// down at once instead of after `peer_timeout`. 0 turns probing off.
    pub probe_interval_ms: u64,
    /// A node silent this long is dead, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub heartbeat_interval_ms: u64,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: String::new(),
            host: "127.0.0.1".into(),
            port: 6379,
            username: String::new(),
            password: String::new(),
            db: 0,
            tls: false,
            ca_file: PathBuf::new(),
            channel: "wscluster".into(),
            routing: RedisRouting::Shared,
            connect_timeout_ms: 2_000,
            response_timeout_ms: 2_000,
            reconnect_min_ms: 100,
            reconnect_max_ms: 5_000,
            queue_bytes: 64 * 1024 * 1024,
            max_message_bytes: 16 * 1024 * 1024,
            probe_interval_ms: 200,
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
        }
    }
}

/// Why the Redis options cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    /// The URL or the options are not a valid Redis address.
    #[error("invalid redis address: {0}")]
    Address(#[source] redis::RedisError),
    /// The CA file could not be read.
    #[error("cannot read cluster.redis.ca_file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl RedisConfig {
    /// Redis on `127.0.0.1:port`, with the shared channel `channel`: what tests use.
    pub fn local(port: u16, channel: &str) -> Self {
        Self {
            port,
            channel: channel.into(),
            ..Self::default()
        }
    }

    /// How sgc traffic is addressed: one send to the shared channel, or the engine routes by
    /// channel.
    pub fn channel_routing(&self) -> crate::cluster::ChannelRouting {
        match self.routing {
            RedisRouting::Shared => crate::cluster::ChannelRouting::Broadcast,
            RedisRouting::Channel => crate::cluster::ChannelRouting::Engine,
        }
    }

    /// The address as a URL, with the password masked: for logs.
    pub fn display_address(&self) -> String {
        match self.connection_info() {
            Ok(info) => {
                let scheme = if self.uses_tls() { "rediss" } else { "redis" };
                format!("{scheme}://{}/{}", info.addr(), info.redis_settings().db())
            }
            Err(_) => "(invalid address)".into(),
        }
    }

    /// Whether the connection uses TLS.
    pub fn uses_tls(&self) -> bool {
        if self.url.is_empty() {
            self.tls
        } else {
            self.url.starts_with("rediss://")
        }
    }

    fn connection_info(&self) -> Result<redis::ConnectionInfo, RedisConfigError> {
        use redis::IntoConnectionInfo;
        let url = if self.url.is_empty() {
            let scheme = if self.tls { "rediss" } else { "redis" };
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            format!("{scheme}://{host}:{}/{}", self.port, self.db)
        } else {
            self.url.clone()
        };
        let mut info = url
            .as_str()
            .into_connection_info()
            .map_err(RedisConfigError::Address)?;
        let mut settings = info.redis_settings().clone();
        if settings.username().is_none() && !self.username.is_empty() {
            settings = settings.set_username(self.username.clone());
        }
        if settings.password().is_none() && !self.password.is_empty() {
            settings = settings.set_password(self.password.clone());
        }
        info = info.set_redis_settings(settings);
        Ok(info)
    }

    /// The Redis client these options describe (no connection is made yet).
    pub fn client(&self) -> Result<redis::Client, RedisConfigError> {
        let info = self.connection_info()?;
        if self.uses_tls() && !self.ca_file.as_os_str().is_empty() {
            let root = std::fs::read(&self.ca_file).map_err(|source| RedisConfigError::CaFile {
                path: self.ca_file.clone(),
                source,
            })?;
            return redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(root),
                },
            )
            .map_err(RedisConfigError::Address);
        }
        redis::Client::open(info).map_err(RedisConfigError::Address)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }
    pub(crate) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }
    pub(crate) fn probe_interval(&self) -> Duration {
        Duration::from_millis(self.probe_interval_ms.max(1))
    }
    pub(crate) fn peer_timeout(&self) -> Duration {
        Duration::from_millis(self.peer_timeout_ms.max(1))
    }
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(1))
    }
    /// The reconnect delay after `failures` consecutive failures.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        let min = self.reconnect_min_ms.max(1);
        let max = self.reconnect_max_ms.max(min);
        let ms = min.saturating_mul(1u64 << failures.min(20)).min(max);
        // Up to a quarter of jitter, so nodes that lost Redis together do not return in step.
        Duration::from_millis(ms - fastrand::u64(0..=ms / 4))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_wins_and_separate_credentials_fill_in() {
        let c = RedisConfig {
            url: "redis://10.0.0.5:6380/2".into(),
            password: "pw".into(),
            username: "app".into(),
            ..RedisConfig::default()
        };
        let info = c.connection_info().unwrap();
        assert_eq!(info.addr().to_string(), "10.0.0.5:6380");
        assert_eq!(info.redis_settings().db(), 2);
        assert_eq!(info.redis_settings().password(), Some("pw"));
        assert_eq!(info.redis_settings().username(), Some("app"));
        assert_eq!(c.display_address(), "redis://10.0.0.5:6380/2");
        assert!(!c.display_address().contains("pw"));
    }

    #[test]
    fn host_port_form_and_tls() {
        let c = RedisConfig {
            host: "redis.internal".into(),
            port: 7000,
            tls: true,
            ..RedisConfig::default()
        };
        assert!(c.uses_tls());
        assert!(
            c.connection_info()
                .unwrap()
                .addr()
                .to_string()
                .contains("7000")
        );
        let url_tls = RedisConfig {
            url: "rediss://h:1/0".into(),
            ..RedisConfig::default()
        };
        assert!(url_tls.uses_tls());
    }

    #[test]
    fn bad_url_is_a_clear_error() {
        let c = RedisConfig {
            url: "http://nope".into(),
            ..RedisConfig::default()
        };
        assert!(
            c.client()
                .unwrap_err()
                .to_string()
                .contains("invalid redis address")
        );
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let c = RedisConfig::default();
        assert!(c.backoff(0) <= Duration::from_millis(100));
        assert!(c.backoff(30) <= Duration::from_millis(5_000));
        assert!(c.backoff(30) >= Duration::from_millis(3_750));
    }
}
