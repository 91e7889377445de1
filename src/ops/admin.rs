//! The JSON admin API (`/admin/...`): drive the cluster from HTTP. Every answer is JSON; errors
//! are `{"error": "..."}` with a 4xx status. Publishes and broadcasts go through the sgc
//! protocol's own server-side API, so they are relayed to the other nodes like a client's.

use crate::log_text::Printable;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::Ops;
use super::admin_error::AdminError;
use super::census::{self, Answer, Question};
use super::route::{self, json};
use crate::cluster::PeerStatus;
use crate::cluster::mesh::MeshStats;
use crate::hub::roster::Origin;
use crate::protocol::sgc::{QueueLevel, SgcProtocol, Targets};
use crate::transport::{Close, HttpResponse};

/// Most connections `GET /admin/connections` lists unless `?limit=` says otherwise.
const DEFAULT_CONNECTION_LIMIT: usize = 1000;

/// `POST /admin/publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    channel: String,
    message: Box<RawValue>,
    #[serde(default)]
    queue: Option<String>,
}

/// `POST /admin/broadcast`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    #[serde(default)]
    channel: String,
    message: Box<RawValue>,
}

/// `POST /admin/connections/{id}/disconnect` (the body is optional).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectBody {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
}

/// A JSON message as the text `SgcProtocol::publish` takes: a string's content, or the JSON text
/// of any other value (objects and arrays are sent raw; other values as text).
fn message_text(raw: &RawValue) -> String {
    serde_json::from_str::<String>(raw.get()).unwrap_or_else(|_| raw.get().to_owned())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| AdminError::InvalidJson(e.to_string()))
}

fn need_sgc(ops: &Ops) -> Result<&SgcProtocol, AdminError> {
    ops.sgc.as_ref().ok_or(AdminError::SgcDisabled)
}

#[derive(Serialize)]
struct Sent<'a> {
    channel: &'a str,
    /// Connections of this node it was queued to (other nodes deliver on their own).
    local_deliveries: usize,
}

/// `POST /admin/publish {channel, message, queue?}`.
pub(super) fn publish(ops: &Ops, body: &[u8]) -> HttpResponse {
    let run = || -> Result<HttpResponse, HttpResponse> {
        let sgc = need_sgc(ops)?;
        let b: PublishBody = parse(body)?;
        if b.channel.is_empty() {
            return Err(AdminError::EmptyChannel.into());
        }
        let queue = match b.queue.as_deref() {
            None => QueueLevel::Level0,
            Some(q @ ("queueLevel0" | "queueLevel1" | "queueLevel2")) => QueueLevel::parse(q),
            Some(other) => {
                return Err(AdminError::BadQueue(other.to_owned()).into());
            }
        };
        let n = sgc.publish(
            &message_text(&b.message),
            &b.channel,
            queue,
            &Targets::all(),
        );
        tracing::info!(channel = %Printable(&b.channel), queue = queue.as_str(), local = n, "admin publish");
        Ok(json(
            200,
            &Sent {
                channel: &b.channel,
                local_deliveries: n,
            },
        ))
    };
    run().unwrap_or_else(|e| e)
}

/// `POST /admin/broadcast {channel?, message}`.
pub(super) fn broadcast(ops: &Ops, body: &[u8]) -> HttpResponse {
    let run = || -> Result<HttpResponse, HttpResponse> {
        let sgc = need_sgc(ops)?;
        let b: BroadcastBody = parse(body)?;
        let n = sgc.broadcast(&message_text(&b.message), &b.channel, &Targets::all());
        tracing::info!(channel = %Printable(&b.channel), local = n, "admin broadcast");
        Ok(json(
            200,
            &Sent {
                channel: &b.channel,
                local_deliveries: n,
            },
        ))
    };
    run().unwrap_or_else(|e| e)
}

/// `GET /admin/channels`: sgc channels with subscriber counts summed over the nodes.
pub(super) async fn channels(ops: &Ops) -> HttpResponse {
    if let Err(e) = need_sgc(ops) {
        return e.into();
    }
    let c = ops.census().await;
    json(
        200,
        &serde_json::json!({
            "node": ops.node_id(),
            "channels": c.channels,
            "channels_truncated": c.channels_truncated,
            "nodes": c.nodes,
        }),
    )
}

/// `GET /admin/presence/channels`.
pub(super) fn presence_channels(ops: &Ops) -> HttpResponse {
    let Some(p) = &ops.presence else {
        return AdminError::PresenceDisabled.into();
    };
    let channels: Vec<_> = p
        .channels()
        .into_iter()
        .map(|(name, members)| serde_json::json!({ "name": name, "members": members }))
        .collect();
    json(
        200,
        &serde_json::json!({
            "node": ops.node_id(),
            "members": p.member_count(),
            "channels": channels,
        }),
    )
}

/// `GET /admin/presence/channels/{name}/members`: every member of the channel, on any node (each
/// node holds the whole cluster's roster), in join order, with the node it lives on.
pub(super) fn presence_members(ops: &Ops, name: &str) -> HttpResponse {
    let Some(p) = &ops.presence else {
        return AdminError::PresenceDisabled.into();
    };
    let Some(members) = p.channel_members(name) else {
        return AdminError::NoPresenceChannel.into();
    };
    let me = ops.node_id();
    let members: Vec<_> = members
        .iter()
        .map(|m| {
            let node = match p.member_origin(&m.id) {
                Some(Origin::Remote(r)) => r.node_id.to_string(),
                _ => me.clone(),
            };
            serde_json::json!({ "id": &*m.id, "name": &*m.name, "info": &*m.info, "node": node })
        })
        .collect();
    json(
        200,
        &serde_json::json!({ "node": me, "channel": name, "members": members }),
    )
}

