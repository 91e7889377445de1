//! The counters of a fan-out run, shared by its publishers and receivers: what was sent in the
//! measured window, what each receiving class got back and how late, and what the run needs to
//! bound itself (live receivers per channel, the in-flight [`Flow`]) or to know the cluster
//! relays (the cross-node probe).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::clock::now_ns;
use crate::conn::Failures;
use crate::flow::Flow;
use crate::latency::{Batch, Latency};
use crate::payload;
use crate::wire::{self, Incoming};

/// Index of the "same node as the publishers" class in per-class arrays.
pub(crate) const SAME: usize = 0;
/// Index of the "another node" class.
pub(crate) const OTHER: usize = 1;

/// The counters of one fan-out run.
#[derive(Debug)]
pub(crate) struct Tally {
    /// Start of the measured window (clock ns); `u64::MAX` until publishing starts.
    pub(crate) window_start: AtomicU64,
    /// End of the measured window (clock ns).
    pub(crate) window_end: AtomicU64,
    /// Deliveries of window publishes received, by class.
    pub(crate) received: [AtomicU64; 2],
    /// Deliveries of warmup publishes (not measured).
    pub(crate) received_outside: AtomicU64,
    /// `sgc@event` / `publish@msg` frames whose body is neither ours nor the probe.
    pub(crate) foreign: AtomicU64,
    /// Publish→deliver latency of window deliveries, by class.
    pub(crate) latency: [Arc<Latency>; 2],
    /// Publishes sent in the window.
    pub(crate) published: AtomicU64,
    /// The generator's own lateness of paced window publishes: due time → sent.
    pub(crate) lateness: Arc<Latency>,
    /// Deliveries the window's publishes should produce, by class.
    pub(crate) expected: [AtomicU64; 2],
    /// Receivers subscribed, per channel and class (fixed once setup ends).
    pub(crate) subscribed: Vec<[AtomicU64; 2]>,
    /// Receivers still connected, per channel (publishers count these in flight).
    pub(crate) live: Vec<AtomicU64>,
    /// The in-flight bound.
    pub(crate) flow: Flow,
    /// Connections lost while the run was going (not stopped by it), by reason.
    pub(crate) lost: Failures,
    /// Receivers that finished setup.
    pub(crate) receivers_ready: AtomicU64,
    /// Publishers that finished setup.
    pub(crate) publishers_ready: AtomicU64,
    /// Per node: some receiver there is in the probe channel (channel 0).
    pub(crate) probe_expected: Vec<AtomicBool>,
    /// Per node: a receiver there got the probe.
    pub(crate) probe_seen: Vec<AtomicBool>,
}

