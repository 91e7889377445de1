//! The node's metrics: every name, its description, and the handles the instrumented code keeps.
//!
//! The library only *emits*, through the [`metrics`] facade; without an installed
//! recorder every call is a no-op. The binary installs the Prometheus recorder, then calls
//! [`describe`] once, before it creates the server and the cluster. `docs/metrics.md` lists every
//! metric with its type, labels and meaning.
//!
//! ## Keeping the hot path cheap
//!
//! - Nothing is labelled per connection or per channel (unbounded label values would make one
//!   time series each). Labels are fixed words (`protocol`, `origin`, `reason`, `direction`) or a
//!   peer's node id (bounded by the size of the cluster).
//! - Per-message paths (WebSocket frames, backplane envelopes and bytes) increment handles made
//!   once per connection ([`ConnectionCounters`]) or once per peer ([`PeerCounters`]): an atomic
//!   add, no lookup, no allocation.
//! - Per-publish paths use handles a protocol (or adapter) instance makes at its first publish
//!   ([`PublishCounters`], [`LagHistogram`]) and keeps: deliveries are added once per fan-out with
//!   the number of receivers. (A macro call with static labels costs a registry lookup, about
//!   100 ns with the Prometheus recorder; a kept handle about 6 ns.)
//! - Rare events (refusals, peer changes, slow-consumer closes) call the macros directly.
//!
//! A handle takes the recorder installed when it is made: connections, links and protocols made
//! before a recorder is installed keep counting into nothing. Install it before serving.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_histogram, histogram,
};

mod describe;
mod names;

pub use describe::{describe, register_at_zero};
pub use names::*;

/// Why a WebSocket upgrade was refused: the `reason` label of [`WS_HANDSHAKES_REFUSED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The request head passed `server.max_request_head` (431).
    HeadTooLarge,
    /// The request is not HTTP, or not a usable upgrade (400).
    BadRequest,
    /// The head did not arrive within `server.handshake_timeout_ms`.
    Timeout,
    /// A WebSocket version other than 13 (426).
    Version,
    /// None of the offered subprotocols is served (400).
    Subprotocol,
    /// Authentication failed (404, docs/wire.md §1.6).
    Auth,
    /// The server is shutting down (503).
    ShuttingDown,
    /// The `Origin` header is not in `server.allowed_origins` (403).
    Origin,
}

impl Refusal {
    /// Every reason (their counters are exported at 0 from the start).
    pub const ALL: [Refusal; 8] = [
        Refusal::HeadTooLarge,
        Refusal::BadRequest,
        Refusal::Timeout,
        Refusal::Version,
        Refusal::Subprotocol,
        Refusal::Auth,
        Refusal::ShuttingDown,
        Refusal::Origin,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::HeadTooLarge => "head_too_large",
            Refusal::BadRequest => "bad_request",
            Refusal::Timeout => "timeout",
            Refusal::Version => "version",
            Refusal::Subprotocol => "subprotocol",
            Refusal::Auth => "auth",
            Refusal::ShuttingDown => "shutting_down",
            Refusal::Origin => "origin",
        }
    }
}

