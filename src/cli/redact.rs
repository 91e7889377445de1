//! `--print-config` without the secrets: every text value of an option whose name says it holds a
//! secret (`cluster.secret`, `admin.token`, `cluster.redis.password`, `auth.jwt.secret`, API keys,
//! …), every password of `auth.users`, and the password in any URL's user part
//! (`cluster.redis.url`, `cluster.nats.urls`; a NATS URL's user part alone is a token) is shown
//! as `<redacted>`. Empty values stay empty (they say "not set").

use toml::{Table, Value};

/// What a redacted value is shown as.
pub(crate) const REDACTED: &str = "<redacted>";

/// Parts of option names that mark a secret value. Names ending in `_file` or `_path` are paths
/// to secrets, not secrets, and are shown.
const SECRET_WORDS: [&str; 7] = [
    "secret",
    "password",
    "passwd",
    "token",
    "api_key",
    "apikey",
    "private_key",
];

/// Sections or values that are secrets whatever their name, by dotted key (`auth.users`: user
/// name = password; `api.keys.key`: the `key` of every API key).
const SECRET_TABLES: [&str; 2] = ["auth.users", "api.keys.key"];

/// The configuration as TOML with its secrets replaced by [`REDACTED`].
pub(crate) fn redacted_toml(config: &wscluster::Config) -> Result<String, String> {
    let mut table = Table::try_from(config).map_err(|e| e.to_string())?;
    redact_table(&mut table, "");
    toml::to_string(&table).map_err(|e| e.to_string())
}

fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    if name.ends_with("_file") || name.ends_with("_path") {
        return false;
    }
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

fn redact_table(table: &mut Table, at: &str) {
    for (key, value) in table.iter_mut() {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        if SECRET_TABLES.contains(&path.as_str()) || is_secret_name(key) {
            redact_all(value);
        } else {
            redact_value(value, &path);
        }
    }
}

/// Walks a value that is not a secret as a whole: sub-tables by name, URLs in text.
fn redact_value(value: &mut Value, path: &str) {
    match value {
        Value::Table(t) => redact_table(t, path),
        Value::Array(items) => {
            for item in items {
                redact_value(item, path);
            }
        }
        Value::String(s) => {
            if let Some(clean) = redact_url_password(s) {
                *s = clean;
            }
        }
        _ => {}
    }
}

/// Replaces every non-empty text inside `value`.
fn redact_all(value: &mut Value) {
    match value {
        Value::String(s) if !s.is_empty() => REDACTED.clone_into(s),
        Value::Table(t) => t.iter_mut().for_each(|(_, v)| redact_all(v)),
        Value::Array(items) => items.iter_mut().for_each(redact_all),
        _ => {}
    }
}

/// `scheme://user:password@host…` with the password redacted; `None` when there is none.
fn redact_url_password(s: &str) -> Option<String> {
    let scheme_end = s.find("://")? + 3;
    let rest = &s[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    let userinfo = &rest[..at];
    let scheme = &s[..scheme_end];
    if !userinfo.contains(':') && (scheme == "nats://" || scheme == "tls://") {
        // NATS: a user part alone is a token.
        return (!userinfo.is_empty()).then(|| format!("{scheme}{REDACTED}{}", &rest[at..]));
    }
    let (user, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    Some(format!(
        "{}{user}:{REDACTED}{}",
        &s[..scheme_end],
        &rest[at..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_password_only() {
        assert_eq!(
            redact_url_password("redis://app:pw@redis.example:6379/0").as_deref(),
            Some("redis://app:<redacted>@redis.example:6379/0")
        );
        assert_eq!(
            redact_url_password("rediss://:p@ss@h/1").as_deref(),
            Some("rediss://:<redacted>@h/1")
        );
        assert_eq!(redact_url_password("redis://h:6379/0"), None);
        assert_eq!(redact_url_password("redis://user@h:6379"), None);
        assert_eq!(redact_url_password("0.0.0.0:8080"), None);
    }

    #[test]
    fn secrets_are_redacted_and_the_rest_kept() {
        let mut c = wscluster::Config::default();
        c.cluster.secret = "cluster-s3cret".into();
        c.admin.token = "admin-t0ken".into();
        c.cluster.redis.password = "redis-pw".into();
        c.cluster.redis.url = "redis://u:url-pw@127.0.0.1:6379/0".into();
        c.cluster.nats.token = "nats-t0ken".into();
        c.cluster.nats.urls = vec![
            "nats://n:nats-url-pw@127.0.0.1:4222".into(),
            "tls://nats-url-t0ken@127.0.0.1:4223".into(),
        ];
        c.auth.users.insert("alice".into(), "alice-pw".into());
        c.auth.jwt.secret = "jwt-s3cret".into();
        c.auth.jwt.public_key_file = "/etc/wscluster/jwt.pem".into();
        c.api.keys.push(wscluster::config::ApiKey {
            name: "backend-name".into(),
            key: "api-key-s3cret-0123".into(),
            scopes: vec!["publish".into()],
        });
        let text = redacted_toml(&c).unwrap_or_else(|e| panic!("{e}"));
        for secret in [
            "cluster-s3cret",
            "admin-t0ken",
            "redis-pw",
            "url-pw",
            "nats-t0ken",
            "nats-url-pw",
            "nats-url-t0ken",
            "alice-pw",
            "jwt-s3cret",
            "api-key-s3cret-0123",
        ] {
            assert!(!text.contains(secret), "{secret} shown:\n{text}");
        }
        for kept in [
            "alice",
            "/etc/wscluster/jwt.pem",
            "max_session_tokens",
            "u:<redacted>@",
            "n:<redacted>@127.0.0.1:4222",
            "tls://<redacted>@127.0.0.1:4223",
            "backend-name",
        ] {
            assert!(text.contains(kept), "{kept} lost:\n{text}");
        }
        let back: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back["cluster"]["secret"].as_str(), Some(REDACTED));
        assert_eq!(back["cluster"]["name"].as_str(), Some("wscluster"));
    }
}
