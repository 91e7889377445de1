//! [`Refusal`]: every HTTP refusal of the WebSocket port's upgrade path, by name, with its status,
//! extra headers, counter and log line, and the one place that logs and writes it
//! ([`Refusal::send`]). docs/wire.md §1.1 and docs/security.md describe the same answers.
//!
//! The admin listener's answers to a head it cannot read are here too; the operations routes'
//! refusals (401, 403, 415, 421) are named in `crate::ops::access`.

use std::borrow::Cow;
use std::net::SocketAddr;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::admission::{Denied, Refused};
use super::bearer::AuthRefusal;
use super::handshake;
use crate::log_text::Printable;
use crate::metrics::{self, Limit, Refusal as Reason};

/// Why an upgrade (or a request on the WebSocket port) is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    kind: Kind,
    /// The log line's detail (the server's own text, or the client's input for a bad request).
    detail: Cow<'static, str>,
    /// Whether the client gets an HTTP answer (not after a timeout, nor on a TLS port before the
    /// TLS handshake).
    answered: bool,
}

/// What a refusal counts and how it is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A handshake refusal, counted by reason (`wscluster_ws_handshakes_refused_total`).
    Handshake(Reason),
    /// An admission limit at accept (`wscluster_limit_refusals_total`), logged once until the
    /// limit is fine again.
    Limit(Refused),
    /// A session-token request the authenticator did not grant (404, logged).
    SessionToken,
    /// A plain HTTP request with no route (404, not logged).
    NotFound,
    /// A request head the admin listener cannot read (431 when too large, else 400): logged at
    /// debug, counted nowhere (the admin listener serves no WebSocket).
    AdminHead { too_large: bool },
}

impl Refusal {
    /// 431: the request head passed `server.max_request_head`.
    pub(crate) const HEAD_TOO_LARGE: Refusal =
        Refusal::handshake(Reason::HeadTooLarge, "request head too large");
    /// No request head within `server.handshake_timeout_ms`: closed without an answer.
    pub(crate) const TIMEOUT: Refusal = Refusal::handshake(
        Reason::Timeout,
        "no request head within the handshake timeout",
    )
    .unanswered();
    /// No TLS handshake within `server.handshake_timeout_ms`: closed without an answer.
    pub(crate) const TLS_TIMEOUT: Refusal = Refusal::handshake(
        Reason::Timeout,
        "no TLS handshake within the handshake timeout",
    )
    .unanswered();
    /// 503: the server is shutting down.
    pub(crate) const SHUTTING_DOWN: Refusal =
        Refusal::handshake(Reason::ShuttingDown, super::close::Close::SHUTDOWN.reason);
    /// 403: the `Origin` is not in `server.allowed_origins`.
    pub(crate) const ORIGIN: Refusal = Refusal::handshake(Reason::Origin, "origin not allowed");
    /// 426 with `Sec-WebSocket-Version: 13`: another WebSocket version.
    pub(crate) const VERSION: Refusal =
        Refusal::handshake(Reason::Version, "unsupported WebSocket version");
    /// 400: none of the offered subprotocols is served.
    pub(crate) const SUBPROTOCOL: Refusal =
        Refusal::handshake(Reason::Subprotocol, "no offered subprotocol is supported");
    /// 404: a session token was asked for and not granted.
    pub(crate) const SESSION_TOKEN: Refusal = Refusal {
        kind: Kind::SessionToken,
        detail: Cow::Borrowed("session token request"),
        answered: true,
    };
    /// 404: a plain HTTP request on the WebSocket port with no route for it.
    pub(crate) const NOT_FOUND: Refusal = Refusal {
        kind: Kind::NotFound,
        detail: Cow::Borrowed(""),
        answered: true,
    };

    /// 431 on the admin listener: the request head passed `server.max_request_head`.
    pub(crate) const ADMIN_HEAD_TOO_LARGE: Refusal = Refusal {
        kind: Kind::AdminHead { too_large: true },
        detail: Cow::Borrowed("request head too large"),
        answered: true,
    };

