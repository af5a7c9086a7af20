//! `compare`: a Markdown table of several reports side by side, one column per report and a
//! ratio column (this ÷ first) for each report after the first. With one report it is that
//! run's summary. Declare runs add one table per curve (`curves`): a row per window.

use std::fmt::Write;

use crate::measure::latency::LatencySummary;
use crate::measure::rate_windows::RateCurve;

use super::model::{ChangeCurve, MetadataChange, Report};

/// How a row's number is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Count,
    Rate,
    Micros,
    Percent,
    Seconds,
    Kib,
    Ratio,
}

type Figure = fn(&Report) -> Option<f64>;
type Text = fn(&Report) -> String;

/// The key figures, in table order.
const ROWS: &[(&str, Unit, Figure)] = &[
    ("publish rate (msg/s)", Unit::Rate, |r| {
        Some(r.results.publish_rate_per_s)
    }),
    ("deliver rate (msg/s)", Unit::Rate, |r| {
        Some(r.results.deliver_rate_per_s)
    }),
    ("publish peak (msg/s, 1 s)", Unit::Rate, |r| {
        Some(r.results.publish_rate_peak_per_s)
    }),
    ("deliver peak (msg/s, 1 s)", Unit::Rate, |r| {
        Some(r.results.deliver_rate_peak_per_s)
    }),
    ("flood rate, confirmed (msg/s)", Unit::Rate, |r| {
        r.results.flood_rate_per_s
    }),
    ("drain rate (msg/s)", Unit::Rate, |r| {
        r.results.drain_rate_per_s
    }),
    ("drain rate, held aside (msg/s)", Unit::Rate, |r| {
        r.results.drain_unheld_rate_per_s
    }),
    ("queue.declare rate (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDeclare, overall_rate)
    }),
    ("queue.declare, first window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDeclare, |c| {
            c.first_window_rate_per_s
        })
    }),
    ("queue.declare, last window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDeclare, |c| {
            c.last_window_rate_per_s
        })
    }),
    ("queue.declare, last ÷ first window", Unit::Ratio, |r| {
        change_figure(r, MetadataChange::QueueDeclare, |c| c.last_to_first_ratio)
    }),
    ("queue.bind rate (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueBind, overall_rate)
    }),
    ("queue.bind, first window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueBind, |c| c.first_window_rate_per_s)
    }),
    ("queue.bind, last window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueBind, |c| c.last_window_rate_per_s)
    }),
    ("queue.bind, last ÷ first window", Unit::Ratio, |r| {
        change_figure(r, MetadataChange::QueueBind, |c| c.last_to_first_ratio)
    }),
    ("queue.delete rate (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDelete, overall_rate)
    }),
    ("queue.delete, first window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDelete, |c| {
            c.first_window_rate_per_s
        })
    }),
    ("queue.delete, last window (changes/s)", Unit::Rate, |r| {
        change_figure(r, MetadataChange::QueueDelete, |c| c.last_window_rate_per_s)
    }),
    ("queue.delete, last ÷ first window", Unit::Ratio, |r| {
        change_figure(r, MetadataChange::QueueDelete, |c| c.last_to_first_ratio)
    }),
    (
        "retry: acked rate, first publish → last ack (msg/s)",
        Unit::Rate,
        |r| r.results.retry.as_ref()?.acked_rate_per_s,
    ),
    ("retry: deliveries per message", Unit::Ratio, |r| {
        r.results.retry.as_ref()?.deliveries_per_message
    }),
    ("retry: refused (requeue=false)", Unit::Count, |r| {
        Some(r.results.retry.as_ref()?.refused as f64)
    }),
    (
        "retry: acked after an unplanned number of deliveries",
        Unit::Count,
        |r| Some(r.results.retry.as_ref()?.off_plan as f64),
    ),
    (
        "retry: first publish → final ack p50",
        Unit::Micros,
        |r| {
            r.results.retry.as_ref()?;
            latency(&r.results.deliver_latency, |l| l.p50_us)
        },
    ),
    (
        "retry: first publish → final ack p99",
        Unit::Micros,
        |r| {
            r.results.retry.as_ref()?;
            latency(&r.results.deliver_latency, |l| l.p99_us)
        },
    ),
    ("delayed: lateness p50", Unit::Micros, |r| {
        latency(&r.results.delayed.as_ref()?.lateness, |l| l.p50_us)
    }),
    ("delayed: lateness p99", Unit::Micros, |r| {
        latency(&r.results.delayed.as_ref()?.lateness, |l| l.p99_us)
    }),
    ("delayed: lateness max", Unit::Micros, |r| {
        latency(&r.results.delayed.as_ref()?.lateness, |l| l.max_us)
    }),
    ("delayed: fired more than 1 ms early", Unit::Count, |r| {
        Some(r.results.delayed.as_ref()?.early as f64)
    }),
    ("delayed: broker RSS before publishing", Unit::Kib, |r| {
        r.results
            .delayed
            .as_ref()?
            .broker_rss_before_kib
            .map(|k| k as f64)
    }),
    ("delayed: broker RSS after publishing", Unit::Kib, |r| {
        r.results
            .delayed
            .as_ref()?
            .broker_rss_published_kib
            .map(|k| k as f64)
    }),
    (
        "delayed: broker RSS per delayed message (B)",
        Unit::Count,
        |r| r.results.delayed.as_ref()?.broker_rss_per_message_bytes,
    ),
    ("confirm latency p50", Unit::Micros, |r| {
        latency(&r.results.confirm_latency, |l| l.p50_us)
    }),
    ("confirm latency p99", Unit::Micros, |r| {
        latency(&r.results.confirm_latency, |l| l.p99_us)
    }),
    ("confirm latency p99.9", Unit::Micros, |r| {
        latency(&r.results.confirm_latency, |l| l.p999_us)
    }),
    ("confirm latency max", Unit::Micros, |r| {
        latency(&r.results.confirm_latency, |l| l.max_us)
    }),
    ("deliver latency p50", Unit::Micros, |r| {
        latency(&r.results.deliver_latency, |l| l.p50_us)
    }),
    ("deliver latency p90", Unit::Micros, |r| {
        latency(&r.results.deliver_latency, |l| l.p90_us)
    }),
    ("deliver latency p99", Unit::Micros, |r| {
        latency(&r.results.deliver_latency, |l| l.p99_us)
    }),
    ("deliver latency p99.9", Unit::Micros, |r| {
        latency(&r.results.deliver_latency, |l| l.p999_us)
    }),
    ("deliver latency max", Unit::Micros, |r| {
        latency(&r.results.deliver_latency, |l| l.max_us)
    }),
    ("connect latency p50", Unit::Micros, |r| {
        latency(&r.results.connect_latency, |l| l.p50_us)
    }),
    ("connect latency p99", Unit::Micros, |r| {
        latency(&r.results.connect_latency, |l| l.p99_us)
    }),
    ("connections opened", Unit::Count, |r| {
        Some(r.results.connections_opened as f64)
    }),
    ("published", Unit::Count, |r| {
        Some(r.results.published as f64)
    }),
    ("confirmed", Unit::Count, |r| {
        Some(r.results.confirmed as f64)
    }),
    ("nacked", Unit::Count, |r| Some(r.results.nacked as f64)),
    ("accepted by consumers", Unit::Count, |r| {
        Some(r.results.accepted as f64)
    }),
    ("lost", Unit::Count, |r| {
        Some(r.results.verification.lost as f64)
    }),
    ("duplicates", Unit::Count, |r| {
        Some(r.results.verification.duplicates as f64)
    }),
    ("redelivered deliveries", Unit::Count, |r| {
        Some(r.results.redelivered_deliveries as f64)
    }),
    // Retry runs refuse with requeue=false; their own row counts those.
    ("refused by consumers (requeue)", Unit::Count, |r| {
        r.results
            .retry
            .is_none()
            .then_some(r.results.refused as f64)
    }),
    ("held by dropped consumers", Unit::Count, |r| {
        Some(r.results.verification.dropped_held as f64)
    }),
    ("… came back redelivered", Unit::Count, |r| {
        Some(r.results.verification.dropped_returned_redelivered as f64)
    }),
    ("queue depth max", Unit::Count, |r| {
        r.results.queue_depth_max.map(|d| d as f64)
    }),
    ("queue depth at the end", Unit::Count, |r| {
        r.results.queue_depth_end.map(|d| d as f64)
    }),
    ("left queued (no consumers)", Unit::Count, |r| {
        r.results.verification.left_queued.map(|d| d as f64)
    }),
    ("duration (s)", Unit::Seconds, |r| {
        Some(r.results.duration_s)
    }),
    ("hareperf CPU (% of a core)", Unit::Percent, |r| {
        Some(r.results.client_cpu_percent)
    }),
    (
        "hareperf CPU µs per message in or out",
        Unit::Micros,
        |r| per_message(r.results.client_cpu_s, r),
    ),
    ("broker CPU (% of a core)", Unit::Percent, |r| {
        r.results.broker_cpu_percent
    }),
    ("broker CPU µs per message in or out", Unit::Micros, |r| {
        r.results.broker_cpu_s.and_then(|s| per_message(s, r))
    }),
    ("broker CPU µs per published message", Unit::Micros, |r| {
        r.results.broker_cpu_us_per_message
    }),
    ("broker context switches per message", Unit::Ratio, |r| {
        r.results.broker_context_switches_per_message
    }),
    ("broker syscalls per message (perf)", Unit::Ratio, |r| {
        r.results.broker_syscalls_per_message
    }),
    (
        "broker io_uring_enter per message (perf)",
        Unit::Ratio,
        |r| r.results.broker_io_uring_enter_per_message,
    ),
    ("broker RSS max", Unit::Kib, |r| {
        r.results.broker_rss_max_kib.map(|k| k as f64)
    }),
    ("broker RSS at the start", Unit::Kib, |r| {
        r.results.broker_rss_start_kib.map(|k| k as f64)
    }),
    ("broker RSS after the flood", Unit::Kib, |r| {
        r.results.broker_rss_flood_end_kib.map(|k| k as f64)
    }),
    ("broker RSS at the end", Unit::Kib, |r| {
        r.results.broker_rss_end_kib.map(|k| k as f64)
    }),
];

