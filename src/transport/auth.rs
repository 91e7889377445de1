//! Authentication of WebSocket upgrades (docs/wire.md §1.6): URL (`/sgc/auth/url/<user>/<password>`),
//! single-use session tokens (`GET /sgc/req/auth/session/<user>/<password>`, then
//! `/sgc/auth/session/<token>`), and HTTP Basic. Credentials are checked against the configured
//! user list first, then the application's hook.
//!
//! Beyond the wire reference: bearer tokens (`[auth.jwt]` or the application's bearer hook, see
//! [`super::bearer`]). A presented token decides alone: valid, the upgrade is the token's
//! identity; invalid, the upgrade is refused (404, like every refusal of §1.6) even when
//! non-authenticated connections are allowed. Without a token the wire reference's modes are tried.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::bearer::{
    self, AuthRefusal, BearerAttempt, BearerHook, Identity, JwtConfig, JwtVerifier,
};
use super::handshake::{Request, percent_decode};

/// Authentication options. Off by default.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Require authentication for WebSocket upgrades.
    pub enabled: bool,
    /// Accept connections that failed or skipped authentication (they get no user).
    pub allow_non_auth: bool,
    /// `user = "password"` pairs (the reference server's `AuthUsers`).
    pub users: BTreeMap<String, String>,
    /// Accept `/sgc/auth/url/<user>/<password>` upgrades.
    pub url: bool,
    /// Accept session tokens from `/sgc/req/auth/session/<user>/<password>`.
    pub session: bool,
    /// Accept `Authorization: Basic` on the upgrade.
    pub basic: bool,
    /// How long an unused session token stays valid, in milliseconds.
    pub session_token_ttl_ms: u64,
    /// At most this many unused session tokens are kept; older ones are dropped first.
    pub max_session_tokens: usize,
    /// Bearer tokens verified as JWTs (`[auth.jwt]`).
    pub jwt: JwtConfig,
    /// Channel rules (`[[auth.rules]]`): who may subscribe and publish where. Empty: everyone
    /// may do everything. Applied by the protocols (see [`crate::protocol::access`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ChannelRule>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            allow_non_auth: false,
            users: BTreeMap::new(),
            url: true,
            session: true,
            basic: false,
            session_token_ttl_ms: 60_000,
            max_session_tokens: 10_000,
            jwt: JwtConfig::default(),
            rules: Vec::new(),
        }
    }
}

/// One authentication attempt, as the application hook sees it.
#[derive(Debug, Clone)]
pub struct AuthAttempt<'a> {
    /// The user name presented.
    pub user: &'a str,
    /// The password presented.
    pub password: &'a str,
    /// The client's address.
    pub peer_addr: SocketAddr,
}

/// The application's credential check, asked after the configured user list (`OnAuthentication`).
pub type AuthHook = Arc<dyn Fn(&AuthAttempt<'_>) -> bool + Send + Sync>;

/// What authentication decided for an upgrade.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthOutcome {
    /// Authentication is off, or failed and non-authenticated connections are allowed.
    Anonymous,
    /// The upgrade proved this user (and, with a bearer token, its claims).
    User(Identity),
    /// Refused: answer the upgrade with HTTP 404.
    Refused(AuthRefusal),
}

