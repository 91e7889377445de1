//! Every option of a node, with its default. The library takes a [`Config`] value; the binary builds
//! one with [`Config::load`] from a TOML file, `WSCLUSTER_…` environment variables and flags, in
//! that order of precedence (flags win), over [`Config::default`]. `wscluster.example.toml`
//! documents each option and `docs/configuration.md` lists its file key, variable and flag.

use serde::{Deserialize, Serialize};

mod layers;

pub use layers::{ENV_ALIASES, ENV_PREFIX, Sources};

pub use crate::cluster::{ClusterConfig, EngineKind};
pub use crate::ops::api::{ApiConfig, ApiKey};
pub use crate::ops::{AdminConfig, HttpConfig};
pub use crate::protocol::presence::PresenceConfig;
pub use crate::protocol::sgc::SgcConfig;
pub use crate::transport::ServerConfig;
pub use crate::transport::auth::AuthConfig;
pub use crate::transport::limits::LimitsConfig;

/// The whole configuration of a node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The node itself: its name and logging.
    pub node: NodeConfig,
    /// The WebSocket listener and per-connection limits.
    pub server: ServerConfig,
    /// Authentication of WebSocket upgrades (docs/wire.md §1.6).
    pub auth: AuthConfig,
    /// Admission limits: connections per node and per address, rates, sizes (all off by default).
    pub limits: LimitsConfig,
    /// The sgc protocol (`esegece.com`).
    pub sgc: SgcConfig,
    /// The Presence protocol (`presence.esegece.com`).
    pub presence: PresenceConfig,
    /// The cluster: engine, name, secret, failure detection, engine sections.
    pub cluster: ClusterConfig,
    /// Where the operations routes (health, metrics, admin API, status page) are served.
    pub http: HttpConfig,
    /// How the admin routes are protected.
    pub admin: AdminConfig,
    /// The server API for backends (`/api/...`): keys, idempotency, HTTP limits.
    pub api: ApiConfig,
    /// Lifecycle webhooks (`[webhooks]`; off without a URL).
    pub webhooks: crate::webhooks::WebhooksConfig,
}

/// Identity and logging of the node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's name in the cluster; empty means "derived from host name and port".
    pub name: String,
    /// Log filter (`error`, `warn`, `info`, `debug`, `trace`, or a `tracing` filter directive).
    pub log_level: String,
    /// Log format: `human` or `json`.
    pub log_format: String,
    /// Threads running the node's tasks: 0 = one per CPU the process may use; 1 = a
    /// single-threaded runtime (no work stealing, no cross-thread wake-ups: the cheapest per
    /// delivery on one core); N = N worker threads.
    pub worker_threads: usize,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            log_level: "info".into(),
            log_format: "human".into(),
            worker_threads: 0,
        }
    }
}