/// The Markdown table for `reports`, each with the name of its column.
pub fn table(reports: &[(String, Report)]) -> String {
    let columns: Vec<(String, Vec<&Report>)> = reports
        .iter()
        .map(|(name, report)| (name.clone(), vec![report]))
        .collect();
    median_table(&columns)
}

/// The Markdown table of several runs per column: each figure is the median over the column's
/// runs, except loss and duplicates, which are the worst run's (one lost message in any run
/// matters). The text rows (broker, parameters) are the first run's.
pub fn median_table(reports: &[(String, Vec<&Report>)]) -> String {
    let mut out = String::new();
    let mut header = vec!["".to_string()];
    header.extend(reports.iter().map(|(name, runs)| match runs.len() {
        0 | 1 => format!("**{name}**"),
        n => format!("**{name}** (median of {n})"),
    }));
    let first_name = reports.first().map(|(n, _)| n.clone()).unwrap_or_default();
    header.extend(
        reports
            .iter()
            .skip(1)
            .map(|(name, _)| format!("{name} ÷ {first_name}")),
    );
    push_row(&mut out, &header);
    push_row(&mut out, &vec!["---".to_string(); header.len()]);
    let text_rows: [(&str, Text); 5] = [
        ("broker", |r| r.broker.label.clone()),
        ("scenario", |r| r.scenario.clone()),
        ("producers × consumers", |r| match &r.results.declare {
            Some(declare) => format!(
                "none ({} declaring connection{})",
                declare.connection_count,
                if declare.connection_count == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            None => format!(
                "{} × {}",
                producer_count(r),
                r.consumers.len().max(r.parameters.consumers)
            ),
        }),
        ("message size (B)", |r| r.parameters.size.to_string()),
        ("persistent / confirm window", |r| {
            format!(
                "{} / {}",
                if r.parameters.persistent { "yes" } else { "no" },
                r.parameters
                    .confirm
                    .map_or_else(|| "off".to_string(), |c| c.to_string())
            )
        }),
    ];
    for (label, text) in text_rows {
        let mut row = vec![label.to_string()];
        row.extend(
            reports
                .iter()
                .map(|(_, runs)| runs.first().map_or_else(String::new, |r| text(r))),
        );
        row.extend(std::iter::repeat_n(
            String::new(),
            reports.len().saturating_sub(1),
        ));
        push_row(&mut out, &row);
    }
    // Runs that only changed metadata have no messages to count.
    let metadata_only = reports
        .iter()
        .flat_map(|(_, runs)| runs)
        .all(|r| r.results.declare.is_some());
    for &(label, unit, figure) in ROWS {
        let worst = label == "lost" || label == "duplicates";
        let values: Vec<Option<f64>> = reports
            .iter()
            .map(|(_, runs)| {
                let values = runs.iter().filter_map(|r| figure(r));
                if worst {
                    values.reduce(f64::max)
                } else {
                    median(values.collect())
                }
            })
            .collect();
        if values.iter().all(|v| v.is_none_or(|v| v == 0.0))
            && (is_optional(label) || metadata_only)
        {
            continue;
        }
        if values.iter().all(Option::is_none) {
            continue;
        }
        let mut row = vec![label.to_string()];
        row.extend(
            values
                .iter()
                .map(|v| v.map_or("–".to_string(), |v| format_value(v, unit))),
        );
        let first = values.first().copied().flatten();
        row.extend(values.iter().skip(1).map(|v| ratio(first, *v)));
        push_row(&mut out, &row);
    }
    out
}

/// The middle value (the mean of the two middle ones for an even count); `None` if empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => values.get(n / 2).copied(),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The declare runs' curves: for each kind of change some report made, a heading and a table
/// with a row per window, a rate column per report and a ratio column (÷ the first) for each
/// report after the first. Empty when no report has a curve.
pub fn curves(reports: &[(String, Report)]) -> String {
    let mut out = String::new();
    for change in MetadataChange::ALL {
        if let Some(table) = curve_table(reports, change) {
            let _ = writeln!(
                out,
                "\n**{}** per window (changes/s)\n",
                change.method_name()
            );
            out.push_str(&table);
        }
    }
    out
}

/// The retry and delayed runs' distributions: messages per number of deliveries, and the
/// lateness percentiles, one column per report. Empty when no report has them.
pub fn details(reports: &[(String, Report)]) -> String {
    let mut out = String::new();
    let histograms: Vec<Option<&Vec<(u64, u64)>>> = reports
        .iter()
        .map(|(_, r)| r.results.retry.as_ref().map(|x| &x.deliveries_histogram))
        .collect();
    let mut ks: Vec<u64> = histograms
        .iter()
        .flatten()
        .flat_map(|h| h.iter().map(|&(k, _)| k))
        .collect();
    ks.sort_unstable();
    ks.dedup();
    if !ks.is_empty() {
        let _ = writeln!(out, "\n**retry**: messages acked at their k-th delivery\n");
        let mut header = vec!["deliveries".to_string()];
        header.extend(reports.iter().map(|(name, _)| format!("**{name}**")));
        push_row(&mut out, &header);
        push_row(&mut out, &vec!["---".to_string(); header.len()]);
        for k in ks {
            let mut row = vec![k.to_string()];
            row.extend(histograms.iter().map(|h| {
                h.and_then(|h| h.iter().find(|&&(hk, _)| hk == k))
                    .map_or("–".to_string(), |&(_, n)| group_thousands(n as i64))
            }));
            push_row(&mut out, &row);
        }
    }
    let lateness: Vec<Option<&LatencySummary>> = reports
        .iter()
        .map(|(_, r)| r.results.delayed.as_ref().and_then(|d| d.lateness.as_ref()))
        .collect();
    if lateness.iter().any(Option::is_some) {
        let _ = writeln!(out, "\n**delayed**: lateness percentiles\n");
        let mut header = vec!["percentile".to_string()];
        header.extend(reports.iter().map(|(name, _)| format!("**{name}**")));
        push_row(&mut out, &header);
        push_row(&mut out, &vec!["---".to_string(); header.len()]);
        for (index, percentile) in crate::measure::latency::PERCENTILES.iter().enumerate() {
            let mut row = vec![format!("{percentile}")];
            row.extend(lateness.iter().map(|l| {
                l.and_then(|l| l.curve.get(index))
                    .map_or("–".to_string(), |&(_, us)| {
                        format_value(us as f64, Unit::Micros)
                    })
            }));
            push_row(&mut out, &row);
        }
    }
    out
}

/// The curve table of one kind of change, or `None` if no report has a window of it. A row's
/// range (which changes the window holds) is the first report's that has the row.
pub fn curve_table(reports: &[(String, Report)], change: MetadataChange) -> Option<String> {
    let curves: Vec<Option<&ChangeCurve>> = reports
        .iter()
        .map(|(_, r)| r.results.declare.as_ref().and_then(|d| d.curve(change)))
        .collect();
    let row_count = curves
        .iter()
        .flatten()
        .map(|c| c.rates.windows.len())
        .max()
        .filter(|&n| n > 0)?;
    let mut out = String::new();
    let mut header = vec!["window".to_string(), "changes".to_string()];
    header.extend(reports.iter().map(|(name, _)| format!("**{name}**")));
    let first_name = reports.first().map(|(n, _)| n.clone()).unwrap_or_default();
    header.extend(
        reports
            .iter()
            .skip(1)
            .map(|(name, _)| format!("{name} ÷ {first_name}")),
    );
    push_row(&mut out, &header);
    push_row(&mut out, &vec!["---".to_string(); header.len()]);
    for index in 0..row_count {
        let windows: Vec<_> = curves
            .iter()
            .map(|c| c.and_then(|c| c.rates.windows.get(index)))
            .collect();
        let range = windows
            .iter()
            .flatten()
            .next()
            .map_or_else(String::new, |w| {
                format!(
                    "{}–{}",
                    group_thousands((w.count_cumulative - w.count + 1) as i64),
                    group_thousands(w.count_cumulative as i64)
                )
            });
        let rates: Vec<Option<f64>> = windows.iter().map(|w| w.map(|w| w.rate_per_s)).collect();
        let mut row = vec![index.to_string(), range];
        row.extend(
            rates
                .iter()
                .map(|v| v.map_or("–".to_string(), |v| format_value(v, Unit::Rate))),
        );
        let first = rates.first().copied().flatten();
        row.extend(rates.iter().skip(1).map(|v| ratio(first, *v)));
        push_row(&mut out, &row);
    }
    Some(out)
}

/// A figure of the curve of `change`, if the report has one.
fn change_figure(
    r: &Report,
    change: MetadataChange,
    pick: fn(&RateCurve) -> Option<f64>,
) -> Option<f64> {
    pick(&r.results.declare.as_ref()?.curve(change)?.rates)
}

/// A curve's rate over all its changes, if any was answered.
fn overall_rate(curve: &RateCurve) -> Option<f64> {
    (curve.count > 0).then_some(curve.rate_per_s)
}

/// Producers of the run, as the parameters asked for them.
fn producer_count(r: &Report) -> usize {
    let default = match r.scenario.as_str() {
        "backlog" => crate::scenario::backlog::FLOOD_PRODUCERS_DEFAULT,
        "churn" => r.parameters.churn.churn_threads,
        _ => 1,
    };
    r.parameters.producers.unwrap_or(default)
}

/// Rows left out when no report has anything in them.
fn is_optional(label: &str) -> bool {
    label.starts_with("connect")
        || label.starts_with("connections")
        || label.contains("dropped")
        || label.starts_with('…')
        || label.starts_with("refused")
        || label == "nacked"
        || label == "queue depth at the end"
}

fn latency(summary: &Option<LatencySummary>, pick: fn(&LatencySummary) -> u64) -> Option<f64> {
    summary.as_ref().map(|s| pick(s) as f64)
}

/// CPU seconds per message moved (published plus accepted), in µs.
fn per_message(cpu_s: f64, r: &Report) -> Option<f64> {
    let messages = r.results.published + r.results.accepted;
    (messages > 0).then(|| cpu_s * 1e6 / messages as f64)
}

fn ratio(first: Option<f64>, value: Option<f64>) -> String {
    match (first, value) {
        (Some(a), Some(b)) if a != 0.0 => format!("{:.2}×", b / a),
        _ => "–".to_string(),
    }
}

fn push_row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// A number for humans: thousands separators for counts and rates, ms/µs for latencies.
fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Count | Unit::Rate => group_thousands(value.round() as i64),
        Unit::Micros if value >= 1000.0 => format!("{:.2} ms", value / 1000.0),
        Unit::Micros => format!("{value:.1} µs"),
        Unit::Percent => format!("{value:.0} %"),
        Unit::Seconds => format!("{value:.1}"),
        Unit::Kib => format!("{:.1} MiB", value / 1024.0),
        Unit::Ratio => format!("{value:.3}"),
    }
}

