//! The summary of a set of measured times: min, percentiles (nearest rank), max, mean. Pure.

/// Summary of one signal's purge times, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Distribution {
    /// Number of values.
    pub(crate) n: usize,
    /// Smallest.
    pub(crate) min: f64,
    /// Median (nearest rank).
    pub(crate) p50: f64,
    /// 90th percentile (nearest rank).
    pub(crate) p90: f64,
    /// 99th percentile (nearest rank; with fewer than 100 values it is the max).
    pub(crate) p99: f64,
    /// Largest.
    pub(crate) max: f64,
    /// Arithmetic mean.
    pub(crate) mean: f64,
}

impl Distribution {
    /// The summary of `values` (any order); `None` when empty or when a value is not finite.
    pub(crate) fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        // Nearest rank: the smallest value with at least p% of the values at or below it.
        let rank = |p: f64| {
            let r = (p / 100.0 * n as f64).ceil() as usize;
            v[r.clamp(1, n) - 1]
        };
        Some(Self {
            n,
            min: v[0],
            p50: rank(50.0),
            p90: rank(90.0),
            p99: rank(99.0),
            max: v[n - 1],
            mean: v.iter().sum::<f64>() / n as f64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles_of_one_to_twenty() {
        let v: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let d = Distribution::of(&v).unwrap_or_else(|| unreachable!());
        assert_eq!((d.n, d.min, d.max), (20, 1.0, 20.0));
        assert_eq!((d.p50, d.p90, d.p99), (10.0, 18.0, 20.0));
        assert!((d.mean - 10.5).abs() < 1e-9);
    }

    #[test]
    fn one_value_is_every_percentile() {
        let d = Distribution::of(&[7.5]).unwrap_or_else(|| unreachable!());
        assert_eq!(
            (d.min, d.p50, d.p99, d.max, d.mean),
            (7.5, 7.5, 7.5, 7.5, 7.5)
        );
    }

    #[test]
    fn empty_or_not_finite_has_no_summary() {
        assert_eq!(Distribution::of(&[]), None);
        assert_eq!(Distribution::of(&[1.0, f64::NAN]), None);
    }
}
