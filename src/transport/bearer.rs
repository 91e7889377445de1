//! Bearer tokens on WebSocket upgrades: `Authorization: Bearer <token>`, or (for browsers, which
//! cannot set headers on a WebSocket) a query parameter such as `?access_token=<token>`.
//!
//! A token is checked by the application's [`BearerHook`] when one is set, else verified as a JWT
//! with the configured key ([`JwtConfig`], the `jsonwebtoken` crate with its RustCrypto backend).
//! A valid token yields an [`Identity`]: the user name (the `identity_claim`) that becomes
//! [`crate::transport::Connection::user`], and the token's claims, which hooks read through
//! [`crate::transport::Connection::claims`]. Tokens are never logged.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

use super::handshake::Request;

/// The claims of a verified token (the JWT payload object).
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// `[auth.jwt]`: bearer tokens verified as JSON Web Tokens. Off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Accept bearer tokens and verify them as JWTs.
    pub enabled: bool,
    /// Refuse upgrades that are not authenticated (no valid token, and no valid `[auth]`
    /// credentials when `auth.enabled`).
    pub required: bool,
    /// The signature algorithm tokens must use: HS256, HS384, HS512 (with `secret`), RS256,
    /// RS384, RS512, PS256, PS384, PS512 (RSA `public_key_file`), ES256, ES384 (EC
    /// `public_key_file`) or EdDSA (Ed25519 `public_key_file`).
    pub algorithm: String,
    /// The shared secret of the HMAC algorithms.
    pub secret: String,
    /// A PEM file with the public key of the RSA, EC and EdDSA algorithms.
    pub public_key_file: String,
    /// When not empty, tokens must carry this `iss`.
    pub issuer: String,
    /// When not empty, tokens must carry this `aud`.
    pub audience: String,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds.
    pub leeway_s: u64,
    /// The claim whose (string) value is the connection's user.
    pub identity_claim: String,
    /// Query parameters of the upgrade URL that may carry the token (empty: header only).
    pub query_parameters: Vec<String>,
    /// The claim listing the token's roles (a string or an array of strings), which
    /// `[[auth.rules]]` entries with a `role` match.
    pub roles_claim: String,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            required: false,
            algorithm: "HS256".into(),
            secret: String::new(),
            public_key_file: String::new(),
            issuer: String::new(),
            audience: String::new(),
            leeway_s: 30,
            identity_claim: "sub".into(),
            query_parameters: vec!["access_token".into(), "token".into()],
            roles_claim: "roles".into(),
        }
    }
}

/// Who a bearer token proved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Identity {
    /// The user name ([`crate::transport::Connection::user`]).
    pub user: String,
    /// The token's claims, when it had any to share with hooks.
    pub claims: Option<Arc<Claims>>,
}

impl From<&str> for Identity {
    fn from(user: &str) -> Self {
        Self {
            user: user.to_owned(),
            claims: None,
        }
    }
}

/// One bearer token, as the application's hook sees it.
#[derive(Debug, Clone)]
pub struct BearerAttempt<'a> {
    /// The token presented (never log it).
    pub token: &'a str,
    /// The client's address.
    pub peer_addr: SocketAddr,
}

/// The application's token check: the identity the token proves, or `None` to refuse the upgrade.
/// When set it replaces the built-in JWT verification.
pub type BearerHook = Arc<dyn Fn(&BearerAttempt<'_>) -> Option<Identity> + Send + Sync>;

/// Why an upgrade was refused by authentication; the label of `wscluster_auth_refusals_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Wrong or missing `[auth]` credentials (URL, session token, Basic).
    Credentials,
    /// No token and no credentials, but authentication is required.
    Missing,
    /// The token's `exp` has passed.
    Expired,
    /// The token's `nbf` has not come yet.
    NotYetValid,
    /// The signature does not verify with the configured key.
    Signature,
    /// The token's `iss` is not the configured issuer.
    Issuer,
    /// The token's `aud` is not the configured audience.
    Audience,
    /// The token names no identity (the identity claim is missing or not a string).
    NoIdentity,
    /// The token is malformed, uses another algorithm, or lacks a required claim.
    Invalid,
    /// The token's header has a `crit` parameter: it needs extensions this server does not
    /// understand (none are), so it must be refused (RFC 7515 §4.1.11).
    Critical,
    /// The application's bearer hook said no.
    Hook,
}

