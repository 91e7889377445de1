//! The handlers of the server API routes. Each takes the request body (or query) and answers a
//! JSON value or an [`ApiError`]; `POST /api/batch` runs the same handlers per command.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::super::Ops;
use super::super::census::{self, Answer, Question};
use super::error::ApiError;
use crate::hub::roster::Origin;
use crate::protocol::json::Payload;
use crate::protocol::sgc::{QueueLevel, SgcProtocol, Targets, frame};
use crate::transport::Close;

/// Longest idempotency key accepted, in bytes.
pub(super) const MAX_IDEMPOTENCY_KEY: usize = 256;

/// `POST /api/publish`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PublishBody<'a> {
    channel: String,
    #[serde(borrow)]
    message: &'a RawValue,
    #[serde(default)]
    idempotency_key: Option<String>,
    #[serde(default)]
    queue: Option<String>,
}

/// `POST /api/broadcast`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BroadcastBody<'a> {
    #[serde(borrow)]
    message: &'a RawValue,
    #[serde(default)]
    channel: String,
}

/// `POST /api/disconnect`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DisconnectBody {
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    member: Option<String>,
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    reason: Option<String>,
}

fn sgc(ops: &Ops) -> Result<&SgcProtocol, ApiError> {
    ops.sgc.as_ref().ok_or(ApiError::ProtocolDisabled("sgc"))
}

/// A message value as an sgc client's publish carries it: objects and arrays as they are,
/// strings as strings, other values as their text.
fn message_json(raw: &RawValue) -> bytes::Bytes {
    frame::message_json(&Payload::from_raw(raw))
}

/// `POST /api/publish {channel, message, idempotency_key?, queue?}`.
pub(super) fn publish(ops: &Ops, body: &[u8]) -> Result<Value, ApiError> {
    let b: PublishBody<'_> = super::error::parse(body)?;
    let sgc = sgc(ops)?;
    if b.channel.is_empty() {
        return Err(ApiError::InvalidRequest(
            "channel must not be empty (POST /api/broadcast reaches everyone)".into(),
        ));
    }
    let queue = match b.queue.as_deref() {
        None => QueueLevel::Level0,
        Some(q @ ("queueLevel0" | "queueLevel1" | "queueLevel2")) => QueueLevel::parse(q),
        Some(other) => {
            return Err(ApiError::InvalidRequest(format!(
                "queue {other:?} is not queueLevel0, queueLevel1 or queueLevel2"
            )));
        }
    };
    let message = message_json(b.message);
    let (sent, duplicate) = match b.idempotency_key.as_deref() {
        None => (
            sgc.publish_json(&b.channel, message, queue, &Targets::all()),
            false,
        ),
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY => {
            return Err(ApiError::InvalidRequest(format!(
                "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY} bytes"
            )));
        }
        Some(k) => match sgc.publish_once(k, &b.channel, message, queue, &Targets::all()) {
            Some(n) => (n, false),
            None => (0, true),
        },
    };
    Ok(json!({ "channel": b.channel, "duplicate": duplicate, "local_deliveries": sent }))
}

/// `POST /api/broadcast {message, channel?}`.
pub(super) fn broadcast(ops: &Ops, body: &[u8]) -> Result<Value, ApiError> {
    let b: BroadcastBody<'_> = super::error::parse(body)?;
    let sgc = sgc(ops)?;
    let sent = sgc.broadcast_json(
        &b.channel,
        message_json(b.message),
        None,
        None,
        &Targets::all(),
    );
    Ok(json!({ "channel": b.channel, "local_deliveries": sent }))
}

