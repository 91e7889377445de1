//! Options of the NATS engine (`[cluster.nats]`) and how they become client options.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a channel's sgc traffic travels through NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum NatsRouting {
    /// Everything on the shared subject: every node receives every envelope.
    #[default]
    Shared,
    /// A channel's live traffic on its own subject (`<prefix>.ch.<token>`), which a node
    /// subscribes to on its first local subscriber and leaves after its last: nodes receive only
    /// what they need. Control, Presence and retained traffic stay on the shared subject.
    Channel,
}

impl std::str::FromStr for NatsRouting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "shared" => Ok(NatsRouting::Shared),
            "channel" => Ok(NatsRouting::Channel),
            other => Err(format!(
                "unknown nats routing {other:?} (expected shared or channel)"
            )),
        }
    }
}

/// How a node reaches NATS (the `[cluster.nats]` section). The fields marked "from `[cluster]`"
/// are filled by the cluster from its engine-independent options.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NatsConfig {
    /// The servers, `nats://HOST:PORT` (or `tls://HOST:PORT`); the client picks one and moves to
    /// another when it is lost. A `user:password@` part is used as the login.
    pub urls: Vec<String>,
    /// Token to log in with (empty: none).
    pub token: String,
    /// User name to log in with (empty: none); with `password`.
    pub username: String,
    /// Password of `username`.
    pub password: String,
    /// A file holding an NKey seed (`SU…`) to log in with (empty: none).
    pub nkey_seed_file: PathBuf,
    /// A `.creds` file (user JWT and NKey seed) to log in with (empty: none).
    pub creds_file: PathBuf,
    /// Require TLS (also implied by a `tls://` URL).
    pub tls: bool,
    /// A PEM file of CA certificates trusted for TLS (empty: the system's roots).
    pub ca_file: PathBuf,
    /// The first token(s) of every subject of the cluster: the shared subject is
    /// `<prefix>.shared`, a node's own `<prefix>.node.<token>`, a channel's `<prefix>.ch.<token>`.
    pub subject_prefix: String,
    /// `shared` (one subject for everything) or `channel` (a subject per channel).
    pub routing: NatsRouting,
    /// Time allowed to connect (TCP, TLS, login), in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time allowed for the server to confirm subscriptions and flushes, in milliseconds.
    pub response_timeout_ms: u64,
    /// Time a subscription probe waits for the peer's answer, in milliseconds; no answer in
    /// time means "could not tell".
    pub probe_timeout_ms: u64,
    /// First reconnect delay after NATS was lost, in milliseconds (doubles up to the maximum).
    pub reconnect_min_ms: u64,
    /// Longest reconnect delay, in milliseconds.
    pub reconnect_max_ms: u64,
    /// Cap, in bytes, of envelopes waiting to be published; beyond it new envelopes are dropped
    /// and counted (the receivers count the gap too).
    pub queue_bytes: usize,
    /// Largest envelope accepted from NATS, in bytes; larger ones are dropped and counted (the
    /// server's own `max_payload`, 1 MiB by default, caps what can be published at all).
    pub max_message_bytes: usize,
    /// Messages the client holds per subscription before the node takes them; beyond it the
    /// client drops them (a slow consumer; receivers count the gap). With the server's
    /// `max_payload` this bounds the bytes held: capacity × max_payload.
    pub subscription_capacity: usize,
    /// How often each live peer's own subject is probed with a request, in milliseconds: a
    /// "no responders" answer on two probes in a row (a killed process) makes the peer down at
    /// once instead of after `peer_timeout`. 0 turns probing off.
    pub probe_interval_ms: u64,
    /// A node silent this long is dead, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub peer_timeout_ms: u64,
    /// Interval between heartbeats, in milliseconds (from `[cluster]`).
    #[serde(skip)]
    pub heartbeat_interval_ms: u64,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            token: String::new(),
            username: String::new(),
            password: String::new(),
            nkey_seed_file: PathBuf::new(),
            creds_file: PathBuf::new(),
            tls: false,
            ca_file: PathBuf::new(),
            subject_prefix: "wscluster".into(),
            routing: NatsRouting::Shared,
            connect_timeout_ms: 2_000,
            response_timeout_ms: 2_000,
            probe_timeout_ms: 150,
            reconnect_min_ms: 100,
            reconnect_max_ms: 2_000,
            queue_bytes: 64 * 1024 * 1024,
            max_message_bytes: 8 * 1024 * 1024,
            subscription_capacity: 8_192,
            probe_interval_ms: 200,
            peer_timeout_ms: 3_000,
            heartbeat_interval_ms: 1_000,
        }
    }
}

