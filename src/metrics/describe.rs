//! Registering every metric with the installed recorder: descriptions and units ([`describe`]) and
//! the counters exported at 0 before their first event ([`register_at_zero`]).

use super::*;

/// Registers the description and unit of every metric with the installed recorder. Call once,
/// after installing it.
pub fn describe() {
    let count = Unit::Count;
    let bytes = Unit::Bytes;
    let secs = Unit::Seconds;
    describe_counter!(
        WS_CONNECTIONS_OPENED,
        count,
        "WebSocket connections upgraded, by subprotocol"
    );
    describe_counter!(
        WS_HANDSHAKES_REFUSED,
        count,
        "WebSocket upgrades refused, by reason"
    );
    describe_counter!(
        AUTH_REFUSALS,
        count,
        "WebSocket upgrades refused by authentication, by reason"
    );
    describe_counter!(
        WS_FRAMES_IN,
        count,
        "WebSocket data messages received, by subprotocol"
    );
    describe_counter!(
        WS_FRAMES_OUT,
        count,
        "WebSocket data messages sent, by subprotocol"
    );
    describe_counter!(
        WS_BYTES_IN,
        bytes,
        "Payload bytes of WebSocket messages received"
    );
    describe_counter!(
        WS_BYTES_OUT,
        bytes,
        "Payload bytes of WebSocket messages sent"
    );
    describe_counter!(
        WS_SLOW_CONSUMER_CLOSES,
        count,
        "Connections closed (1008) because their outbound queue passed server.max_outbox_bytes"
    );
    describe_counter!(
        WS_HEARTBEAT_TIMEOUTS,
        count,
        "Connections closed because they stopped answering pings"
    );
    describe_counter!(
        WS_SHUTDOWN_FORCED,
        count,
        "Connections still open at the shutdown deadline, closed without waiting"
    );
    describe_counter!(
        LIMIT_REFUSALS,
        count,
        "Connections, messages or requests refused by a [limits] option, by limit"
    );
    describe_counter!(
        PUBLISHES,
        count,
        "Messages published, by protocol and origin (local client or API, or another node)"
    );
    describe_counter!(
        DELIVERIES,
        count,
        "Published messages queued to local receivers, by protocol"
    );
    describe_counter!(
        BACKPLANE_ENVELOPES_IN,
        count,
        "Envelopes received from each peer"
    );
    describe_counter!(
        BACKPLANE_ENVELOPES_OUT,
        count,
        "Envelopes sent to each peer, replays included"
    );
    describe_counter!(BACKPLANE_BYTES_IN, bytes, "Bytes received from each peer");
    describe_counter!(BACKPLANE_BYTES_OUT, bytes, "Bytes written to each peer");
    describe_counter!(
        BACKPLANE_RECONNECTS,
        count,
        "Links to a peer established again after the first one"
    );
    describe_counter!(
        BACKPLANE_REPLAYED,
        count,
        "Envelopes replayed to a peer after a reconnect"
    );
    describe_counter!(
        BACKPLANE_LOST,
        count,
        "Envelopes lost in a gap (out: beyond this node's replay window; in: missing from the peer)"
    );
    describe_counter!(
        BACKPLANE_OVERFLOWS,
        count,
        "Links reset because their send queue passed its cap"
    );
    describe_counter!(
        BACKPLANE_LINKS_REFUSED,
        count,
        "Backplane links refused during the handshake (by us or by the peer)"
    );
    describe_counter!(
        BACKPLANE_PUBLISH_ERRORS,
        count,
        "Publishes the engine could not hand to its backplane"
    );
    describe_counter!(
        BACKPLANE_DROPPED,
        count,
        "Envelopes or events received from peers and dropped, by protocol and reason"
    );
    describe_histogram!(
        BACKPLANE_DELIVERY_LAG,
        secs,
        "Time from a publish on its origin node to its fan-out on this node (node clocks may differ)"
    );
    describe_counter!(
        BACKPLANE_CLOCK_SKEW,
        count,
        "Delivery lag samples that were negative (origin clock ahead), recorded as 0"
    );
    describe_counter!(PEER_UP, count, "Peers that came up");
    describe_counter!(PEER_DOWN, count, "Peers that went down, by reason");
    describe_histogram!(
        PRESENCE_PURGE,
        secs,
        "Time from learning a peer is down to its Presence members purged here, by reason"
    );
    describe_counter!(
        WEBHOOK_EVENTS_DELIVERED,
        count,
        "Webhook events delivered (their POST was answered 2xx)"
    );
    describe_counter!(
        WEBHOOK_EVENTS_DROPPED,
        count,
        "Webhook events dropped undelivered: webhooks.queue_bytes reached, retried past webhooks.retry_max_ms, or a connection id past webhooks.replica_bytes"
    );
    describe_counter!(WEBHOOK_POSTS, count, "Webhook POSTs, by outcome");
    ::metrics::describe_gauge!(
        WEBHOOK_QUEUE_BYTES,
        bytes,
        "Bytes of webhook events waiting to be delivered"
    );
    // The scrape-time gauges (CONNECTIONS .. READY) are written by the /metrics handler itself
    // (src/ops/prometheus.rs), with their help text, not through the recorder.
    register_at_zero();
}