/// Checks credentials and keeps the single-use session tokens.
pub struct Authenticator {
    config: AuthConfig,
    hook: Option<AuthHook>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    jwt: Option<JwtVerifier>,
    bearer_hook: Option<BearerHook>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.config.enabled)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Authenticator {
    /// An authenticator for `config`, with an optional application hook. Bearer tokens are not
    /// accepted (see [`Authenticator::with_bearer`]).
    pub fn new(config: AuthConfig, hook: Option<AuthHook>) -> Self {
        Self {
            config,
            hook,
            tokens: Mutex::new(HashMap::new()),
            jwt: None,
            bearer_hook: None,
        }
    }

    /// Accepts bearer tokens: checked by `hook` when set, else verified as JWTs when
    /// `auth.jwt.enabled` (this reads `auth.jwt.public_key_file`). The error names the option.
    pub fn with_bearer(mut self, hook: Option<BearerHook>) -> Result<Self, String> {
        if hook.is_none() && self.config.jwt.enabled {
            self.jwt = Some(JwtVerifier::new(&self.config.jwt)?);
        }
        self.bearer_hook = hook;
        Ok(self)
    }

    fn bearer_on(&self) -> bool {
        self.bearer_hook.is_some() || self.jwt.is_some()
    }

    /// Checks a presented bearer token.
    fn bearer(&self, token: &str, peer_addr: SocketAddr) -> Result<Identity, AuthRefusal> {
        match (&self.bearer_hook, &self.jwt) {
            (Some(h), _) => h(&BearerAttempt { token, peer_addr })
                .filter(|id| !id.user.is_empty())
                .ok_or(AuthRefusal::Hook),
            (None, Some(v)) => v.verify(token),
            (None, None) => Err(AuthRefusal::Invalid),
        }
    }

    /// Whether authentication is required at all.
    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// Checks a user and password: the configured list first, then the hook.
    pub fn check(&self, user: &str, password: &str, peer_addr: SocketAddr) -> bool {
        if self.config.users.get(user).is_some_and(|p| p == password) {
            return true;
        }
        self.hook.as_ref().is_some_and(|h| {
            h(&AuthAttempt {
                user,
                password,
                peer_addr,
            })
        })
    }

    /// Answers `GET /sgc/req/auth/session/<user>/<password>`: a new token, or `None` (HTTP 404).
    pub fn issue_session(&self, path: &str, peer_addr: SocketAddr) -> Option<String> {
        if !self.config.enabled || !self.config.session {
            return None;
        }
        let (user, password) = two_segments(path, "/sgc/req/auth/session/")?;
        if !self.check(&user, &password, peer_addr) {
            return None;
        }
        let token = super::connection::new_guid();
        let ttl = Duration::from_millis(self.config.session_token_ttl_ms);
        let mut tokens = self.tokens.lock();
        let now = Instant::now();
        tokens.retain(|_, (_, at)| now.duration_since(*at) < ttl);
        if tokens.len() >= self.config.max_session_tokens.max(1)
            && let Some(oldest) = tokens
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
        {
            tokens.remove(&oldest);
        }
        tokens.insert(token.clone(), (user, now));
        Some(token)
    }

    fn redeem(&self, token: &str) -> Option<String> {
        let ttl = Duration::from_millis(self.config.session_token_ttl_ms);
        let (user, at) = self.tokens.lock().remove(token)?;
        (at.elapsed() < ttl).then_some(user)
    }

    /// The upgrade path as kept for the connection: token query parameters and the password of
    /// `/sgc/auth/url/<user>/<password>` replaced by `REDACTED`.
    pub fn redacted_path(&self, path: &str) -> String {
        let path = bearer::redact_query(path, &self.config.jwt.query_parameters);
        let Some(rest) = path.strip_prefix("/sgc/auth/url/") else {
            return path;
        };
        let (segments, query) = match rest.split_once('?') {
            Some((s, q)) => (s, format!("?{q}")),
            None => (rest, String::new()),
        };
        let mut parts = segments.splitn(3, '/');
        let user = parts.next().unwrap_or_default();
        match (parts.next(), parts.next()) {
            (Some(_), Some(tail)) => format!("/sgc/auth/url/{user}/REDACTED/{tail}{query}"),
            (Some(_), None) => format!("/sgc/auth/url/{user}/REDACTED{query}"),
            _ => path,
        }
    }

    /// Decides an upgrade request: a bearer token when one is presented (and bearer tokens are
    /// on); else URL credentials, a session token, or Basic, in that order. Refusals are counted.
    pub fn authenticate(&self, req: &Request, peer_addr: SocketAddr) -> AuthOutcome {
        let outcome = self.decide(req, peer_addr);
        if let AuthOutcome::Refused(why) = outcome {
            crate::metrics::auth_refused(why.label());
        }
        outcome
    }

    fn decide(&self, req: &Request, peer_addr: SocketAddr) -> AuthOutcome {
        if self.bearer_on()
            && let Some(token) = bearer::token_of(req, &self.config.jwt.query_parameters)
        {
            return match self.bearer(&token, peer_addr) {
                Ok(id) => AuthOutcome::User(id),
                Err(why) => AuthOutcome::Refused(why),
            };
        }
        let required = self.bearer_on() && self.config.jwt.required;
        if !self.config.enabled {
            return if required {
                AuthOutcome::Refused(AuthRefusal::Missing)
            } else {
                AuthOutcome::Anonymous
            };
        }
        match self.credentials(req, peer_addr) {
            Some(u) => AuthOutcome::User(Identity {
                user: u,
                claims: None,
            }),
            None if self.config.allow_non_auth && !required => AuthOutcome::Anonymous,
            None => AuthOutcome::Refused(AuthRefusal::Credentials),
        }
    }

    /// The user the wire reference's modes prove, if any.
    fn credentials(&self, req: &Request, peer_addr: SocketAddr) -> Option<String> {
        let path = req.path_only();
        if self.config.url && path.starts_with("/sgc/auth/url/") {
            two_segments(path, "/sgc/auth/url/")
                .filter(|(u, p)| self.check(u, p, peer_addr))
                .map(|(u, _)| u)
        } else if self.config.session && path.starts_with("/sgc/auth/session/") {
            path.strip_prefix("/sgc/auth/session/")
                .map(|t| t.trim_end_matches('/'))
                .and_then(|t| self.redeem(t))
        } else if self.config.basic {
            req.header("authorization")
                .and_then(parse_basic)
                .filter(|(u, p)| self.check(u, p, peer_addr))
                .map(|(u, _)| u)
        } else {
            None
        }
    }
}

