//! A broker engine's counters: [`BrokerStats`] (read by logs and the library) and their
//! Prometheus side.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::{self as m, PeerCounters};

/// Counters of a broker engine, for logs and metrics.
#[derive(Debug, Default)]
pub struct BrokerStats {
    /// Envelopes published.
    pub envelopes_out: AtomicU64,
    /// Bytes published (stream names included).
    pub bytes_out: AtomicU64,
    /// Envelopes received from other nodes.
    pub envelopes_in: AtomicU64,
    /// Bytes received from other nodes.
    pub bytes_in: AtomicU64,
    /// Envelopes other nodes sent that never arrived here (sequence gaps).
    pub gaps: AtomicU64,
    /// Envelopes dropped because their publish failed (the broker away or erroring).
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

/// The Prometheus side of [`BrokerStats`] (`docs/metrics.md`): what this node publishes and its
/// connection's troubles are counted under `peer="<engine>"` (`redis`, `redis-cluster`, `nats`),
/// what arrives under its origin's id.
pub(crate) struct EngineMetrics {
    pub(crate) engine: PeerCounters,
    publish_errors: metrics::Counter,
    malformed: metrics::Counter,
}

impl EngineMetrics {
    pub(crate) fn new(engine: &'static str) -> Self {
        Self {
            engine: PeerCounters::new(&Arc::from(engine)),
            publish_errors: metrics::counter!(m::BACKPLANE_PUBLISH_ERRORS),
            malformed: metrics::counter!(m::BACKPLANE_DROPPED, "protocol" => engine, "reason" => "undecodable"),
        }
    }
}

impl BrokerStats {
    pub(crate) fn add_out(&self, metrics: &EngineMetrics, envelopes: u64, bytes: u64) {
        self.envelopes_out.fetch_add(envelopes, Ordering::Relaxed);
        self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        metrics.engine.envelopes_out.increment(envelopes);
        metrics.engine.bytes_out.increment(bytes);
    }
    pub(crate) fn add_in(&self, bytes: u64) {
        self.envelopes_in.fetch_add(1, Ordering::Relaxed);
        self.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn add_publish_errors(&self, metrics: &EngineMetrics, n: u64) {
        self.publish_errors.fetch_add(n, Ordering::Relaxed);
        metrics.publish_errors.increment(n);
    }
    pub(crate) fn add_reconnect(&self, metrics: &EngineMetrics) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        metrics.engine.reconnects.increment(1);
    }
    pub(crate) fn add_malformed(&self, metrics: &EngineMetrics) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
        metrics.malformed.increment(1);
    }
    pub(crate) fn add_gaps(&self, n: u64) {
        self.gaps.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_resync(&self) {
        self.resyncs.fetch_add(1, Ordering::Relaxed);
    }

    /// Logs every counter once (when the engine stops).
    pub(crate) fn log(&self, engine: &'static str) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        tracing::info!(
            engine,
            envelopes_in = get(&self.envelopes_in),
            envelopes_out = get(&self.envelopes_out),
            bytes_in = get(&self.bytes_in),
            bytes_out = get(&self.bytes_out),
            gaps = get(&self.gaps),
            publish_errors = get(&self.publish_errors),
            overflows = get(&self.overflows),
            reconnects = get(&self.reconnects),
            resyncs = get(&self.resyncs),
            "{engine} stats"
        );
    }
}
