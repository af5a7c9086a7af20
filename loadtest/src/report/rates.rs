//! Rates in buckets as wide as the run allows: 10 ms for a flood of a tenth of a second, up to
//! a minute for long runs, about a hundred buckets either way. They come from the report's
//! fine timeline; reports written before it existed fall back to their per-second samples.

use crate::measure::timeline::{Count, Timeline};

use super::model::Report;

/// The bucket widths a chart may use, in seconds.
const WIDTHS_S: [f64; 13] = [
    0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0,
];
/// At most about this many buckets over a run: 3 px each on a chart, fine enough that a
/// flood of a twentieth of the run shows at its own rate.
const BUCKETS_TARGET: f64 = 250.0;

/// The narrowest width of `WIDTHS_S` giving at most about `BUCKETS_TARGET` buckets over
/// `duration_s`, and no finer than the timeline's `resolution_s`.
pub fn bucket_width_s(duration_s: f64, resolution_s: f64) -> f64 {
    let least = (duration_s / BUCKETS_TARGET).max(resolution_s);
    WIDTHS_S
        .iter()
        .copied()
        .find(|&w| w >= least * (1.0 - 1e-9))
        .unwrap_or(60.0)
}

/// The bucket width for charts of `reports` side by side: one width for all, fitting the
/// longest run and the coarsest timeline.
pub fn common_width_s<'a>(reports: impl IntoIterator<Item = &'a Report>) -> f64 {
    let (duration, resolution) = reports.into_iter().fold((0.0, 0.0), |(d, r), report| {
        let timeline = &report.series.timeline;
        let resolution = if timeline.is_empty() {
            1.0
        } else {
            timeline.period_us as f64 / 1e6
        };
        (
            f64::max(d, report.results.duration_s),
            f64::max(r, resolution),
        )
    });
    bucket_width_s(duration, resolution)
}

/// The rate of `count` as a step line (each bucket a flat segment), in buckets of `width_s`.
pub fn rate_line(report: &Report, count: Count, width_s: f64) -> Vec<(f64, f64)> {
    let timeline = &report.series.timeline;
    if timeline.is_empty() {
        return per_second(report, count);
    }
    steps(timeline, count, width_s)
}

fn steps(timeline: &Timeline, count: Count, width_s: f64) -> Vec<(f64, f64)> {
    let end_s = timeline.t_us.last().map_or(0.0, |&t| t as f64 / 1e6);
    let mut points = Vec::new();
    for k in 0.. {
        let start = k as f64 * width_s;
        let end = (start + width_s).min(end_s);
        // A sliver at the end would show a rate from a handful of messages.
        if start >= end_s || (end - start < width_s / 4.0 && k > 0) {
            break;
        }
        let messages = timeline.count_at(count, end) - timeline.count_at(count, start);
        let rate = messages / (end - start);
        points.push((start, rate));
        points.push((end, rate));
    }
    points
}

/// The per-second samples of reports without a timeline.
fn per_second(report: &Report, count: Count) -> Vec<(f64, f64)> {
    let s = &report.series;
    let values = match count {
        Count::Published => &s.published_per_s,
        Count::Confirmed => &s.confirmed_per_s,
        Count::Accepted => &s.accepted_per_s,
    };
    s.t_s.iter().copied().zip(values.iter().copied()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::counters::CounterSnapshot;
    use crate::report::model::sample_report;

    #[test]
    fn widths_fit_the_run() {
        assert_eq!(bucket_width_s(0.5, 0.01), 0.01);
        assert_eq!(bucket_width_s(5.2, 0.01), 0.05);
        assert_eq!(bucket_width_s(30.0, 0.01), 0.2);
        assert_eq!(
            bucket_width_s(5.2, 0.1),
            0.1,
            "never finer than the timeline"
        );
        assert_eq!(bucket_width_s(1e6, 0.01), 60.0);
    }

    #[test]
    fn a_short_flood_shows_at_its_rate() {
        let mut report = sample_report(1.0);
        let timeline = &mut report.series.timeline;
        // 20,000 messages from 0.5 s to 0.63 s, then nothing until 2 s.
        for i in 0..=200u64 {
            let t_us = i * 10_000;
            let published = (t_us.saturating_sub(500_000) * 20_000 / 130_000).min(20_000);
            let snapshot = CounterSnapshot {
                published,
                ..Default::default()
            };
            timeline.record(t_us, &snapshot, false);
        }
        let width = common_width_s([&report]);
        assert_eq!(width, 0.05, "10 s report: 50 ms buckets");
        let line = rate_line(&report, Count::Published, 0.01);
        let in_flood: Vec<f64> = line
            .iter()
            .filter(|(t, _)| (0.51..0.62).contains(t))
            .map(|p| p.1)
            .collect();
        assert!(!in_flood.is_empty());
        assert!(
            in_flood.iter().all(|&r| (r - 153_846.0).abs() < 200.0),
            "{in_flood:?}"
        );
        assert!(line.iter().filter(|(t, _)| *t > 0.7).all(|p| p.1 == 0.0));
        report.series.timeline = Timeline::default();
        let fallback = rate_line(&report, Count::Published, 0.01);
        assert_eq!(fallback, [(1.0, 10.0), (2.0, 20.0), (3.0, 15.0)]);
    }
}