/// Splits `<prefix><a>/<b>` into percent-decoded `a` and `b`.
fn two_segments(path: &str, prefix: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix(prefix)?;
    let mut parts = rest.splitn(3, '/');
    let user = percent_decode(parts.next()?);
    let password = percent_decode(parts.next().unwrap_or(""));
    (!user.is_empty()).then_some((user, password))
}

fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// One `[[auth.rules]]` entry as written in the configuration; the protocols compile and apply
/// them (`ChannelRules` in the protocol layer).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChannelRule {
    /// Mask on the connection's user; `None`: every authenticated connection (or, with
    /// `anonymous`, no authenticated one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Mask on the roles of the connection's token; `None`: roles do not matter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether the rule applies to connections without a user.
    pub anonymous: bool,
    /// Channel masks the connection may subscribe to (Presence: join).
    pub subscribe: Vec<String>,
    /// Channel masks the connection may publish to (sgc publish and broadcast, Presence publish).
    pub publish: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(cfg: impl FnOnce(&mut AuthConfig)) -> Authenticator {
        let mut c = AuthConfig {
            enabled: true,
            ..AuthConfig::default()
        };
        c.users.insert("alice".into(), "secret".into());
        cfg(&mut c);
        Authenticator::new(c, None)
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

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn url_credentials() {
        let a = auth(|_| {});
        assert_eq!(
            a.authenticate(&req("/sgc/auth/url/alice/secret", &[]), peer()),
            AuthOutcome::User("alice".into())
        );
        assert_eq!(
            a.authenticate(&req("/sgc/auth/url/alice/wrong", &[]), peer()),
            AuthOutcome::Refused(AuthRefusal::Credentials)
        );
        assert_eq!(
            a.authenticate(&req("/", &[]), peer()),
            AuthOutcome::Refused(AuthRefusal::Credentials)
        );
    }

    #[test]
    fn session_tokens_are_single_use() {
        let a = auth(|_| {});
        assert!(
            a.issue_session("/sgc/req/auth/session/alice/nope", peer())
                .is_none()
        );
        let t = a
            .issue_session("/sgc/req/auth/session/alice/secret", peer())
            .expect("token");
        let path = format!("/sgc/auth/session/{t}");
        assert_eq!(
            a.authenticate(&req(&path, &[]), peer()),
            AuthOutcome::User("alice".into())
        );
        assert_eq!(
            a.authenticate(&req(&path, &[]), peer()),
            AuthOutcome::Refused(AuthRefusal::Credentials)
        );
    }

    #[test]
    fn basic_only_when_enabled() {
        // "alice:secret"
        let h = [("authorization", "Basic YWxpY2U6c2VjcmV0")];
        assert_eq!(
            auth(|_| {}).authenticate(&req("/", &h), peer()),
            AuthOutcome::Refused(AuthRefusal::Credentials)
        );
        assert_eq!(
            auth(|c| c.basic = true).authenticate(&req("/", &h), peer()),
            AuthOutcome::User("alice".into())
        );
    }

    #[test]
    fn hook_is_asked_after_the_list_and_non_auth_can_be_allowed() {
        let a = Authenticator::new(
            AuthConfig {
                enabled: true,
                ..AuthConfig::default()
            },
            Some(Arc::new(|at: &AuthAttempt<'_>| {
                at.user == "bob" && at.password == "pw"
            })),
        );
        assert_eq!(
            a.authenticate(&req("/sgc/auth/url/bob/pw", &[]), peer()),
            AuthOutcome::User("bob".into())
        );
        let open = auth(|c| c.allow_non_auth = true);
        assert_eq!(
            open.authenticate(&req("/", &[]), peer()),
            AuthOutcome::Anonymous
        );
    }

    #[test]
    fn kept_paths_hold_no_secrets() {
        let a = auth(|_| {});
        assert_eq!(
            a.redacted_path("/sgc/auth/url/alice/secret"),
            "/sgc/auth/url/alice/REDACTED"
        );
        assert_eq!(
            a.redacted_path("/sgc/auth/url/alice/secret/x?token=t"),
            "/sgc/auth/url/alice/REDACTED/x?token=REDACTED"
        );
        assert_eq!(
            a.redacted_path("/sgc/auth/url/alice"),
            "/sgc/auth/url/alice"
        );
        assert_eq!(a.redacted_path("/chat?a=1"), "/chat?a=1");
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        use crate::metrics::testing::{counter, record};
        let a = auth(|_| {});
        let (_, rec) = record(|| {
            a.authenticate(&req("/sgc/auth/url/alice/wrong", &[]), peer());
            a.authenticate(&req("/sgc/auth/url/alice/secret", &[]), peer());
        });
        let n = counter(
            &rec,
            crate::metrics::AUTH_REFUSALS,
            &[("reason", "credentials")],
        );
        assert_eq!(n, 1);
    }
}
