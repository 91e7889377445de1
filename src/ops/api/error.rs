//! Every error the server API answers with, in one place: its HTTP status, its stable `code` and
//! its message. The body is always `{"error":{"code":"…","message":"…"}}`.

use super::scope::Scope;
use crate::transport::HttpResponse;

/// An API error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ApiError {
    /// No key, or not a configured one (401 `unauthorized`).
    Unauthorized,
    /// No key is configured on this node (401 `api_disabled`).
    Disabled,
    /// The key lacks the route's scope (403 `forbidden`).
    MissingScope(Scope),
    /// No such route (404 `not_found`).
    NoRoute,
    /// The route exists for another method (405 `method_not_allowed`).
    Method(&'static str),
    /// The body is not JSON (400 `invalid_json`).
    InvalidJson(String),
    /// The JSON does not have the route's shape: a missing field, a wrong type, an unknown field
    /// (400 `invalid_request`).
    InvalidRequest(String),
    /// A batch command with an unknown method (400 `unknown_method`).
    UnknownMethod(String),
    /// The body is larger than `api.max_body_bytes` (413 `body_too_large`).
    BodyTooLarge,
    /// The body did not arrive within `api.body_timeout_ms` (408 `body_timeout`).
    BodyTimeout,
    /// The protocol a route needs is not served by this node (404 `protocol_disabled`).
    ProtocolDisabled(&'static str),
    /// No Presence channel of this name (404 `unknown_channel`).
    UnknownChannel,
    /// No connection or member with this id on any node that answered (404 `not_found`).
    Gone(String),
}

impl ApiError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        match self {
            ApiError::Unauthorized | ApiError::Disabled => 401,
            ApiError::MissingScope(_) => 403,
            ApiError::NoRoute
            | ApiError::ProtocolDisabled(_)
            | ApiError::UnknownChannel
            | ApiError::Gone(_) => 404,
            ApiError::Method(_) => 405,
            ApiError::BodyTimeout => 408,
            ApiError::BodyTooLarge => 413,
            ApiError::InvalidJson(_) | ApiError::InvalidRequest(_) | ApiError::UnknownMethod(_) => {
                400
            }
        }
    }

    /// The stable code (what a program matches on).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::Disabled => "api_disabled",
            ApiError::MissingScope(_) => "forbidden",
            ApiError::NoRoute | ApiError::Gone(_) => "not_found",
            ApiError::Method(_) => "method_not_allowed",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::UnknownMethod(_) => "unknown_method",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::ProtocolDisabled(_) => "protocol_disabled",
            ApiError::UnknownChannel => "unknown_channel",
        }
    }

    /// The message (for a person).
    pub(crate) fn message(&self) -> String {
        match self {
            ApiError::Unauthorized => {
                "send a valid API key as \"Authorization: Bearer <key>\" or \"X-API-Key: <key>\""
                    .into()
            }
            ApiError::Disabled => {
                "the server API is off on this node: no api.keys configured".into()
            }
            ApiError::MissingScope(s) => format!("this key lacks the {:?} scope", s.as_str()),
            ApiError::NoRoute => "no such API route (see docs/api.md)".into(),
            ApiError::Method(allow) => format!("use {allow}"),
            ApiError::InvalidJson(m) => format!("the body is not valid JSON: {m}"),
            ApiError::InvalidRequest(m) => m.clone(),
            ApiError::UnknownMethod(m) => {
                format!("unknown batch method {m:?}: use publish, broadcast or disconnect")
            }
            ApiError::BodyTooLarge => "the body is larger than api.max_body_bytes".into(),
            ApiError::BodyTimeout => "the body did not arrive within api.body_timeout_ms".into(),
            ApiError::ProtocolDisabled(p) => format!("the {p} protocol is not served by this node"),
            ApiError::UnknownChannel => "no Presence channel of this name".into(),
            ApiError::Gone(m) => m.clone(),
        }
    }

    /// The error as a JSON value (also one result of a batch).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code(), "message": self.message() } })
    }

    /// The error as an HTTP answer.
    pub(crate) fn response(&self) -> HttpResponse {
        let mut r = crate::ops::route::json(self.status(), &self.json());
        match self {
            ApiError::Unauthorized | ApiError::Disabled => {
                r = r.with_header("WWW-Authenticate", "Bearer realm=\"wscluster-api\"");
            }
            ApiError::Method(allow) => r = r.with_header("Allow", *allow),
            _ => {}
        }
        r
    }
}

/// Parses a JSON body into `T`: a syntax error is `invalid_json`, a well-formed body of the wrong
/// shape `invalid_request` naming the field at fault (`channel: invalid type: …`).
pub(crate) fn parse<'a, T: serde::Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.classify() != serde_json::error::Category::Data {
            return ApiError::InvalidJson(inner.to_string());
        }
        if path.is_empty() || path == "." {
            ApiError::InvalidRequest(format!("invalid request: {inner}"))
        } else {
            ApiError::InvalidRequest(format!("{path}: {inner}"))
        }
    })?;
    de.end().map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(value)
}
