//! The upgrade decision, pure: [`admit_socket`] (the admission limits, when a socket is accepted)
//! and [`admit`] (serving, origin, WebSocket version and key, subprotocol, credentials, in that
//! order, once the request head is read). Each answers what to do or the [`Refusal`] to send; no
//! socket is touched, so tests drive them with plain values.

use std::net::SocketAddr;
use std::sync::Arc;

use super::admission::{Admission, AdmissionSlot};
use super::auth::{AuthOutcome, Authenticator};
use super::bearer::Identity;
use super::handshake::{self, Request, UpgradeProblem};
use super::origin::OriginPolicy;
use super::protocol::{Negotiated, Protocol, ProtocolRegistry};
use super::refusal::Refusal;

/// What the request-time decision reads of the server.
pub(crate) struct Gate<'a> {
    /// Whether the server still serves (not shutting down).
    pub(crate) serving: bool,
    /// `server.allowed_origins`.
    pub(crate) origins: &'a OriginPolicy,
    /// The protocols offered.
    pub(crate) registry: &'a ProtocolRegistry,
    /// The credential checks.
    pub(crate) authenticator: &'a Authenticator,
}

/// An upgrade that may go ahead.
pub(crate) struct Admitted {
    /// The client's `Sec-WebSocket-Key`.
    pub(crate) key: String,
    /// The negotiated protocol (or the fallback; none: messages are ignored).
    pub(crate) protocol: Option<Arc<dyn Protocol>>,
    /// Who the client proved to be (empty when anonymous).
    pub(crate) identity: Identity,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admitted")
            .field("protocol", &self.protocol.as_ref().map(|p| p.name()))
            .field("identity", &self.identity)
            .finish()
    }
}

/// A socket from `peer` is accepted: its admission slot (held until it closes), or the limit
/// that refuses it.
pub(crate) fn admit_socket(
    admission: &Arc<Admission>,
    peer: SocketAddr,
) -> Result<AdmissionSlot, Refusal> {
    AdmissionSlot::take(admission, peer.ip()).map_err(Refusal::limit)
}

