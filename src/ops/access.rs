//! Who may use a route: pure rules, no I/O.
//!
//! - Open routes (`/health`, `/ready`, `/metrics`, `/status`, `/`) are served to anyone on the
//!   ports where the routes are served.
//! - Admin routes (`/admin/...`, `/status.json`) need `Authorization: Bearer <admin.token>` on
//!   every port when a token is configured (401 without it or with a wrong one). With no token
//!   configured they are refused (403) on the WebSocket port and served on the admin port
//!   (`http.admin_listen`) only: binding that port to a private address is the protection.
//!
//! - Admin routes served without a token (the admin port) are closed to browsers on other sites
//!   ([`check_site`]): the `Host` must be the listener's own address, a loopback name with its
//!   port, or one of `http.allowed_hosts` (421 otherwise: DNS rebinding); an `Origin`, when
//!   present, must be that same host (403); a request that changes something must say
//!   `Content-Type: application/json` (415), which no cross-site form or simple request can send.
//!   With a token these checks are not needed: a browser never adds the token by itself.
//!
//! Tokens are compared in constant time (their SHA-256 digests, so the length leaks nothing).

use std::net::SocketAddr;

use sha2::{Digest, Sha256};

/// Which listener a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The WebSocket port (`server.listen`).
    WebSocket,
    /// The separate admin port (`http.admin_listen`).
    Admin,
}

impl Listener {
    /// Its label in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Listener::WebSocket => "websocket",
            Listener::Admin => "admin",
        }
    }
}

/// How a route is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Guard {
    /// Anyone.
    Open,
    /// The admin token, or the admin port when no token is configured.
    Admin,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token, or a wrong one (401).
    Unauthorized,
    /// Admin routes are off on this port: no token is configured (403).
    Disabled,
    /// Served without a token, and the `Host` is not this listener's (421).
    ForeignHost,
    /// Served without a token, and the `Origin` is another site (403).
    ForeignOrigin,
    /// Served without a token, a request that changes something without
    /// `Content-Type: application/json` (415).
    NotJson,
}

impl Refusal {
    /// The HTTP status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::Disabled | Refusal::ForeignOrigin => 403,
            Refusal::ForeignHost => 421,
            Refusal::NotJson => 415,
        }
    }

    /// The explanation sent to the client.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "a valid \"Authorization: Bearer <admin.token>\" is required",
            Refusal::Disabled => {
                "admin routes are off on this port: set admin.token, or use http.admin_listen"
            }
            Refusal::ForeignHost => {
                "the Host header is not this listener's address: use it, a loopback name with \
                 its port, or a name listed in http.allowed_hosts (or set admin.token)"
            }
            Refusal::ForeignOrigin => {
                "cross-site request refused: the Origin is not this listener (or set admin.token)"
            }
            Refusal::NotJson => "send the body with Content-Type: application/json",
        }
    }
}

/// Decides whether a request may use a route guarded by `guard`. `token` is the configured
/// `admin.token`; `authorization` the request's `Authorization` header.
pub(crate) fn check(
    guard: Guard,
    listener: Listener,
    token: &str,
    authorization: Option<&str>,
) -> Result<(), Refusal> {
    match guard {
        Guard::Open => Ok(()),
        Guard::Admin if token.is_empty() => match listener {
            Listener::Admin => Ok(()),
            Listener::WebSocket => Err(Refusal::Disabled),
        },
        Guard::Admin => match authorization.and_then(bearer) {
            Some(given) if same(given, token) => Ok(()),
            _ => Err(Refusal::Unauthorized),
        },
    }
}

/// What [`check_site`] reads of a request served without a token.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Site<'a> {
    /// The `Host` header.
    pub host: Option<&'a str>,
    /// The `Origin` header.
    pub origin: Option<&'a str>,
    /// The `Content-Type` header.
    pub content_type: Option<&'a str>,
    /// Whether the route changes something (every `POST`).
    pub mutating: bool,
    /// The address the request arrived on (the listener's, as the client reached it), if known.
    pub local: Option<SocketAddr>,
}

/// Whether a request a browser on another site could have made is refused: applies to admin
/// routes served without a token (see the module documentation). `allowed_hosts` is
/// `http.allowed_hosts`: names (any port) or `name:port`, compared ignoring case.
pub(crate) fn check_site(site: &Site<'_>, allowed_hosts: &[String]) -> Result<(), Refusal> {
    // A request without Host is not a browser's (every browser sends it).
    if site
        .host
        .is_some_and(|host| !host_allowed(host, site.local, allowed_hosts))
    {
        return Err(Refusal::ForeignHost);
    }
    if let Some(origin) = site.origin {
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .map(|a| a.trim_end_matches('/'));
        let same = match (authority, site.host) {
            (Some(a), Some(h)) => a.eq_ignore_ascii_case(h),
            (Some(a), None) => host_allowed(a, site.local, allowed_hosts),
            (None, _) => false,
        };
        if !same {
            return Err(Refusal::ForeignOrigin);
        }
    }
    if site.mutating && !is_json(site.content_type) {
        return Err(Refusal::NotJson);
    }
    Ok(())
}

