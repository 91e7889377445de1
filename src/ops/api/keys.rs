//! Who may call the server API: the configured keys (kept as SHA-256 digests, compared in
//! constant time) and their scopes. Pure: no I/O.

use sha2::{Digest, Sha256};

use super::config::ApiConfig;
use super::error::ApiError;
use super::scope::Scope;

/// One key, as held in memory: its digest, never its text.
#[derive(Debug)]
struct Entry {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The key a request proved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caller<'a> {
    /// The key's name.
    pub name: &'a str,
    scopes: &'a [Scope],
}

impl Caller<'_> {
    /// `Ok` when the key has `scope`, otherwise the 403 error.
    pub(crate) fn may(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(ApiError::MissingScope(scope))
        }
    }
}

/// The configured keys.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    entries: Vec<Entry>,
}

impl Keys {
    /// The keys of a validated `[api]` section (unknown scopes are left out).
    pub(crate) fn new(config: &ApiConfig) -> Self {
        let entries = config
            .all_keys()
            .map(|k| Entry {
                name: k.name.clone(),
                digest: Sha256::digest(k.key.as_bytes()).into(),
                scopes: k.scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            })
            .collect();
        Self { entries }
    }

    /// The key a request presents, from `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    /// Every configured key is compared (in constant time), so the timing says nothing of which
    /// one matched or how much of a wrong key was right.
    pub(crate) fn check(
        &self,
        authorization: Option<&str>,
        x_api_key: Option<&str>,
    ) -> Result<Caller<'_>, ApiError> {
        if self.entries.is_empty() {
            return Err(ApiError::Disabled);
        }
        let given = authorization
            .and_then(bearer)
            .or_else(|| x_api_key.map(str::trim).filter(|k| !k.is_empty()))
            .ok_or(ApiError::Unauthorized)?;
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if same(&e.digest, &digest) && found.is_none() {
                found = Some(e);
            }
        }
        found
            .map(|e| Caller {
                name: &e.name,
                scopes: &e.scopes,
            })
            .ok_or(ApiError::Unauthorized)
    }
}

/// The credentials of `Bearer <token>` (scheme case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Constant-time equality of two digests.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::super::config::ApiKey;
    use super::*;

    fn keys() -> Keys {
        Keys::new(&ApiConfig {
            keys: vec![
                ApiKey {
                    name: "pub".into(),
                    key: "publish-key-0123456789".into(),
                    scopes: vec!["publish".into()],
                },
                ApiKey {
                    name: "all".into(),
                    key: "all-the-scopes-0123456789".into(),
                    scopes: vec![
                        "publish".into(),
                        "presence".into(),
                        "channels".into(),
                        "disconnect".into(),
                    ],
                },
            ],
            ..ApiConfig::default()
        })
    }

    #[test]
    fn bearer_or_x_api_key_with_scopes() {
        let k = keys();
        let c = k
            .check(Some("Bearer publish-key-0123456789"), None)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.name, "pub");
        assert_eq!(c.may(Scope::Publish), Ok(()));
        assert_eq!(
            c.may(Scope::Disconnect),
            Err(ApiError::MissingScope(Scope::Disconnect))
        );
        let c = k
            .check(None, Some("all-the-scopes-0123456789"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(c.name, "all");
        for bad in [
            (None, None),
            (Some("Bearer publish-key-012345678"), None),
            (Some("Basic publish-key-0123456789"), None),
            (None, Some("")),
        ] {
            assert_eq!(
                k.check(bad.0, bad.1).map(|c| c.name),
                Err(ApiError::Unauthorized)
            );
        }
        assert_eq!(
            Keys::default()
                .check(Some("Bearer x"), None)
                .map(|c| c.name),
            Err(ApiError::Disabled)
        );
    }
}
