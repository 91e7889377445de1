//! Every error the operations routes (`/admin/…`, and a request for no route) answer with, in one
//! place: its HTTP status and its message. The body is `{"error": "…"}`. The access refusals (401,
//! 403, 415, 421) are [`super::access::Refusal`]; the server API's errors are its own.

use std::borrow::Cow;

use super::route;
use crate::transport::HttpResponse;

/// An operations route's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdminError {
    /// No route of this path (404).
    NoRoute,
    /// The route exists for another method, the one given (405, with `Allow`).
    Method(&'static str),
    /// The path's percent-encoding is invalid (400).
    BadPath,
    /// The body is not JSON of the route's shape; the parser's message (400).
    InvalidJson(String),
    /// `/admin/publish` with an empty channel (400).
    EmptyChannel,
    /// `/admin/publish` with a `queue` that is not one of the three levels; the value given (400).
    BadQueue(String),
    /// `?limit=` is not a number (400).
    BadLimit,
    /// A disconnect's `code` is not 1000 nor in 3000..=4999 (400).
    BadCloseCode,
    /// A disconnect's `reason` is longer than a close frame allows, 123 bytes (400).
    ReasonTooLong,
    /// The route needs the sgc protocol, which this node does not serve (404).
    SgcDisabled,
    /// The route needs the Presence protocol, which this node does not serve (404).
    PresenceDisabled,
    /// No Presence channel of this name (404).
    NoPresenceChannel,
    /// No connection with this id on any node that answered (404).
    NoConnection,
}

impl AdminError {
    /// The HTTP status.
    pub(crate) fn status(&self) -> u16 {
        match self {
            AdminError::NoRoute
            | AdminError::SgcDisabled
            | AdminError::PresenceDisabled
            | AdminError::NoPresenceChannel
            | AdminError::NoConnection => 404,
            AdminError::Method(_) => 405,
            AdminError::BadPath
            | AdminError::InvalidJson(_)
            | AdminError::EmptyChannel
            | AdminError::BadQueue(_)
            | AdminError::BadLimit
            | AdminError::BadCloseCode
            | AdminError::ReasonTooLong => 400,
        }
    }

    /// The message of the `error` field.
    pub(crate) fn message(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            AdminError::NoRoute => "no such route (GET / lists them)",
            AdminError::Method(allow) => return format!("use {allow}").into(),
            AdminError::BadPath => "invalid percent-encoding in the path",
            AdminError::InvalidJson(e) => return format!("invalid JSON body: {e}").into(),
            AdminError::EmptyChannel => {
                "channel must not be empty (POST /admin/broadcast reaches everyone)"
            }
            AdminError::BadQueue(q) => {
                return format!("queue {q:?} is not queueLevel0, queueLevel1 or queueLevel2")
                    .into();
            }
            AdminError::BadLimit => "limit must be a number",
            AdminError::BadCloseCode => "code must be 1000 or 3000..=4999",
            AdminError::ReasonTooLong => "reason must be at most 123 bytes",
            AdminError::SgcDisabled => "the sgc protocol is not served by this node",
            AdminError::PresenceDisabled => "the Presence protocol is not served by this node",
            AdminError::NoPresenceChannel => "no such Presence channel",
            AdminError::NoConnection => "no connection with this id",
        })
    }
}

impl From<AdminError> for HttpResponse {
    fn from(e: AdminError) -> Self {
        let resp = route::error(e.status(), &e.message());
        match e {
            AdminError::Method(allow) => resp.with_header("Allow", allow),
            _ => resp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_status_and_a_message() {
        let cases = [
            (AdminError::NoRoute, 404),
            (AdminError::Method("GET"), 405),
            (AdminError::BadPath, 400),
            (AdminError::InvalidJson("eof".into()), 400),
            (AdminError::EmptyChannel, 400),
            (AdminError::BadQueue("x".into()), 400),
            (AdminError::BadLimit, 400),
            (AdminError::BadCloseCode, 400),
            (AdminError::ReasonTooLong, 400),
            (AdminError::SgcDisabled, 404),
            (AdminError::PresenceDisabled, 404),
            (AdminError::NoPresenceChannel, 404),
            (AdminError::NoConnection, 404),
        ];
        for (e, status) in cases {
            assert_eq!(e.status(), status, "{e:?}");
            assert!(!e.message().is_empty(), "{e:?}");
            let resp = HttpResponse::from(e.clone());
            assert_eq!(resp.status, status, "{e:?}");
        }
        let resp = HttpResponse::from(AdminError::Method("POST"));
        assert!(
            resp.headers
                .iter()
                .any(|(k, v)| *k == "Allow" && v == "POST"),
            "{resp:?}"
        );
    }
}