/// The `protocol` label of a connection: `sgc` for `esegece.com`, `presence` for
/// `presence.esegece.com` (the same words as every other family's `protocol` label), `none` for
/// no subprotocol; an application's own subprotocol keeps its token.
pub fn protocol_label(token: Option<&'static str>) -> &'static str {
    match token {
        Some("") | None => "none",
        Some(t) if t == Protocol::Sgc.token() => Protocol::Sgc.label(),
        Some(t) if t == Protocol::Presence.token() => Protocol::Presence.label(),
        Some(t) => t,
    }
}

/// The handles one WebSocket connection increments per message (made once, at the upgrade).
#[derive(Debug, Clone)]
pub struct ConnectionCounters {
    /// [`WS_FRAMES_IN`].
    pub frames_in: Counter,
    /// [`WS_FRAMES_OUT`].
    pub frames_out: Counter,
    /// [`WS_BYTES_IN`].
    pub bytes_in: Counter,
    /// [`WS_BYTES_OUT`].
    pub bytes_out: Counter,
}

impl ConnectionCounters {
    /// The handles for a connection of this subprotocol; counts the connection as opened.
    pub fn opened(protocol: Option<&'static str>) -> Self {
        let p = protocol_label(protocol);
        counter!(WS_CONNECTIONS_OPENED, "protocol" => p).increment(1);
        Self {
            frames_in: counter!(WS_FRAMES_IN, "protocol" => p),
            frames_out: counter!(WS_FRAMES_OUT, "protocol" => p),
            bytes_in: counter!(WS_BYTES_IN, "protocol" => p),
            bytes_out: counter!(WS_BYTES_OUT, "protocol" => p),
        }
    }
}

/// The handles of one peer (made once per peer, kept across its links): the engine increments
/// them per envelope without a lookup.
#[derive(Debug, Clone)]
pub struct PeerCounters {
    /// [`BACKPLANE_ENVELOPES_IN`].
    pub envelopes_in: Counter,
    /// [`BACKPLANE_ENVELOPES_OUT`].
    pub envelopes_out: Counter,
    /// [`BACKPLANE_BYTES_IN`].
    pub bytes_in: Counter,
    /// [`BACKPLANE_BYTES_OUT`].
    pub bytes_out: Counter,
    /// [`BACKPLANE_RECONNECTS`].
    pub reconnects: Counter,
    /// [`BACKPLANE_REPLAYED`].
    pub replayed: Counter,
    /// [`BACKPLANE_LOST`], `direction="out"`.
    pub lost_out: Counter,
    /// [`BACKPLANE_LOST`], `direction="in"`.
    pub lost_in: Counter,
    /// [`BACKPLANE_OVERFLOWS`].
    pub overflows: Counter,
}

impl PeerCounters {
    /// The handles for peer `node_id`.
    pub fn new(node_id: &Arc<str>) -> Self {
        let peer = || node_id.clone();
        Self {
            envelopes_in: counter!(BACKPLANE_ENVELOPES_IN, "peer" => peer()),
            envelopes_out: counter!(BACKPLANE_ENVELOPES_OUT, "peer" => peer()),
            bytes_in: counter!(BACKPLANE_BYTES_IN, "peer" => peer()),
            bytes_out: counter!(BACKPLANE_BYTES_OUT, "peer" => peer()),
            reconnects: counter!(BACKPLANE_RECONNECTS, "peer" => peer()),
            replayed: counter!(BACKPLANE_REPLAYED, "peer" => peer()),
            lost_out: counter!(BACKPLANE_LOST, "peer" => peer(), "direction" => "out"),
            lost_in: counter!(BACKPLANE_LOST, "peer" => peer(), "direction" => "in"),
            overflows: counter!(BACKPLANE_OVERFLOWS, "peer" => peer()),
        }
    }
}

/// The publish counters of one protocol instance: made at its first publish (so any recorder
/// installed before traffic is used, and a test's thread-local one too), then kept.
#[derive(Debug)]
pub struct PublishCounters {
    protocol: Protocol,
    handles: OnceLock<PublishHandles>,
}

#[derive(Debug)]
struct PublishHandles {
    local: Counter,
    remote: Counter,
    deliveries: Counter,
}

impl PublishCounters {
    /// Counters for `protocol`, not made yet.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            handles: OnceLock::new(),
        }
    }

    /// Counts `n` messages published from `origin` and the `delivered` local receivers they were
    /// queued to.
    pub fn published(&self, origin: Origin, n: u64, delivered: usize) {
        let h = self.handles.get_or_init(|| {
            let p = self.protocol.label();
            PublishHandles {
                local: counter!(PUBLISHES, "protocol" => p, "origin" => "local"),
                remote: counter!(PUBLISHES, "protocol" => p, "origin" => "remote"),
                deliveries: counter!(DELIVERIES, "protocol" => p),
            }
        });
        match origin {
            Origin::Local => h.local.increment(n),
            Origin::Remote => h.remote.increment(n),
        }
        if delivered > 0 {
            h.deliveries.increment(delivered as u64);
        }
    }
}

/// The `protocol` label of every family that has one (`sgc`, `presence`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `esegece.com`.
    Sgc,
    /// `presence.esegece.com`.
    Presence,
}

impl Protocol {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Sgc => "sgc",
            Protocol::Presence => "presence",
        }
    }

    /// The subprotocol token (`Sec-WebSocket-Protocol`) of the protocol.
    pub fn token(self) -> &'static str {
        match self {
            Protocol::Sgc => "esegece.com",
            Protocol::Presence => "presence.esegece.com",
        }
    }
}

/// The `reason` labels of [`AUTH_REFUSALS`] exported at 0 from the start (the transport's
/// authentication refusals name theirs with these words).
pub const AUTH_REFUSAL_REASONS: [&str; 11] = [
    "credentials",
    "missing",
    "expired",
    "not_yet_valid",
    "signature",
    "issuer",
    "audience",
    "no_identity",
    "invalid_token",
    "critical_header",
    "hook",
];

