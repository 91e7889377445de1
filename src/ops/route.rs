//! The operations routes: which request is which (pure), how each is guarded, and the JSON answer
//! helpers. `docs/operations.md` documents every route.

use bytes::Bytes;
use serde::Serialize;

use super::access::Guard;
use crate::transport::HttpResponse;

/// One operations route, with what its path carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// `GET /`: the list of routes.
    Index,
    /// `GET /health`: the process answers.
    Health,
    /// `GET /ready`: 200 when the node is ready to serve as part of its cluster, 503 otherwise.
    Ready,
    /// `GET /metrics`: Prometheus text format.
    Metrics,
    /// `GET /status`: the HTML status page.
    StatusPage,
    /// `GET /status.json`: what the status page shows.
    StatusJson,
    /// `POST /admin/publish`.
    Publish,
    /// `POST /admin/broadcast`.
    Broadcast,
    /// `GET /admin/channels`: sgc channels and subscriber counts, cluster-wide.
    Channels,
    /// `GET /admin/presence/channels`: Presence channels and member counts.
    PresenceChannels,
    /// `GET /admin/presence/channels/{name}/members`.
    PresenceMembers(String),
    /// `GET /admin/peers`.
    Peers,
    /// `GET /admin/connections`: this node's connections.
    Connections,
    /// `POST /admin/connections/{id}/disconnect`.
    Disconnect(String),
}

/// Why a request matches no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Miss {
    /// No such path (404).
    NotFound,
    /// The path exists for other methods (405, with `Allow`).
    Method(&'static str),
    /// A path segment is not valid percent-encoded UTF-8 (400).
    BadPath,
}

impl Route {
    /// Matches a method and a path (without query string).
    pub(crate) fn parse(method: &str, path: &str) -> Result<Route, Miss> {
        let (want, route) = match path {
            "/" => ("GET", Route::Index),
            "/health" => ("GET", Route::Health),
            "/ready" => ("GET", Route::Ready),
            "/metrics" => ("GET", Route::Metrics),
            "/status" => ("GET", Route::StatusPage),
            "/status.json" => ("GET", Route::StatusJson),
            "/admin/publish" => ("POST", Route::Publish),
            "/admin/broadcast" => ("POST", Route::Broadcast),
            "/admin/channels" => ("GET", Route::Channels),
            "/admin/presence/channels" => ("GET", Route::PresenceChannels),
            "/admin/peers" => ("GET", Route::Peers),
            "/admin/connections" => ("GET", Route::Connections),
            _ => {
                if let Some(name) = between(path, "/admin/presence/channels/", "/members") {
                    ("GET", Route::PresenceMembers(decode(name)?))
                } else if let Some(id) = between(path, "/admin/connections/", "/disconnect") {
                    ("POST", Route::Disconnect(decode(id)?))
                } else {
                    return Err(Miss::NotFound);
                }
            }
        };
        // HEAD is not offered: every route answers GET or POST only.
        if method == want {
            Ok(route)
        } else {
            Err(Miss::Method(want))
        }
    }

    /// How the route is protected.
    pub(crate) fn guard(&self) -> Guard {
        match self {
            Route::Index | Route::Health | Route::Ready | Route::Metrics | Route::StatusPage => {
                Guard::Open
            }
            _ => Guard::Admin,
        }
    }

    /// Its name in metrics labels and logs (a fixed set: never a client's text).
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Route::Index => "index",
            Route::Health => "health",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::StatusPage => "status",
            Route::StatusJson => "status_json",
            Route::Publish => "admin_publish",
            Route::Broadcast => "admin_broadcast",
            Route::Channels => "admin_channels",
            Route::PresenceChannels => "admin_presence_channels",
            Route::PresenceMembers(_) => "admin_presence_members",
            Route::Peers => "admin_peers",
            Route::Connections => "admin_connections",
            Route::Disconnect(_) => "admin_disconnect",
        }
    }
}

/// The non-empty text between `prefix` and `suffix`.
fn between<'a>(path: &'a str, prefix: &str, suffix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix)?
        .strip_suffix(suffix)
        .filter(|s| !s.is_empty())
}

/// Percent-decodes a path segment (`%2F` → `/`); `+` stays a plus.
pub(crate) fn decode(segment: &str) -> Result<String, Miss> {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = segment.get(i + 1..i + 3).ok_or(Miss::BadPath)?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Miss::BadPath)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Miss::BadPath)
}

/// The value of query parameter `name` (percent-decoded), if present.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| decode(&v.replace('+', " ")).ok())
}

/// A JSON answer.
pub(crate) fn json(status: u16, value: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            HttpResponse::new(status, "application/json", Bytes::from(body))
                .with_header("Cache-Control", "no-store")
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a JSON answer");
            HttpResponse::status(500)
        }
    }
}

/// A JSON error: `{"error": message}`.
pub(crate) fn error(status: u16, message: &str) -> HttpResponse {
    json(status, &serde_json::json!({ "error": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_method() {
        assert_eq!(Route::parse("GET", "/health"), Ok(Route::Health));
        assert_eq!(Route::parse("POST", "/health"), Err(Miss::Method("GET")));
        assert_eq!(
            Route::parse("GET", "/admin/publish"),
            Err(Miss::Method("POST"))
        );
        assert_eq!(Route::parse("GET", "/nope"), Err(Miss::NotFound));
        assert_eq!(
            Route::parse("GET", "/admin/connections//disconnect"),
            Err(Miss::NotFound)
        );
        assert_eq!(
            Route::parse("GET", "/admin/presence/channels/room%2F1%20a/members"),
            Ok(Route::PresenceMembers("room/1 a".into()))
        );
        assert_eq!(
            Route::parse("POST", "/admin/connections/ABC/disconnect"),
            Ok(Route::Disconnect("ABC".into()))
        );
        assert_eq!(
            Route::parse("GET", "/admin/presence/channels/%zz/members"),
            Err(Miss::BadPath)
        );
        assert_eq!(
            Route::parse("GET", "/admin/presence/channels/%ff/members"),
            Err(Miss::BadPath)
        );
        assert_eq!(
            Route::parse("GET", "/admin/presence/channels/%/members"),
            Err(Miss::BadPath)
        );
    }

    #[test]
    fn guards() {
        assert_eq!(Route::Metrics.guard(), Guard::Open);
        assert_eq!(Route::StatusPage.guard(), Guard::Open);
        assert_eq!(Route::StatusJson.guard(), Guard::Admin);
        assert_eq!(Route::Disconnect("x".into()).guard(), Guard::Admin);
    }

    #[test]
    fn query_params() {
        assert_eq!(query_param("a=1&limit=20", "limit").as_deref(), Some("20"));
        assert_eq!(query_param("x=a%20b+c", "x").as_deref(), Some("a b c"));
        assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
        assert_eq!(query_param("", "limit"), None);
    }
}
