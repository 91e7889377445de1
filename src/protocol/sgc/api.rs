//! What the application calls on [`SgcProtocol`]: server-side publish and broadcast, direct
//! messages, RPC answers, retained-queue management and read access. Every method is non-blocking
//! and may be called from any thread or task (including from hooks).

use crate::protocol::json::Payload;
use crate::transport::Connection;

use super::SgcProtocol;
use super::event::{SgcEvent, Targets};
use super::frame;
use super::inbound::QueueLevel;
use super::retained::RetainedSnapshot;

/// A channel that has subscribers on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel name.
    pub name: String,
    /// How many local connections subscribed to it.
    pub subscribers: usize,
}

impl SgcProtocol {
    /// `Publish(message, channel, exclude, include, queue)`: an S5 event to every concrete channel
    /// of `channel` (comma list, or mask when enabled; `""` reaches every sgc connection), stored
    /// per `queue`, restricted to `targets`. `message` goes out as raw JSON when it starts with `{`
    /// or `[` and parses, as a string otherwise. Returns how many local connections it was queued
    /// to; with a relay attached it also reaches other nodes.
    pub fn publish(
        &self,
        message: &str,
        channel: &str,
        queue: QueueLevel,
        targets: &Targets,
    ) -> usize {
        let message = frame::message_json(&Payload::from_text(message));
        self.publish_json(channel, message, queue, targets)
    }

    /// `Broadcast(message, channel, exclude, include)`: an S6 message to `channel`'s subscribers
    /// (taken literally), or every sgc connection for `""`, restricted to `targets`. Returns how
    /// many local connections it was queued to; with a relay attached it also reaches other nodes.
    pub fn broadcast(&self, message: &str, channel: &str, targets: &Targets) -> usize {
        let message = frame::message_json(&Payload::from_text(message));
        self.broadcast_json(channel, message, None, None, targets)
    }

    /// Sends `message` to one local connection as the result-shaped S6 frame (`sgc@message` with
    /// channel `""`), which both the JS and the Delphi clients surface (docs/wire.md §5.2 item 11).
    /// Returns false when the connection is not on this node or is closing.
    pub fn send(&self, conn_id: &str, message: &str) -> bool {
        let message = frame::message_json(&Payload::from_text(message));
        self.send_frame(conn_id, frame::message("", &message, None, None))
    }

    /// `WriteData(guid, text)`: the request-shaped S7 frame, for parity with the reference
    /// server. The JS client ignores it; prefer [`SgcProtocol::send`].
    pub fn write_data(&self, conn_id: &str, message: &str) -> bool {
        let message = frame::message_json(&Payload::from_text(message));
        self.send_frame(conn_id, frame::write_data(&message))
    }

    fn send_frame(&self, conn_id: &str, frame: bytes::Bytes) -> bool {
        self.inner
            .hub
            .member(conn_id)
            .is_some_and(|m| m.conn().send_text(frame).is_ok())
    }

    /// `RPCResult(id, result)`: answers a pending RPC of connection `conn_id` with S9 (`result`
    /// raw when it is JSON object/array text). Returns false when no such request is pending.
    pub fn rpc_result(&self, conn_id: &str, id: &str, result: &str) -> bool {
        let Some(member) = self.inner.hub.member(conn_id) else {
            return false;
        };
        if !member.data().rpcs.lock().take(id) {
            return false;
        }
        let f = frame::rpc_result(&Payload::from_text(result), self.inner.qos_name, id);
        self.send_tracked(&member, id, f);
        true
    }

    /// `RPCError(id, code, message, data)`: answers a pending RPC of connection `conn_id` with
    /// S10 (`data` left out when empty). Returns false when no such request is pending.
    pub fn rpc_error(&self, conn_id: &str, id: &str, code: i64, message: &str, data: &str) -> bool {
        let Some(member) = self.inner.hub.member(conn_id) else {
            return false;
        };
        if !member.data().rpcs.lock().take(id) {
            return false;
        }
        let data = Payload::from_text(data);
        let f = frame::rpc_error(code, message, Some(&data), self.inner.qos_name, id);
        self.send_tracked(&member, id, f);
        true
    }

    /// `ClearQueue(channel)`: forgets the retained messages of `channel` (on every node when a
    /// relay is attached).
    pub fn clear_queue(&self, channel: &str) {
        self.inner.retained.write().clear(channel);
        self.inner.relay.emit_with(|| SgcEvent::ClearQueue {
            channel: channel.into(),
        });
    }

    /// How many retained messages `channel` keeps.
    pub fn retained_count(&self, channel: &str) -> usize {
        self.inner.retained.read().len(channel)
    }

    /// Every retained message, for a node that joins the cluster late.
    pub fn retained_snapshot(&self) -> RetainedSnapshot {
        self.inner.retained.read().snapshot()
    }

    /// Takes another node's retained messages: each channel in `snapshot` replaces this node's
    /// store for that channel; other channels are kept. Nothing is delivered or relayed.
    pub fn import_retained(&self, snapshot: &RetainedSnapshot) {
        self.inner.retained.write().import(snapshot);
    }

    /// The channels with subscribers on this node, sorted by name.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.inner
            .hub
            .channels()
            .into_iter()
            .map(|(name, subscribers)| ChannelInfo {
                name: name.to_string(),
                subscribers,
            })
            .collect()
    }

    /// How many local connections subscribed to `channel`.
    pub fn subscriber_count(&self, channel: &str) -> usize {
        self.inner.hub.subscriber_count(channel)
    }

    /// The channels connection `conn_id` is subscribed to (sorted; empty when unknown).
    pub fn subscriptions(&self, conn_id: &str) -> Vec<String> {
        self.inner
            .hub
            .member(conn_id)
            .map(|m| m.subscriptions())
            .unwrap_or_default()
    }

    /// The local sgc connection with this GUID.
    pub fn connection(&self, conn_id: &str) -> Option<Connection> {
        self.inner.hub.member(conn_id).map(|m| m.conn().clone())
    }

    /// Every local sgc connection (a snapshot).
    pub fn connections(&self) -> Vec<Connection> {
        self.inner
            .hub
            .members()
            .iter()
            .map(|m| m.conn().clone())
            .collect()
    }

    /// How many sgc connections are open on this node.
    pub fn connection_count(&self) -> usize {
        self.inner.hub.member_count()
    }

    /// How many server frames connection `conn_id` has not acknowledged yet (QoS ≥ 1).
    pub fn unacked_count(&self, conn_id: &str) -> usize {
        self.inner
            .hub
            .member(conn_id)
            .map_or(0, |m| m.data().unacked.lock().len())
    }

    /// How many RPC requests of connection `conn_id` wait for the application's answer.
    pub fn pending_rpc_count(&self, conn_id: &str) -> usize {
        self.inner
            .hub
            .member(conn_id)
            .map_or(0, |m| m.data().rpcs.lock().len())
    }
}
