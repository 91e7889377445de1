//! Options of the operations surface: where the HTTP routes are served (`[http]`) and how the
//! admin routes are protected (`[admin]`). See `docs/operations.md`.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[http]` section: where the operations routes are served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Serve the operations routes (`/health`, `/ready`, `/metrics`, `/status`, `/status.json`,
    /// `/admin/...`) on the WebSocket port, next to the upgrades. Off: that port answers only
    /// WebSocket upgrades and sgc session-token requests (404 otherwise).
    pub on_websocket_port: bool,
    /// A second listener serving the same routes and no WebSocket (`host:port`); empty: none.
    /// Without `admin.token`, the admin routes are served only here, without a token.
    pub admin_listen: String,
    /// Largest request body accepted, in bytes; a longer one is refused with 413.
    pub max_body_bytes: usize,
    /// Names (any port) or `name:port` under which the admin port is reached, besides its own
    /// address and `localhost:PORT`: admin routes served without a token refuse any other
    /// `Host` (421), so a web page cannot reach them through DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Put `/metrics` and `/status` behind the admin routes' protection: the admin token, or
    /// without one the admin port only (with its cross-site checks).
    pub metrics_token_required: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            on_websocket_port: true,
            admin_listen: String::new(),
            max_body_bytes: 64 * 1024,
            allowed_hosts: Vec::new(),
            metrics_token_required: false,
        }
    }
}

impl HttpConfig {
    /// The admin listener's address; `Ok(None)` when there is none.
    pub fn admin_addr(&self) -> Result<Option<SocketAddr>, String> {
        let a = self.admin_listen.trim();
        if a.is_empty() {
            return Ok(None);
        }
        a.parse()
            .map(Some)
            .map_err(|e| format!("{a:?} is not an address such as 127.0.0.1:9090: {e}"))
    }

    /// Checks values that cannot work.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        self.admin_addr().map_err(|m| ("http.admin_listen", m))?;
        if self.max_body_bytes == 0 {
            return Err(("http.max_body_bytes", "must be greater than 0".into()));
        }
        if let Some(bad) = self
            .allowed_hosts
            .iter()
            .find(|h| h.is_empty() || h.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return Err((
                "http.allowed_hosts",
                format!("{bad:?} is not a host name such as \"ops.example.com\""),
            ));
        }
        Ok(())
    }
}

/// The `[admin]` section: protection and timing of the admin routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// The bearer token the admin routes (`/admin/...`, `/status.json`) require, as
    /// `Authorization: Bearer <token>`, on every port. Empty: those routes are refused (403) on
    /// the WebSocket port and served without a token on `http.admin_listen` only.
    pub token: String,
    /// How long a cluster-wide question (channel counts, finding a connection) waits for the
    /// other nodes, in milliseconds; the answer says which nodes did not answer in time.
    pub query_timeout_ms: u64,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: String::new(),
            query_timeout_ms: 1_000,
        }
    }
}

impl AdminConfig {
    /// The cluster-wide query deadline.
    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms.max(1))
    }

    /// Checks values that cannot work.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.query_timeout_ms == 0 {
            return Err(("admin.query_timeout_ms", "must be greater than 0".into()));
        }
        if self
            .token
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err((
                "admin.token",
                "must not contain spaces or control characters".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_listen_is_optional_and_checked() {
        let mut h = HttpConfig::default();
        assert_eq!(h.admin_addr(), Ok(None));
        h.admin_listen = "127.0.0.1:9090".into();
        assert_eq!(
            h.admin_addr(),
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9090))))
        );
        h.admin_listen = "nowhere".into();
        assert!(matches!(h.validate(), Err(("http.admin_listen", _))));
    }

    #[test]
    fn tokens_with_spaces_are_refused() {
        let a = AdminConfig {
            token: "two words".into(),
            ..AdminConfig::default()
        };
        assert!(matches!(a.validate(), Err(("admin.token", _))));
        assert_eq!(AdminConfig::default().validate(), Ok(()));
    }
}