/// Why a configuration could not be loaded; each variant says where the bad value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file asked for.
        path: String,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The configuration file is not valid TOML, or has an unknown key or a value of the wrong type.
    #[error("config file {path}: {message}")]
    File {
        /// The file.
        path: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// An environment variable names no option or holds an unusable value.
    #[error("environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A command-line flag holds an unusable value.
    #[error("{flag}: {message}")]
    Flag {
        /// The flag as given (e.g. `--listen` or `--set server.max_message_size`).
        flag: String,
        /// What is wrong with it.
        message: String,
    },
    /// Every value parsed but together they are not usable.
    #[error("{key}: {message}")]
    Invalid {
        /// The option at fault, as a dotted file key (`server.max_outbox_bytes`).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// Log formats the binary knows.
pub const LOG_FORMATS: [&str; 2] = ["human", "json"];

/// The most worker threads `node.worker_threads` may ask for.
pub const MAX_WORKER_THREADS: usize = 1024;

impl Config {
    /// Parses a TOML document (the format of `wscluster.example.toml`); missing keys keep their
    /// defaults, unknown keys are an error. The result is not yet [validated](Config::validate).
    pub fn from_toml_str(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// The configuration as a TOML document (every option, defaults included).
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// Builds the configuration from defaults, then the file, then the environment, then flags,
    /// and [validates](Config::validate) it.
    pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
        let mut config = layers::load(sources)?;
        config
            .cluster
            .load_secret_file()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        config
            .api
            .load_keys_file()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        config
            .webhooks
            .load_secret_file()
            .map_err(|(key, message)| ConfigError::Invalid { key, message })?;
        config.validate()?;
        Ok(config)
    }

    /// Builds the configuration from the sources like [`Config::load`], but reports every
    /// problem a start would meet instead of the first: each value that cannot work
    /// ([`Config::problems`]) and each certificate, key or CA file that cannot be read or used
    /// ([`Config::file_problems`]). A layer that does not parse (a bad file, variable or flag) is
    /// one problem on its own, since nothing after it can be read.
    pub fn load_checked(sources: &Sources) -> Result<Config, Vec<ConfigError>> {
        let mut config = layers::load(sources).map_err(|e| vec![e])?;
        let mut problems = Vec::new();
        if let Err((key, message)) = config.cluster.load_secret_file() {
            problems.push(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = config.api.load_keys_file() {
            problems.push(ConfigError::Invalid { key, message });
        }
        if let Err((key, message)) = config.webhooks.load_secret_file() {
            problems.push(ConfigError::Invalid { key, message });
        }
        problems.extend(config.problems());
        problems.extend(config.file_problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Checks the values that parse but cannot work (the first of [`Config::problems`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Every value that parses but cannot work: an unknown log format, zero sizes, an outbox
    /// smaller than the largest message (every subscriber of such a message would be dropped as a
    /// slow consumer), a node name with spaces or control characters, and each section's own
    /// checks. Files are not read here (see [`Config::file_problems`]).
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        let mut invalid = |key, message: String| out.push(ConfigError::Invalid { key, message });
        if let Err(message) = self.cluster.validate() {
            invalid("cluster", message);
        }
        if let Err((key, message)) = self.cluster.validate_security() {
            invalid(key, message);
        }
        if let Err((key, message)) = self.http.validate() {
            invalid(key, message);
        }
        if let Err((key, message)) = self.admin.validate() {
            invalid(key, message);
        }
        if let Err((key, message)) = self.api.validate() {
            invalid(key, message);
        }
        for (key, message) in self.webhooks.problems() {
            invalid(key, message);
        }
        if !LOG_FORMATS.contains(&self.node.log_format.as_str()) {
            invalid(
                "node.log_format",
                format!(
                    "{:?} is not one of {}",
                    self.node.log_format,
                    LOG_FORMATS.join(", ")
                ),
            );
        }
        if let Err(message) = crate::protocol::access::ChannelRules::new(&self.auth.rules) {
            invalid("auth.rules", message);
        }
        if self.auth.jwt.enabled
            && let Err(message) = crate::transport::bearer::JwtVerifier::new(&self.auth.jwt)
        {
            invalid("auth.jwt", message);
        }
        if self.auth.jwt.required && !self.auth.jwt.enabled {
            invalid(
                "auth.jwt.required",
                "needs auth.jwt.enabled (the binary has no other bearer-token check)".into(),
            );
        }
        if self.node.worker_threads > MAX_WORKER_THREADS {
            invalid(
                "node.worker_threads",
                format!(
                    "{} is more than {MAX_WORKER_THREADS} (0 = one per CPU)",
                    self.node.worker_threads
                ),
            );
        }
        if self.node.log_level.trim().is_empty() {
            invalid("node.log_level", "must not be empty".into());
        }
        if self.node.name.len() > 255
            || self
                .node
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            invalid(
                "node.name",
                format!(
                    "{:?}: at most 255 bytes, without spaces or control characters",
                    self.node.name
                ),
            );
        }
        if let Err(message) = self.server.tls.validate() {
            invalid("server.tls", message);
        }
        let s = &self.server;
        for (key, value) in [
            ("server.max_message_size", s.max_message_size),
            ("server.max_outbox_bytes", s.max_outbox_bytes),
            ("server.max_request_head", s.max_request_head),
        ] {
            if value == 0 {
                invalid(key, "must be greater than 0".into());
            }
        }
        if s.max_message_size > 0
            && s.max_outbox_bytes > 0
            && s.max_outbox_bytes < s.max_message_size
        {
            invalid(
                "server.max_outbox_bytes",
                format!(
                    "{} is smaller than server.max_message_size ({}): a message that large could \
                     never be delivered",
                    s.max_outbox_bytes, s.max_message_size
                ),
            );
        }
        if s.heartbeat_interval_ms > 0 && s.heartbeat_timeout_ms == 0 {
            invalid(
                "server.heartbeat_timeout_ms",
                "must be greater than 0 when the heartbeat is on".into(),
            );
        }
        if s.handshake_timeout_ms == 0 {
            invalid(
                "server.handshake_timeout_ms",
                "must be greater than 0".into(),
            );
        }
        out
    }

    /// Every certificate, key and CA file the configuration names that a start could not read or
    /// use (`server.tls`, `cluster.mesh.tls`), each file on its own. Reads the files; binds nothing.
    pub fn file_problems(&self) -> Vec<ConfigError> {
        let mut out = Vec::new();
        for message in self.server.tls.file_problems() {
            out.push(ConfigError::Invalid {
                key: "server.tls",
                message,
            });
        }
        for message in self.cluster.mesh.tls.file_problems() {
            out.push(ConfigError::Invalid {
                key: "cluster.mesh.tls",
                message,
            });
        }
        if self.webhooks.enabled()
            && !self.webhooks.ca_file.is_empty()
            && let Err(e) = crate::tls::load_roots(&self.webhooks.ca_file)
        {
            out.push(ConfigError::Invalid {
                key: "webhooks.ca_file",
                message: e.to_string(),
            });
        }
        out
    }
}

impl NodeConfig {
    /// The node's name: the configured one, or `<host name>:<port>` when it is empty.
    pub fn effective_name(&self, port: u16) -> String {
        if !self.name.is_empty() {
            return self.name.clone();
        }
        format!("{}:{port}", host_name())
    }
}

/// This machine's host name, or `localhost` when it cannot be read.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default()
            .validate()
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// The example file documents every option; it must parse, hold only known keys, and say the
    /// defaults (a changed default must be changed there too).
    #[test]
    fn example_file_parses_and_matches_the_defaults() {
        let text = include_str!("../wscluster.example.toml");
        let example = Config::from_toml_str(text).unwrap_or_else(|e| panic!("{e}"));
        example.validate().unwrap_or_else(|e| panic!("{e}"));
        let mut example = toml::Table::try_from(&example).unwrap_or_else(|e| panic!("{e}"));
        let mut defaults =
            toml::Table::try_from(Config::default()).unwrap_or_else(|e| panic!("{e}"));
        // The example shows a listen address and users for illustration only.
        for t in [&mut example, &mut defaults] {
            if let Some(auth) = t.get_mut("auth").and_then(|a| a.as_table_mut()) {
                auth.remove("users");
            }
        }
        assert_eq!(example, defaults);
    }

    /// Every option (leaf of the defaults, also in sub-tables such as `auth.jwt`) is spelled out
    /// in the example file, not just defaulted.
    #[test]
    fn example_file_names_every_option() {
        fn check(written: &toml::Table, defaults: &toml::Table, at: &str) {
            for (key, value) in defaults {
                let here = written.get(key);
                assert!(
                    here.is_some(),
                    "wscluster.example.toml does not document {at}{key}"
                );
                if let (Some(sub), Some(w)) = (value.as_table(), here.and_then(|h| h.as_table())) {
                    // `auth.users` is free-form (user names), not options.
                    if !sub.is_empty() {
                        check(w, sub, &format!("{at}{key}."));
                    }
                }
            }
        }
        let text = include_str!("../wscluster.example.toml");
        let written: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        let defaults = toml::Table::try_from(Config::default()).unwrap_or_else(|e| panic!("{e}"));
        check(&written, &defaults, "");
    }

    /// `[[auth.rules]]` is empty by default, so the check above cannot see it: its fields must be
    /// shown in the example file and the docs.
    #[test]
    fn channel_rules_are_documented() {
        let example = include_str!("../wscluster.example.toml");
        let docs = include_str!("../docs/configuration.md");
        assert!(example.contains("# [[auth.rules]]") && docs.contains("[[auth.rules]]"));
        let rule = crate::protocol::access::ChannelRule {
            identity: Some("x".into()),
            ..Default::default()
        };
        let fields = toml::Table::try_from(rule).unwrap_or_else(|e| panic!("{e}"));
        for field in fields.keys() {
            assert!(
                example.contains(&format!("# {field} =")),
                "example lacks {field}"
            );
            assert!(
                docs.contains(&format!("| `{field}` |")),
                "docs lack {field}"
            );
        }
    }

    #[test]
    fn too_many_worker_threads_are_refused_by_name() {
        let mut c = Config::default();
        c.node.worker_threads = MAX_WORKER_THREADS;
        assert!(c.validate().is_ok());
        c.node.worker_threads = MAX_WORKER_THREADS + 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "node.worker_threads",
                ..
            })
        ));
    }

    #[test]
    fn validation_names_the_bad_option() {
        let mut c = Config::default();
        c.node.log_format = "xml".into();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "node.log_format",
                ..
            })
        ));
        let mut c = Config::default();
        c.server.max_outbox_bytes = c.server.max_message_size - 1;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "server.max_outbox_bytes",
                ..
            })
        ));
        let mut c = Config::default();
        c.auth.rules.push(crate::protocol::access::ChannelRule {
            subscribe: vec!["[unclosed".into()],
            ..Default::default()
        });
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "auth.rules",
                ..
            })
        ));
        let mut c = Config::default();
        c.auth.jwt.enabled = true;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid { key: "auth.jwt", ref message }) if message.contains("secret")
        ));
        let mut c = Config::default();
        c.auth.jwt.required = true;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "auth.jwt.required",
                ..
            })
        ));
        let mut c = Config::default();
        c.node.name = "two words".into();
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Invalid {
                key: "node.name",
                ..
            })
        ));
    }

    /// Every problem is reported, not just the first; files named by the TLS sections are read.
    #[test]
    fn problems_lists_each_one() {
        let mut c = Config::default();
        c.node.log_format = "xml".into();
        c.node.name = "two words".into();
        c.server.handshake_timeout_ms = 0;
        let keys: Vec<&str> = c
            .problems()
            .iter()
            .filter_map(|p| match p {
                ConfigError::Invalid { key, .. } => Some(*key),
                _ => None,
            })
            .collect();
        assert_eq!(
            keys,
            [
                "node.log_format",
                "node.name",
                "server.handshake_timeout_ms"
            ]
        );
        let mut c = Config::default();
        c.server.tls.listen = "127.0.0.1:0".into();
        c.server.tls.cert_file = "/no/such/cert.pem".into();
        c.server.tls.key_file = "/no/such/key.pem".into();
        assert!(c.problems().is_empty(), "files are not read by problems()");
        let files = c.file_problems();
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files[0].to_string().contains("/no/such/cert.pem"));
        assert!(files[1].to_string().contains("/no/such/key.pem"));
    }

    #[test]
    fn empty_name_is_derived_from_host_and_port() {
        let n = NodeConfig::default();
        assert!(n.effective_name(8080).ends_with(":8080"));
        let named = NodeConfig {
            name: "alpha".into(),
            ..NodeConfig::default()
        };
        assert_eq!(named.effective_name(8080), "alpha");
    }
}
