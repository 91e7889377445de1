//! The Redis engine's counters: [`RedisStats`] (read by logs and the library) and their
//! Prometheus side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Shared;
use crate::metrics::{self as m, PeerCounters};

/// Counters of the Redis engine, for logs and metrics.
#[derive(Debug, Default)]
pub struct RedisStats {
    /// Envelopes published.
    pub envelopes_out: AtomicU64,
    /// Bytes published (channel names included).
    pub bytes_out: AtomicU64,
    /// Envelopes received from other nodes.
    pub envelopes_in: AtomicU64,
    /// Bytes received from other nodes.
    pub bytes_in: AtomicU64,
    /// Envelopes other nodes sent that never arrived here (sequence gaps).
    pub gaps: AtomicU64,
    /// Envelopes dropped because their PUBLISH failed (Redis away or erroring).
    pub publish_errors: AtomicU64,
    /// Envelopes dropped because the publish queue was full.
    pub overflows: AtomicU64,
    /// Subscription connections re-established after the first.
    pub reconnects: AtomicU64,
    /// Resynchronisations started after a loss.
    pub resyncs: AtomicU64,
    /// Messages dropped as undecodable or too large.
    pub malformed: AtomicU64,
}

/// The Prometheus side of [`RedisStats`] (`docs/metrics.md`): what this node publishes and its
/// connection's troubles are counted under `peer="redis"`, what arrives under its origin's id.
pub(super) struct EngineMetrics {
    pub(super) redis: PeerCounters,
    publish_errors: metrics::Counter,
    malformed: metrics::Counter,
}

impl EngineMetrics {
    pub(super) fn new() -> Self {
        Self {
            redis: PeerCounters::new(&Arc::from("redis")),
            publish_errors: metrics::counter!(m::BACKPLANE_PUBLISH_ERRORS),
            malformed: metrics::counter!(m::BACKPLANE_DROPPED, "protocol" => "redis", "reason" => "undecodable"),
        }
    }
}

impl Shared {
    pub(super) fn add_out(&self, envelopes: u64, bytes: u64) {
        self.stats
            .envelopes_out
            .fetch_add(envelopes, Ordering::Relaxed);
        self.stats.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        self.metrics.redis.envelopes_out.increment(envelopes);
        self.metrics.redis.bytes_out.increment(bytes);
    }
    pub(super) fn add_publish_errors(&self, n: u64) {
        self.stats.publish_errors.fetch_add(n, Ordering::Relaxed);
        self.metrics.publish_errors.increment(n);
    }
    pub(super) fn add_reconnect(&self) {
        self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
        self.metrics.redis.reconnects.increment(1);
    }
    pub(super) fn add_malformed(&self) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        self.metrics.malformed.increment(1);
    }
}
