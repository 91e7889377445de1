//! Configuration layering: defaults < TOML file < `WSCLUSTER_…` environment variables < flags.
//!
//! Every option has one dotted key (`server.max_message_size`), the same in all three sources:
//! - in the file it is the key `max_message_size` of the table `[server]`;
//! - in the environment it is `WSCLUSTER_SERVER__MAX_MESSAGE_SIZE`: the prefix, then the key in
//!   upper case with `__` between section and field (fields themselves use single `_`). A few
//!   options also have a short alias ([`ENV_ALIASES`], e.g. `WSCLUSTER_LISTEN`). Any other
//!   `WSCLUSTER_…` name without `__` is not configuration and is ignored (Kubernetes injects
//!   `WSCLUSTER_SERVICE_HOST`, `WSCLUSTER_PORT=tcp://…` and more into every pod of a Service named
//!   `wscluster`), see [`Sources::ignored_env`]; a `__` name that is no option is an error;
//! - on the command line it is `--set server.max_message_size=VALUE`, and a few options have their
//!   own flag (`--listen`, `--node-name`, `--log-level`, `--log-format`), which the binary turns
//!   into the same dotted keys.
//!
//! A value from the environment or a flag is read as the type of the option: text as is, numbers and
//! booleans parsed, tables and arrays (such as `auth.users`) as an inline TOML value
//! (`{ alice = "secret" }`). The layers are merged as TOML tables and the result is deserialised
//! once per layer, so an unknown key or a bad value is reported with the file, variable or flag it
//! came from.

use std::path::PathBuf;

use serde::Deserialize as _;
use toml::{Table, Value};

use super::{Config, ConfigError};

/// The prefix of every environment variable the node reads.
pub const ENV_PREFIX: &str = "WSCLUSTER_";

/// Short environment names: `(variable, dotted key)`. When both the alias and the systematic name
/// are set, the alias wins. `WSCLUSTER_CONFIG` (the file to read) is handled by the binary.
pub const ENV_ALIASES: [(&str, &str); 4] = [
    ("WSCLUSTER_LISTEN", "server.listen"),
    ("WSCLUSTER_NODE_NAME", "node.name"),
    ("WSCLUSTER_LOG_LEVEL", "node.log_level"),
    ("WSCLUSTER_LOG_FORMAT", "node.log_format"),
];

/// The environment variable that names the configuration file (not an option itself).
const ENV_CONFIG_FILE: &str = "WSCLUSTER_CONFIG";

/// Where a configuration comes from, each source over the one before it.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file to read, if any.
    pub file: Option<PathBuf>,
    /// The process environment as `(name, value)` pairs; only `WSCLUSTER_…` names are looked at:
    /// the short aliases and `WSCLUSTER_<SECTION>__<FIELD>` names are options (an unknown `__` name
    /// is an error: a typo must not be silently ignored), any other is ignored.
    pub env: Vec<(String, String)>,
    /// `(flag, dotted key, value)` from the command line, applied in order after the environment.
    /// `flag` is only used in error messages.
    pub flags: Vec<(String, String, String)>,
}

impl Sources {
    /// Sources with this process's environment and no file or flags.
    pub fn from_process_env() -> Self {
        Self {
            env: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
            ..Self::default()
        }
    }
}

impl Sources {
    /// The `WSCLUSTER_…` variables of [`Sources::env`] that are not configuration and are
    /// ignored: neither `WSCLUSTER_CONFIG`, nor a short alias, nor a `WSCLUSTER_<SECTION>__<FIELD>`
    /// name (e.g. the `WSCLUSTER_SERVICE_HOST` and `WSCLUSTER_PORT_8080_TCP` that Kubernetes
    /// injects for a Service named `wscluster`). The binary logs them at debug level.
    pub fn ignored_env(&self) -> Vec<&str> {
        self.env
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| env_kind(name) == EnvKind::Ignored)
            .collect()
    }
}

/// What a variable of the environment is to the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EnvKind {
    /// Not `WSCLUSTER_…`, or `WSCLUSTER_CONFIG` (read by the binary): not looked at here.
    Other,
    /// A short alias of one option ([`ENV_ALIASES`]).
    Alias(&'static str),
    /// `WSCLUSTER_<SECTION>__<FIELD>`: an option (or an error when it names none).
    Systematic,
    /// `WSCLUSTER_…` without `__` and no alias: not configuration.
    Ignored,
}