impl AuthRefusal {
    /// Every reason (their counters are exported at 0 from the start).
    pub const ALL: [AuthRefusal; 11] = [
        AuthRefusal::Credentials,
        AuthRefusal::Missing,
        AuthRefusal::Expired,
        AuthRefusal::NotYetValid,
        AuthRefusal::Signature,
        AuthRefusal::Issuer,
        AuthRefusal::Audience,
        AuthRefusal::NoIdentity,
        AuthRefusal::Invalid,
        AuthRefusal::Critical,
        AuthRefusal::Hook,
    ];

    /// The metric label and log reason.
    pub fn label(self) -> &'static str {
        match self {
            AuthRefusal::Credentials => "credentials",
            AuthRefusal::Missing => "missing",
            AuthRefusal::Expired => "expired",
            AuthRefusal::NotYetValid => "not_yet_valid",
            AuthRefusal::Signature => "signature",
            AuthRefusal::Issuer => "issuer",
            AuthRefusal::Audience => "audience",
            AuthRefusal::NoIdentity => "no_identity",
            AuthRefusal::Invalid => "invalid_token",
            AuthRefusal::Critical => "critical_header",
            AuthRefusal::Hook => "hook",
        }
    }
}

/// Verifies JWTs with the configured key and checks.
pub struct JwtVerifier {
    key: DecodingKey,
    validation: Validation,
    identity_claim: String,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for `config` (reads `public_key_file`); the error says what is wrong.
    pub fn new(config: &JwtConfig) -> Result<Self, String> {
        let algorithm: Algorithm = config.algorithm.parse().map_err(|_| {
            format!(
                "auth.jwt.algorithm: unknown algorithm {:?}",
                config.algorithm
            )
        })?;
        let pem = || {
            if config.public_key_file.is_empty() {
                return Err(format!(
                    "auth.jwt.public_key_file: {} needs a public key file",
                    config.algorithm
                ));
            }
            std::fs::read(&config.public_key_file)
                .map_err(|e| format!("auth.jwt.public_key_file: {e}"))
        };
        let bad_key = |e: jsonwebtoken::errors::Error| format!("auth.jwt.public_key_file: {e}");
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                if config.secret.is_empty() {
                    return Err(format!(
                        "auth.jwt.secret: {} needs a secret",
                        config.algorithm
                    ));
                }
                DecodingKey::from_secret(config.secret.as_bytes())
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(&pem()?).map_err(bad_key)?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem()?).map_err(bad_key)?,
            _ => DecodingKey::from_rsa_pem(&pem()?).map_err(bad_key)?,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = config.leeway_s;
        validation.validate_nbf = true;
        if !config.issuer.is_empty() {
            validation.set_issuer(&[config.issuer.as_str()]);
        }
        if config.audience.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&[config.audience.as_str()]);
        }
        if config.identity_claim.is_empty() {
            return Err("auth.jwt.identity_claim: must not be empty".into());
        }
        Ok(Self {
            key,
            validation,
            identity_claim: config.identity_claim.clone(),
        })
    }

    /// Verifies `token`: its identity, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Identity, AuthRefusal> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| refusal(e.kind()))?;
        if has_crit(token) {
            return Err(AuthRefusal::Critical);
        }
        let claims = data.claims;
        let user = claims
            .get(&self.identity_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or(AuthRefusal::NoIdentity)?
            .to_owned();
        Ok(Identity {
            user,
            claims: Some(Arc::new(claims)),
        })
    }
}

/// Whether the token's header (read raw: the JWT crate ignores it) names a `crit` parameter, in
/// any form. This server understands no extension, so any `crit` means refusal; a header that
/// cannot be read counts as one.
fn has_crit(token: &str) -> bool {
    use base64::Engine as _;
    let Some(header) = token.split('.').next() else {
        return true;
    };
    let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else {
        return true;
    };
    match serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&raw) {
        Ok(h) => h.contains_key("crit"),
        Err(_) => true,
    }
}