impl Tally {
    /// Empty counters for `channels` channels on `nodes` nodes, with an in-flight bound of
    /// `flow_limit` deliveries.
    pub(crate) fn new(channels: usize, nodes: usize, flow_limit: u64) -> Self {
        Self {
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            received: Default::default(),
            received_outside: AtomicU64::new(0),
            foreign: AtomicU64::new(0),
            latency: [Latency::new(), Latency::new()],
            published: AtomicU64::new(0),
            lateness: Latency::new(),
            expected: Default::default(),
            subscribed: (0..channels).map(|_| Default::default()).collect(),
            live: (0..channels).map(|_| AtomicU64::new(0)).collect(),
            flow: Flow::new(flow_limit),
            lost: Failures::default(),
            receivers_ready: AtomicU64::new(0),
            publishers_ready: AtomicU64::new(0),
            probe_expected: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
            probe_seen: (0..nodes).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// A receiver on `node`, of latency class `class`, subscribed to `channels`.
    pub(crate) fn receiver_ready(&self, node: usize, class: usize, channels: &[usize]) {
        for &c in channels {
            self.subscribed[c][class].fetch_add(1, Ordering::Relaxed);
            self.live[c].fetch_add(1, Ordering::Relaxed);
            if c == 0 {
                self.probe_expected[node].store(true, Ordering::Relaxed);
            }
        }
        self.receivers_ready.fetch_add(1, Ordering::Relaxed);
    }

    /// A receiver subscribed to `channels` lost its connection.
    pub(crate) fn receiver_lost(&self, channels: &[usize]) {
        for &c in channels {
            self.live[c].fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Accounts one text frame received by a receiver on `node` of class `class`; latencies go
    /// to the receiver's own batches (`batches[class]`).
    pub(crate) fn on_text(&self, text: &str, node: usize, class: usize, batches: &mut [Batch; 2]) {
        let Incoming::Event(sent) = wire::classify(text) else {
            return;
        };
        let Some(sent) = sent else {
            if text.contains(payload::PROBE) {
                self.probe_seen[node].store(true, Ordering::Relaxed);
            } else {
                self.foreign.fetch_add(1, Ordering::Relaxed);
            }
            return;
        };
        let now = now_ns();
        self.flow.delivered();
        let start = self.window_start.load(Ordering::Relaxed);
        let end = self.window_end.load(Ordering::Relaxed);
        if sent >= start && sent < end {
            self.received[class].fetch_add(1, Ordering::Relaxed);
            batches[class].record(now.saturating_sub(sent));
        } else {
            self.received_outside.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Accounts a publish to `channel` sent at `sent` (clock ns).
    pub(crate) fn published(&self, channel: usize, sent: u64) {
        if sent >= self.window_start.load(Ordering::Relaxed) {
            self.published.fetch_add(1, Ordering::Relaxed);
            for class in [SAME, OTHER] {
                let n = self.subscribed[channel][class].load(Ordering::Relaxed);
                self.expected[class].fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    /// Accounts the lateness (`late_ns`, due → sent) of a paced publish sent at `sent` (clock ns);
    /// only window publishes count.
    pub(crate) fn publish_lateness(&self, sent: u64, late_ns: u64) {
        if sent >= self.window_start.load(Ordering::Relaxed) {
            self.lateness.record(late_ns);
        }
    }

    /// True when every node with a receiver in the probe channel has seen the probe.
    pub(crate) fn probe_complete(&self) -> bool {
        self.probe_expected
            .iter()
            .zip(&self.probe_seen)
            .all(|(e, s)| !e.load(Ordering::Relaxed) || s.load(Ordering::Relaxed))
    }

    /// The nodes (indices) that expect the probe and have not seen it.
    pub(crate) fn probe_missing(&self) -> Vec<usize> {
        (0..self.probe_seen.len())
            .filter(|&n| {
                self.probe_expected[n].load(Ordering::Relaxed)
                    && !self.probe_seen[n].load(Ordering::Relaxed)
            })
            .collect()
    }

    /// Deliveries of window publishes received, all classes.
    pub(crate) fn received_total(&self) -> u64 {
        self.received
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }

    /// Deliveries the window's publishes should produce, all classes.
    pub(crate) fn expected_total(&self) -> u64 {
        self.expected
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Proto, PublishTemplate};

    /// What a node would deliver for this publish frame: the S5 event around the same body.
    fn event_for(body_frame: &[u8]) -> String {
        let text = String::from_utf8_lossy(body_frame);
        let body = text
            .split(r#""message":""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned();
        format!(
            r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@event","channel":"c0","message":"{body}"}}}}"#
        )
    }

    #[test]
    fn window_deliveries_are_counted_and_expected_by_class() {
        let t = Tally::new(2, 2, 100);
        t.receiver_ready(0, SAME, &[0]);
        t.receiver_ready(1, OTHER, &[0, 1]);
        t.window_start.store(1_000, Ordering::Relaxed);
        t.window_end.store(u64::MAX - 1, Ordering::Relaxed);
        let tpl = PublishTemplate::new(Proto::Sgc, "c0", "");
        let mut batches = [
            Batch::new(t.latency[SAME].clone()),
            Batch::new(t.latency[OTHER].clone()),
        ];
        // A warmup publish (before the window) is neither expected nor measured.
        t.published(0, 10);
        t.on_text(&event_for(&tpl.frame(10, 30)), 0, SAME, &mut batches);
        // A window publish to channel 0 expects one delivery per class.
        let sent = now_ns().max(1_000);
        t.published(0, sent);
        t.on_text(&event_for(&tpl.frame(sent, 30)), 0, SAME, &mut batches);
        t.on_text(&event_for(&tpl.frame(sent, 30)), 1, OTHER, &mut batches);
        drop(batches);
        assert_eq!(t.expected_total(), 2);
        assert_eq!(t.received_total(), 2);
        assert_eq!(t.received_outside.load(Ordering::Relaxed), 1);
        assert_eq!(t.latency[SAME].summary().count, 1);
        assert_eq!(t.latency[OTHER].summary().count, 1);
    }

    #[test]
    fn only_window_publishes_count_in_the_generator_lateness() {
        let t = Tally::new(1, 1, 100);
        t.window_start.store(1_000, Ordering::Relaxed);
        t.publish_lateness(999, 5_000_000);
        t.publish_lateness(1_000, 2_000);
        t.publish_lateness(2_000, 4_000);
        let s = t.lateness.summary();
        assert_eq!(s.count, 2);
        assert!((s.max_us - 4.0).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn the_probe_is_complete_when_every_expecting_node_saw_it() {
        let t = Tally::new(2, 3, 100);
        t.receiver_ready(0, SAME, &[0]);
        t.receiver_ready(2, OTHER, &[0]);
        t.receiver_ready(1, OTHER, &[1]);
        assert_eq!(t.probe_missing(), vec![0, 2]);
        let probe = format!(
            r#"{{"jsonrpc":"2.0","result":{{"method":"sgc@event","channel":"c0","message":"{}"}}}}"#,
            payload::PROBE
        );
        let mut batches = [Batch::new(Latency::new()), Batch::new(Latency::new())];
        t.on_text(&probe, 0, SAME, &mut batches);
        assert!(!t.probe_complete());
        t.on_text(&probe, 2, OTHER, &mut batches);
        assert!(t.probe_complete());
        assert_eq!(t.foreign.load(Ordering::Relaxed), 0);
    }
}
