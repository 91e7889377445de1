//! The server API (`/api/...`, `docs/api.md`): what a backend calls with a scoped API key to
//! publish, broadcast, run batches, read cluster-wide presence and channels, and disconnect
//! anyone in the cluster. JSON in, JSON out; errors are `{"error":{"code","message"}}`
//! ([`error`]). Connections whose first request is under `/api/` are served keep-alive (the
//! transport's persistent HTTP/1.1 server, see [`crate::transport::KeepAlive`]).
//!
//! - [`config`]: the `[api]` section; [`keys`]: the keys and their scopes;
//! - `routes`: the handlers; `batch`: `POST /api/batch`.

mod batch;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod keys;
mod routes;
mod scope;

pub use config::{ApiConfig, ApiKey};
pub(crate) use error::ApiError;
pub(crate) use keys::Keys;
pub(crate) use scope::Scope;

use super::Ops;
use crate::transport::{HttpRequest, HttpResponse};

/// The path prefix of the server API.
pub(crate) const PREFIX: &str = "/api/";

/// One API route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiRoute {
    /// `POST /api/publish`.
    Publish,
    /// `POST /api/broadcast`.
    Broadcast,
    /// `POST /api/batch`.
    Batch,
    /// `GET /api/presence`.
    Presence,
    /// `GET /api/channels`.
    Channels,
    /// `POST /api/disconnect`.
    Disconnect,
}

impl ApiRoute {
    /// Matches a method and a path (without query string) under [`PREFIX`].
    pub(crate) fn parse(method: &str, path: &str) -> Result<ApiRoute, ApiError> {
        let (want, route) = match path {
            "/api/publish" => ("POST", ApiRoute::Publish),
            "/api/broadcast" => ("POST", ApiRoute::Broadcast),
            "/api/batch" => ("POST", ApiRoute::Batch),
            "/api/presence" => ("GET", ApiRoute::Presence),
            "/api/channels" => ("GET", ApiRoute::Channels),
            "/api/disconnect" => ("POST", ApiRoute::Disconnect),
            _ => return Err(ApiError::NoRoute),
        };
        if method == want {
            Ok(route)
        } else {
            Err(ApiError::Method(want))
        }
    }

    /// The scope a key needs (a batch needs those of its commands, checked per command).
    pub(crate) fn scope(self) -> Option<Scope> {
        match self {
            ApiRoute::Publish | ApiRoute::Broadcast => Some(Scope::Publish),
            ApiRoute::Presence => Some(Scope::Presence),
            ApiRoute::Channels => Some(Scope::Channels),
            ApiRoute::Disconnect => Some(Scope::Disconnect),
            ApiRoute::Batch => None,
        }
    }

    /// Its name in metrics labels and logs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ApiRoute::Publish => "api_publish",
            ApiRoute::Broadcast => "api_broadcast",
            ApiRoute::Batch => "api_batch",
            ApiRoute::Presence => "api_presence",
            ApiRoute::Channels => "api_channels",
            ApiRoute::Disconnect => "api_disconnect",
        }
    }
}

/// Answers one `/api/` request: the route, the key and its scope, then the handler. Returns the
/// route's metrics name with the answer.
pub(super) async fn serve(ops: &Ops, req: &HttpRequest) -> (&'static str, HttpResponse) {
    let route = match ApiRoute::parse(&req.method, req.path()) {
        Ok(r) => r,
        Err(e) => return ("api_none", e.response()),
    };
    let name = route.name();
    let caller = match ops
        .api_keys
        .check(req.header("authorization"), req.header("x-api-key"))
    {
        Ok(c) => c,
        Err(e) => return (name, e.response()),
    };
    if let Some(Err(e)) = route.scope().map(|s| caller.may(s)) {
        return (name, e.response());
    }
    let answer = match route {
        ApiRoute::Publish => routes::publish(ops, &req.body),
        ApiRoute::Broadcast => routes::broadcast(ops, &req.body),
        ApiRoute::Batch => batch::run(ops, caller, &req.body).await,
        ApiRoute::Presence => routes::presence(ops, req.query()),
        ApiRoute::Channels => routes::channels(ops).await,
        ApiRoute::Disconnect => routes::disconnect(ops, &req.body).await,
    };
    let resp = match answer {
        Ok(value) => super::route::json(200, &value),
        Err(e) => e.response(),
    };
    tracing::debug!(peer = %req.peer, route = name, key = caller.name, status = resp.status, "API request");
    (name, resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_method() {
        assert_eq!(
            ApiRoute::parse("POST", "/api/publish"),
            Ok(ApiRoute::Publish)
        );
        assert_eq!(
            ApiRoute::parse("GET", "/api/publish"),
            Err(ApiError::Method("POST"))
        );
        assert_eq!(ApiRoute::parse("GET", "/api/nope"), Err(ApiError::NoRoute));
        assert_eq!(ApiRoute::Batch.scope(), None);
        assert_eq!(ApiRoute::Presence.scope(), Some(Scope::Presence));
    }
}
