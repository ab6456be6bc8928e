//! The wait distribution of answered calls, kept by the engine.
//!
//! Why here and not in the metrics recorder: `/metrics` renders every queue
//! series from one published snapshot (so a scrape never sees a batch half
//! applied, and rendering 1,000 queues stays a few milliseconds). The engine
//! already owns each queue exclusively, so counting a wait into fixed
//! buckets is an array increment on the hot path, with no shared atomics.
//! Cumulative since the daemon started, as a Prometheus histogram is.

/// Upper bounds (`le`) of `acd_queue_wait_seconds`, in seconds: the common
/// SL thresholds (10, 15, 20, 30, 60 s) are bounds, so SL can be computed
/// from the histogram.
pub const WAIT_BUCKETS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 300.0, 600.0,
];
const WAIT_BUCKETS_MS: [i64; 14] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 20_000, 30_000, 45_000, 60_000, 90_000, 120_000, 180_000,
    300_000, 600_000,
];

/// Waits of answered calls in [`WAIT_BUCKETS`] (plus one overflow bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitHistogram {
    /// Calls per bucket, not cumulative; the last one is above 600 s.
    counts: [u64; 15],
    sum_ms: i64,
}

impl WaitHistogram {
    /// Counts one wait. A wait equal to a bound falls in that bucket
    /// (Prometheus' `le`); a negative wait (clock skew) counts as zero.
    pub fn record(&mut self, wait_ms: i64) {
        let w = wait_ms.max(0);
        let i = WAIT_BUCKETS_MS.partition_point(|&b| b < w);
        self.counts[i] += 1;
        self.sum_ms = self.sum_ms.saturating_add(w);
    }

    /// Cumulative counts per bound of [`WAIT_BUCKETS`], then `+Inf`.
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |acc, c| {
            *acc += c;
            Some(*acc)
        })
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_ms as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_inclusive_and_overflow_goes_to_inf() {
        let mut h = WaitHistogram::default();
        for w in [0, 1_000, 1_001, 20_000, 600_000, 600_001, -5] {
            h.record(w);
        }
        let c: Vec<u64> = h.cumulative().collect();
        assert_eq!(c.len(), WAIT_BUCKETS.len() + 1);
        assert_eq!(c[0], 3, "0, 1000 and the negative wait are <= 1 s");
        assert_eq!(c[1], 4, "1001 ms is <= 2 s");
        assert_eq!(c[5], 5, "20 s is <= 20 s");
        assert_eq!(c[13], 6, "600 s is <= 600 s");
        assert_eq!(c[14], 7);
        assert_eq!(h.count(), 7);
        assert!((h.sum_seconds() - 1222.002).abs() < 1e-9);
        for (b, ms) in WAIT_BUCKETS.iter().zip(WAIT_BUCKETS_MS) {
            assert_eq!((*b * 1000.0) as i64, ms);
        }
    }
}
