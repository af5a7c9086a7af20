//! The counters at a fine resolution: cumulative counts every 10 ms, so a report can show the
//! rate of a flood that lasts a tenth of a second (the per-second series cannot).
//!
//! The counts are cumulative, so any two points give the exact number of messages between
//! them, and dropping every other point merges two intervals without losing a message. That
//! keeps the size bounded: when the timeline is full it drops every other point and doubles its
//! period (10 ms, 20 ms, 40 ms …), so a long run keeps `POINTS_MAX` points at most and a short
//! one keeps all of its 10 ms steps.

use serde::{Deserialize, Serialize};

use super::counters::CounterSnapshot;

/// The finest spacing between two points.
pub const PERIOD_START_US: u64 = 10_000;
/// The most points a timeline keeps (about 30 KB of JSON).
pub const POINTS_MAX: usize = 1024;

/// Cumulative counts since the run started, one entry per point in every vector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// The spacing the points aim for; 0 in an empty timeline.
    pub period_us: u64,
    /// When each point was taken, in µs since the run started.
    pub t_us: Vec<u64>,
    pub published: Vec<u64>,
    pub confirmed: Vec<u64>,
    pub accepted: Vec<u64>,
}

/// Which count of a timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    Published,
    Confirmed,
    Accepted,
}

impl Timeline {
    /// Adds a point unless the last one is less than a period old (a quarter period of slack:
    /// the sampler wakes a little late, and a point skipped for that would double the step).
    /// `force` adds it anyway (the run's last point).
    pub fn record(&mut self, t_us: u64, snapshot: &CounterSnapshot, force: bool) {
        if self.period_us == 0 {
            self.period_us = PERIOD_START_US;
        }
        if let Some(&last) = self.t_us.last() {
            let due = t_us + self.period_us / 4 >= last + self.period_us;
            if t_us <= last || !(due || force) {
                return;
            }
        }
        self.t_us.push(t_us);
        self.published.push(snapshot.published);
        self.confirmed.push(snapshot.confirmed);
        self.accepted.push(snapshot.accepted);
        if self.t_us.len() > POINTS_MAX {
            self.halve();
        }
    }

    /// Keeps every other point (the first and the last always) and doubles the period.
    fn halve(&mut self) {
        let last = self.t_us.len() - 1;
        let keep = |i: usize| i.is_multiple_of(2) || i == last;
        for values in [
            &mut self.t_us,
            &mut self.published,
            &mut self.confirmed,
            &mut self.accepted,
        ] {
            let mut index = 0;
            values.retain(|_| {
                let kept = keep(index);
                index += 1;
                kept
            });
        }
        self.period_us *= 2;
    }

    pub fn is_empty(&self) -> bool {
        self.t_us.is_empty()
    }

    pub fn values(&self, count: Count) -> &[u64] {
        match count {
            Count::Published => &self.published,
            Count::Confirmed => &self.confirmed,
            Count::Accepted => &self.accepted,
        }
    }

    /// The cumulative `count` at `t_s`, interpolated linearly between the points around it
    /// (the first count before the first point, the last after the last).
    pub fn count_at(&self, count: Count, t_s: f64) -> f64 {
        let values = self.values(count);
        let t_us = t_s * 1e6;
        let after = self.t_us.partition_point(|&t| (t as f64) < t_us);
        match (after.checked_sub(1), self.t_us.get(after)) {
            (None, _) => values.first().map_or(0.0, |&v| v as f64),
            (Some(before), None) => values.get(before).map_or(0.0, |&v| v as f64),
            (Some(before), Some(&t1)) => {
                let (t0, v0, v1) = (self.t_us[before], values[before], values[after]);
                let span = (t1 - t0).max(1) as f64;
                v0 as f64 + (v1 as f64 - v0 as f64) * ((t_us - t0 as f64) / span).clamp(0.0, 1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(n: u64) -> CounterSnapshot {
        CounterSnapshot {
            published: n,
            confirmed: n / 2,
            accepted: n / 4,
            ..Default::default()
        }
    }

    #[test]
    fn points_keep_their_period_and_the_size_stays_bounded() {
        let mut timeline = Timeline::default();
        timeline.record(0, &snapshot(0), false);
        timeline.record(4_000, &snapshot(1), false);
        assert_eq!(timeline.t_us, [0], "too early for a point");
        timeline.record(8_000, &snapshot(2), false);
        assert_eq!(timeline.t_us, [0, 8_000], "a little early is on time");
        timeline.record(9_000, &snapshot(3), true);
        assert_eq!(timeline.t_us.len(), 3, "the last point is always kept");
        let mut timeline = Timeline::default();
        for i in 0..10_000u64 {
            // The sampler forces the run's last point.
            timeline.record(i * PERIOD_START_US, &snapshot(i * 100), i == 9_999);
        }
        assert!(timeline.t_us.len() <= POINTS_MAX);
        assert!(timeline.t_us.len() > POINTS_MAX / 2);
        assert_eq!(timeline.period_us, 16 * PERIOD_START_US);
        assert_eq!(
            timeline.published.last(),
            Some(&999_900),
            "the last count survives"
        );
        assert_eq!(timeline.t_us.len(), timeline.accepted.len());
    }

    #[test]
    fn counts_between_points_are_interpolated() {
        let mut timeline = Timeline::default();
        timeline.record(0, &snapshot(0), false);
        timeline.record(10_000, &snapshot(1000), false);
        assert_eq!(timeline.count_at(Count::Published, 0.005), 500.0);
        assert_eq!(timeline.count_at(Count::Confirmed, 1.0), 500.0);
        assert_eq!(timeline.count_at(Count::Accepted, -1.0), 0.0);
        assert_eq!(Timeline::default().count_at(Count::Published, 1.0), 0.0);
    }
}
