//! The `[api]` section: the keys of the server API and its HTTP limits (`docs/api.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::scope::Scope;
use crate::protocol::sgc::idempotency;

/// Shortest API key accepted, in bytes (as for `cluster.secret`).
pub(crate) const MIN_KEY_LEN: usize = 16;

/// One API key: `{ name, key, scopes }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// A name for logs and metrics (never the key itself).
    pub name: String,
    /// The secret a backend sends as `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    pub key: String,
    /// What the key may do: `publish`, `presence`, `channels`, `disconnect`.
    pub scopes: Vec<String>,
}

/// The shape of `api.keys_file` (TOML): `keys = [{ name, key, scopes }, …]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysFile {
    #[serde(default)]
    keys: Vec<ApiKey>,
}

/// The `[api]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// The API keys. None (and no `keys_file`): every `/api/` route answers 401.
    pub keys: Vec<ApiKey>,
    /// A TOML file holding more keys, as `keys = [{ name, key, scopes }, …]`; read at start.
    pub keys_file: String,
    /// How long an idempotency key is remembered on every node, in milliseconds.
    pub idempotency_window_ms: u64,
    /// Bytes the remembered idempotency keys may take on a node (each key costs its length plus
    /// about 96 bytes); past it the oldest are forgotten early (counted).
    pub idempotency_max_bytes: usize,
    /// Largest `/api/` request body, in bytes; a longer one is refused with 413.
    pub max_body_bytes: usize,
    /// Most commands in one `POST /api/batch`.
    pub max_batch_commands: usize,
    /// How long a keep-alive connection may wait for its next request, and one request head may
    /// take to arrive, in milliseconds; then the connection is closed.
    pub idle_timeout_ms: u64,
    /// How long a request body may take to arrive, in milliseconds (408 after it).
    pub body_timeout_ms: u64,
    /// The keys read from `keys_file` (not an option).
    #[serde(skip)]
    pub(crate) keys_from_file: Vec<ApiKey>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            keys_file: String::new(),
            idempotency_window_ms: idempotency::DEFAULT_WINDOW_MS,
            idempotency_max_bytes: idempotency::DEFAULT_MAX_BYTES,
            max_body_bytes: 1024 * 1024,
            max_batch_commands: 1000,
            idle_timeout_ms: 60_000,
            body_timeout_ms: 10_000,
            keys_from_file: Vec::new(),
        }
    }
}

impl ApiConfig {
    /// Reads `keys_file` (when set) into the keys used besides `keys`.
    pub fn load_keys_file(&mut self) -> Result<(), (&'static str, String)> {
        self.keys_from_file.clear();
        if self.keys_file.is_empty() {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.keys_file).map_err(|e| {
            (
                "api.keys_file",
                format!("cannot read {:?}: {e}", self.keys_file),
            )
        })?;
        let file: KeysFile = toml::from_str(&text).map_err(|e| {
            (
                "api.keys_file",
                format!(
                    "{:?} is not `keys = [{{ name, key, scopes }}, …]`: {}",
                    self.keys_file,
                    e.message()
                ),
            )
        })?;
        self.keys_from_file = file.keys;
        Ok(())
    }

    /// Every key: `keys`, then those of `keys_file`.
    pub fn all_keys(&self) -> impl Iterator<Item = &ApiKey> {
        self.keys.iter().chain(&self.keys_from_file)
    }

    /// The keep-alive idle (and request head) timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    /// The body timeout.
    pub fn body_timeout(&self) -> Duration {
        Duration::from_millis(self.body_timeout_ms.max(1))
    }

    /// Checks values that cannot work; a key's problem names the key (never its secret).
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value) in [
            ("api.idempotency_window_ms", self.idempotency_window_ms),
            ("api.idle_timeout_ms", self.idle_timeout_ms),
            ("api.body_timeout_ms", self.body_timeout_ms),
        ] {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        for (key, value) in [
            ("api.idempotency_max_bytes", self.idempotency_max_bytes),
            ("api.max_body_bytes", self.max_body_bytes),
            ("api.max_batch_commands", self.max_batch_commands),
        ] {
            if value == 0 {
                return Err((key, "must be greater than 0".into()));
            }
        }
        let from = |i: usize| {
            if i < self.keys.len() {
                "api.keys"
            } else {
                "api.keys_file"
            }
        };
        let mut names = std::collections::HashSet::new();
        for (i, k) in self.all_keys().enumerate() {
            let at = from(i);
            if k.name.is_empty() || k.name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err((
                    at,
                    format!(
                        "key #{} has name {:?}: give every key a name without spaces or control \
                         characters",
                        i + 1,
                        k.name
                    ),
                ));
            }
            if !names.insert(k.name.as_str()) {
                return Err((at, format!("two keys are named {:?}", k.name)));
            }
            if k.key.len() < MIN_KEY_LEN {
                return Err((
                    at,
                    format!(
                        "key {:?} is {} bytes: at least {MIN_KEY_LEN} are needed (wscluster \
                         gen-secret makes one)",
                        k.name,
                        k.key.len()
                    ),
                ));
            }
            if k.key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err((
                    at,
                    format!("key {:?} holds spaces or control characters", k.name),
                ));
            }
            if k.scopes.is_empty() {
                return Err((
                    at,
                    format!(
                        "key {:?} has no scopes (publish, presence, channels, disconnect)",
                        k.name
                    ),
                ));
            }
            if let Some(bad) = k.scopes.iter().find(|s| Scope::parse(s).is_none()) {
                return Err((
                    at,
                    format!(
                        "key {:?}: scope {bad:?} is not one of publish, presence, channels, \
                         disconnect",
                        k.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, key: &str, scopes: &[&str]) -> ApiKey {
        ApiKey {
            name: name.into(),
            key: key.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn keys_are_checked_by_name_without_showing_them() {
        assert_eq!(ApiConfig::default().validate(), Ok(()));
        let with = |k: ApiKey| ApiConfig {
            keys: vec![k],
            ..ApiConfig::default()
        };
        assert_eq!(
            with(key("b", "0123456789abcdef", &["publish"])).validate(),
            Ok(())
        );
        let short = with(key("backend", "short-secret", &["publish"])).validate();
        let Err(("api.keys", m)) = short else {
            panic!("{short:?}")
        };
        assert!(
            m.contains("\"backend\"") && !m.contains("short-secret"),
            "{m}"
        );
        for bad in [
            key("b", "0123456789abcdef", &[]),
            key("b", "0123456789abcdef", &["admin"]),
            key("", "0123456789abcdef", &["publish"]),
            key("b", "0123456789 abcdef", &["publish"]),
        ] {
            assert!(matches!(with(bad).validate(), Err(("api.keys", _))));
        }
        let mut two = with(key("b", "0123456789abcdef", &["publish"]));
        two.keys.push(key("b", "fedcba9876543210", &["presence"]));
        assert!(matches!(two.validate(), Err(("api.keys", _))));
    }

    #[test]
    fn the_keys_file_adds_keys() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("keys.toml");
        std::fs::write(
            &path,
            "keys = [{ name = \"f\", key = \"0123456789abcdef\", scopes = [\"channels\"] }]\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut c = ApiConfig {
            keys_file: path.display().to_string(),
            ..ApiConfig::default()
        };
        assert_eq!(c.load_keys_file(), Ok(()));
        assert_eq!(c.all_keys().count(), 1);
        std::fs::write(&path, "keys = 3\n").unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(c.load_keys_file(), Err(("api.keys_file", _))));
        c.keys_file = dir.path().join("none").display().to_string();
        assert!(matches!(c.load_keys_file(), Err(("api.keys_file", _))));
    }
}
