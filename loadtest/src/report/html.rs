//! The HTML report: one self-contained page (no scripts, no external assets) with the summary
//! table and SVG charts drawn by plotters: queue depth, rates, latency percentiles and CPU, and
//! for declare runs the rate of each kind of metadata change per window, with its tables.

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::measure::latency::{LatencySummary, PERCENTILES};

use super::compare;
use super::model::{MetadataChange, Phase, PhaseKind, Report};

const CHART_SIZE: (u32, u32) = (900, 320);

/// The whole page.
pub fn render(report: &Report) -> anyhow::Result<String> {
    let title = format!(
        "hareperf {} against {}",
        report.scenario,
        escape(&report.broker.label)
    );
    let mut page = String::new();
    page.push_str(&format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title>\n<style>{STYLE}</style></head><body>\n<h1>{title}</h1>\n"
    ));
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
    page.push_str("<h2>Summary</h2>\n");
    page.push_str(&markdown_table_to_html(&compare::table(&[(
        report.scenario.clone(),
        report.clone(),
    )])));
    if !report.phases.is_empty() {
        page.push_str("<h2>Phases</h2><ul>");
        for phase in &report.phases {
            let depth = |d: Option<u64>| d.map_or_else(|| "?".to_string(), |d| d.to_string());
            let (counted, unit) = match phase.kind {
                PhaseKind::Publish => ("published", "msg/s"),
                PhaseKind::Consume => ("accepted", "msg/s"),
                PhaseKind::Metadata => ("metadata changes answered", "changes/s"),
            };
            page.push_str(&format!(
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
        page.push_str("</ul>\n");
    }
    if let Some(chart) = declare_chart(report)? {
        page.push_str("<h2>Metadata changes per window</h2>\n");
        page.push_str(&chart);
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
    page.push_str("<h2>Queue depth</h2>\n");
    page.push_str(&depth_chart(report)?);
    page.push_str("<h2>Rates</h2>\n");
    page.push_str(&rates_chart(report)?);
    page.push_str("<h2>Latency percentiles</h2>\n");
    page.push_str(&latency_chart(report)?);
    page.push_str("<h2>CPU</h2>\n");
    page.push_str(&cpu_chart(report)?);
    page.push_str("<h2>Parameters</h2><pre>");
    page.push_str(&escape(&serde_json::to_string_pretty(&report.parameters)?));
    page.push_str("</pre>\n</body></html>\n");
    Ok(page)
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
td:first-child{text-align:left}.errors{color:#b00}pre{background:#f4f4f4;padding:1em}";

/// One line of a chart.
struct Line<'a> {
    name: &'a str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn depth_chart(report: &Report) -> anyhow::Result<String> {
    // Every poll when the report has them (reports before `--depth-interval-ms` only had one
    // per sample).
    let points = if report.series.queue_depth_polls.is_empty() {
        report
            .series
            .t_s
            .iter()
            .zip(&report.series.queue_depth)
            .filter_map(|(t, d)| d.map(|d| (*t, d as f64)))
            .collect()
    } else {
        report
            .series
            .queue_depth_polls
            .iter()
            .map(|&(t, d)| (t, d as f64))
            .collect()
    };
    time_chart(
        "ready messages",
        &[Line {
            name: "queue depth",
            color: RGBColor(200, 60, 30),
            points,
        }],
        &report.phases,
    )
}

fn rates_chart(report: &Report) -> anyhow::Result<String> {
    let s = &report.series;
    let line = |name, color, values: &Vec<f64>| Line {
        name,
        color,
        points: s.t_s.iter().copied().zip(values.iter().copied()).collect(),
    };
    time_chart(
        "messages per second",
        &[
            line("published", RGBColor(30, 100, 200), &s.published_per_s),
            line("confirmed", RGBColor(30, 160, 60), &s.confirmed_per_s),
            line(
                "accepted by consumers",
                RGBColor(200, 120, 0),
                &s.accepted_per_s,
            ),
        ],
        &report.phases,
    )
}

fn cpu_chart(report: &Report) -> anyhow::Result<String> {
    let s = &report.series;
    let client = s
        .t_s
        .iter()
        .copied()
        .zip(s.client_cpu_percent.iter().copied())
        .collect();
    let broker = s
        .t_s
        .iter()
        .zip(&s.broker_cpu_percent)
        .filter_map(|(t, c)| c.map(|c| (*t, c)))
        .collect();
    time_chart(
        "% of one core",
        &[
            Line {
                name: "hareperf",
                color: RGBColor(120, 60, 180),
                points: client,
            },
            Line {
                name: "broker (--broker-pid)",
                color: RGBColor(200, 60, 30),
                points: broker,
            },
        ],
        &report.phases,
    )
}

/// The declare run's curves: the rate of each window against the changes answered by its end,
/// so a rate that falls as the metadata grows shows as a falling line. `None` for other runs.
fn declare_chart(report: &Report) -> anyhow::Result<Option<String>> {
    let Some(declare) = &report.results.declare else {
        return Ok(None);
    };
    let colors = [
        RGBColor(30, 100, 200),
        RGBColor(30, 160, 60),
        RGBColor(200, 60, 30),
    ];
    let lines: Vec<Line<'_>> = MetadataChange::ALL
        .iter()
        .zip(colors)
        .filter_map(|(&change, color)| {
            let curve = declare.curve(change)?;
            Some(Line {
                name: change.method_name(),
                color,
                points: curve
                    .rates
                    .windows
                    .iter()
                    .map(|w| (w.count_cumulative as f64, w.rate_per_s))
                    .collect(),
            })
        })
        .collect();
    line_chart("changes answered", "changes per second", &lines, &[]).map(Some)
}

fn latency_chart(report: &Report) -> anyhow::Result<String> {
    let curve = |summary: &Option<LatencySummary>| -> Vec<(f64, f64)> {
        summary.as_ref().map_or_else(Vec::new, |s| {
            s.curve
                .iter()
                .enumerate()
                .map(|(i, (_, us))| (i as f64, (*us).max(1) as f64))
                .collect()
        })
    };
    let lines = [
        Line {
            name: "publish → deliver",
            color: RGBColor(200, 120, 0),
            points: curve(&report.results.deliver_latency),
        },
        Line {
            name: "publish → confirm",
            color: RGBColor(30, 160, 60),
            points: curve(&report.results.confirm_latency),
        },
    ];
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(10.0, f64::max)
        * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let x_max = (PERCENTILES.len() - 1) as f64;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, (1.0..y_max).log_scale())
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_labels(PERCENTILES.len())
            .x_label_formatter(&|x| {
                PERCENTILES
                    .get(x.round() as usize)
                    .map_or_else(String::new, |p| {
                        if *p >= 100.0 {
                            "max".into()
                        } else {
                            format!("p{p}")
                        }
                    })
            })
            .y_desc("latency (µs)")
            .draw()
            .map_err(plot_error)?;
        draw_lines(&mut chart, &lines)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// A chart of values over run time, with the phases' starts as vertical markers.
fn time_chart(y_desc: &str, lines: &[Line<'_>], phases: &[Phase]) -> anyhow::Result<String> {
    line_chart("seconds", y_desc, lines, phases)
}

/// A chart of lines from 0 to their largest x and y, with the phases' starts as vertical
/// markers (when x is run time).
fn line_chart(
    x_desc: &str,
    y_desc: &str,
    lines: &[Line<'_>],
    phases: &[Phase],
) -> anyhow::Result<String> {
    let x_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .fold(1.0, f64::max)
        * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .y_label_formatter(&|y| short_number(*y))
            .draw()
            .map_err(plot_error)?;
        for phase in phases {
            let marker = vec![(phase.start_s, 0.0), (phase.start_s, y_max)];
            chart
                .draw_series(LineSeries::new(marker, RGBColor(160, 160, 160)))
                .map_err(plot_error)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    phase.name.clone(),
                    (phase.start_s, y_max * 0.97),
                    ("sans-serif", 12),
                )))
                .map_err(plot_error)?;
        }
        draw_lines(&mut chart, lines)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

fn draw_lines<'a, 'b: 'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
    lines: &[Line<'_>],
) -> anyhow::Result<()>
where
    Y: Ranged<ValueType = f64>,
{
    for line in lines.iter().filter(|l| !l.points.is_empty()) {
        let color = line.color;
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(line.name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn plot_error(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {e}")
}

/// 1234567 → "1.2M", for axis labels.
fn short_number(v: f64) -> String {
    match v.abs() {
        a if a >= 1e6 => format!("{:.1}M", v / 1e6),
        a if a >= 1e3 => format!("{:.0}k", v / 1e3),
        _ => format!("{v:.0}"),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Renders the pipe tables `compare::table` writes as an HTML table.
fn markdown_table_to_html(markdown: &str) -> String {
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
            let cell = escape(cell.trim_matches('*'));
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
    fn page_is_self_contained_with_four_charts_and_escaped_text() {
        let mut report = sample_report(1000.0);
        report.broker.label = "<Hare & co>".into();
        report.errors.push("consumer 3: <closed>".into());
        let page = render(&report).unwrap();
        assert_eq!(page.matches("<svg").count(), 4);
        assert!(page.contains("&lt;Hare &amp; co&gt;"));
        assert!(!page.contains("<Hare"));
        assert!(page.contains("consumer 3: &lt;closed&gt;"));
        assert!(page.contains("<td>publish rate (msg/s)</td><td>1,000</td>"));
        assert!(!page.contains("src=\"http"), "no external assets");
        assert!(
            page.contains(">\npublish\n</text>"),
            "phase markers are labelled"
        );
    }

    #[test]
    fn declare_runs_get_a_curve_chart_and_tables() {
        let page = render(&sample_declare_report()).unwrap();
        assert_eq!(page.matches("<svg").count(), 5);
        assert!(page.contains("<h2>Metadata changes per window</h2>"));
        assert!(page.contains("<h3>queue.declare (changes/s)</h3>"));
        assert!(page.contains("<tr><td>2</td><td>201–300</td><td>25</td></tr>"));
        assert!(!page.contains("queue.bind (changes/s)"), "no bindings");
        assert_eq!(
            render(&sample_report(1.0)).unwrap().matches("<h3>").count(),
            0
        );
    }

    #[test]
    fn axis_numbers_are_short() {
        assert_eq!(short_number(1_500_000.0), "1.5M");
        assert_eq!(short_number(25_000.0), "25k");
        assert_eq!(short_number(7.0), "7");
    }
}