fn env_kind(name: &str) -> EnvKind {
    let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
        return EnvKind::Other;
    };
    if name == ENV_CONFIG_FILE {
        return EnvKind::Other;
    }
    if let Some((_, key)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == name) {
        return EnvKind::Alias(key);
    }
    if rest.contains("__") {
        EnvKind::Systematic
    } else {
        EnvKind::Ignored
    }
}

/// Applies the layers; the caller validates the result.
pub(super) fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut config = match &sources.file {
        Some(path) => read_file(path)?,
        None => Config::default(),
    };
    let mut table = to_table(&config)?;
    for (name, key, raw) in env_settings(&sources.env)? {
        let err = |message| ConfigError::Env {
            name: name.clone(),
            message: format!("{key} = {raw:?}: {message}"),
        };
        set(&mut table, &key, &raw).map_err(err)?;
        config = from_table(&table).map_err(err)?;
    }
    for (flag, key, raw) in &sources.flags {
        let err = |message| ConfigError::Flag {
            flag: flag.clone(),
            message: format!("{key} = {raw:?}: {message}"),
        };
        set(&mut table, key, raw).map_err(err)?;
        config = from_table(&table).map_err(err)?;
    }
    Ok(config)
}

fn read_file(path: &std::path::Path) -> Result<Config, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: shown.clone(),
        error,
    })?;
    Config::from_toml_str(&text).map_err(|e| ConfigError::File {
        path: shown,
        message: e.to_string().trim_end().to_owned(),
    })
}

fn to_table(config: &Config) -> Result<Table, ConfigError> {
    Table::try_from(config).map_err(|e| ConfigError::Invalid {
        key: "(all)",
        message: format!("cannot represent the configuration as TOML: {e}"),
    })
}

