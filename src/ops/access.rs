//! Who may use a route: pure rules, no I/O.
//!
//! - Open routes (`/health`, `/ready`, `/metrics`, `/status`, `/`) are served to anyone on the
//!   ports where the routes are served.
//! - Admin routes (`/admin/...`, `/status.json`) need `Authorization: Bearer <admin.token>` on
//!   every port when a token is configured (401 without it or with a wrong one). With no token
//!   configured they are refused (403) on the WebSocket port and served on the admin port
//!   (`http.admin_listen`) only: binding that port to a private address is the protection.
//!
//! Tokens are compared in constant time (their SHA-256 digests, so the length leaks nothing).

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
pub enum Guard {
    /// Anyone.
    Open,
    /// The admin token, or the admin port when no token is configured.
    Admin,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token, or a wrong one (401).
    Unauthorized,
    /// Admin routes are off on this port: no token is configured (403).
    Disabled,
}

impl Refusal {
    /// The HTTP status.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Unauthorized => 401,
            Refusal::Disabled => 403,
        }
    }

    /// The explanation sent to the client.
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unauthorized => "a valid \"Authorization: Bearer <admin.token>\" is required",
            Refusal::Disabled => {
                "admin routes are off on this port: set admin.token, or use http.admin_listen"
            }
        }
    }
}

/// Decides whether a request may use a route guarded by `guard`. `token` is the configured
/// `admin.token`; `authorization` the request's `Authorization` header.
pub fn check(
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
