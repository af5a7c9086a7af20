//! The HTML report: one self-contained page (no scripts, no external assets, no web fonts)
//! with the summary table and SVG charts drawn by `chart`: queue depth, rates in buckets that
//! fit the run, latency percentiles, CPU and broker RSS, and for declare runs the rate of each
//! kind of metadata change per window, with its tables. `compare_html` builds the page of
//! several runs side by side from the same pieces.

use std::fmt::Write;

use super::chart::{self, Chart};
use super::charts;
use super::compare;
use super::model::{MetadataChange, PhaseKind, Report};
pub(crate) use super::svg::escape;

/// The whole page.
pub fn render(report: &Report) -> anyhow::Result<String> {
    let title = format!(
        "hareperf {} against {}",
        report.scenario,
        escape(&report.broker.label)
    );
    let mut page = head(&title);
    let _ = writeln!(
        page,
        "<p class=\"verdict\">{}</p>",
        escape(&verdict_line(report))
    );
    page.push_str(&format!(
        "<p>{} · {} cores · {} · broker: {} {} ({})</p>\n",
        escape(&report.machine.cpu_model),
        report.machine.cores,
        escape(&report.machine.kernel),
        escape(&report.broker.server.product),
        escape(&report.broker.server.version),
        escape(&report.broker.server.platform),
    ));
    if !report.errors.is_empty() {
        page.push_str("<h2>Errors</h2><ul class=\"errors\">");
        for error in &report.errors {
            page.push_str(&format!("<li>{}</li>", escape(error)));
        }
        page.push_str("</ul>\n");
    }
    page.push_str(&summary(report));
    if let Some(reason) = &report.results.broker_perf_unavailable {
        let _ = writeln!(
            page,
            "<p>perf unavailable, no syscall counts: {}</p>",
            escape(reason)
        );
    }
    page.push_str(&phases_list(report));
    if let Some(chart) = charts::declare(report) {
        push_chart(&mut page, "Metadata changes per window", &chart);
        let reports = [(report.scenario.clone(), report.clone())];
        for change in MetadataChange::ALL {
            if let Some(table) = compare::curve_table(&reports, change) {
                page.push_str(&format!("<h3>{} (changes/s)</h3>\n", change.method_name()));
                page.push_str(&markdown_table_to_html(&table));
            }
        }
    }
    let details = compare::details(&[(report.scenario.clone(), report.clone())]);
    if !details.is_empty() {
        page.push_str("<h2>Distributions</h2>\n");
        for block in details.split("\n\n").filter(|b| !b.trim().is_empty()) {
            if block.trim_start().starts_with('|') {
                page.push_str(&markdown_table_to_html(block));
            } else {
                page.push_str(&format!(
                    "<p>{}</p>\n",
                    escape(block.trim()).replace("**", "")
                ));
            }
        }
    }
    let runs = [(report.scenario.clone(), report)];
    let sections = [
        ("Queue depth", charts::depth(&runs)),
        ("Rates", charts::rates(&runs)),
        (
            "Latency percentiles",
            charts::latency(vec![
                (
                    "publish → deliver".into(),
                    report.results.deliver_latency.as_ref(),
                ),
                (
                    "publish → confirm".into(),
                    report.results.confirm_latency.as_ref(),
                ),
            ]),
        ),
        ("CPU", charts::cpu(&runs)),
        ("Broker memory", charts::broker_rss(&runs)),
    ];
    for (heading, chart) in sections {
        if let Some(chart) = chart {
            push_chart(&mut page, heading, &chart);
        }
    }
    page.push_str("<h2>Parameters</h2><pre>");
    page.push_str(&escape(&serde_json::to_string_pretty(&report.parameters)?));
    page.push_str("</pre>\n</body></html>\n");
    Ok(page)
}

/// The one-line verdict: a soak's own, else the run's.
fn verdict_line(report: &Report) -> String {
    match &report.results.soak {
        Some(soak) if soak.failures.is_empty() => "soak passed".to_string(),
        Some(soak) => format!("soak failed: {}", soak.failures.join("; ")),
        None => super::verdict::verdict(report),
    }
}

/// The summary: a soak's own (the generic table counts producers and consumers a soak does not
/// use), else the table `compare` prints.
fn summary(report: &Report) -> String {
    let mut out = String::from("<h2>Summary</h2>\n");
    if let Some(soak) = &report.results.soak {
        let _ = writeln!(
            out,
            "<pre>{}</pre>",
            escape(&super::soak_summary::text(soak))
        );
        out.push_str(&soak_starts_table(soak));
    } else {
        out.push_str(&markdown_table_to_html(&compare::table(&[(
            report.scenario.clone(),
            report.clone(),
        )])));
    }
    out
}

