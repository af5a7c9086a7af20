//! A line chart whose layout is computed before anything is drawn: every label gets a box,
//! and boxes are placed so that none overlaps another or the plot area. Phase names sit in
//! rows above the plot (a name that would touch its neighbour moves to the next row), the
//! legend wraps in rows under it, and tick labels are thinned until they fit. `render` returns
//! the boxes with the SVG so tests can check the layout itself.

use super::axis::{Axis, Scale, Tick, Unit};
use super::svg::{text_box, text_width, Anchor, Rect, Stroke, Svg};

pub const WIDTH: f64 = 900.0;
const PLOT_HEIGHT: f64 = 240.0;
const FONT: f64 = 12.0;
const MARGIN: f64 = 12.0;
/// The height of a row of labels.
const ROW: f64 = 17.0;
/// The coloured strip under a lane's phase names.
const STRIP: f64 = 6.0;
/// The least room kept between two labels side by side.
const GAP: f64 = 8.0;
const SWATCH: f64 = 30.0;
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

/// What a label is, for tests that check each kind stays where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelKind {
    YTitle,
    XTitle,
    XTick,
    YTick,
    Phase,
    LaneName,
    Legend,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Label {
    pub kind: LabelKind,
    pub text: String,
    pub rect: Rect,
    anchor: Anchor,
    at: (f64, f64),
}

/// Where everything went.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub plot: Rect,
    pub labels: Vec<Label>,
    x_axis: Axis,
    y_axis: Axis,
    /// Per lane: the top of its strip.
    strips: Vec<f64>,
    /// Per legend entry: where its swatch starts, on its text's baseline.
    swatches: Vec<(f64, f64)>,
}

impl Layout {
    fn x(&self, value: f64) -> f64 {
        self.plot.x + self.x_axis.fraction(value) * self.plot.w
    }

    fn y(&self, value: f64) -> f64 {
        self.plot.bottom() - self.y_axis.fraction(value) * self.plot.h
    }

    fn push(&mut self, kind: LabelKind, text: &str, at: (f64, f64), anchor: Anchor) {
        self.labels.push(Label {
            kind,
            text: text.to_string(),
            rect: text_box(text, FONT, at.0, at.1, anchor),
            anchor,
            at,
        });
    }
}

/// The chart as SVG, and its layout.
pub fn render(chart: &Chart, title: &str) -> (String, Layout) {
    let layout = layout(chart);
    (draw(chart, &layout, title), layout)
}

fn layout(chart: &Chart) -> Layout {
    let y_axis = y_axis(chart);
    let lane_names = chart.lanes.iter().map(|l| text_width(&l.name, FONT));
    let left = y_axis
        .ticks
        .iter()
        .map(|t| text_width(&t.label, FONT))
        .chain(lane_names)
        .fold(0.0, f64::max)
        + MARGIN
        + GAP;
    let plot_w = WIDTH - left - MARGIN * 2.0;
    let mut layout = Layout {
        width: WIDTH,
        height: 0.0,
        plot: Rect {
            x: left,
            y: 0.0,
            w: plot_w,
            h: PLOT_HEIGHT,
        },
        labels: Vec::new(),
        x_axis: x_axis(chart, plot_w),
        y_axis,
        strips: Vec::new(),
        swatches: Vec::new(),
    };
    layout.push(
        LabelKind::YTitle,
        &chart.y_title,
        (left, MARGIN + FONT),
        Anchor::Start,
    );
    let mut top = MARGIN + ROW + 4.0;
    for lane in &chart.lanes {
        top = place_lane(&mut layout, lane, top);
    }
    layout.plot.y = top + GAP;
    place_axes(&mut layout, chart);
    let below = layout.plot.bottom() + 4.0 + ROW * 2.0;
    let below = place_legend(&mut layout, chart, below + ROW);
    layout.height = below + MARGIN;
    layout
}

fn y_axis(chart: &Chart) -> Axis {
    let values = || {
        chart
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
    };
    let max = values().fold(0.0, f64::max);
    match chart.y_scale {
        Scale::Linear => Axis::linear(max, chart.y_unit, 5),
        Scale::Log => {
            let min = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
            Axis::log(if min.is_finite() { min } else { 1.0 }, max, chart.y_unit)
        }
    }
}

