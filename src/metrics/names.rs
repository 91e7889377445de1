//! Every metric's name, grouped by what it measures, with its type and labels. `docs/metrics.md`
//! says what each one means to an operator.

// --- WebSocket side -------------------------------------------------------------------------

/// Counter, `protocol`: WebSocket connections upgraded.
pub const WS_CONNECTIONS_OPENED: &str = "wscluster_ws_connections_opened_total";
/// Counter, `reason`: WebSocket upgrades refused (see [`Refusal`](super::Refusal)).
pub const WS_HANDSHAKES_REFUSED: &str = "wscluster_ws_handshakes_refused_total";
/// Counter, `protocol`: complete WebSocket data messages received (text and binary).
pub const WS_FRAMES_IN: &str = "wscluster_ws_frames_in_total";
/// Counter, `protocol`: WebSocket data messages handed to the socket.
pub const WS_FRAMES_OUT: &str = "wscluster_ws_frames_out_total";
/// Counter, `protocol`: payload bytes of the messages received.
pub const WS_BYTES_IN: &str = "wscluster_ws_bytes_in_total";
/// Counter, `protocol`: payload bytes of the messages handed to the socket.
pub const WS_BYTES_OUT: &str = "wscluster_ws_bytes_out_total";
/// Counter: connections closed (1008) because their outbox passed its cap.
pub const WS_SLOW_CONSUMER_CLOSES: &str = "wscluster_ws_slow_consumer_closes_total";
/// Counter: connections closed because they stopped answering pings.
pub const WS_HEARTBEAT_TIMEOUTS: &str = "wscluster_ws_heartbeat_timeouts_total";
/// Counter: connections still open when the shutdown deadline passed, closed without waiting.
pub const WS_SHUTDOWN_FORCED: &str = "wscluster_ws_shutdown_forced_total";
/// Counter, `limit` (see [`Limit`](super::Limit)): connections, messages or requests refused by
/// a `[limits]` option.
pub const LIMIT_REFUSALS: &str = "wscluster_limit_refusals_total";
/// Counter, `reason` (see [`AUTH_REFUSAL_REASONS`](super::AUTH_REFUSAL_REASONS)): upgrades
/// refused by authentication; each is also one `auth` refusal of [`WS_HANDSHAKES_REFUSED`].
pub const AUTH_REFUSALS: &str = "wscluster_auth_refusals_total";

// --- Publish and subscribe ------------------------------------------------------------------

/// Counter, `protocol`, `origin` (`local`/`remote`): messages published (sgc: one per concrete
/// channel of a publish, and one per broadcast; Presence: `publish@msg` and server broadcasts).
pub const PUBLISHES: &str = "wscluster_publishes_total";
/// Counter, `protocol`: published messages queued to local receivers (a publish to 3 subscribers
/// adds 3).
pub const DELIVERIES: &str = "wscluster_deliveries_total";

// --- Backplane (engine-neutral; `peer` is the peer's node id) ------------------------------

/// Counter, `peer`: envelopes received from a peer.
pub const BACKPLANE_ENVELOPES_IN: &str = "wscluster_backplane_envelopes_in_total";
/// Counter, `peer`: envelopes sent (queued) to a peer, replays included.
pub const BACKPLANE_ENVELOPES_OUT: &str = "wscluster_backplane_envelopes_out_total";
/// Counter, `peer`: bytes received from a peer (framing included).
pub const BACKPLANE_BYTES_IN: &str = "wscluster_backplane_bytes_in_total";
/// Counter, `peer`: bytes written to a peer (framing included).
pub const BACKPLANE_BYTES_OUT: &str = "wscluster_backplane_bytes_out_total";
/// Counter, `peer`: links to a peer established again after its first one.
pub const BACKPLANE_RECONNECTS: &str = "wscluster_backplane_reconnects_total";
/// Counter, `peer`: envelopes replayed to a peer after a reconnect.
pub const BACKPLANE_REPLAYED: &str = "wscluster_backplane_replayed_total";
/// Counter, `peer`, `direction` (`out`: to the peer, beyond this node's replay window; `in`: from
/// the peer, found missing): envelopes lost in a gap (each gap also triggers a resynchronisation).
pub const BACKPLANE_LOST: &str = "wscluster_backplane_lost_total";
/// Counter, `peer`: links reset because their send queue passed its cap.
pub const BACKPLANE_OVERFLOWS: &str = "wscluster_backplane_overflows_total";
/// Counter, `by` (`us`: this node refused the other; `peer`: the other refused this node): links
/// refused during their handshake (wrong secret, other cluster, ...).
pub const BACKPLANE_LINKS_REFUSED: &str = "wscluster_backplane_links_refused_total";
/// Counter: publishes an engine could not hand to its backplane (engines whose publish can fail,
/// such as Redis; the mesh queues or replays and never counts here).
pub const BACKPLANE_PUBLISH_ERRORS: &str = "wscluster_backplane_publish_errors_total";
/// Counter, `protocol`, `reason` (`undecodable`, `held_overflow`, `slow_consumer`): envelopes or
/// events received and dropped.
pub const BACKPLANE_DROPPED: &str = "wscluster_backplane_dropped_total";
/// Histogram (seconds), `protocol`: from the publish on its origin node to its fan-out here.
pub const BACKPLANE_DELIVERY_LAG: &str = "wscluster_backplane_delivery_lag_seconds";
/// Counter: delivery lag samples that came out negative (the origin's clock is ahead of this
/// node's) and were recorded as 0.
pub const BACKPLANE_CLOCK_SKEW: &str = "wscluster_backplane_clock_skew_total";