pub(crate) fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{sample_declare_report, sample_report};

    #[test]
    fn one_column_per_report_and_ratios_against_the_first() {
        let table = table(&[
            ("hare".into(), sample_report(100_000.0)),
            ("rabbit".into(), sample_report(50_000.0)),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "|  | **hare** | **rabbit** | rabbit ÷ hare |");
        assert!(
            table.contains("| publish rate (msg/s) | 100,000 | 50,000 | 0.50× |"),
            "{table}"
        );
        assert!(
            table.contains("| deliver latency p50 | 200.0 µs | 200.0 µs | 1.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| deliver latency max | 5.00 ms |"),
            "{table}"
        );
        assert!(
            table.contains("| producers × consumers | 2 × 1 |"),
            "{table}"
        );
        assert!(
            table.contains("| lost | 0 | 0 | – |"),
            "a zero base has no ratio"
        );
        assert!(
            !table.contains("connect latency"),
            "rows nobody has are left out"
        );
        assert!(
            !table.contains("broker CPU"),
            "no --broker-pid, no broker CPU row"
        );
        assert!(
            !table.contains("flood rate"),
            "only backlog runs have a flood"
        );
        assert!(!table.contains("left queued"), "the run had consumers");
        assert!(lines.iter().all(|l| l.matches('|').count() == 5), "{table}");
    }

    #[test]
    fn declare_runs_show_their_curves_and_no_message_rows() {
        let declare = sample_declare_report();
        let table = table(&[
            ("hare".into(), declare.clone()),
            ("rabbit".into(), declare.clone()),
        ]);
        assert!(
            table.contains("| queue.declare, first window (changes/s) | 100 | 100 | 1.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| queue.declare, last window (changes/s) | 25 | 25 | 1.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| queue.declare, last ÷ first window | 0.250 | 0.250 | 1.00× |"),
            "{table}"
        );
        assert!(
            table.contains("| queue.delete, last ÷ first window | 1.000 |"),
            "{table}"
        );
        assert!(
            !table.contains("queue.bind"),
            "no bindings, no binding rows"
        );
        assert!(!table.contains("publish rate"), "nothing was published");
        assert!(
            table.contains("| producers × consumers | none (1 declaring connection) |"),
            "{table}"
        );
        let mut faster = declare.clone();
        let curve = &mut faster.results.declare.as_mut().unwrap().curves[0];
        curve.rates.windows[2].rate_per_s = 50.0;
        let curves = curves(&[("hare".into(), declare), ("rabbit".into(), faster)]);
        assert!(
            curves.contains("**queue.declare** per window (changes/s)"),
            "{curves}"
        );
        assert!(
            curves.contains("| window | changes | **hare** | **rabbit** | rabbit ÷ hare |"),
            "{curves}"
        );
        assert!(
            curves.contains("| 0 | 1–100 | 100 | 100 | 1.00× |"),
            "{curves}"
        );
        assert!(
            curves.contains("| 2 | 201–300 | 25 | 50 | 2.00× |"),
            "{curves}"
        );
        assert!(curves.contains("**queue.delete**"), "{curves}");
        assert!(!curves.contains("queue.bind"), "{curves}");
        assert_eq!(
            super::curves(&[("a".into(), sample_report(1.0))]),
            "",
            "runs without curves add nothing"
        );
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(group_thousands(1_234_567), "1,234,567");
        assert_eq!(group_thousands(-1000), "-1,000");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(format_value(1536.0, Unit::Kib), "1.5 MiB");
        assert_eq!(format_value(12.25, Unit::Micros), "12.2 µs");
        assert_eq!(format_value(0.0926, Unit::Ratio), "0.093");
    }
}
