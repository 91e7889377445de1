//! `GET /health`: the process answers (always 200, for liveness probes), with what any caller may
//! see: this node's id, whether it is ready, how many peers are linked, and the configured peers
//! that cannot be reached (address and last error), so that a wrong `--peer` shows without the
//! admin token. `/ready` stays the readiness answer (an unreachable configured peer does not make
//! a node unready once its first dial settled).

use super::Ops;
use super::route::json;
use crate::transport::HttpResponse;

/// `GET /health`.
pub(super) fn health(ops: &Ops) -> HttpResponse {
    let cluster = ops.cluster();
    let unreachable: Vec<_> = cluster
        .as_ref()
        .and_then(|c| c.mesh())
        .map(|m| m.configured_peers())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            let error = p.error?;
            Some(serde_json::json!({ "address": p.address, "error": error }))
        })
        .collect();
    json(
        200,
        &serde_json::json!({
            "status": "ok",
            "node": ops.node_id(),
            "ready": ops.ready(),
            "peers": cluster.as_ref().map_or(0, |c| c.connected_peer_count()),
            "unreachable_peers": unreachable,
        }),
    )
}

/// The `wscluster_mesh_peer_up` gauge lines: one per configured peer (bounded by the
/// configuration and the `peers_dns` answers), 1 when linked.
pub(super) fn peer_up(ops: &Ops) -> Vec<(String, bool)> {
    ops.cluster()
        .and_then(|c| c.mesh())
        .map(|m| m.configured_peers())
        .unwrap_or_default()
        .into_iter()
        .map(|p| (p.address, p.up))
        .collect()
}