fn refusal(kind: &ErrorKind) -> AuthRefusal {
    match kind {
        ErrorKind::ExpiredSignature => AuthRefusal::Expired,
        ErrorKind::ImmatureSignature => AuthRefusal::NotYetValid,
        ErrorKind::InvalidSignature => AuthRefusal::Signature,
        ErrorKind::InvalidIssuer => AuthRefusal::Issuer,
        ErrorKind::InvalidAudience => AuthRefusal::Audience,
        _ => AuthRefusal::Invalid,
    }
}

/// The bearer token of an upgrade: the `Authorization: Bearer` header, else the first of
/// `params` present in the query string (percent-decoded).
pub fn token_of(req: &Request, params: &[String]) -> Option<String> {
    if let Some(v) = req.header("authorization")
        && let Some((scheme, token)) = v.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("bearer")
        && !token.trim().is_empty()
    {
        return Some(token.trim().to_owned());
    }
    let query = req.path.split_once('?').map(|(_, q)| q)?;
    params.iter().find_map(|want| {
        query.split('&').find_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            (name == want && !value.is_empty()).then(|| super::handshake::percent_decode(value))
        })
    })
}

/// `path` with the values of the token query parameters `params` replaced by `REDACTED`, so that
/// what is kept about a connection (and shown by the admin API) holds no token.
pub fn redact_query(path: &str, params: &[String]) -> String {
    let Some((base, query)) = path.split_once('?') else {
        return path.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if params.iter().any(|p| p == name) => format!("{name}=REDACTED"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    #[test]
    fn every_reason_is_exported_at_zero_by_its_label() {
        let labels: Vec<&str> = AuthRefusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels, crate::metrics::AUTH_REFUSAL_REASONS);
    }

    fn cfg() -> JwtConfig {
        JwtConfig {
            enabled: true,
            secret: "s3cret".into(),
            issuer: "me".into(),
            audience: "ws".into(),
            leeway_s: 0,
            ..JwtConfig::default()
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_crit_header_is_refused_whatever_it_names() {
        let v = JwtVerifier::new(&cfg()).unwrap_or_else(|e| panic!("{e}"));
        let claims = json!({"sub": "alice", "iss": "me", "aud": "ws", "exp": now() + 60});
        let key = EncodingKey::from_secret(b"s3cret");
        for crit in [vec!["b64".to_owned()], vec!["exp-ext".to_owned()], vec![]] {
            let header = Header {
                crit: Some(crit.clone()),
                ..Header::default()
            };
            let t = encode(&header, &claims, &key).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v.verify(&t).err(), Some(AuthRefusal::Critical), "{crit:?}");
        }
        let t = encode(&Header::default(), &claims, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.verify(&t).map(|i| i.user), Ok("alice".to_owned()));
    }

    #[test]
    fn verifies_and_names_the_identity() {
        let v = JwtVerifier::new(&cfg()).unwrap_or_else(|e| panic!("{e}"));
        let good =
            json!({"sub": "alice", "iss": "me", "aud": "ws", "exp": now() + 60, "roles": ["a"]});
        let id = v.verify(&token(good.clone(), "s3cret"));
        let id = id.unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(id.user, "alice");
        assert_eq!(
            id.claims.and_then(|c| c.get("roles").cloned()),
            Some(json!(["a"]))
        );
        let reason =
            |claims: serde_json::Value, secret: &str| v.verify(&token(claims, secret)).err();
        assert_eq!(reason(good.clone(), "other"), Some(AuthRefusal::Signature));
        let mut c = good.clone();
        c["exp"] = json!(now() - 10);
        assert_eq!(reason(c, "s3cret"), Some(AuthRefusal::Expired));
        let mut c = good.clone();
        c["aud"] = json!("elsewhere");
        assert_eq!(reason(c, "s3cret"), Some(AuthRefusal::Audience));
        let mut c = good.clone();
        c["iss"] = json!("them");
        assert_eq!(reason(c, "s3cret"), Some(AuthRefusal::Issuer));
        let mut c = good.clone();
        c["nbf"] = json!(now() + 100);
        assert_eq!(reason(c, "s3cret"), Some(AuthRefusal::NotYetValid));
        let mut c = good;
        c.as_object_mut().map(|o| o.remove("sub"));
        assert_eq!(reason(c, "s3cret"), Some(AuthRefusal::NoIdentity));
        assert_eq!(v.verify("not.a.jwt").err(), Some(AuthRefusal::Invalid));
        assert_eq!(v.verify("").err(), Some(AuthRefusal::Invalid));
    }

    /// A key pair made for this test only (`openssl genpkey -algorithm ed25519`).
    const ED_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIzU24dvLGX1iYg+N+6Jg5X7aUS1/HfZYV+juZlOA9Pr\n-----END PRIVATE KEY-----\n";
    const ED_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAPL/RnBGo0pojp1VUu5vqCiM/1ZrLvBmkqdggpG9PF6M=\n-----END PUBLIC KEY-----\n";

    #[test]
    fn public_keys_are_read_from_a_pem_file() {
        let file = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(file.path(), ED_PUBLIC).unwrap_or_else(|e| panic!("{e}"));
        let v = JwtVerifier::new(&JwtConfig {
            enabled: true,
            algorithm: "EdDSA".into(),
            public_key_file: file.path().to_string_lossy().into_owned(),
            ..JwtConfig::default()
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let key = EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        let claims = json!({"sub": "dora", "exp": now() + 60});
        let signed =
            encode(&Header::new(Algorithm::EdDSA), &claims, &key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.verify(&signed).map(|id| id.user), Ok("dora".to_owned()));
        // An HMAC token is refused by a verifier for EdDSA (no algorithm confusion).
        assert_eq!(
            v.verify(&token(claims, "s3cret")).err(),
            Some(AuthRefusal::Invalid)
        );
        let missing = JwtConfig {
            algorithm: "EdDSA".into(),
            public_key_file: "/nonexistent/key.pem".into(),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::new(&missing).is_err());
    }

    #[test]
    fn configuration_mistakes_are_named() {
        let bad = |f: fn(&mut JwtConfig)| {
            let mut c = cfg();
            f(&mut c);
            JwtVerifier::new(&c).err().unwrap_or_default()
        };
        assert!(bad(|c| c.algorithm = "XX1".into()).starts_with("auth.jwt.algorithm"));
        assert!(bad(|c| c.secret.clear()).starts_with("auth.jwt.secret"));
        assert!(bad(|c| c.algorithm = "RS256".into()).starts_with("auth.jwt.public_key_file"));
        assert!(bad(|c| c.identity_claim.clear()).starts_with("auth.jwt.identity_claim"));
    }

    fn req(path: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            method: "GET".into(),
            path: path.into(),
            headers: headers
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        }
    }

    #[test]
    fn token_parameters_are_redacted() {
        let params = JwtConfig::default().query_parameters;
        assert_eq!(
            redact_query("/a?x=1&token=abc&y", &params),
            "/a?x=1&token=REDACTED&y"
        );
        assert_eq!(redact_query("/a", &params), "/a");
        assert_eq!(redact_query("/?access_token=q", &[]), "/?access_token=q");
    }

    #[test]
    fn tokens_come_from_the_header_then_the_query() {
        let params = JwtConfig::default().query_parameters;
        let t = |path: &str, h: &[(&str, &str)]| token_of(&req(path, h), &params);
        assert_eq!(
            t("/", &[("authorization", "Bearer abc")]).as_deref(),
            Some("abc")
        );
        assert_eq!(
            t("/", &[("authorization", "bearer  abc ")]).as_deref(),
            Some("abc")
        );
        assert_eq!(t("/", &[("authorization", "Basic abc")]), None);
        assert_eq!(t("/?x=1&access_token=a%2Eb", &[]).as_deref(), Some("a.b"));
        assert_eq!(t("/?token=q", &[]).as_deref(), Some("q"));
        assert_eq!(t("/?token=", &[]), None);
        assert_eq!(t("/?tok=q", &[]), None);
        assert_eq!(token_of(&req("/?token=q", &[]), &[]), None);
    }
}