/// The broker's largest RSS and descriptor count of each start, in start order.
fn soak_starts_table(soak: &super::model::SoakResults) -> String {
    let mut out = String::from(
        "<h3>Broker per start</h3>\n<table><tr><th>start</th><th>max RSS (MiB)</th><th>max open descriptors</th></tr>\n",
    );
    for (n, (rss, fds)) in soak
        .rss_max_per_start_kib
        .iter()
        .zip(&soak.fds_max_per_start)
        .enumerate()
    {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{:.1}</td><td>{fds}</td></tr>",
            n + 1,
            *rss as f64 / 1024.0
        );
    }
    out.push_str("</table>\n");
    out
}

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,Helvetica,sans-serif;max-width:960px;\
margin:2em auto;color:#222}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}\
.errors{color:#b00}pre{background:#f4f4f4;padding:1em}figure{margin:0}svg{max-width:100%;height:auto}\
.verdict{font-weight:bold}";

/// Each phase: when, how long, what it did and the queue depth around it.
fn phases_list(report: &Report) -> String {
    let mut out = String::new();
    if report.phases.is_empty() {
        return out;
    }
    out.push_str("<h2>Phases</h2><ul>");
    for phase in &report.phases {
        let depth = |d: Option<u64>| d.map_or_else(|| "?".to_string(), |d| d.to_string());
        let (counted, unit) = match phase.kind {
            PhaseKind::Publish => ("published", "msg/s"),
            PhaseKind::Consume => ("accepted", "msg/s"),
            PhaseKind::Metadata => ("metadata changes answered", "changes/s"),
        };
        out.push_str(&format!(
            "<li>{}: {:.3} s – {:.3} s ({:.3} s), {} {counted}, {:.0} {unit}; \
             queue depth {} → {}</li>",
            escape(&phase.name),
            phase.start_s,
            phase.end_s,
            phase.duration_s,
            phase.messages,
            phase.rate_per_s,
            depth(phase.queue_depth_start),
            depth(phase.queue_depth_end),
        ));
    }
    out.push_str("</ul>\n");
    out
}

/// The start of a page, up to its heading.
pub(crate) fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title>\n\
         <style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    )
}

/// A chart under its heading.
pub(crate) fn push_chart(page: &mut String, heading: &str, chart: &Chart) {
    let (svg, _) = chart::render(chart, heading);
    let _ = write!(
        page,
        "<h2>{}</h2>\n<figure>{svg}</figure>\n",
        escape(heading)
    );
}

/// Renders the pipe tables `compare::table` writes as an HTML table.
pub(crate) fn markdown_table_to_html(markdown: &str) -> String {
    let mut html = String::from("<table>\n");
    for (i, line) in markdown.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        let tag = if i == 0 { "th" } else { "td" };
        html.push_str("<tr>");
        for cell in cells {
            let cell = escape(&cell.replace("**", ""));
            html.push_str(&format!("<{tag}>{cell}</{tag}>"));
        }
        html.push_str("</tr>\n");
    }
    html.push_str("</table>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{sample_declare_report, sample_report};

    #[test]
    fn page_is_self_contained_with_its_charts_and_escaped_text() {
        let mut report = sample_report(1000.0);
        report.broker.label = "<Hare & co>".into();
        report.errors.push("consumer 3: <closed>".into());
        let page = render(&report).unwrap();
        // Depth, rates, latency and CPU; no RSS was sampled.
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("&lt;Hare &amp; co&gt;"));
        assert!(!page.contains("<Hare"));
        assert!(page.contains("consumer 3: &lt;closed&gt;"));
        assert!(page.contains("<td>publish rate (msg/s)</td><td>1,000</td>"));
        assert!(
            !page.contains("http"),
            "no external assets, not even a namespace"
        );
        assert!(page.contains(">publish</text>"), "phases are labelled");
        assert!(page.contains("<p class=\"verdict\">verdict: zero loss"));
    }

    #[test]
    fn declare_runs_get_a_curve_chart_and_tables() {
        let page = render(&sample_declare_report()).unwrap();
        // The curves, depth, rates and CPU; no latency was recorded.
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("<h2>Metadata changes per window</h2>"));
        assert!(page.contains("<h3>queue.declare (changes/s)</h3>"));
        assert!(page.contains("<tr><td>2</td><td>201–300</td><td>25</td></tr>"));
        assert!(!page.contains("queue.bind (changes/s)"), "no bindings");
        assert!(page.contains(">100 changes/s</text>"));
        assert_eq!(
            render(&sample_report(1.0)).unwrap().matches("<h3>").count(),
            0
        );
    }
}
