//! Reading what the code under test emitted, with a recorder local to the test's thread (the
//! crate's unit tests use it to prove their counters move).

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind};

/// What a closure emitted (a snapshot taken once: the recorder resets counters on reading).
pub(crate) struct Recorded(Vec<(CompositeKey, DebugValue)>);

/// Runs `f` with a fresh debugging recorder for this thread; returns `f`'s value and what it
/// emitted.
pub(crate) fn record<T>(f: impl FnOnce() -> T) -> (T, Recorded) {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    let out = ::metrics::with_local_recorder(&recorder, f);
    let values = snap
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    (out, Recorded(values))
}

/// The value of counter `name` summed over its series whose labels include every pair of
/// `labels`.
pub(crate) fn counter(rec: &Recorded, name: &str, labels: &[(&str, &str)]) -> u64 {
    rec.0
        .iter()
        .filter(|(k, _)| matches(k, MetricKind::Counter, name, labels))
        .map(|(_, v)| match v {
            DebugValue::Counter(n) => *n,
            _ => 0,
        })
        .sum()
}

/// The samples of histogram `name` with `labels`.
pub(crate) fn histogram(rec: &Recorded, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
    rec.0
        .iter()
        .filter(|(k, _)| matches(k, MetricKind::Histogram, name, labels))
        .flat_map(|(_, v)| match v {
            DebugValue::Histogram(s) => s.iter().map(|f| f.into_inner()).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn matches(k: &CompositeKey, kind: MetricKind, name: &str, labels: &[(&str, &str)]) -> bool {
    k.kind() == kind
        && k.key().name() == name
        && labels
            .iter()
            .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
}
