//! Latency histograms: one shared HdrHistogram per measured class, fed through small per-task
//! batches so thousands of receiving tasks do not take a lock per sample.

use std::sync::Arc;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::report::Report;

/// Highest latency tracked exactly (60 s, in ns); longer ones are recorded as 60 s.
const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// Samples a [`Batch`] keeps before taking the lock.
const BATCH: usize = 256;

/// One class of latency samples (e.g. "same node"), in nanoseconds.
#[derive(Debug)]
pub(crate) struct Latency {
    /// The samples so far; 3 significant digits from 1 ns to 60 s.
    hist: Mutex<Histogram<u64>>,
}

impl Latency {
    /// An empty class.
    #[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
    pub(crate) fn new() -> Arc<Self> {
        let hist = Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("valid bounds");
        Arc::new(Self {
            hist: Mutex::new(hist),
        })
    }

    /// Records one sample directly (for low-rate measurements such as request round trips).
    pub(crate) fn record(&self, ns: u64) {
        self.hist
            .lock()
            .saturating_record(ns.clamp(1, MAX_TRACKED_NS));
    }

    /// The summary of what was recorded.
    pub(crate) fn summary(&self) -> Summary {
        Summary::of(&self.hist.lock())
    }

    /// The summary of several classes together.
    pub(crate) fn summary_of(classes: &[&Latency]) -> Summary {
        let mut all = Latency::new().hist.lock().clone();
        for class in classes {
            let _ = all.add(&*class.hist.lock());
        }
        Summary::of(&all)
    }
}

impl Summary {
    /// The summary of one histogram.
    fn of(h: &Histogram<u64>) -> Self {
        let us = |ns: u64| ns as f64 / 1_000.0;
        Self {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.50)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            max_us: us(h.max()),
            mean_us: h.mean() / 1_000.0,
        }
    }
}

/// A task-local buffer of samples for one [`Latency`]; flushes when full and when dropped.
#[derive(Debug)]
pub(crate) struct Batch {
    /// Where the samples go.
    target: Arc<Latency>,
    /// Samples not yet in the histogram.
    buf: Vec<u64>,
}

impl Batch {
    /// A batch feeding `target`.
    pub(crate) fn new(target: Arc<Latency>) -> Self {
        Self {
            target,
            buf: Vec::new(),
        }
    }

    /// Records one sample (nanoseconds).
    pub(crate) fn record(&mut self, ns: u64) {
        self.buf.push(ns);
        if self.buf.len() >= BATCH {
            self.flush();
        }
    }

    /// Moves the buffered samples into the histogram.
    pub(crate) fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut h = self.target.hist.lock();
        for &ns in &self.buf {
            h.saturating_record(ns.clamp(1, MAX_TRACKED_NS));
        }
        drop(h);
        self.buf.clear();
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Percentiles of one class, in microseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    /// Number of samples.
    pub(crate) count: u64,
    /// Median.
    pub(crate) p50_us: f64,
    /// 99th percentile.
    pub(crate) p99_us: f64,
    /// 99.9th percentile.
    pub(crate) p999_us: f64,
    /// Largest sample.
    pub(crate) max_us: f64,
    /// Mean.
    pub(crate) mean_us: f64,
}

impl Summary {
    /// Adds `<key>_p50_us`, `_p99_us`, `_p999_us`, `_max_us` (and the sample count) to a report;
    /// with no samples the percentiles are reported as not measured.
    pub(crate) fn add_to(&self, report: &mut Report, key: &str, label: &str) {
        report.int(
            &format!("{key}_samples"),
            &format!("{label} samples"),
            self.count,
            "",
        );
        let v = |x: f64| (self.count > 0).then_some(x);
        let rows = [
            ("p50", self.p50_us),
            ("p99", self.p99_us),
            ("p999", self.p999_us),
            ("max", self.max_us),
            ("mean", self.mean_us),
        ];
        for (name, value) in rows {
            let shown = if name == "p999" { "p99.9" } else { name };
            report.opt_float(
                &format!("{key}_{name}_us"),
                &format!("{label} {shown}"),
                v(value),
                1,
                "µs",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_reach_the_histogram_and_percentiles_come_out_in_microseconds() {
        let lat = Latency::new();
        {
            let mut b = Batch::new(lat.clone());
            for i in 1..=1000u64 {
                b.record(i * 1_000);
            }
        }
        let s = lat.summary();
        assert_eq!(s.count, 1000);
        assert!((s.p50_us - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_us - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_us - 1000.0).abs() < 1.0, "{s:?}");
    }

    #[test]
    fn absurd_samples_are_clamped_not_lost() {
        let lat = Latency::new();
        lat.record(0);
        lat.record(u64::MAX);
        assert_eq!(lat.summary().count, 2);
    }
}
