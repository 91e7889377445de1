//! The status page: `GET /status` serves one static HTML page (no external assets, no build step)
//! whose script polls `GET /status.json` every second and redraws the cluster (nodes, links and
//! their health), the sgc channels and the Presence channels. `/status.json` is an admin route:
//! the page sends the token given in its URL fragment (`/status#token=...`, never sent to the
//! server or written to its logs) as `Authorization: Bearer`.

use std::time::{SystemTime, UNIX_EPOCH};

use super::Ops;
use super::admin::{backplane_json, engine_name, peer_json};
use super::route::json;
use crate::transport::HttpResponse;

/// The page.
const PAGE: &str = include_str!("status.html");

/// Most channels of each kind listed in `/status.json` (the totals are always given).
const MAX_LISTED: usize = 200;

/// `GET /status`.
pub(super) fn page() -> HttpResponse {
    HttpResponse::new(200, "text/html; charset=utf-8", PAGE)
        .with_header("Cache-Control", "no-store")
        .with_header(
            "Content-Security-Policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:",
        )
}

/// `GET /status.json`.
pub(super) async fn json_status(ops: &Ops) -> HttpResponse {
    let census = ops.census().await;
    let cluster = ops.cluster();
    let mesh = cluster.as_ref().and_then(|c| c.mesh());
    let peers: Vec<_> = cluster
        .as_ref()
        .map(|c| c.peers())
        .unwrap_or_default()
        .iter()
        .map(peer_json)
        .collect();
    let presence = ops.presence.as_ref().map(|p| {
        let channels = p.channels();
        serde_json::json!({
            "members": p.member_count(),
            "local_members": p.local_member_count(),
            "channels_total": channels.len(),
            "channels": channels
                .iter()
                .take(MAX_LISTED)
                .map(|(name, members)| serde_json::json!({ "name": name, "members": members }))
                .collect::<Vec<_>>(),
        })
    });
    let time_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json(
        200,
        &serde_json::json!({
            "node": ops.node_id(),
            "engine": cluster.as_ref().map(|c| engine_name(c.engine())),
            "ready": ops.ready(),
            "time_ms": time_ms,
            "mesh_address": mesh.as_ref().map(|m| m.local_addr().to_string()),
            "nodes": census.nodes,
            "totals": census.totals,
            "peers": peers,
            "channels_total": census.channels.len(),
            "channels_truncated": census.channels_truncated,
            "channels": census.channels.iter().take(MAX_LISTED).collect::<Vec<_>>(),
            "presence": presence,
            "backplane": mesh.as_ref().map(|m| backplane_json(m.stats())),
        }),
    )
}