/// `application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|c| c.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `host` (a `Host` value: `name`, `name:port`, `ip:port`, `[v6]:port`) names this
/// listener: its own address, `localhost` / a loopback address with its port, or a configured name.
fn host_allowed(host: &str, local: Option<SocketAddr>, allowed: &[String]) -> bool {
    let host = host.trim();
    let (name, port) = split_host(host);
    if allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(host) || a.eq_ignore_ascii_case(name))
    {
        return true;
    }
    let Some(local) = local else {
        return false;
    };
    if port != Some(local.port()) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    match name.parse::<std::net::IpAddr>() {
        Ok(ip) => ip == local.ip() || (ip.is_loopback() && local.ip().is_loopback()),
        Err(_) => name.eq_ignore_ascii_case("localhost") && local.ip().is_loopback(),
    }
}

/// `name` and port of a `Host` value (`[v6]:port` kept bracketed).
fn split_host(host: &str) -> (&str, Option<u16>) {
    let colon = if host.starts_with('[') {
        host.find("]:").map(|i| i + 1)
    } else if host.matches(':').count() == 1 {
        host.find(':')
    } else {
        None
    };
    match colon {
        Some(i) => (&host[..i], host[i + 1..].parse().ok()),
        None => (host, None),
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

/// Constant-time equality (of the digests: neither content nor length shows in the timing).
fn same(a: &str, b: &str) -> bool {
    let (da, db) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    da.iter()
        .zip(db.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_routes_need_nothing() {
        for l in [Listener::WebSocket, Listener::Admin] {
            assert_eq!(check(Guard::Open, l, "", None), Ok(()));
            assert_eq!(check(Guard::Open, l, "t0ken", None), Ok(()));
        }
    }

    #[test]
    fn without_a_token_admin_routes_live_on_the_admin_port_only() {
        assert_eq!(check(Guard::Admin, Listener::Admin, "", None), Ok(()));
        assert_eq!(
            check(Guard::Admin, Listener::WebSocket, "", Some("Bearer x")),
            Err(Refusal::Disabled)
        );
    }

    #[test]
    fn token_less_admin_is_closed_to_other_sites() {
        let local: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let allowed = vec!["ops.example.com".to_owned()];
        let ok = |host: Option<&str>, origin: Option<&str>, ct: Option<&str>, mutating: bool| {
            check_site(
                &Site {
                    host,
                    origin,
                    content_type: ct,
                    mutating,
                    local: Some(local),
                },
                &allowed,
            )
        };
        let json = Some("application/json; charset=utf-8");
        for host in [
            "127.0.0.1:9090",
            "localhost:9090",
            "LOCALHOST:9090",
            "ops.example.com",
        ] {
            assert_eq!(ok(Some(host), None, json, true), Ok(()), "{host}");
            let origin = format!("http://{host}");
            assert_eq!(ok(Some(host), Some(&origin), json, true), Ok(()), "{host}");
        }
        assert_eq!(ok(None, None, json, true), Ok(()));
        for host in [
            "evil.example",
            "127.0.0.1:9091",
            "10.0.0.1:9090",
            "localhost",
            "",
        ] {
            assert_eq!(
                ok(Some(host), None, None, false),
                Err(Refusal::ForeignHost),
                "{host}"
            );
        }
        for origin in [
            "http://evil.example",
            "null",
            "http://localhost:9091",
            "file://",
        ] {
            assert_eq!(
                ok(Some("localhost:9090"), Some(origin), json, true),
                Err(Refusal::ForeignOrigin),
                "{origin}"
            );
        }
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert_eq!(
                ok(Some("localhost:9090"), None, ct, true),
                Err(Refusal::NotJson)
            );
            assert_eq!(ok(Some("localhost:9090"), None, ct, false), Ok(()));
        }
        let v6: SocketAddr = "[::1]:9090".parse().unwrap();
        let site = Site {
            host: Some("[::1]:9090"),
            local: Some(v6),
            ..Site::default()
        };
        assert_eq!(check_site(&site, &[]), Ok(()));
    }

    #[test]
    fn with_a_token_every_port_needs_it() {
        for l in [Listener::WebSocket, Listener::Admin] {
            assert_eq!(
                check(Guard::Admin, l, "s3cret", Some("Bearer s3cret")),
                Ok(())
            );
            assert_eq!(
                check(Guard::Admin, l, "s3cret", Some("bearer  s3cret ")),
                Ok(())
            );
            for bad in [
                None,
                Some(""),
                Some("Bearer"),
                Some("Bearer "),
                Some("Bearer s3cre"),
                Some("Bearer s3cret2"),
                Some("Basic s3cret"),
                Some("s3cret"),
            ] {
                assert_eq!(
                    check(Guard::Admin, l, "s3cret", bad),
                    Err(Refusal::Unauthorized),
                    "{bad:?}"
                );
            }
        }
    }
}