/// A peer as JSON.
pub(super) fn peer_json(p: &PeerStatus) -> serde_json::Value {
    serde_json::json!({
        "node_id": p.node_id.as_deref(),
        "address": p.address,
        "incarnation": p.incarnation.map(|i| i.to_string()),
        "state": p.state.as_str(),
        "unacked_frames": p.unacked_frames,
        "unacked_bytes": p.unacked_bytes,
    })
}

/// The mesh counters as JSON.
pub(super) fn backplane_json(s: &MeshStats) -> serde_json::Value {
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    serde_json::json!({
        "frames_in": get(&s.frames_in),
        "frames_out": get(&s.frames_out),
        "bytes_in": get(&s.bytes_in),
        "bytes_out": get(&s.bytes_out),
        "reconnects": get(&s.reconnects),
        "replayed": get(&s.replayed),
        "lost": get(&s.lost),
        "refused": get(&s.refused),
        "overflows": get(&s.overflows),
    })
}

/// `GET /admin/peers`.
pub(super) fn peers(ops: &Ops) -> HttpResponse {
    let cluster = ops.cluster();
    let peers: Vec<_> = cluster
        .as_ref()
        .map(|c| c.peers())
        .unwrap_or_default()
        .iter()
        .map(peer_json)
        .collect();
    let mesh = cluster.as_ref().and_then(|c| c.mesh());
    json(
        200,
        &serde_json::json!({
            "node": ops.node_id(),
            "engine": cluster.as_ref().map(|c| engine_name(c.engine())),
            "ready": ops.ready(),
            "mesh_address": mesh.as_ref().map(|m| m.local_addr().to_string()),
            "peers": peers,
            "backplane": mesh.as_ref().map(|m| backplane_json(m.stats())),
        }),
    )
}

/// The engine's name as configured.
pub(super) fn engine_name(e: crate::cluster::EngineKind) -> String {
    serde_json::to_value(e)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `GET /admin/connections[?limit=N]`: this node's connections, sorted by id.
pub(super) fn connections(ops: &Ops, query: &str) -> HttpResponse {
    let limit = match route::query_param(query, "limit") {
        None => DEFAULT_CONNECTION_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) => n,
            Err(_) => return AdminError::BadLimit.into(),
        },
    };
    let mut conns = ops.server().map(|s| s.connections()).unwrap_or_default();
    let total = conns.len();
    conns.sort_by(|a, b| a.id().cmp(b.id()));
    let list: Vec<_> = conns
        .iter()
        .take(limit)
        .map(|c| {
            let info = c.info();
            let presence = ops
                .presence
                .as_ref()
                .and_then(|p| p.member_of(c))
                .map(|m| m.id.to_string());
            let subscriptions = ops
                .sgc
                .as_ref()
                .map_or(0, |s| s.subscriptions(c.id()).len());
            serde_json::json!({
                "id": c.id(),
                "protocol": c.protocol(),
                "peer_address": info.peer_addr.to_string(),
                "path": info.path,
                "user": c.user(),
                "queued_bytes": c.queued_bytes(),
                "sgc_subscriptions": subscriptions,
                "presence_member": presence,
            })
        })
        .collect();
    json(
        200,
        &serde_json::json!({ "node": ops.node_id(), "total": total, "connections": list }),
    )
}

/// `POST /admin/connections/{id}/disconnect {code?, reason?}`: closes the connection on whichever
/// node has it (this one first, then the others are asked).
pub(super) async fn disconnect(ops: &Ops, id: &str, body: &[u8]) -> HttpResponse {
    let b: DisconnectBody = if body.iter().all(u8::is_ascii_whitespace) {
        DisconnectBody::default()
    } else {
        match parse(body) {
            Ok(b) => b,
            Err(e) => return e.into(),
        }
    };
    let code = b.code.unwrap_or(Close::BY_OPERATOR.code);
    if !Close::operator_code_allowed(code) {
        return AdminError::BadCloseCode.into();
    }
    let reason = b.reason.unwrap_or_else(|| Close::BY_OPERATOR.reason.into());
    if reason.len() > 123 {
        return AdminError::ReasonTooLong.into();
    }
    let me = ops.node_id();
    if ops.close_local(id, code, &reason) {
        tracing::info!(conn = id, code, "connection closed by an operator");
        return json(
            200,
            &serde_json::json!({ "id": id, "node": me, "disconnected": true }),
        );
    }
    let Some(cluster) = ops.cluster() else {
        return AdminError::NoConnection.into();
    };
    let question = census::encode(&Question::Disconnect {
        id: id.to_owned(),
        code,
        reason,
    });
    let outcome = cluster.query(&question, ops.admin.query_timeout()).await;
    let found = outcome
        .replies
        .iter()
        .find(|(_, a)| census::decode::<Answer>(a) == Some(Answer::Disconnected(true)));
    match found {
        Some((node, _)) => json(
            200,
            &serde_json::json!({ "id": id, "node": &**node, "disconnected": true }),
        ),
        None => json(
            404,
            &serde_json::json!({
                "error": "no connection with this id on this node or on the nodes that answered",
                "missing": outcome.missing.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            }),
        ),
    }
}
