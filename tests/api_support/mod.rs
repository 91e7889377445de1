//! Shared by the server API tests: the keys every test node gets, and a call helper.
#![allow(dead_code, unreachable_pub)]

use crate::support::http_client::{HttpClient, HttpReply};
use crate::support::process::NodeArgs;

/// A key with every scope.
pub const ALL: &str = "all-scopes-key-0123456789";
/// A key with the `publish` scope only.
pub const PUBLISH: &str = "publish-only-key-0123456789";
/// A key with the `presence` scope only.
pub const PRESENCE: &str = "presence-only-key-0123456789";
/// A key with the `channels` scope only.
pub const CHANNELS: &str = "channels-only-key-0123456789";
/// A key with the `disconnect` scope only.
pub const DISCONNECT: &str = "disconnect-only-key-0123456789";

/// The `--set api.keys=…` of the keys above.
pub fn keys_setting() -> String {
    format!(
        "api.keys=[{{name=\"all\",key=\"{ALL}\",scopes=[\"publish\",\"presence\",\"channels\",\"disconnect\"]}},\
         {{name=\"pub\",key=\"{PUBLISH}\",scopes=[\"publish\"]}},\
         {{name=\"pres\",key=\"{PRESENCE}\",scopes=[\"presence\"]}},\
         {{name=\"chan\",key=\"{CHANNELS}\",scopes=[\"channels\"]}},\
         {{name=\"disc\",key=\"{DISCONNECT}\",scopes=[\"disconnect\"]}}]"
    )
}

/// Node `name` with the test keys.
pub fn api_node(name: &str) -> NodeArgs {
    NodeArgs::new(name).set(&keys_setting())
}

/// One API call with `key` as a bearer token (JSON body).
pub async fn call(
    c: &mut HttpClient,
    method: &str,
    path: &str,
    key: &str,
    body: &str,
) -> HttpReply {
    let auth = format!("Bearer {key}");
    c.call(
        method,
        path,
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )
    .await
}

/// `POST /api/publish` with the all-scopes key, expecting 200.
pub async fn publish(c: &mut HttpClient, body: &str) -> serde_json::Value {
    let r = call(c, "POST", "/api/publish", ALL, body).await;
    assert_eq!(r.status, 200, "publish {body}: {}", r.body);
    r.json()
}