/// `GET /api/presence?channel=C`: the members of `C` (without `channel`, every member), on every
/// node (each node holds the whole cluster's roster), with the node each lives on.
pub(super) fn presence(ops: &Ops, query: &str) -> Result<Value, ApiError> {
    let p = ops
        .presence
        .as_ref()
        .ok_or(ApiError::ProtocolDisabled("Presence"))?;
    let channel = super::super::route::query_param(query, "channel");
    let members = match &channel {
        Some(c) => p.channel_members(c).ok_or(ApiError::UnknownChannel)?,
        None => p.members(),
    };
    let me = ops.node_id();
    let list: Vec<Value> = members
        .iter()
        .map(|m| {
            let node = match p.member_origin(&m.id) {
                Some(Origin::Remote(r)) => r.node_id.to_string(),
                _ => me.clone(),
            };
            json!({ "id": &*m.id, "name": &*m.name, "info": &*m.info, "node": node })
        })
        .collect();
    Ok(json!({ "channel": channel, "total": list.len(), "members": list }))
}

/// `GET /api/channels`: sgc channels with subscriber counts summed over the nodes that answered.
pub(super) async fn channels(ops: &Ops) -> Result<Value, ApiError> {
    sgc(ops)?;
    let c = ops.census().await;
    let missing: Vec<&str> = c
        .nodes
        .iter()
        .filter(|n| n.answer != "answered")
        .map(|n| n.node.as_str())
        .collect();
    Ok(json!({
        "channels": c.channels,
        "channels_truncated": c.channels_truncated,
        "missing_nodes": missing,
    }))
}

/// `POST /api/disconnect {connection | member, code?, reason?}`: closes the connection (or the
/// Presence member's connection) on whichever node has it.
pub(super) async fn disconnect(ops: &Ops, body: &[u8]) -> Result<Value, ApiError> {
    let b: DisconnectBody = super::error::parse(body)?;
    let code = b.code.unwrap_or(Close::BY_SERVER_API.code);
    if !Close::operator_code_allowed(code) {
        return Err(ApiError::InvalidRequest(
            "code must be 1000 or 3000..=4999".into(),
        ));
    }
    let reason = b
        .reason
        .unwrap_or_else(|| Close::BY_SERVER_API.reason.into());
    if reason.len() > 123 {
        return Err(ApiError::InvalidRequest(
            "reason must be at most 123 bytes".into(),
        ));
    }
    let (question, what, id) = match (b.connection, b.member) {
        (Some(id), None) if !id.is_empty() => {
            if ops.close_local(&id, code, &reason) {
                return Ok(
                    json!({ "connection": id, "node": ops.node_id(), "disconnected": true }),
                );
            }
            let q = Question::Disconnect {
                id: id.clone(),
                code,
                reason,
            };
            (q, "connection", id)
        }
        (None, Some(id)) if !id.is_empty() => {
            if ops.close_member_local(&id, code, &reason) {
                return Ok(json!({ "member": id, "node": ops.node_id(), "disconnected": true }));
            }
            let q = Question::DisconnectMember {
                id: id.clone(),
                code,
                reason,
            };
            (q, "member", id)
        }
        _ => {
            return Err(ApiError::InvalidRequest(
                "give exactly one of \"connection\" (a connection id) or \"member\" (a Presence \
                 member id)"
                    .into(),
            ));
        }
    };
    let Some(cluster) = ops.cluster() else {
        return Err(ApiError::Gone(format!("no {what} with this id")));
    };
    let outcome = cluster
        .query(&census::encode(&question), ops.admin.query_timeout())
        .await;
    let found = outcome
        .replies
        .iter()
        .find(|(_, a)| census::decode::<Answer>(a) == Some(Answer::Disconnected(true)));
    match found {
        Some((node, _)) => Ok(json!({ what: id, "node": &**node, "disconnected": true })),
        None => {
            let mut m = format!("no {what} with this id on any node that answered");
            if !outcome.missing.is_empty() {
                let missing: Vec<String> = outcome.missing.iter().map(|n| n.to_string()).collect();
                m.push_str(&format!(" (no answer from {})", missing.join(", ")));
            }
            Err(ApiError::Gone(m))
        }
    }
}