/// Why a peer went down: the `reason` label of [`PEER_DOWN`] and [`PRESENCE_PURGE`] (the cluster
/// maps its own reasons to these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerDown {
    /// Its link closed or reset.
    LinkClosed,
    /// Nothing heard from it in time.
    Timeout,
    /// It said bye.
    Bye,
    /// A new incarnation of it appeared.
    Restarted,
    /// This node stopped its backplane.
    LocalStop,
    /// A broker engine: its subscription to its own stream is gone.
    Unsubscribed,
}

impl PeerDown {
    /// Every reason (their counters are exported at 0 from the start).
    pub const ALL: [PeerDown; 6] = [
        PeerDown::LinkClosed,
        PeerDown::Timeout,
        PeerDown::Bye,
        PeerDown::Restarted,
        PeerDown::LocalStop,
        PeerDown::Unsubscribed,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            PeerDown::LinkClosed => "link_closed",
            PeerDown::Timeout => "timeout",
            PeerDown::Bye => "bye",
            PeerDown::Restarted => "restarted",
            PeerDown::LocalStop => "local_stop",
            PeerDown::Unsubscribed => "unsubscribed",
        }
    }
}

/// The `origin` label of [`PUBLISHES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client of this node, or the application's API.
    Local,
    /// Another node.
    Remote,
}

/// Counts a refused WebSocket upgrade.
pub fn refused(reason: Refusal) {
    counter!(WS_HANDSHAKES_REFUSED, "reason" => reason.label()).increment(1);
}

/// Which `[limits]` option refused something: the `limit` label of [`LIMIT_REFUSALS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `limits.max_connections` (503).
    Connections,
    /// `limits.max_connections_per_ip` (429).
    ConnectionsPerIp,
    /// `limits.connections_per_ip_per_second` (429).
    ConnectionRate,
    /// The table of client addresses is full (503).
    IpTable,
    /// A message over the connection's size cap (1009).
    MessageSize,
    /// `limits.publishes_per_second_per_connection` (1008).
    PublishRate,
    /// A subscription past the protocol's per-connection cap.
    Subscriptions,
    /// `limits.max_channel_name_length`.
    ChannelName,
    /// `cluster.mesh.max_control_frames_per_sec`: a mesh peer flooding its link (link reset).
    MeshControlRate,
    /// `cluster.mesh.max_failed_handshakes_per_ip`: a connection to the cluster port closed unread
    /// because its source address failed too many handshakes.
    MeshHandshakeFailures,
    /// `cluster.mesh.max_known_addresses`: a learned peer address not kept (the dial set is full).
    MeshAddresses,
    /// `sgc.transaction_max_bytes`: a transaction past its byte cap (discarded, 1008).
    TransactionBytes,
    /// `sgc.transaction_max_bytes_per_connection`: a connection's open transactions past their
    /// byte cap together (discarded, 1008).
    TransactionBytesPerConnection,
    /// `sgc.retained_max_bytes_per_channel`: retained messages evicted from a channel, or a
    /// message too big to retain.
    RetainedChannelBytes,
    /// `sgc.retained_max_bytes`: retained messages evicted to keep the node under its cap.
    RetainedBytes,
    /// A new subscriber's retained replay cut to the newest messages that fit half its outbox.
    RetainedReplay,
    /// `sgc.rpc_max_pending` or `sgc.rpc_max_pending_bytes`: an RPC answered -32000 at once.
    RpcPending,
    /// `sgc.qos_max_pending_bytes`: an unacknowledged frame forgotten for the bytes.
    QosPendingBytes,
    /// `presence.acknowledgment.max_pending_bytes_per_connection`: an unacknowledged frame
    /// forgotten for the bytes.
    PresenceAckBytes,
    /// `presence.max_member_id_length`, `max_member_name_length` or `max_member_info_length`
    /// (error 2).
    PresenceMemberField,
    /// `api.idempotency_max_bytes`: an idempotency key forgotten before its window ended.
    ApiIdempotencyBytes,
}

