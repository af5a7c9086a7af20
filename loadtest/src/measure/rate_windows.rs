//! Rates over consecutive windows of answers: the curve that shows whether an operation gets
//! slower as the state it changes grows.
//!
//! The input is the instant of every answer (ns since the run's epoch) and the instant the
//! first request went out. Window k holds answers k·w … (k+1)·w − 1 in the order they
//! arrived; it starts when the window before it ended (its last answer), or with the first
//! request, and ends with its own last answer. The windows tile the whole stretch, so their
//! durations add up to the curve's.
//!
//! ```text
//!   start        answers 0..w-1        answers w..2w-1      answers 2w..n-1 (last, may be short)
//!     |----- window 0 ---------|------- window 1 --------|------ window 2 ------|
//!                          instant[w-1]             instant[2w-1]           instant[n-1]
//! ```

use serde::{Deserialize, Serialize};

/// The shortest duration a window is divided by, so that a rate is always finite (JSON has
/// no infinity): answers in the same nanosecond count as one nanosecond apart.
const DURATION_MIN_S: f64 = 1e-9;

/// One window of a curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RateWindow {
    /// 0-based position of the window in the curve.
    pub index: u64,
    /// Answers in the window: the curve's `per_window`, fewer in a short last window.
    pub count: u64,
    /// Answers in this window and all before it.
    pub count_cumulative: u64,
    /// When the window's last answer arrived, in seconds since the run started.
    pub end_s: f64,
    pub duration_s: f64,
    /// `count / duration_s`.
    pub rate_per_s: f64,
}

/// A whole curve and the figures a reader looks at first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RateCurve {
    /// When the first request went out, in seconds since the run started.
    pub start_s: f64,
    /// When the last answer arrived (`start_s` if none did).
    pub end_s: f64,
    /// Answers over the whole curve.
    pub count: u64,
    /// `count / (end_s - start_s)`; 0 without answers.
    pub rate_per_s: f64,
    /// Answers per window (the last window may have fewer).
    pub per_window: u64,
    pub windows: Vec<RateWindow>,
    pub first_window_rate_per_s: Option<f64>,
    pub last_window_rate_per_s: Option<f64>,
    /// `last_window_rate_per_s / first_window_rate_per_s`: 1 when an answer costs the same
    /// however far the curve got, well under 1 when each costs more than the one before.
    pub last_to_first_ratio: Option<f64>,
}

impl RateCurve {
    /// The curve of `instants_ns` (answers, in any order: they are sorted here) after the
    /// first request at `start_ns`, in windows of `per_window` answers.
    pub fn from_instants(start_ns: u64, instants_ns: &mut [u64], per_window: u64) -> RateCurve {
        assert!(per_window > 0, "a window holds at least one answer");
        instants_ns.sort_unstable();
        let seconds = |ns: u64| ns as f64 / 1e9;
        let start_s = seconds(start_ns);
        let window_length = usize::try_from(per_window).unwrap_or(usize::MAX);
        let mut windows = Vec::with_capacity(instants_ns.len().div_ceil(window_length));
        let mut window_start_s = start_s;
        let mut count_cumulative = 0u64;
        for (index, chunk) in instants_ns.chunks(window_length).enumerate() {
            let last_ns = *chunk.last().expect("chunks are never empty");
            assert!(
                last_ns >= start_ns,
                "an answer never comes before its request"
            );
            let end_s = seconds(last_ns);
            let count = chunk.len() as u64;
            count_cumulative += count;
            let duration_s = end_s - window_start_s;
            windows.push(RateWindow {
                index: index as u64,
                count,
                count_cumulative,
                end_s,
                duration_s,
                rate_per_s: count as f64 / duration_s.max(DURATION_MIN_S),
            });
            window_start_s = end_s;
        }
        let end_s = windows.last().map_or(start_s, |w| w.end_s);
        let count = instants_ns.len() as u64;
        let first_window_rate_per_s = windows.first().map(|w| w.rate_per_s);
        let last_window_rate_per_s = windows.last().map(|w| w.rate_per_s);
        RateCurve {
            start_s,
            end_s,
            count,
            rate_per_s: if count == 0 {
                0.0
            } else {
                count as f64 / (end_s - start_s).max(DURATION_MIN_S)
            },
            per_window,
            windows,
            first_window_rate_per_s,
            last_window_rate_per_s,
            last_to_first_ratio: first_window_rate_per_s
                .zip(last_window_rate_per_s)
                .map(|(first, last)| last / first),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn windows_tile_the_curve_and_the_last_one_may_be_short() {
        // Ten answers 1 ms apart, then five answers 4 ms apart, shuffled.
        let mut instants: Vec<u64> = (1..=10).map(|i| 1000 * MS + i * MS).collect();
        instants.extend((1..=5).map(|i| 1010 * MS + i * 4 * MS));
        instants.reverse();
        let curve = RateCurve::from_instants(1000 * MS, &mut instants, 4);
        let counts: Vec<u64> = curve.windows.iter().map(|w| w.count).collect();
        assert_eq!(counts, [4, 4, 4, 3]);
        let cumulative: Vec<u64> = curve.windows.iter().map(|w| w.count_cumulative).collect();
        assert_eq!(cumulative, [4, 8, 12, 15]);
        let indexes: Vec<u64> = curve.windows.iter().map(|w| w.index).collect();
        assert_eq!(indexes, [0, 1, 2, 3]);
        assert_eq!(curve.count, 15);
        assert!((curve.start_s - 1.0).abs() < 1e-12);
        assert!((curve.end_s - 1.030).abs() < 1e-12);
        let total: f64 = curve.windows.iter().map(|w| w.duration_s).sum();
        assert!((total - 0.030).abs() < 1e-12, "the windows tile the curve");
        // Window 0: 4 answers in 4 ms; window 2: answers 9, 10 (1 ms each) and 11, 12 (4 ms).
        assert!((curve.windows[0].rate_per_s - 1000.0).abs() < 1e-6);
        assert!((curve.windows[2].duration_s - 0.010).abs() < 1e-12);
        assert!((curve.windows[2].rate_per_s - 400.0).abs() < 1e-6);
        assert!((curve.windows[3].rate_per_s - 250.0).abs() < 1e-6);
        assert_eq!(
            curve.first_window_rate_per_s,
            Some(curve.windows[0].rate_per_s)
        );
        assert_eq!(
            curve.last_window_rate_per_s,
            Some(curve.windows[3].rate_per_s)
        );
        let ratio = curve.last_to_first_ratio.expect("two windows or more");
        assert!((ratio - 0.25).abs() < 1e-9, "{ratio}");
        assert!((curve.rate_per_s - 500.0).abs() < 1e-6);
    }

    #[test]
    fn no_answers_is_an_empty_curve_without_rates() {
        let curve = RateCurve::from_instants(5 * MS, &mut [], 100);
        assert!(curve.windows.is_empty());
        assert_eq!(curve.count, 0);
        assert_eq!(curve.rate_per_s, 0.0);
        assert_eq!(curve.end_s, curve.start_s);
        assert_eq!(curve.first_window_rate_per_s, None);
        assert_eq!(curve.last_to_first_ratio, None);
    }

    #[test]
    fn answers_in_the_same_nanosecond_still_give_a_finite_rate() {
        let curve = RateCurve::from_instants(7, &mut [7, 7, 7], 3);
        assert_eq!(curve.windows.len(), 1);
        assert!(curve.windows[0].rate_per_s.is_finite());
        assert!(curve.rate_per_s.is_finite());
        assert_eq!(curve.last_to_first_ratio, Some(1.0));
    }
}
