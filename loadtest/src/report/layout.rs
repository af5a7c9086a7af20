//! Where everything of a chart goes, decided before anything is drawn: every label gets a box,
//! placed so that none overlaps another or the plot area. Phase names sit in rows above the
//! plot (a name that would touch its neighbour moves to the next row), the legend wraps in rows
//! under it, and x tick labels are thinned until they fit side by side.

use super::axis::{Axis, Scale, Tick, Unit};
use super::chart::{Chart, Lane, XAxis};
use super::svg::{text_box, text_width, Anchor, Rect};

pub const WIDTH: f64 = 900.0;
const PLOT_HEIGHT: f64 = 240.0;
pub(super) const FONT: f64 = 12.0;
const MARGIN: f64 = 12.0;
/// The height of a row of labels.
const ROW: f64 = 17.0;
/// The coloured strip under a lane's phase names.
pub(super) const STRIP: f64 = 6.0;
/// The least room kept between two labels side by side.
const GAP: f64 = 8.0;
pub(super) const SWATCH: f64 = 30.0;

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
    pub(super) anchor: Anchor,
    pub(super) at: (f64, f64),
}

/// Where everything went.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    pub plot: Rect,
    pub labels: Vec<Label>,
    pub(super) x_axis: Axis,
    pub(super) y_axis: Axis,
    /// Per lane: the top of its strip.
    pub(super) strips: Vec<f64>,
    /// Per legend entry: where its swatch starts, on its text's baseline.
    pub(super) swatches: Vec<(f64, f64)>,
}

impl Layout {
    pub(super) fn x(&self, value: f64) -> f64 {
        self.plot.x + self.x_axis.fraction(value) * self.plot.w
    }

    pub(super) fn y(&self, value: f64) -> f64 {
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

/// The layout of `chart`.
pub(super) fn layout(chart: &Chart) -> Layout {
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
