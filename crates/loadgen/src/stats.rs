//! Latency summaries: nearest-rank percentiles over microsecond samples.

use std::fmt;

/// Summary of a set of latency samples, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Number of samples.
    pub count: usize,
    /// Median (nearest rank).
    pub p50: u64,
    /// 90th percentile (nearest rank).
    pub p90: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
    /// Arithmetic mean, rounded down.
    pub mean: u64,
}

impl Summary {
    /// Summarises `samples` (sorted in place). All fields are 0 when empty.
    pub fn from_samples(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        Self {
            count: samples.len(),
            p50: percentile_sorted(samples, 50.0),
            p90: percentile_sorted(samples, 90.0),
            p99: percentile_sorted(samples, 99.0),
            max: *samples.last().expect("non-empty"),
            mean: (sum / samples.len() as u128) as u64,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.count == 0 {
            return write!(f, "n/a (no samples)");
        }
        write!(
            f,
            "p50 {} / p90 {} / p99 {} / max {} ms (mean {} ms, n={})",
            ms(self.p50),
            ms(self.p90),
            ms(self.p99),
            ms(self.max),
            ms(self.mean),
            self.count
        )
    }
}

/// Nearest-rank percentile of ascending `sorted`: the smallest sample such
/// that at least `p` percent of the samples are at or below it. `p` is
/// clamped to (0, 100]; an empty slice gives 0.
pub fn percentile_sorted(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(0.0, 100.0)
    };
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds as milliseconds with three decimals.
pub fn ms(us: u64) -> String {
    format!("{}.{:03}", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_sorted(&v, 50.0), 50);
        assert_eq!(percentile_sorted(&v, 99.0), 99);
        assert_eq!(percentile_sorted(&v, 100.0), 100);
        assert_eq!(percentile_sorted(&v, 0.0), 1);
        assert_eq!(percentile_sorted(&v, 0.5), 1);
        assert_eq!(percentile_sorted(&v, 99.5), 100);
        assert_eq!(percentile_sorted(&[7], 99.0), 7);
        assert_eq!(percentile_sorted(&[], 50.0), 0);
        assert_eq!(percentile_sorted(&[1, 2, 3], f64::NAN), 3);
    }

    #[test]
    fn small_sets() {
        // 10 samples: p99 is the 10th, p50 the 5th.
        let v = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000];
        assert_eq!(percentile_sorted(&v, 50.0), 50);
        assert_eq!(percentile_sorted(&v, 90.0), 90);
        assert_eq!(percentile_sorted(&v, 99.0), 1000);
    }

    #[test]
    fn summary_sorts_and_summarises() {
        let mut v = vec![5, 1, 4, 2, 3];
        let s = Summary::from_samples(&mut v);
        assert_eq!(v, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            s,
            Summary {
                count: 5,
                p50: 3,
                p90: 5,
                p99: 5,
                max: 5,
                mean: 3
            }
        );
        assert_eq!(Summary::from_samples(&mut []), Summary::default());
    }

    #[test]
    fn formatting() {
        assert_eq!(ms(1_234), "1.234");
        assert_eq!(ms(7), "0.007");
        let s = Summary {
            count: 2,
            p50: 400,
            p90: 1400,
            p99: 1400,
            max: 1400,
            mean: 900,
        };
        assert_eq!(
            s.to_string(),
            "p50 0.400 / p90 1.400 / p99 1.400 / max 1.400 ms (mean 0.900 ms, n=2)"
        );
        assert_eq!(Summary::default().to_string(), "n/a (no samples)");
    }
}