/// The x axis with as many ticks as fit side by side with room between their labels.
fn x_axis(chart: &Chart, plot_w: f64) -> Axis {
    let unit = match &chart.x {
        XAxis::Categories(names) => return categories(names),
        XAxis::Time => Unit::Seconds,
        XAxis::Count => Unit::Count,
    };
    let line_max = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0));
    let phase_max = chart
        .lanes
        .iter()
        .flat_map(|l| l.phases.iter().map(|p| p.2));
    let max = line_max.chain(phase_max).fold(0.0, f64::max);
    let mut target = 10;
    loop {
        let axis = Axis::linear(max, unit, target);
        let widest = axis
            .ticks
            .iter()
            .map(|t| text_width(&t.label, FONT))
            .fold(0.0, f64::max);
        let spacing = plot_w / (axis.ticks.len().max(2) - 1) as f64;
        if spacing >= widest + GAP * 2.0 || target == 1 {
            return axis;
        }
        target -= 1;
    }
}

fn categories(names: &[String]) -> Axis {
    Axis {
        min: 0.0,
        max: names.len().saturating_sub(1).max(1) as f64,
        scale: Scale::Linear,
        ticks: names
            .iter()
            .enumerate()
            .map(|(i, name)| Tick {
                value: i as f64,
                label: name.clone(),
            })
            .collect(),
    }
}

/// Places one lane's phase names in as few rows as keep them apart; returns the lane's
/// bottom.
fn place_lane(layout: &mut Layout, lane: &Lane, top: f64) -> f64 {
    let plot = layout.plot;
    let mut rows: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut placed = Vec::new();
    for (name, start, end) in &lane.phases {
        let w = text_width(name, FONT);
        let center = (layout.x(*start) + layout.x(*end)) / 2.0;
        let left = (center - w / 2.0).min(plot.right() - w).max(plot.x);
        let row = rows
            .iter()
            .position(|spans| {
                spans
                    .iter()
                    .all(|&(a, b)| left + w + GAP <= a || b + GAP <= left)
            })
            .unwrap_or(rows.len());
        if row == rows.len() {
            rows.push(Vec::new());
        }
        rows[row].push((left, left + w));
        placed.push((name, left, row));
    }
    for (name, left, row) in placed {
        let baseline = top + (row + 1) as f64 * ROW - 4.0;
        layout.push(LabelKind::Phase, name, (left, baseline), Anchor::Start);
    }
    let strip = top + rows.len() as f64 * ROW;
    if !lane.name.is_empty() {
        let at = (plot.x - GAP, strip + STRIP);
        layout.push(LabelKind::LaneName, &lane.name, at, Anchor::End);
    }
    layout.strips.push(strip);
    strip + STRIP + 4.0
}

/// Tick labels left of and under the plot, and the x axis title.
fn place_axes(layout: &mut Layout, chart: &Chart) {
    let plot = layout.plot;
    for tick in layout.y_axis.ticks.clone() {
        let at = (plot.x - GAP, layout.y(tick.value) + FONT * 0.35);
        layout.push(LabelKind::YTick, &tick.label, at, Anchor::End);
    }
    let baseline = plot.bottom() + 4.0 + ROW;
    for tick in layout.x_axis.ticks.clone() {
        let w = text_width(&tick.label, FONT);
        let x = layout
            .x(tick.value)
            .clamp(w / 2.0 + 1.0, layout.width - w / 2.0 - 1.0);
        layout.push(LabelKind::XTick, &tick.label, (x, baseline), Anchor::Middle);
    }
    let at = (plot.x + plot.w / 2.0, baseline + ROW);
    layout.push(LabelKind::XTitle, &chart.x_title, at, Anchor::Middle);
}

/// The legend in rows under the axis title, wrapping at the chart's width; returns its
/// bottom.
fn place_legend(layout: &mut Layout, chart: &Chart, first_baseline: f64) -> f64 {
    let (mut x, mut baseline) = (layout.plot.x, first_baseline);
    let right = layout.width - MARGIN;
    let mut bottom = first_baseline - ROW;
    for line in &chart.lines {
        let w = SWATCH + 6.0 + text_width(&line.name, FONT);
        if x + w > right && x > layout.plot.x {
            x = layout.plot.x;
            baseline += ROW;
        }
        layout.swatches.push((x, baseline));
        layout.push(
            LabelKind::Legend,
            &line.name,
            (x + SWATCH + 6.0, baseline),
            Anchor::Start,
        );
        x += w + GAP * 2.0;
        bottom = baseline + 4.0;
    }
    bottom
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