/// The decision on an upgrade request `req` from `peer`.
pub(crate) fn admit(req: &Request, peer: SocketAddr, gate: &Gate<'_>) -> Result<Admitted, Refusal> {
    if !gate.serving {
        return Err(Refusal::SHUTTING_DOWN);
    }
    if !gate.origins.allows(req.header("origin")) {
        return Err(Refusal::ORIGIN);
    }
    let key = match handshake::check_upgrade(req) {
        Ok(k) => k.to_owned(),
        Err(UpgradeProblem::UnsupportedVersion) => return Err(Refusal::VERSION),
        Err(UpgradeProblem::BadRequest(why)) => return Err(Refusal::bad_request(why)),
    };
    let protocol = match gate
        .registry
        .negotiate(req.header_tokens("sec-websocket-protocol"))
    {
        Negotiated::Protocol(p) => Some(p),
        Negotiated::NoneOffered(fallback) => fallback,
        Negotiated::Unsupported => return Err(Refusal::SUBPROTOCOL),
    };
    let identity = match gate.authenticator.authenticate(req, peer) {
        AuthOutcome::User(id) => id,
        AuthOutcome::Anonymous => Identity::default(),
        AuthOutcome::Refused(why) => return Err(Refusal::auth(why)),
    };
    Ok(Admitted {
        key,
        protocol,
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Connection;
    use crate::transport::auth::AuthConfig;
    use crate::transport::bearer::AuthRefusal;
    use crate::transport::limits::LimitsConfig;

    struct Named;
    impl Protocol for Named {
        fn name(&self) -> &'static str {
            "chat"
        }
        fn on_connect(&self, _: &Connection) {}
        fn on_text(&self, _: &Connection, _: &str) {}
        fn on_disconnect(&self, _: &Connection) {}
    }

    struct Server {
        origins: OriginPolicy,
        registry: ProtocolRegistry,
        authenticator: Authenticator,
    }

    impl Server {
        /// Origins limited to `https://app.example`, one protocol `chat`, user alice/secret.
        fn new() -> Self {
            let mut registry = ProtocolRegistry::new();
            registry.register(Arc::new(Named));
            let mut auth = AuthConfig {
                enabled: true,
                ..AuthConfig::default()
            };
            auth.users.insert("alice".into(), "secret".into());
            Self {
                origins: OriginPolicy::new(&["https://app.example".to_owned()]),
                registry,
                authenticator: Authenticator::new(auth, None),
            }
        }

        fn gate(&self) -> Gate<'_> {
            Gate {
                serving: true,
                origins: &self.origins,
                registry: &self.registry,
                authenticator: &self.authenticator,
            }
        }
    }

    fn peer() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 40_000))
    }

    /// An upgrade to `path` with these extra headers.
    fn upgrade(path: &str, extra: &[(&str, &str)]) -> Request {
        let mut headers: Vec<(String, String)> = [
            ("host", "node"),
            ("upgrade", "websocket"),
            ("connection", "Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        headers.extend(extra.iter().map(|(a, b)| (a.to_string(), b.to_string())));
        Request {
            method: "GET".into(),
            path: path.into(),
            headers,
        }
    }

    const GOOD: &str = "/sgc/auth/url/alice/secret";

    #[test]
    fn a_good_request_is_admitted_with_its_protocol_and_user() {
        let s = Server::new();
        let req = upgrade(
            GOOD,
            &[
                ("origin", "https://app.example"),
                ("sec-websocket-protocol", "other, chat"),
            ],
        );
        let a = admit(&req, peer(), &s.gate()).unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(a.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(a.protocol.map(|p| p.name()), Some("chat"));
        assert_eq!(a.identity.user, "alice");
    }

    #[test]
    fn a_foreign_origin_is_refused_with_403() {
        let s = Server::new();
        let req = upgrade(GOOD, &[("origin", "https://evil.example")]);
        let r = admit(&req, peer(), &s.gate()).err();
        assert_eq!(r, Some(Refusal::ORIGIN));
        assert_eq!(r.and_then(|r| r.status()), Some((403, "Forbidden")));
    }

    #[test]
    fn missing_or_wrong_credentials_are_refused_with_404() {
        let s = Server::new();
        let missing = admit(&upgrade("/", &[]), peer(), &s.gate()).err();
        assert_eq!(
            missing.as_ref().and_then(|r| r.reason()),
            Some(crate::metrics::Refusal::Auth)
        );
        assert_eq!(missing.and_then(|r| r.status()).map(|s| s.0), Some(404));
        let wrong = admit(&upgrade("/sgc/auth/url/alice/nope", &[]), peer(), &s.gate()).err();
        assert_eq!(wrong, Some(Refusal::auth(AuthRefusal::Credentials)));
        assert_eq!(wrong.and_then(|r| r.status()).map(|s| s.0), Some(404));
    }

    #[test]
    fn an_unknown_subprotocol_is_refused_with_400() {
        let s = Server::new();
        let req = upgrade(GOOD, &[("sec-websocket-protocol", "mqtt")]);
        let r = admit(&req, peer(), &s.gate()).err();
        assert_eq!(r, Some(Refusal::SUBPROTOCOL));
        assert_eq!(r.and_then(|r| r.status()).map(|s| s.0), Some(400));
    }

    #[test]
    fn another_version_and_a_shutdown_are_refused() {
        let s = Server::new();
        let mut req = upgrade(GOOD, &[]);
        for h in req.headers.iter_mut() {
            if h.0 == "sec-websocket-version" {
                h.1 = "8".into();
            }
        }
        assert_eq!(admit(&req, peer(), &s.gate()).err(), Some(Refusal::VERSION));
        let closing = Gate {
            serving: false,
            ..s.gate()
        };
        let r = admit(&upgrade(GOOD, &[]), peer(), &closing).err();
        assert_eq!(r, Some(Refusal::SHUTTING_DOWN));
        assert_eq!(r.and_then(|r| r.status()).map(|s| s.0), Some(503));
    }

    #[test]
    fn a_socket_over_the_connection_limit_is_refused_with_503() {
        let admission = Arc::new(Admission::new(LimitsConfig {
            max_connections: 1,
            ..LimitsConfig::default()
        }));
        let first = admit_socket(&admission, peer());
        assert!(first.is_ok());
        let second = admit_socket(&admission, peer()).err();
        assert_eq!(
            second.as_ref().and_then(|r| r.status()),
            Some((503, "Service Unavailable"))
        );
        assert_eq!(
            second.map(|r| r.extra_headers().into_owned()),
            Some("Retry-After: 1\r\n".to_owned())
        );
        drop(first);
        assert!(admit_socket(&admission, peer()).is_ok(), "a slot left");
    }
}
