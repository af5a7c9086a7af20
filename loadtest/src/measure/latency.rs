//! Latency histograms (HdrHistogram, microseconds, 3 significant digits) and their summary.
//!
//! Each worker thread owns its histograms and hands them back when it ends; the run merges them.
//! Nothing is shared while messages flow.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Largest latency recorded: one hour, in microseconds. Longer values are clamped to it.
pub const LATENCY_MAX_US: u64 = 3_600_000_000;

/// The percentiles a summary and the latency chart show.
pub const PERCENTILES: [f64; 8] = [50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 100.0];

/// A histogram of latencies in microseconds.
#[derive(Debug, Clone)]
pub struct LatencyHistogram(Histogram<u64>);

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram(
            Histogram::new_with_bounds(1, LATENCY_MAX_US, 3)
                .expect("1 µs .. 1 h at 3 significant digits is a valid histogram"),
        )
    }
}

impl LatencyHistogram {
    /// Records one latency given in nanoseconds.
    pub fn record_ns(&mut self, latency_ns: u64) {
        let us = (latency_ns / 1000).clamp(1, LATENCY_MAX_US);
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms have the same bounds, so adding cannot fail; a failure would be a bug.
        self.0
            .add(&other.0)
            .expect("histograms with the same bounds always add");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// `None` when nothing was recorded.
    pub fn summary(&self) -> Option<LatencySummary> {
        if self.0.is_empty() {
            return None;
        }
        let h = &self.0;
        Some(LatencySummary {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            curve: PERCENTILES
                .iter()
                .map(|&p| (p, h.value_at_percentile(p)))
                .collect(),
        })
    }
}

/// A latency distribution as reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    /// (percentile, µs) at each of `PERCENTILES`, for the chart.
    pub curve: Vec<(f64, u64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_distribution() {
        let mut h = LatencyHistogram::default();
        for us in 1..=1000u64 {
            h.record_ns(us * 1000);
        }
        let s = h.summary().unwrap();
        assert_eq!(s.count, 1000);
        assert!((499..=501).contains(&s.p50_us), "p50 {}", s.p50_us);
        assert!((989..=991).contains(&s.p99_us), "p99 {}", s.p99_us);
        assert!((999..=1001).contains(&s.max_us), "max {}", s.max_us);
        assert_eq!(s.curve.len(), PERCENTILES.len());
        assert!(s.curve.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn merge_adds_counts_and_clamps_extremes() {
        let mut a = LatencyHistogram::default();
        let mut b = LatencyHistogram::default();
        a.record_ns(10);
        b.record_ns(u64::MAX);
        a.merge(&b);
        let s = a.summary().unwrap();
        assert_eq!(s.count, 2);
        assert!(s.max_us >= LATENCY_MAX_US * 999 / 1000);
        assert_eq!(LatencyHistogram::default().summary(), None);
    }
}
