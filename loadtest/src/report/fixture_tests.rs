//! The pages and charts of recorded runs (`loadtest/tests/fixtures/`): a backlog run on Hare
//! and on RabbitMQ (three each), a 2 s transient run, a 25 s run at a fixed rate and a 2 s run at
//! 5,000 msg/s with `--one-per-write --broker-perf`. What they check: the series and labels each
//! chart should have, that no label overlaps another or the plot area, human units on the axes,
//! pages without any external reference, and the broker's cost rows of new and older reports.

use crate::measure::timeline::{Count, POINTS_MAX};

use super::chart::tests::assert_no_overlap;
use super::chart::{render, Chart, LabelKind};
use super::charts;
use super::compare;
use super::compare_html::{self, Column};
use super::html;
use super::model::Report;
use super::rates::{common_width_s, rate_line};

fn fixture(name: &str) -> Report {
    let path = format!("{}/tests/fixtures/{name}.json", env!("CARGO_MANIFEST_DIR"));
    Report::read_json(std::path::Path::new(&path)).expect("fixture reads")
}

fn backlog(broker: &str) -> Vec<Report> {
    (1..=3)
        .map(|run| fixture(&format!("backlog/{broker}-{run}")))
        .collect()
}

/// Every chart a page of `runs` draws, single-run and side-by-side kinds alike.
fn all_charts(runs: &[(String, &Report)]) -> Vec<Chart> {
    let latency = |pick: fn(&Report) -> Option<&crate::measure::latency::LatencySummary>| {
        charts::latency(runs.iter().map(|(n, r)| (n.clone(), pick(r))).collect())
    };
    [
        charts::depth(runs),
        charts::rates(runs),
        charts::rate(runs, Count::Published),
        charts::rate(runs, Count::Accepted),
        latency(|r| r.results.deliver_latency.as_ref()),
        latency(|r| r.results.confirm_latency.as_ref()),
        charts::cpu(runs),
        charts::broker_cpu(runs),
        charts::broker_rss(runs),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// No src, href, url() or import: the page shows the same offline as online.
fn assert_self_contained(page: &str) {
    for reference in [
        "http:", "https:", "src=", "href=", "url(", "@import", "<script", "<link",
    ] {
        assert!(!page.contains(reference), "the page has {reference}");
    }
}

#[test]
fn no_label_overlaps_in_any_chart_of_short_long_single_or_side_by_side_runs() {
    let hare = backlog("hare");
    let rabbit = backlog("rabbitmq");
    let (transient, long) = (fixture("transient-hare"), fixture("long-hare"));
    let sets: Vec<Vec<(String, &Report)>> = vec![
        vec![("backlog".into(), &hare[1])],
        vec![("transient".into(), &transient)],
        vec![("long".into(), &long)],
        vec![("hare".into(), &hare[1]), ("rabbitmq".into(), &rabbit[1])],
        vec![
            ("hare-1".into(), &hare[0]),
            ("hare-2".into(), &hare[1]),
            ("rabbitmq-1".into(), &rabbit[0]),
            ("a transient run".into(), &transient),
            ("a long run at 20k msg/s".into(), &long),
        ],
    ];
    for runs in &sets {
        let charts = all_charts(runs);
        assert!(charts.len() >= 5, "{} charts", charts.len());
        for chart in &charts {
            let (_, layout) = render(chart, "chart");
            assert_no_overlap(&layout);
            let phases = layout.labels.iter().filter(|l| l.kind == LabelKind::Phase);
            let expected: usize = chart.lanes.iter().map(|l| l.phases.len()).sum();
            assert_eq!(phases.count(), expected, "every phase is named");
        }
    }
}

#[test]
fn a_flood_of_a_tenth_of_a_second_shows_at_its_rate() {
    for report in backlog("hare").iter().chain(&backlog("rabbitmq")) {
        let flood = report.phases.iter().find(|p| p.name == "flood").unwrap();
        let width = common_width_s([report]);
        assert!(
            width <= 0.05,
            "{width} s buckets for a {} s run",
            report.results.duration_s
        );
        let line = rate_line(report, Count::Published, width);
        let peak = line
            .iter()
            .filter(|(t, _)| (flood.start_s - width..=flood.end_s).contains(t))
            .map(|p| p.1)
            .fold(0.0, f64::max);
        let flood_rate = report.results.flood_rate_per_s.unwrap();
        assert!(
            peak >= flood_rate / 2.0,
            "peak {peak} in a flood at {flood_rate} msg/s ({} s)",
            flood.duration_s
        );
        let after = line.iter().filter(|(t, _)| *t > flood.end_s + width);
        assert!(after.clone().count() > 10);
        assert!(
            after.into_iter().all(|p| p.1 == 0.0),
            "nothing published after"
        );
    }
}

#[test]
fn the_single_run_page_has_its_series_phases_and_human_units() {
    let report = fixture("backlog/hare-2");
    let page = html::render(&report).unwrap();
    assert_self_contained(&page);
    for series in [
        "queue depth",
        "published",
        "confirmed",
        "accepted by consumers",
        "publish → deliver",
        "publish → confirm",
        "broker (--broker-pid)",
        "hareperf",
        "broker RSS (--broker-pid)",
    ] {
        let series = super::svg::escape(series);
        assert!(
            page.contains(&format!("data-series=\"{series}\"")),
            "{series}"
        );
    }
    for label in [
        ">flood</text>",
        ">trouble</text>",
        ">recovery</text>",
        "(buckets of 50 ms)",
        ">0 msg/s</text>",
        ">100k msg/s</text>",
        ">1 s</text>",
        ">100 ms</text>",
        " MiB</text>",
        ">latency (log scale)</text>",
        "verdict: zero loss · flood 269k msg/s",
    ] {
        assert!(page.contains(label), "{label}");
    }
    assert!(!page.contains("0000</text>"), "no raw microseconds");
}

#[test]
fn the_comparison_page_puts_medians_and_every_chart_side_by_side() {
    let columns = [
        Column {
            name: "hare".into(),
            runs: backlog("hare"),
        },
        Column {
            name: "rabbitmq".into(),
            runs: backlog("rabbitmq"),
        },
    ];
    let page = compare_html::render(&columns).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("<h1>hareperf backlog: hare vs rabbitmq</h1>"));
    assert!(page.contains("<th>hare (median of 3)</th><th>rabbitmq (median of 3)</th>"));
    assert!(page.contains("<th>rabbitmq ÷ hare</th>"));
    assert!(page.contains("<td>flood rate, confirmed (msg/s)</td><td>360,595</td>"));
    assert_eq!(
        page.matches("<svg").count(),
        8,
        "depth, 3 rates, 2 latencies, CPU, RSS"
    );
    for heading in [
        "Queue depth",
        "Publish rate",
        "Deliver rate",
        "Broker memory",
    ] {
        assert!(page.contains(&format!("<h2>{heading}</h2>")), "{heading}");
    }
    assert_eq!(page.matches("data-series=\"hare\"").count(), 8);
    assert_eq!(page.matches("data-series=\"rabbitmq\"").count(), 8);
    assert!(page.contains(">rabbitmq</text>"), "lanes are named per run");
    let median = compare_html::median_run(&columns[0].runs).unwrap();
    assert_eq!(
        median.results.flood_rate_per_s,
        columns[0].runs[2].results.flood_rate_per_s
    );
}

#[test]
fn long_runs_stay_small_and_older_reports_still_render() {
    let long = fixture("long-hare");
    let timeline = &long.series.timeline;
    assert!(timeline.t_us.len() <= POINTS_MAX);
    assert!(
        timeline.period_us > 10_000,
        "a 25 s run coarsened its timeline"
    );
    let page = html::render(&long).unwrap();
    assert!(page.contains("(buckets of 200 ms)"));
    let columns = [
        ("long", long.clone()),
        ("transient", fixture("transient-hare")),
    ]
    .map(|(name, report)| Column {
        name: name.into(),
        runs: vec![report],
    });
    let page = compare_html::render(&columns).unwrap();
    assert!(page.contains("<h2>Publish rate</h2>"));
    assert!(
        !page.contains("<h2>Confirm rate</h2>"),
        "neither run had confirms"
    );
    let mut old = fixture("transient-hare");
    old.series.timeline = Default::default();
    let page = html::render(&old).unwrap();
    assert_self_contained(&page);
    assert!(page.contains("messages per second (per-second samples)"));
}

/// The rows a run with `--broker-pid --broker-perf` adds to the summary.
const COST_ROWS: [&str; 4] = [
    "| broker CPU µs per published message | 117.1 µs |",
    "| broker context switches per message | 3.393 |",
    "| broker syscalls per message (perf) | 28.018 |",
    "| broker io_uring_enter per message (perf) | 21.275 |",
];

#[test]
fn the_broker_cost_per_message_shows_for_new_reports_only() {
    let cost = fixture("cost-hare");
    assert_eq!(cost.results.broker_syscalls, Some(282_223));
    assert_eq!(cost.results.broker_perf_unavailable, None);
    let table = compare::table(&[("cost".into(), cost.clone())]);
    for row in COST_ROWS {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    let page = html::render(&cost).unwrap();
    assert!(page.contains("<td>broker syscalls per message (perf)</td><td>28.018</td>"));
    assert!(!page.contains("perf unavailable"));

    // A report written before these fields existed reads, and has none of the rows.
    let old = fixture("transient-hare");
    assert_eq!(old.results.broker_context_switches, None);
    let table = compare::table(&[("old".into(), old.clone())]);
    assert!(!table.contains("context switches"), "{table}");
    // Side by side, the older report's cells and the ratios are empty.
    let table = compare::table(&[("cost".into(), cost.clone()), ("old".into(), old)]);
    let row = table
        .lines()
        .find(|l| l.starts_with("| broker syscalls per message"))
        .unwrap();
    assert_eq!(
        row,
        "| broker syscalls per message (perf) | 28.018 | – | – |"
    );

    // A run perf could not count says so once, and has the /proc figures only.
    let mut refused = cost;
    refused.results.broker_syscalls_per_message = None;
    refused.results.broker_io_uring_enter_per_message = None;
    refused.results.broker_perf_unavailable =
        Some("perf counted nothing: Error: No permission".into());
    let page = html::render(&refused).unwrap();
    assert_eq!(page.matches("perf unavailable").count(), 1);
    assert!(page.contains("broker context switches per message"));
    assert!(!page.contains("syscalls per message"));
}
