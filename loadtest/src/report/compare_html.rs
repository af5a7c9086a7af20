//! The page of several brokers (or settings) side by side: the summary table with ratios, the
//! phases of each run, and every chart with one line per column. A column may hold several
//! runs of the same setup: the table then shows medians (loss: the worst run), and the charts
//! the median run, the one whose headline rate is the median of the column's.

use std::fmt::Write;

use crate::measure::timeline::Count;

use super::axis::{format_value, Unit};
use super::charts;
use super::compare;
use super::html::{escape, head, markdown_table_to_html, push_chart};
use super::model::Report;

/// One column of the page: a name and its runs.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub runs: Vec<Report>,
}

/// The rate a run is ranked by to find the median run: the flood's for backlog runs.
fn headline(report: &Report) -> f64 {
    report
        .results
        .flood_rate_per_s
        .unwrap_or(report.results.publish_rate_per_s)
}

/// The run of `runs` whose headline rate is the median (the lower middle of an even count).
pub fn median_run(runs: &[Report]) -> Option<&Report> {
    let mut ranked: Vec<&Report> = runs.iter().collect();
    ranked.sort_by(|a, b| headline(a).total_cmp(&headline(b)));
    ranked.get(ranked.len().saturating_sub(1) / 2).copied()
}

/// The whole page.
pub fn render(columns: &[Column]) -> anyhow::Result<String> {
    let shown: Vec<(String, &Report)> = columns
        .iter()
        .filter_map(|c| Some((c.name.clone(), median_run(&c.runs)?)))
        .collect();
    anyhow::ensure!(!shown.is_empty(), "nothing to compare: no reports");
    let mut scenarios: Vec<&str> = shown.iter().map(|(_, r)| r.scenario.as_str()).collect();
    scenarios.dedup();
    let names: Vec<&str> = shown.iter().map(|(n, _)| n.as_str()).collect();
    let title = escape(&format!(
        "hareperf {}: {}",
        scenarios.join(", "),
        names.join(" vs ")
    ));
    let mut page = head(&title);
    page.push_str(&runs_list(columns, &shown));
    page.push_str("<h2>Summary</h2>\n");
    let table_columns: Vec<(String, Vec<&Report>)> = columns
        .iter()
        .map(|c| (c.name.clone(), c.runs.iter().collect()))
        .collect();
    page.push_str(&markdown_table_to_html(&compare::median_table(
        &table_columns,
    )));
    let owned: Vec<(String, Report)> = shown
        .iter()
        .map(|(n, r)| (n.clone(), (*r).clone()))
        .collect();
    for block in [compare::curves(&owned), compare::details(&owned)] {
        push_markdown_blocks(&mut page, &block);
    }
    page.push_str(&phases_table(&shown));
    push_charts(&mut page, &shown);
    page.push_str("</body></html>\n");
    Ok(page)
}

/// Who is compared: each column's broker, and which run the charts show.
fn runs_list(columns: &[Column], shown: &[(String, &Report)]) -> String {
    let mut out = String::from("<ul>\n");
    for (column, (name, report)) in columns.iter().zip(shown) {
        let runs = match column.runs.len() {
            1 => String::new(),
            n => format!(
                "; {n} runs, the charts show the median one ({})",
                format_value(headline(report), Unit::Rate)
            ),
        };
        let _ = writeln!(
            out,
            "<li><b>{}</b>: {} on {} · {} cores{}</li>",
            escape(name),
            escape(&report.broker.label),
            escape(&report.machine.cpu_model),
            report.machine.cores,
            escape(&runs)
        );
    }
    out.push_str("</ul>\n");
    out
}

/// Markdown from `compare` (tables and their headings) as HTML.
fn push_markdown_blocks(page: &mut String, markdown: &str) {
    for block in markdown.split("\n\n").filter(|b| !b.trim().is_empty()) {
        if block.trim_start().starts_with('|') {
            page.push_str(&markdown_table_to_html(block));
        } else {
            let _ = writeln!(page, "<h3>{}</h3>", escape(block.trim()).replace("**", ""));
        }
    }
}

/// A row per phase name, a column per run: how long it took and its rate.
fn phases_table(shown: &[(String, &Report)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, report) in shown {
        for phase in &report.phases {
            if !names.contains(&phase.name.as_str()) {
                names.push(&phase.name);
            }
        }
    }
    if names.is_empty() {
        return String::new();
    }
    let mut out = String::from("<h2>Phases</h2>\n<table>\n<tr><th>phase</th>");
    for (name, _) in shown {
        let _ = write!(out, "<th>{}</th>", escape(name));
    }
    out.push_str("</tr>\n");
    for phase_name in names {
        let _ = write!(out, "<tr><td>{}</td>", escape(phase_name));
        for (_, report) in shown {
            let cell = report
                .phases
                .iter()
                .find(|p| p.name == phase_name)
                .map_or_else(
                    || "–".to_string(),
                    |p| {
                        format!(
                            "{} – {} ({}), {}",
                            format_value(p.start_s, Unit::Seconds),
                            format_value(p.end_s, Unit::Seconds),
                            format_value(p.duration_s, Unit::Seconds),
                            format_value(p.rate_per_s, Unit::Rate)
                        )
                    },
                );
            let _ = write!(out, "<td>{}</td>", escape(&cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

fn push_charts(page: &mut String, shown: &[(String, &Report)]) {
    let latency = |pick: fn(&Report) -> Option<&crate::measure::latency::LatencySummary>| {
        charts::latency(shown.iter().map(|(n, r)| (n.clone(), pick(r))).collect())
    };
    let sections = [
        ("Queue depth", charts::depth(shown)),
        ("Publish rate", charts::rate(shown, Count::Published)),
        ("Confirm rate", charts::rate(shown, Count::Confirmed)),
        ("Deliver rate", charts::rate(shown, Count::Accepted)),
        (
            "Latency percentiles: publish → deliver",
            latency(|r| r.results.deliver_latency.as_ref()),
        ),
        (
            "Latency percentiles: publish → confirm",
            latency(|r| r.results.confirm_latency.as_ref()),
        ),
        ("Broker CPU", charts::broker_cpu(shown)),
        ("Broker memory", charts::broker_rss(shown)),
    ];
    for (heading, chart) in sections {
        if let Some(chart) = chart {
            push_chart(page, heading, &chart);
        }
    }
}