/// The configuration the table describes; the error is one line (serde's messages may span two).
fn from_table(table: &Table) -> Result<Config, String> {
    Config::deserialize(table.clone()).map_err(|e| {
        e.to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// The `WSCLUSTER_…` variables as `(variable, dotted key, value)`: systematic names first (sorted,
/// so the order is stable), then aliases, so an alias wins over its systematic name.
fn env_settings(env: &[(String, String)]) -> Result<Vec<(String, String, String)>, ConfigError> {
    let mut systematic = Vec::new();
    let mut aliased = Vec::new();
    for (name, value) in env {
        match env_kind(name) {
            EnvKind::Other | EnvKind::Ignored => {}
            EnvKind::Alias(key) => aliased.push((name.clone(), key.to_owned(), value.clone())),
            EnvKind::Systematic => {
                let rest = name.strip_prefix(ENV_PREFIX).unwrap_or(name);
                let segments: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
                if segments.iter().any(String::is_empty) {
                    let aliases: Vec<&str> = ENV_ALIASES.iter().map(|(a, _)| *a).collect();
                    return Err(ConfigError::Env {
                        name: name.clone(),
                        message: format!(
                            "not an option: use {ENV_PREFIX}<SECTION>__<FIELD> (e.g. \
                             WSCLUSTER_SERVER__MAX_MESSAGE_SIZE), {ENV_CONFIG_FILE}, or one of {}",
                            aliases.join(", ")
                        ),
                    });
                }
                systematic.push((name.clone(), segments.join("."), value.clone()));
            }
        }
    }
    systematic.sort();
    systematic.extend(aliased);
    Ok(systematic)
}

/// Sets the option at dotted `key` from its textual form, typed like the value it replaces.
fn set(table: &mut Table, key: &str, raw: &str) -> Result<(), String> {
    let path: Vec<&str> = key.split('.').map(str::trim).collect();
    let Some((last, parents)) = path.split_last() else {
        return Err("empty option name".into());
    };
    if last.is_empty() || parents.is_empty() || parents.iter().any(|p| p.is_empty()) {
        return Err("not an option name (expected section.field, e.g. server.listen)".into());
    }
    let mut here = table;
    for (i, p) in parents.iter().enumerate() {
        here = match here.get_mut(*p) {
            Some(Value::Table(t)) => t,
            Some(_) => return Err(format!("{} is not a section", path[..=i].join("."))),
            None => return Err(format!("unknown section {:?}", path[..=i].join("."))),
        };
    }
    let value = typed_value(here.get(*last), raw)?;
    here.insert((*last).to_owned(), value);
    Ok(())
}

/// Reads `raw` as the type of `current` (the value it replaces), or guesses when the option has no
/// value yet (an option that is off by default): a TOML literal when it is one, else text.
fn typed_value(current: Option<&Value>, raw: &str) -> Result<Value, String> {
    let t = raw.trim();
    match current {
        Some(Value::String(_)) => Ok(Value::String(raw.to_owned())),
        Some(Value::Integer(_)) => t
            .replace('_', "")
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| "not an integer".to_owned()),
        Some(Value::Float(_)) => t
            .parse::<f64>()
            .map(Value::Float)
            .map_err(|_| "not a number".to_owned()),
        Some(Value::Boolean(_)) => match t.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(Value::Boolean(true)),
            "false" | "0" | "no" | "off" => Ok(Value::Boolean(false)),
            _ => Err("not a boolean (true or false)".to_owned()),
        },
        Some(Value::Table(_)) | Some(Value::Array(_)) | Some(Value::Datetime(_)) => toml_literal(t)
            .ok_or_else(|| "not a TOML value (e.g. { alice = \"secret\" } or [1, 2])".to_owned()),
        None => Ok(toml_literal(t).unwrap_or_else(|| Value::String(raw.to_owned()))),
    }
}

fn toml_literal(text: &str) -> Option<Value> {
    let mut doc: Table = format!("v = {text}").parse().ok()?;
    doc.remove("v")
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn flag(name: &str, key: &str, value: &str) -> (String, String, String) {
        (name.to_owned(), key.to_owned(), value.to_owned())
    }

    /// A temporary TOML file, removed on drop.
    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .unwrap_or_else(|e| panic!("{e}"));
        f.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        f
    }

    #[test]
    fn nothing_given_is_the_defaults() {
        let c = load(&Sources::default()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.listen, Config::default().server.listen);
        assert_eq!(c.node.log_level, "info");
    }

    #[test]
    fn flags_over_env_over_file_over_defaults() {
        let f = file(
            "[node]\nname = \"from-file\"\nlog_level = \"debug\"\n[server]\nlisten = \"127.0.0.1:1001\"\nmax_message_size = 1000\n",
        );
        let file_only = Sources {
            file: Some(f.path().to_owned()),
            ..Sources::default()
        };
        let c = load(&file_only).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node.name, "from-file");
        assert_eq!(c.server.listen.port(), 1001);
        assert_eq!(c.server.max_message_size, 1000);
        assert_eq!(c.server.max_outbox_bytes, 4 * 1024 * 1024, "default kept");

        let with_env = Sources {
            env: env(&[
                ("WSCLUSTER_NODE_NAME", "from-env"),
                ("WSCLUSTER_SERVER__LISTEN", "127.0.0.1:1002"),
                ("PATH", "/bin"),
            ]),
            ..file_only.clone()
        };
        let c = load(&with_env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node.name, "from-env");
        assert_eq!(c.server.listen.port(), 1002);
        assert_eq!(c.node.log_level, "debug", "file value kept");

        let with_flags = Sources {
            flags: vec![
                flag("--listen", "server.listen", "127.0.0.1:1003"),
                flag("--node-name", "node.name", "from-flag"),
            ],
            ..with_env.clone()
        };
        let c = load(&with_flags).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.node.name, "from-flag");
        assert_eq!(c.server.listen.port(), 1003);
        assert_eq!(c.server.max_message_size, 1000, "file value kept");
    }

    #[test]
    fn env_values_take_the_type_of_the_option() {
        let s = Sources {
            env: env(&[
                ("WSCLUSTER_SERVER__MAX_MESSAGE_SIZE", "2_000"),
                ("WSCLUSTER_AUTH__ENABLED", "yes"),
                ("WSCLUSTER_AUTH__USERS", "{ alice = \"secret\" }"),
                ("WSCLUSTER_NODE__NAME", "1234"),
                ("WSCLUSTER_CONFIG", "/not/read/here.toml"),
            ]),
            ..Sources::default()
        };
        let c = load(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.max_message_size, 2000);
        assert!(c.auth.enabled);
        assert_eq!(
            c.auth.users.get("alice").map(String::as_str),
            Some("secret")
        );
        assert_eq!(c.node.name, "1234", "text options stay text");
    }

    #[test]
    fn alias_wins_over_systematic_name() {
        let s = Sources {
            env: env(&[
                ("WSCLUSTER_LISTEN", "127.0.0.1:2"),
                ("WSCLUSTER_SERVER__LISTEN", "127.0.0.1:1"),
            ]),
            ..Sources::default()
        };
        let c = load(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.listen.port(), 2);
    }

    #[test]
    fn errors_name_their_source() {
        let unknown_key = file("[server]\nlisten = \"127.0.0.1:1\"\nmax_mesage_size = 5\n");
        let e = load(&Sources {
            file: Some(unknown_key.path().to_owned()),
            ..Sources::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("max_mesage_size"), "{e}");
        assert!(e.contains(&unknown_key.path().display().to_string()), "{e}");
        assert!(e.contains("line 3"), "{e}");

        let bad_toml = file("[server\nlisten = 1\n");
        let e = load(&Sources {
            file: Some(bad_toml.path().to_owned()),
            ..Sources::default()
        });
        assert!(matches!(e, Err(ConfigError::File { .. })), "{e:?}");

        let e = load(&Sources {
            file: Some(PathBuf::from("/no/such/wscluster.toml")),
            ..Sources::default()
        });
        assert!(matches!(e, Err(ConfigError::Read { .. })), "{e:?}");

        for (name, value) in [
            ("WSCLUSTER_SERVER__MAX_MESSAGE_SIZE", "big"),
            ("WSCLUSTER_SERVER__LISTEN", "nowhere"),
            ("WSCLUSTER_SERVER__NOPE", "1"),
            ("WSCLUSTER_NOPE__X", "1"),
            ("WSCLUSTER___X", "1"),
            ("WSCLUSTER_SERVER__", "1"),
            ("WSCLUSTER_AUTH__USERS", "{ broken"),
        ] {
            let e = load(&Sources {
                env: env(&[(name, value)]),
                ..Sources::default()
            });
            match e {
                Err(ConfigError::Env { name: n, .. }) => assert_eq!(n, name),
                other => panic!("{name}={value}: expected an Env error, got {other:?}"),
            }
        }

        let e = load(&Sources {
            flags: vec![flag("--set", "server.heartbeat_interval_ms", "-1")],
            ..Sources::default()
        });
        assert!(matches!(e, Err(ConfigError::Flag { .. })), "{e:?}");
        let e = load(&Sources {
            flags: vec![flag("--set", "listen", "127.0.0.1:1")],
            ..Sources::default()
        });
        assert!(matches!(e, Err(ConfigError::Flag { .. })), "{e:?}");
    }

    /// What Kubernetes injects into every pod for a Service named `wscluster` (with a named
    /// port), and any stray `WSCLUSTER_SOMETHING`, is not configuration: ignored, and listed.
    #[test]
    fn variables_without_double_underscore_are_ignored() {
        let injected = env(&[
            ("WSCLUSTER_SERVICE_HOST", "10.0.0.7"),
            ("WSCLUSTER_SERVICE_PORT", "8080"),
            ("WSCLUSTER_SERVICE_PORT_WS", "8080"),
            ("WSCLUSTER_PORT", "tcp://10.0.0.7:8080"),
            ("WSCLUSTER_PORT_8080_TCP", "tcp://10.0.0.7:8080"),
            ("WSCLUSTER_PORT_8080_TCP_PROTO", "tcp"),
            ("WSCLUSTER_PORT_8080_TCP_PORT", "8080"),
            ("WSCLUSTER_PORT_8080_TCP_ADDR", "10.0.0.7"),
            ("WSCLUSTER_LISTN", "127.0.0.1:1"),
            ("WSCLUSTER_LISTEN", "127.0.0.1:3"),
            ("WSCLUSTER_CONFIG", "/not/read/here.toml"),
            ("PATH", "/bin"),
        ]);
        let s = Sources {
            env: injected,
            ..Sources::default()
        };
        let c = load(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.server.listen.port(), 3, "the alias still counts");
        let ignored = s.ignored_env();
        assert_eq!(ignored.len(), 9, "{ignored:?}");
        assert!(!ignored.contains(&"WSCLUSTER_LISTEN") && !ignored.contains(&"PATH"));
    }

    #[test]
    fn load_validates() {
        let e = Config::load(&Sources {
            flags: vec![flag("--log-format", "node.log_format", "xml")],
            ..Sources::default()
        });
        assert!(
            matches!(
                e,
                Err(ConfigError::Invalid {
                    key: "node.log_format",
                    ..
                })
            ),
            "{e:?}"
        );
    }
}