/// Why the NATS options cannot make a client.
#[derive(Debug, thiserror::Error)]
pub enum NatsConfigError {
    /// No server given.
    #[error("cluster.nats.urls must name at least one server (--nats-url nats://HOST:PORT)")]
    NoUrl,
    /// A URL is not a NATS server address.
    #[error("cluster.nats.urls: invalid nats server address {url:?}: {message}")]
    Url {
        /// The URL (its password masked).
        url: String,
        /// Why.
        message: String,
    },
    /// The subject prefix is not dot-separated tokens of `[A-Za-z0-9_-]`.
    #[error(
        "cluster.nats.subject_prefix {0:?} must be dot-separated tokens of letters, digits, '_' and '-'"
    )]
    Prefix(String),
    /// More than one way to log in.
    #[error(
        "cluster.nats: set one login only (token, username/password, nkey_seed_file or creds_file)"
    )]
    TwoLogins,
    /// `password` without `username` or the other way round.
    #[error("cluster.nats.username and cluster.nats.password go together")]
    HalfLogin,
    /// A size or time that cannot work.
    #[error("cluster.nats.{0} must be greater than 0")]
    Zero(&'static str),
    /// A file could not be read.
    #[error("cannot read cluster.nats.{key} {path}: {source}")]
    File {
        /// The key naming it.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Whether `s` is one or more dot-separated subject tokens of `[A-Za-z0-9_-]`.
pub(crate) fn is_safe_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

impl NatsConfig {
    /// `nats-server` on `127.0.0.1:port`, with subject prefix `prefix`: what tests use.
    pub fn local(port: u16, prefix: &str) -> Self {
        Self {
            urls: vec![format!("nats://127.0.0.1:{port}")],
            subject_prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// How sgc traffic is addressed: one send to the shared subject, or the engine routes by
    /// channel.
    pub fn channel_routing(&self) -> crate::cluster::ChannelRouting {
        match self.routing {
            NatsRouting::Shared => crate::cluster::ChannelRouting::Broadcast,
            NatsRouting::Channel => crate::cluster::ChannelRouting::Engine,
        }
    }

    /// The server URLs with any password masked: for logs and the start line.
    pub fn display_address(&self) -> String {
        self.urls
            .iter()
            .map(|u| mask_password(u))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The server addresses, checked.
    pub(crate) fn server_addrs(&self) -> Result<Vec<async_nats::ServerAddr>, NatsConfigError> {
        if self.urls.is_empty() {
            return Err(NatsConfigError::NoUrl);
        }
        self.urls
            .iter()
            .map(|u| {
                let u = u.trim();
                if u.contains("://") && !u.starts_with("nats://") && !u.starts_with("tls://") {
                    return Err(NatsConfigError::Url {
                        url: mask_password(u),
                        message: "expected nats://HOST:PORT or tls://HOST:PORT".into(),
                    });
                }
                u.parse::<async_nats::ServerAddr>()
                    .map_err(|e| NatsConfigError::Url {
                        url: mask_password(u),
                        message: e.to_string(),
                    })
            })
            .collect()
    }

    /// Every check that needs no file and no server.
    pub fn validate(&self) -> Result<(), NatsConfigError> {
        self.server_addrs()?;
        if !is_safe_subject(&self.subject_prefix) {
            return Err(NatsConfigError::Prefix(self.subject_prefix.clone()));
        }
        let logins = [
            !self.token.is_empty(),
            !self.username.is_empty() || !self.password.is_empty(),
            !self.nkey_seed_file.as_os_str().is_empty(),
            !self.creds_file.as_os_str().is_empty(),
        ];
        if logins.iter().filter(|x| **x).count() > 1 {
            return Err(NatsConfigError::TwoLogins);
        }
        if self.username.is_empty() != self.password.is_empty() {
            return Err(NatsConfigError::HalfLogin);
        }
        for (key, v) in [
            ("queue_bytes", self.queue_bytes),
            ("max_message_bytes", self.max_message_bytes),
            ("subscription_capacity", self.subscription_capacity),
        ] {
            if v == 0 {
                return Err(NatsConfigError::Zero(key));
            }
        }
        Ok(())
    }

    fn read(key: &'static str, path: &PathBuf) -> Result<String, NatsConfigError> {
        std::fs::read_to_string(path).map_err(|source| NatsConfigError::File {
            key,
            path: path.clone(),
            source,
        })
    }

    /// The client options these settings describe (files are read here; nothing connects).
    pub(crate) fn connect_options(&self) -> Result<async_nats::ConnectOptions, NatsConfigError> {
        self.validate()?;
        let mut o = async_nats::ConnectOptions::new();
        if !self.token.is_empty() {
            o = o.token(self.token.clone());
        }
        if !self.username.is_empty() {
            o = o.user_and_password(self.username.clone(), self.password.clone());
        }
        if !self.nkey_seed_file.as_os_str().is_empty() {
            let seed = Self::read("nkey_seed_file", &self.nkey_seed_file)?;
            o = o.nkey(seed.trim().to_owned());
        }
        if !self.creds_file.as_os_str().is_empty() {
            let creds = Self::read("creds_file", &self.creds_file)?;
            o = o
                .credentials(&creds)
                .map_err(|source| NatsConfigError::File {
                    key: "creds_file",
                    path: self.creds_file.clone(),
                    source,
                })?;
        }
        if self.tls {
            o = o.require_tls(true);
        }
        if !self.ca_file.as_os_str().is_empty() {
            // Read now so that a missing file is a configuration error, not a connect failure.
            Self::read("ca_file", &self.ca_file)?;
            o = o.add_root_certificates(self.ca_file.clone());
        }
        let (min, max) = (self.reconnect_min_ms, self.reconnect_max_ms);
        Ok(o.connection_timeout(self.connect_timeout())
            .request_timeout(Some(self.response_timeout()))
            .subscription_capacity(self.subscription_capacity)
            .no_echo()
            .max_reconnects(None)
            .ping_interval(self.heartbeat_interval().max(Duration::from_millis(500)))
            .reconnect_delay_callback(move |attempts| backoff(min, max, attempts as u32)))
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(1))
    }
    pub(crate) fn response_timeout(&self) -> Duration {
        Duration::from_millis(self.response_timeout_ms.max(1))
    }
    pub(crate) fn probe_timeout(&self) -> Duration {
        Duration::from_millis(self.probe_timeout_ms.max(1))
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
    /// The delay before the first connection attempt after `failures` consecutive failures.
    pub(crate) fn backoff(&self, failures: u32) -> Duration {
        backoff(self.reconnect_min_ms, self.reconnect_max_ms, failures)
    }
}

/// `min` doubled per failure up to `max`, less up to a quarter of jitter (so nodes that lost
/// NATS together do not return in step).
fn backoff(min: u64, max: u64, failures: u32) -> Duration {
    let min = min.max(1);
    let max = max.max(min);
    let ms = min.saturating_mul(1u64 << failures.min(20)).min(max);
    Duration::from_millis(ms - fastrand::u64(0..=ms / 4))
}

/// `scheme://user:password@host` with the password masked, `scheme://token@host` with the
/// token masked.
fn mask_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end], &rest[at..]),
        None => format!("{}***{}", &url[..scheme_end], &rest[at..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_url_names_the_key() {
        let e = NatsConfig::default().validate().unwrap_err().to_string();
        assert!(e.contains("cluster.nats.urls"), "{e}");
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let ok = NatsConfig::local(4222, "wsc");
        assert!(ok.validate().is_ok());
        let bad_url = NatsConfig {
            urls: vec!["http://h:1".into()],
            ..ok.clone()
        };
        assert!(bad_url.validate().is_err());
        for prefix in ["", "a..b", "a.*", "a b", "x.>", "a:b"] {
            let c = NatsConfig {
                subject_prefix: prefix.into(),
                ..ok.clone()
            };
            assert!(
                matches!(c.validate(), Err(NatsConfigError::Prefix(_))),
                "{prefix}"
            );
        }
        let two = NatsConfig {
            token: "t".into(),
            username: "u".into(),
            password: "p".into(),
            ..ok.clone()
        };
        assert!(matches!(two.validate(), Err(NatsConfigError::TwoLogins)));
        let half = NatsConfig {
            username: "u".into(),
            ..ok.clone()
        };
        assert!(matches!(half.validate(), Err(NatsConfigError::HalfLogin)));
        let missing = NatsConfig {
            nkey_seed_file: "/nonexistent/seed".into(),
            ..ok
        };
        let e = missing.connect_options().err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("cluster.nats.nkey_seed_file")),
            "{e:?}"
        );
    }

    #[test]
    fn passwords_are_masked_for_display() {
        let c = NatsConfig {
            urls: vec![
                "nats://app:pw@10.0.0.1:4222".into(),
                "nats://h:4223".into(),
                "tls://s3cret@h:4224".into(),
            ],
            ..NatsConfig::default()
        };
        assert_eq!(
            c.display_address(),
            "nats://app:***@10.0.0.1:4222,nats://h:4223,tls://***@h:4224"
        );
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let c = NatsConfig::default();
        assert!(c.backoff(0) <= Duration::from_millis(100));
        assert!(c.backoff(30) <= Duration::from_millis(2_000));
        assert!(c.backoff(30) >= Duration::from_millis(1_500));
    }
}
