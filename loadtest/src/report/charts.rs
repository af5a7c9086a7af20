//! The charts of a report page, for one run or several side by side. With one run a chart may
//! show several series (published, confirmed, accepted); with several, each chart shows one
//! quantity with a line per run. A chart with nothing to draw is `None`, and the page leaves
//! it out.

use crate::measure::latency::{LatencySummary, PERCENTILES};
use crate::measure::timeline::Count;

use super::axis::{format_value, Scale, Unit};
use super::chart::{Chart, Lane, Line, XAxis};
use super::model::{MetadataChange, Report};
use super::palette;
use super::rates::{common_width_s, rate_line};
use super::svg::Stroke;

/// Runs on a page: each with the name the page gives it.
pub type Runs<'a> = [(String, &'a Report)];

/// The lane of a single run: neutral, its lines take the colours.
const SINGLE_LANE: Stroke = Stroke {
    color: "#555555",
    width: 1.0,
    dash: "",
};

/// Each run's phases, as lanes above the plot.
fn lanes(runs: &Runs<'_>) -> Vec<Lane> {
    runs.iter()
        .enumerate()
        .filter(|(_, (_, r))| !r.phases.is_empty())
        .map(|(i, (name, r))| Lane {
            name: if runs.len() > 1 {
                name.clone()
            } else {
                String::new()
            },
            stroke: if runs.len() > 1 {
                palette::stroke(i)
            } else {
                SINGLE_LANE
            },
            phases: r
                .phases
                .iter()
                .map(|p| (p.name.clone(), p.start_s, p.end_s))
                .collect(),
        })
        .collect()
}

fn time_chart(runs: &Runs<'_>, y_title: String, y_unit: Unit, lines: Vec<Line>) -> Option<Chart> {
    lines.iter().any(|l| !l.points.is_empty()).then(|| Chart {
        y_title,
        x_title: "run time".into(),
        x: XAxis::Time,
        y_unit,
        y_scale: Scale::Linear,
        lines,
        lanes: lanes(runs),
    })
}

/// One line per run, named after it.
fn per_run(runs: &Runs<'_>, points: impl Fn(&Report) -> Vec<(f64, f64)>) -> Vec<Line> {
    runs.iter()
        .enumerate()
        .map(|(i, (name, r))| Line {
            name: name.clone(),
            stroke: palette::stroke(i),
            points: points(r),
        })
        .collect()
}

/// Ready messages: every poll when the report has them (older reports: one per sample).
pub fn depth(runs: &Runs<'_>) -> Option<Chart> {
    let mut lines = per_run(runs, |r| {
        if r.series.queue_depth_polls.is_empty() {
            let samples = r.series.t_s.iter().zip(&r.series.queue_depth);
            samples
                .filter_map(|(t, d)| d.map(|d| (*t, d as f64)))
                .collect()
        } else {
            let polls = r.series.queue_depth_polls.iter();
            polls.map(|&(t, d)| (t, d as f64)).collect()
        }
    });
    if let [line] = lines.as_mut_slice() {
        line.name = "queue depth".into();
    }
    time_chart(runs, "ready messages".into(), Unit::Count, lines)
}

/// One run's published, confirmed and accepted rates.
pub fn rates(runs: &Runs<'_>) -> Option<Chart> {
    let width = common_width_s(runs.iter().map(|(_, r)| *r));
    let [(_, report)] = runs else {
        return None;
    };
    let series = [
        ("published", Count::Published),
        ("confirmed", Count::Confirmed),
        ("accepted by consumers", Count::Accepted),
    ];
    let lines = series
        .iter()
        .enumerate()
        .map(|(i, &(name, count))| Line {
            name: name.into(),
            stroke: palette::stroke(i),
            points: rate_line(report, count, width),
        })
        .collect();
    time_chart(
        runs,
        rate_title("messages per second", report, width),
        Unit::Rate,
        lines,
    )
}

/// One rate of every run, a line each.
pub fn rate(runs: &Runs<'_>, count: Count) -> Option<Chart> {
    let width = common_width_s(runs.iter().map(|(_, r)| *r));
    let lines = per_run(runs, |r| rate_line(r, count, width));
    let what = match count {
        Count::Published => "published per second",
        Count::Confirmed => "confirmed per second",
        Count::Accepted => "accepted by consumers per second",
    };
    // Runs without confirms (or consumers) have nothing to show here.
    let moved = lines.iter().flat_map(|l| &l.points).any(|p| p.1 > 0.0);
    let report = runs.first().filter(|_| moved)?.1;
    time_chart(runs, rate_title(what, report, width), Unit::Rate, lines)
}

