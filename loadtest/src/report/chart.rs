//! A line chart: its lines, the phases of its runs, its axes, and the SVG drawn from its
//! layout (`layout`), which `render` returns too so tests can check where the labels went.

use super::axis::{Scale, Unit};
use super::layout::{layout, Layout, FONT, STRIP, SWATCH};
pub use super::layout::{LabelKind, WIDTH};
use super::svg::{Rect, Stroke, Svg};

const INK: &str = "#222222";
const GRID: Stroke = Stroke {
    color: "#dddddd",
    width: 1.0,
    dash: "",
};

/// One line of the chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub stroke: Stroke,
    pub points: Vec<(f64, f64)>,
}

/// The phases of one run, drawn as a strip of named spans above the plot.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    /// Which run (empty when the chart shows a single run).
    pub name: String,
    pub stroke: Stroke,
    /// (name, start, end) in x units.
    pub phases: Vec<(String, f64, f64)>,
}

/// What the x axis is.
#[derive(Debug, Clone, PartialEq)]
pub enum XAxis {
    /// Run time in seconds, from 0.
    Time,
    /// A count from 0 (changes answered).
    Count,
    /// Evenly spaced named positions 0, 1, 2 … (percentiles).
    Categories(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Said above the plot: what the y values are, and whether the scale is logarithmic.
    pub y_title: String,
    pub x_title: String,
    pub x: XAxis,
    pub y_unit: Unit,
    pub y_scale: Scale,
    pub lines: Vec<Line>,
    pub lanes: Vec<Lane>,
}

/// The chart as SVG, and its layout.
pub fn render(chart: &Chart, title: &str) -> (String, Layout) {
    let layout = layout(chart);
    (draw(chart, &layout, title), layout)
}

fn draw(chart: &Chart, layout: &Layout, title: &str) -> String {
    let mut svg = Svg::new(layout.width, layout.height, title);
    let plot = layout.plot;
    draw_phases(&mut svg, chart, layout);
    for tick in &layout.y_axis.ticks {
        let y = layout.y(tick.value);
        svg.line((plot.x, y), (plot.right(), y), GRID);
    }
    for tick in &layout.x_axis.ticks {
        let x = layout.x(tick.value);
        svg.line((x, plot.y), (x, plot.bottom()), GRID);
    }
    let axis = Stroke {
        color: INK,
        width: 1.0,
        dash: "",
    };
    svg.line((plot.x, plot.bottom()), (plot.right(), plot.bottom()), axis);
    svg.line((plot.x, plot.y), (plot.x, plot.bottom()), axis);
    for line in chart.lines.iter().filter(|l| !l.points.is_empty()) {
        let points: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|&(x, y)| (layout.x(x), layout.y(y)))
            .collect();
        svg.polyline(&points, line.stroke, &line.name);
    }
    for (line, &(x, baseline)) in chart.lines.iter().zip(&layout.swatches) {
        let y = baseline - FONT * 0.35;
        svg.line((x, y), (x + SWATCH, y), line.stroke);
    }
    for label in &layout.labels {
        svg.text(&label.text, FONT, label.at, label.anchor, INK);
    }
    svg.finish()
}

/// Each lane's strip of spans, and the phases in the plot: shaded bands for a single run,
/// boundary lines in the run's colour and dashes for several.
fn draw_phases(svg: &mut Svg, chart: &Chart, layout: &Layout) {
    let plot = layout.plot;
    for (lane, &strip) in chart.lanes.iter().zip(&layout.strips) {
        for (i, (_, start, end)) in lane.phases.iter().enumerate() {
            let (x0, x1) = (layout.x(*start), layout.x(*end));
            let span = Rect {
                x: x0,
                y: strip,
                w: (x1 - x0 - 1.0).max(1.0),
                h: STRIP,
            };
            let shade = if i % 2 == 0 { 0.85 } else { 0.45 };
            svg.rect(&span, lane.stroke.color, shade);
            if chart.lanes.len() == 1 {
                let band = band_of(span, plot);
                svg.rect(&band, "#000000", if i % 2 == 0 { 0.06 } else { 0.02 });
            } else {
                // Faint, so a boundary never reads as a spike in the data.
                let boundary = Rect {
                    x: x0 - 0.5,
                    w: 1.0,
                    ..band_of(span, plot)
                };
                svg.rect(&boundary, lane.stroke.color, 0.3);
            }
        }
    }
}

/// `span` stretched over the plot's height.
fn band_of(span: Rect, plot: Rect) -> Rect {
    Rect {
        y: plot.y,
        h: plot.h,
        ..span
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::palette;

    /// Panics unless every label is inside the chart, off the plot area, and clear of every
    /// other label.
    pub(crate) fn assert_no_overlap(layout: &Layout) {
        let chart = Rect {
            x: 0.0,
            y: 0.0,
            w: layout.width,
            h: layout.height,
        };
        for (i, a) in layout.labels.iter().enumerate() {
            assert!(chart.contains(&a.rect), "{a:?} leaves the chart");
            assert!(!a.rect.overlaps(&layout.plot), "{a:?} is on the plot area");
            for b in &layout.labels[i + 1..] {
                assert!(!a.rect.overlaps(&b.rect), "{a:?} overlaps {b:?}");
            }
        }
    }

    fn crowded_chart(lanes: usize) -> Chart {
        Chart {
            y_title: "messages per second".into(),
            x_title: "run time".into(),
            x: XAxis::Time,
            y_unit: Unit::Rate,
            y_scale: Scale::Linear,
            lines: (0..6)
                .map(|i| Line {
                    name: format!("a rather long series name {i}"),
                    stroke: palette::stroke(i),
                    points: vec![(0.0, 0.0), (6.2, 150_000.0 * i as f64)],
                })
                .collect(),
            lanes: (0..lanes)
                .map(|i| Lane {
                    name: format!("run {i}"),
                    stroke: palette::stroke(i),
                    phases: vec![
                        ("flood".into(), 0.0, 0.13),
                        ("trouble".into(), 0.13, 5.13),
                        ("recovery".into(), 5.13, 6.2),
                        ("a late and long phase".into(), 6.15, 6.2),
                    ],
                })
                .collect(),
        }
    }

    #[test]
    fn crowded_phases_and_legends_never_overlap() {
        for lanes in [1, 3] {
            let (svg, layout) = render(&crowded_chart(lanes), "crowded");
            assert_no_overlap(&layout);
            let phases = layout.labels.iter().filter(|l| l.kind == LabelKind::Phase);
            assert_eq!(phases.count(), 4 * lanes);
            assert!(svg.contains("data-series=\"a rather long series name 5\""));
            assert!(svg.contains(">recovery</text>"));
        }
    }

    #[test]
    fn log_charts_and_categories_lay_out_too() {
        let chart = Chart {
            y_title: "latency (log scale)".into(),
            x_title: "percentile".into(),
            x: XAxis::Categories(vec!["p50".into(), "p99".into(), "max".into()]),
            y_unit: Unit::Micros,
            y_scale: Scale::Log,
            lines: vec![Line {
                name: "publish → deliver".into(),
                stroke: palette::stroke(0),
                points: vec![(0.0, 80.0), (1.0, 2000.0), (2.0, 10_000_000.0)],
            }],
            lanes: Vec::new(),
        };
        let (svg, layout) = render(&chart, "latency");
        assert_no_overlap(&layout);
        assert!(svg.contains(">10 s</text>"));
        assert!(svg.contains(">p99</text>"));
        assert!(svg.contains(">latency (log scale)</text>"));
    }
}