// --- Counters exported at 0 from the start --------------------------------------------------

/// Registers every counter, and each labelled counter for its known label values, with the
/// installed recorder, so that `/metrics` shows them at 0 before their first event (a rate over
/// a series that appears only at its first event misses that event). Per-peer counters appear
/// with their peer; `wscluster_http_requests_total` with each route and status. Called by
/// [`describe`].
pub fn register_at_zero() {
    let protocols = [Protocol::Sgc.label(), Protocol::Presence.label()];
    for p in protocols {
        for name in [
            WS_CONNECTIONS_OPENED,
            WS_FRAMES_IN,
            WS_FRAMES_OUT,
            WS_BYTES_IN,
            WS_BYTES_OUT,
        ] {
            let _ = counter!(name, "protocol" => p);
        }
        for origin in ["local", "remote"] {
            let _ = counter!(PUBLISHES, "protocol" => p, "origin" => origin);
        }
        let _ = counter!(DELIVERIES, "protocol" => p);
        for reason in ["undecodable", "held_overflow"] {
            let _ = counter!(BACKPLANE_DROPPED, "protocol" => p, "reason" => reason);
        }
    }
    for r in Refusal::ALL {
        let _ = counter!(WS_HANDSHAKES_REFUSED, "reason" => r.label());
    }
    for r in AUTH_REFUSAL_REASONS {
        let _ = counter!(AUTH_REFUSALS, "reason" => r);
    }
    for l in Limit::ALL {
        let _ = counter!(LIMIT_REFUSALS, "limit" => l.label());
    }
    for by in ["us", "peer", "tls"] {
        let _ = counter!(BACKPLANE_LINKS_REFUSED, "by" => by);
    }
    for r in PeerDown::ALL {
        let _ = counter!(PEER_DOWN, "reason" => r.label());
    }
    for reason in ["queue_full", "expired", "replica_full"] {
        let _ = counter!(WEBHOOK_EVENTS_DROPPED, "reason" => reason);
    }
    for outcome in ["ok", "refused", "failed"] {
        let _ = counter!(WEBHOOK_POSTS, "outcome" => outcome);
    }
    for name in [
        WEBHOOK_EVENTS_DELIVERED,
        WS_SLOW_CONSUMER_CLOSES,
        WS_HEARTBEAT_TIMEOUTS,
        WS_SHUTDOWN_FORCED,
        BACKPLANE_PUBLISH_ERRORS,
        BACKPLANE_CLOCK_SKEW,
        PEER_UP,
    ] {
        let _ = counter!(name);
    }
}