impl Limit {
    /// Every limit (their counters are exported at 0 from the start).
    pub const ALL: [Limit; 21] = [
        Limit::Connections,
        Limit::ConnectionsPerIp,
        Limit::ConnectionRate,
        Limit::IpTable,
        Limit::MessageSize,
        Limit::PublishRate,
        Limit::Subscriptions,
        Limit::ChannelName,
        Limit::MeshControlRate,
        Limit::MeshHandshakeFailures,
        Limit::MeshAddresses,
        Limit::TransactionBytes,
        Limit::TransactionBytesPerConnection,
        Limit::RetainedChannelBytes,
        Limit::RetainedBytes,
        Limit::RetainedReplay,
        Limit::RpcPending,
        Limit::QosPendingBytes,
        Limit::PresenceAckBytes,
        Limit::PresenceMemberField,
        Limit::ApiIdempotencyBytes,
    ];

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::Connections => "connections",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::ConnectionRate => "connection_rate",
            Limit::IpTable => "ip_table",
            Limit::MessageSize => "message_size",
            Limit::PublishRate => "publish_rate",
            Limit::Subscriptions => "subscriptions",
            Limit::ChannelName => "channel_name",
            Limit::MeshControlRate => "mesh_control_rate",
            Limit::MeshHandshakeFailures => "mesh_handshake_failures",
            Limit::MeshAddresses => "mesh_addresses",
            Limit::TransactionBytes => "sgc_transaction_bytes",
            Limit::TransactionBytesPerConnection => "sgc_transaction_bytes_per_connection",
            Limit::RetainedChannelBytes => "sgc_retained_channel_bytes",
            Limit::RetainedBytes => "sgc_retained_bytes",
            Limit::RetainedReplay => "sgc_retained_replay",
            Limit::RpcPending => "sgc_rpc_pending",
            Limit::QosPendingBytes => "sgc_qos_pending_bytes",
            Limit::PresenceAckBytes => "presence_ack_pending_bytes",
            Limit::PresenceMemberField => "presence_member_field",
            Limit::ApiIdempotencyBytes => "api_idempotency_bytes",
        }
    }
}

/// Counts something refused by a `[limits]` option.
pub fn limit_refused(limit: Limit) {
    counter!(LIMIT_REFUSALS, "limit" => limit.label()).increment(1);
}

/// Counts an upgrade refused by authentication, by reason.
pub fn auth_refused(reason: &'static str) {
    counter!(AUTH_REFUSALS, "reason" => reason).increment(1);
}

/// Counts a received event dropped for `reason` (`undecodable`, `held_overflow`).
pub fn dropped(protocol: Protocol, reason: &'static str) {
    counter!(BACKPLANE_DROPPED, "protocol" => protocol.label(), "reason" => reason).increment(1);
}

/// Counts a peer that came up.
pub fn peer_up() {
    counter!(PEER_UP).increment(1);
}

/// Counts a peer that went down.
pub fn peer_down(reason: PeerDown) {
    counter!(PEER_DOWN, "reason" => reason.label()).increment(1);
}

/// Records how long the purge of a departed peer took.
pub fn purge_took(reason: PeerDown, took: Duration) {
    histogram!(PRESENCE_PURGE, "reason" => reason.label()).record(took.as_secs_f64());
}

/// Counts `n` webhook events delivered.
pub fn webhook_delivered(n: usize) {
    counter!(WEBHOOK_EVENTS_DELIVERED).increment(n as u64);
}

/// Counts `n` webhook events dropped for `reason`.
pub fn webhook_dropped(reason: &'static str, n: usize) {
    counter!(WEBHOOK_EVENTS_DROPPED, "reason" => reason).increment(n as u64);
}

/// Counts one webhook POST by outcome.
pub fn webhook_post(outcome: &'static str) {
    counter!(WEBHOOK_POSTS, "outcome" => outcome).increment(1);
}

/// Sets the bytes of webhook events queued.
pub fn webhook_queue_bytes(bytes: usize) {
    ::metrics::gauge!(WEBHOOK_QUEUE_BYTES).set(bytes as f64);
}

/// Microseconds since the Unix epoch by this node's clock: the send stamp of a relayed publish.
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// The delivery lag histogram of one adapter instance (made at its first sample, then kept).
#[derive(Debug, Default)]
pub struct LagHistogram {
    handle: OnceLock<Histogram>,
}

impl LagHistogram {
    /// Records the delivery lag of an sgc message stamped `sent_micros` on its origin node. A
    /// stamp of 0 means "not stamped" and records nothing; a stamp in the future (the origin's
    /// clock is ahead) records 0 and counts [`BACKPLANE_CLOCK_SKEW`].
    pub fn record(&self, sent_micros: u64) {
        if sent_micros == 0 {
            return;
        }
        let lag = match now_micros().checked_sub(sent_micros) {
            Some(us) => us as f64 / 1e6,
            None => {
                counter!(BACKPLANE_CLOCK_SKEW).increment(1);
                0.0
            }
        };
        self.handle
            .get_or_init(|| histogram!(BACKPLANE_DELIVERY_LAG, "protocol" => "sgc"))
            .record(lag);
    }
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;