    /// 400 on the admin listener: the request is not HTTP; `detail` may quote the client.
    pub(crate) fn admin_bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: Kind::AdminHead { too_large: false },
            detail: detail.into(),
            answered: true,
        }
    }

    const fn handshake(reason: Reason, detail: &'static str) -> Self {
        Self {
            kind: Kind::Handshake(reason),
            detail: Cow::Borrowed(detail),
            answered: true,
        }
    }

    const fn unanswered(mut self) -> Self {
        self.answered = false;
        self
    }

    /// 400: not HTTP, or not a usable upgrade; `detail` may quote the client (logged at debug).
    pub(crate) fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self {
            kind: Kind::Handshake(Reason::BadRequest),
            detail: detail.into(),
            answered: true,
        }
    }

    /// A failed TLS handshake: closed without an answer.
    pub(crate) fn tls_handshake(error: &dyn std::fmt::Display) -> Self {
        Self::bad_request(format!("TLS handshake: {error}")).unanswered()
    }

    /// 404 (docs/wire.md §1.6): the credentials or the token were refused.
    pub(crate) fn auth(why: AuthRefusal) -> Self {
        Self::handshake(Reason::Auth, why.label())
    }

    /// 503 or 429 with `Retry-After`: an admission limit refused the socket at accept.
    pub(crate) fn limit(refused: Refused) -> Self {
        Self {
            kind: Kind::Limit(refused),
            detail: Cow::Borrowed("connection refused by a limit"),
            answered: true,
        }
    }

    /// The same refusal without an HTTP answer (a TLS port, before its handshake).
    pub(crate) fn without_answer(self) -> Self {
        self.unanswered()
    }

    /// The HTTP status and reason phrase, when the client gets an answer.
    pub(crate) fn status(&self) -> Option<(u16, &'static str)> {
        if !self.answered {
            return None;
        }
        Some(match self.kind {
            Kind::Handshake(Reason::HeadTooLarge) | Kind::AdminHead { too_large: true } => {
                (431, "Request Header Fields Too Large")
            }
            Kind::Handshake(Reason::BadRequest | Reason::Subprotocol)
            | Kind::AdminHead { too_large: false } => (400, "Bad Request"),
            Kind::Handshake(Reason::Timeout) => return None,
            Kind::Handshake(Reason::Version) => (426, "Upgrade Required"),
            Kind::Handshake(Reason::Auth) | Kind::SessionToken | Kind::NotFound => {
                (404, "Not Found")
            }
            Kind::Handshake(Reason::ShuttingDown) => (503, "Service Unavailable"),
            Kind::Handshake(Reason::Origin) => (403, "Forbidden"),
            Kind::Limit(r) => r.why.status(),
        })
    }

    /// The extra header lines of the answer (each ending with CRLF).
    pub(crate) fn extra_headers(&self) -> Cow<'static, str> {
        match self.kind {
            Kind::Handshake(Reason::Version) => Cow::Borrowed("Sec-WebSocket-Version: 13\r\n"),
            Kind::Limit(r) => Cow::Owned(format!("Retry-After: {}\r\n", r.why.retry_after())),
            _ => Cow::Borrowed(""),
        }
    }

    /// The handshake counter's reason, for refusals counted there.
    #[cfg(test)]
    pub(crate) fn reason(&self) -> Option<Reason> {
        match self.kind {
            Kind::Handshake(r) => Some(r),
            _ => None,
        }
    }

    /// Counts and logs the refusal: once per connection, at info (a bad request's detail quotes
    /// the client: debug only); a limit refusal at info the first time until the limit is fine
    /// again, at debug after that.
    pub(crate) fn log(&self, peer: SocketAddr) {
        let detail = Printable(&self.detail);
        match self.kind {
            Kind::Handshake(reason) => {
                metrics::refused(reason);
                if reason == Reason::BadRequest {
                    tracing::debug!(%peer, reason = reason.label(), %detail, "WebSocket connection refused");
                } else {
                    tracing::info!(%peer, reason = reason.label(), %detail, "WebSocket connection refused");
                }
            }
            Kind::Limit(refused) => {
                let limit = match refused.why {
                    Denied::NodeFull => Limit::Connections,
                    Denied::IpFull => Limit::ConnectionsPerIp,
                    Denied::IpRate(_) => Limit::ConnectionRate,
                    Denied::TableFull => Limit::IpTable,
                };
                metrics::limit_refused(limit);
                let kind = if self.answered { "" } else { "TLS " };
                if refused.first {
                    tracing::info!(
                        %peer,
                        limit = limit.label(),
                        "{kind}connection refused by a limit (logged once until the limit is fine again)"
                    );
                } else {
                    tracing::debug!(%peer, limit = limit.label(), "{kind}connection refused by a limit");
                }
            }
            Kind::SessionToken => tracing::info!(%peer, "refused: session token request"),
            Kind::NotFound => {}
            Kind::AdminHead { .. } => tracing::debug!(%peer, %detail, "admin: bad request head"),
        }
    }

    /// Logs the refusal and writes its answer (if it has one), then shuts the stream down.
    pub(crate) async fn send<S: AsyncWrite + Unpin>(&self, stream: &mut S, peer: SocketAddr) {
        self.log(peer);
        if let Some((status, phrase)) = self.status() {
            let _ = reply(stream, status, phrase, &self.extra_headers()).await;
        }
    }
}