/// "… (buckets of 50 ms)", or "(per-second samples)" for reports without a timeline.
fn rate_title(what: &str, report: &Report, width_s: f64) -> String {
    if report.series.timeline.is_empty() {
        format!("{what} (per-second samples)")
    } else {
        format!(
            "{what} (buckets of {})",
            format_value(width_s, Unit::Seconds)
        )
    }
}

/// Latency percentile curves, one line per (name, summary), on a log scale.
pub fn latency(curves: Vec<(String, Option<&LatencySummary>)>) -> Option<Chart> {
    let lines: Vec<Line> = curves
        .into_iter()
        .enumerate()
        .map(|(i, (name, summary))| Line {
            name,
            stroke: palette::stroke(i),
            points: summary.map_or_else(Vec::new, |s| {
                let points = s.curve.iter().enumerate();
                points
                    .map(|(i, (_, us))| (i as f64, (*us).max(1) as f64))
                    .collect()
            }),
        })
        .collect();
    let names = PERCENTILES
        .iter()
        .map(|&p| {
            if p >= 100.0 {
                "max".into()
            } else {
                format!("p{p}")
            }
        })
        .collect();
    lines.iter().any(|l| !l.points.is_empty()).then(|| Chart {
        y_title: "latency (log scale)".into(),
        x_title: "percentile".into(),
        x: XAxis::Categories(names),
        y_unit: Unit::Micros,
        y_scale: Scale::Log,
        lines,
        lanes: Vec::new(),
    })
}

/// One run's hareperf and broker CPU.
pub fn cpu(runs: &Runs<'_>) -> Option<Chart> {
    let [(_, report)] = runs else {
        return None;
    };
    let s = &report.series;
    let client = s
        .t_s
        .iter()
        .copied()
        .zip(s.client_cpu_percent.iter().copied());
    let broker = s.t_s.iter().zip(&s.broker_cpu_percent);
    let lines = vec![
        Line {
            name: "broker (--broker-pid)".into(),
            stroke: palette::stroke(0),
            points: broker.filter_map(|(t, c)| c.map(|c| (*t, c))).collect(),
        },
        Line {
            name: "hareperf".into(),
            stroke: palette::stroke(1),
            points: client.collect(),
        },
    ];
    time_chart(
        runs,
        "CPU, % of one core (per-second samples)".into(),
        Unit::Percent,
        lines,
    )
}

/// Every run's broker CPU.
pub fn broker_cpu(runs: &Runs<'_>) -> Option<Chart> {
    let lines = per_run(runs, |r| {
        let samples = r.series.t_s.iter().zip(&r.series.broker_cpu_percent);
        samples.filter_map(|(t, c)| c.map(|c| (*t, c))).collect()
    });
    let title = "broker CPU, % of one core (per-second samples)".into();
    time_chart(runs, title, Unit::Percent, lines)
}

/// Every run's broker RSS.
pub fn broker_rss(runs: &Runs<'_>) -> Option<Chart> {
    let mut lines = per_run(runs, |r| {
        let samples = r.series.t_s.iter().zip(&r.series.broker_rss_kib);
        samples
            .filter_map(|(t, k)| k.map(|k| (*t, k as f64)))
            .collect()
    });
    if let [line] = lines.as_mut_slice() {
        line.name = "broker RSS (--broker-pid)".into();
    }
    time_chart(
        runs,
        "broker RSS (per-second samples)".into(),
        Unit::Kib,
        lines,
    )
}

/// The declare run's curves: each window's rate against the changes answered by its end, so a
/// rate that falls as the metadata grows shows as a falling line.
pub fn declare(report: &Report) -> Option<Chart> {
    let declare = report.results.declare.as_ref()?;
    let lines = MetadataChange::ALL
        .iter()
        .enumerate()
        .filter_map(|(i, &change)| {
            let windows = &declare.curve(change)?.rates.windows;
            Some(Line {
                name: change.method_name().into(),
                stroke: palette::stroke(i),
                points: windows
                    .iter()
                    .map(|w| (w.count_cumulative as f64, w.rate_per_s))
                    .collect(),
            })
        })
        .collect();
    Some(Chart {
        y_title: "changes per second, per window".into(),
        x_title: "changes answered".into(),
        x: XAxis::Count,
        y_unit: Unit::PerSecond("changes"),
        y_scale: Scale::Linear,
        lines,
        lanes: Vec::new(),
    })
}