// --- Membership -----------------------------------------------------------------------------

/// Counter: peers that came up (a new peer, or a peer back after it was down).
pub const PEER_UP: &str = "wscluster_peer_up_total";
/// Counter, `reason` (see [`PeerDown`](super::PeerDown)): peers that went down.
pub const PEER_DOWN: &str = "wscluster_peer_down_total";
/// Histogram (seconds), `reason`: from the moment the cluster learnt a peer was down to the moment
/// its Presence members (and its sgc interest) were purged and the leave frames queued.
pub const PRESENCE_PURGE: &str = "wscluster_presence_purge_seconds";

// --- Scrape-time gauges (set by whoever renders /metrics) -----------------------------------

/// Gauge: open WebSocket connections.
pub const CONNECTIONS: &str = "wscluster_connections";
/// Gauge: open sgc (`esegece.com`) connections.
pub const SGC_CONNECTIONS: &str = "wscluster_sgc_connections";
/// Gauge: sgc channels with at least one subscriber on this node.
pub const SGC_CHANNELS: &str = "wscluster_sgc_channels";
/// Gauge: sgc subscriptions (channel, connection pairs) on this node.
pub const SGC_SUBSCRIPTIONS: &str = "wscluster_sgc_subscriptions";
/// Gauge: Presence channels in the cluster.
pub const PRESENCE_CHANNELS: &str = "wscluster_presence_channels";
/// Gauge, `scope` (`local`: members of this node's connections; `cluster`: every member this node
/// knows, its own and its peers'): Presence members.
pub const PRESENCE_MEMBERS: &str = "wscluster_presence_members";
/// Gauge: live peers.
pub const PEERS: &str = "wscluster_peers";
/// Gauge: 1 when the node is ready (cluster linked), else 0.
pub const READY: &str = "wscluster_ready";

// --- Configured peers, process and build (scrape-time) --------------------------------------

/// Gauge, `peer` (a configured `host:port`, or an address a `peers_dns` name resolved to; bounded by
/// the configuration): 1 when linked, else 0.
pub const MESH_PEER_UP: &str = "wscluster_mesh_peer_up";
/// Gauge, `version`, `commit`: always 1; the labels say which build runs.
pub const BUILD_INFO: &str = "wscluster_build_info";

// --- Webhooks ---------------------------------------------------------------------------------

/// Counter: webhook events delivered (a 2xx answer to the POST that carried them).
pub const WEBHOOK_EVENTS_DELIVERED: &str = "wscluster_webhook_events_delivered_total";
/// Counter, `reason` (`queue_full`, `expired`, `replica_full`): webhook events dropped
/// undelivered (`replica_full`: another node's connection id not kept, so its `connection_closed`
/// cannot be reported should that node crash).
pub const WEBHOOK_EVENTS_DROPPED: &str = "wscluster_webhook_events_dropped_total";
/// Counter, `outcome` (`ok`, `refused`: a non-2xx status, `failed`: no answer): webhook POSTs.
pub const WEBHOOK_POSTS: &str = "wscluster_webhook_posts_total";
/// Gauge: bytes of webhook events waiting to be delivered.
pub const WEBHOOK_QUEUE_BYTES: &str = "wscluster_webhook_queue_bytes";