/// Writes a plain-text HTTP answer (`<status> <phrase>` as its body) and shuts the stream down.
pub(crate) async fn reply<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    phrase: &str,
    extra: &str,
) -> std::io::Result<()> {
    let body = format!("{status} {phrase}\n");
    stream
        .write_all(&handshake::http_response(
            status,
            phrase,
            "text/plain",
            extra,
            body.as_bytes(),
        ))
        .await?;
    let _ = stream.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_has_its_status_and_headers() {
        let cases = [
            (Refusal::HEAD_TOO_LARGE, Some(431)),
            (Refusal::TIMEOUT, None),
            (Refusal::TLS_TIMEOUT, None),
            (Refusal::SHUTTING_DOWN, Some(503)),
            (Refusal::ORIGIN, Some(403)),
            (Refusal::VERSION, Some(426)),
            (Refusal::SUBPROTOCOL, Some(400)),
            (Refusal::SESSION_TOKEN, Some(404)),
            (Refusal::NOT_FOUND, Some(404)),
            (Refusal::bad_request("x"), Some(400)),
            (Refusal::tls_handshake(&"eof"), None),
            (Refusal::auth(AuthRefusal::Missing), Some(404)),
            (Refusal::ADMIN_HEAD_TOO_LARGE, Some(431)),
            (Refusal::admin_bad_request("x"), Some(400)),
        ];
        for (r, status) in cases {
            assert_eq!(r.status().map(|s| s.0), status, "{r:?}");
        }
        assert_eq!(
            Refusal::VERSION.extra_headers(),
            "Sec-WebSocket-Version: 13\r\n"
        );
        let rate = Refusal::limit(Refused {
            why: Denied::IpRate(std::time::Duration::from_millis(1500)),
            first: true,
        });
        assert_eq!(rate.status(), Some((429, "Too Many Requests")));
        assert_eq!(rate.extra_headers(), "Retry-After: 2\r\n");
        assert_eq!(rate.clone().without_answer().status(), None);
    }

    /// docs/wire.md §1.1 and §1.5 name every refusal with the status it answers with.
    #[test]
    fn the_wire_reference_lists_every_refusal() {
        let wire = include_str!("../../docs/wire.md");
        let limit = |why| Refusal::limit(Refused { why, first: true });
        let cases = [
            ("bad_request", Refusal::bad_request("x")),
            ("SUBPROTOCOL", Refusal::SUBPROTOCOL),
            ("ORIGIN", Refusal::ORIGIN),
            ("auth", Refusal::auth(AuthRefusal::Credentials)),
            ("VERSION", Refusal::VERSION),
            ("limit", limit(Denied::IpFull)),
            ("limit", limit(Denied::NodeFull)),
            ("HEAD_TOO_LARGE", Refusal::HEAD_TOO_LARGE),
            ("SHUTTING_DOWN", Refusal::SHUTTING_DOWN),
            ("TIMEOUT", Refusal::TIMEOUT),
            ("SESSION_TOKEN", Refusal::SESSION_TOKEN),
            ("NOT_FOUND", Refusal::NOT_FOUND),
        ];
        for (name, refusal) in cases {
            let status = refusal
                .status()
                .map_or("none".to_owned(), |(s, _)| s.to_string());
            let named = format!("`Refusal::{name}`");
            let listed = wire.lines().any(|l| {
                l.contains(&named)
                    && (l.starts_with(&format!("| {status} |"))
                        || l.contains(&format!(" {status} (")))
            });
            assert!(listed, "docs/wire.md lists no {status} as {named}");
        }
    }
}
