//! Chart axes: where the ticks go and how their labels read. Labels are in human units (500 ms,
//! 10 s, 150k msg/s, 75 MiB), never raw numbers a reader has to divide in their head.

/// What an axis' numbers are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Run time, in seconds.
    Seconds,
    /// A latency, in µs.
    Micros,
    /// Messages per second.
    Rate,
    /// Something else per second (the declare scenario's changes/s).
    PerSecond(&'static str),
    /// A plain count (messages queued, changes answered).
    Count,
    /// Memory, in KiB.
    Kib,
    /// CPU in percent of one core.
    Percent,
}

/// Linear, or logarithmic (decades; the axis title says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    Linear,
    Log,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    pub value: f64,
    pub label: String,
}

/// An axis laid out over `min..=max` with its ticks.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub min: f64,
    pub max: f64,
    pub scale: Scale,
    pub ticks: Vec<Tick>,
}

impl Axis {
    /// A linear axis from 0 to at least `data_max`, with about `target` ticks at 1, 2 or 5
    /// times a power of ten (of the display unit: MiB ticks for memory).
    pub fn linear(data_max: f64, unit: Unit, target: usize) -> Axis {
        let factor = display_factor(unit, data_max);
        // An empty chart still gets an axis from 0 to 1.
        let max = if data_max > 0.0 {
            data_max / factor
        } else {
            1.0
        };
        let step = nice_step(max / target.max(1) as f64);
        let top = (max / step).ceil().max(1.0) * step;
        let count = (top / step).round() as usize;
        let ticks = (0..=count)
            .map(|i| {
                let value = i as f64 * step * factor;
                Tick {
                    value,
                    label: format_value(value, unit),
                }
            })
            .collect();
        Axis {
            min: 0.0,
            max: top * factor,
            scale: Scale::Linear,
            ticks,
        }
    }

    /// A log axis over whole decades around `data_min..=data_max` (both positive).
    pub fn log(data_min: f64, data_max: f64, unit: Unit) -> Axis {
        let low = data_min.max(1.0).log10().floor() as i32;
        let high = (data_max.max(1.0).log10().ceil() as i32).max(low + 1);
        let ticks = (low..=high)
            .map(|e| {
                let value = 10f64.powi(e);
                Tick {
                    value,
                    label: format_value(value, unit),
                }
            })
            .collect();
        Axis {
            min: 10f64.powi(low),
            max: 10f64.powi(high),
            scale: Scale::Log,
            ticks,
        }
    }

    /// Where `value` falls on the axis, from 0 (min) to 1 (max), clamped.
    pub fn fraction(&self, value: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (value - self.min) / (self.max - self.min),
            Scale::Log => {
                let v = value.max(self.min).log10();
                (v - self.min.log10()) / (self.max.log10() - self.min.log10())
            }
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// The display unit's size in the value's unit: memory ticks count MiB (GiB past 10 GiB).
fn display_factor(unit: Unit, max: f64) -> f64 {
    match unit {
        Unit::Kib if max >= 10.0 * 1024.0 * 1024.0 => 1024.0 * 1024.0,
        Unit::Kib => 1024.0,
        _ => 1.0,
    }
}

/// The smallest of 1, 2, 5 × 10^k at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = if raw.is_finite() && raw > 0.0 {
        raw
    } else {
        1.0
    };
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// A number to three significant digits (whole numbers in full) without trailing zeros: 1.5,
/// 0.25, 20, 154.
pub fn trim_number(v: f64) -> String {
    let decimals = match v.abs() {
        a if a >= 100.0 => 0,
        a if a >= 10.0 => 1,
        _ => 2,
    };
    let text = format!("{v:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// 150000 → "150k", 2500000 → "2.5M".
pub fn short_count(v: f64) -> String {
    match v.abs() {
        a if a >= 1e9 => format!("{}G", trim_number(v / 1e9)),
        a if a >= 1e6 => format!("{}M", trim_number(v / 1e6)),
        a if a >= 1e3 => format!("{}k", trim_number(v / 1e3)),
        _ => trim_number(v),
    }
}

/// A duration given in µs: "250 µs", "2.1 ms", "10 s".
pub fn micros(us: f64) -> String {
    match us.abs() {
        0.0 => "0".to_string(),
        a if a >= 1e6 => format!("{} s", trim_number(us / 1e6)),
        a if a >= 1e3 => format!("{} ms", trim_number(us / 1e3)),
        _ => format!("{} µs", trim_number(us)),
    }
}

/// A value in `unit`, as an axis or a verdict shows it.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Seconds => micros(value * 1e6),
        Unit::Micros => micros(value),
        Unit::Rate => format!("{} msg/s", short_count(value)),
        Unit::PerSecond(what) => format!("{} {what}/s", short_count(value)),
        Unit::Count => short_count(value),
        Unit::Kib if value.abs() >= 10.0 * 1024.0 * 1024.0 => {
            format!("{} GiB", trim_number(value / 1024.0 / 1024.0))
        }
        Unit::Kib => format!("{} MiB", trim_number(value / 1024.0)),
        Unit::Percent => format!("{} %", trim_number(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(axis: &Axis) -> Vec<&str> {
        axis.ticks.iter().map(|t| t.label.as_str()).collect()
    }

    #[test]
    fn labels_are_in_human_units() {
        assert_eq!(format_value(10_000_000.0, Unit::Micros), "10 s");
        assert_eq!(format_value(2_100.0, Unit::Micros), "2.1 ms");
        assert_eq!(format_value(250.0, Unit::Micros), "250 µs");
        assert_eq!(format_value(0.05, Unit::Seconds), "50 ms");
        assert_eq!(format_value(150_000.0, Unit::Rate), "150k msg/s");
        assert_eq!(format_value(1_500_000.0, Unit::Rate), "1.5M msg/s");
        assert_eq!(format_value(76_800.0, Unit::Kib), "75 MiB");
        assert_eq!(format_value(20_000_000.0, Unit::Kib), "19.1 GiB");
        assert_eq!(format_value(150.0, Unit::Percent), "150 %");
        assert_eq!(
            format_value(25.0, Unit::PerSecond("changes")),
            "25 changes/s"
        );
    }

    #[test]
    fn linear_ticks_are_round_and_cover_the_data() {
        let axis = Axis::linear(143_000.0, Unit::Rate, 5);
        assert_eq!(
            labels(&axis),
            ["0 msg/s", "50k msg/s", "100k msg/s", "150k msg/s"]
        );
        assert_eq!(axis.max, 150_000.0);
        let time = Axis::linear(0.13, Unit::Seconds, 6);
        assert_eq!(labels(&time), ["0", "50 ms", "100 ms", "150 ms"]);
        let memory = Axis::linear(80_000.0, Unit::Kib, 4);
        assert_eq!(
            labels(&memory),
            ["0 MiB", "20 MiB", "40 MiB", "60 MiB", "80 MiB"]
        );
        assert_eq!(Axis::linear(0.0, Unit::Count, 5).max, 1.0, "empty data");
    }

    #[test]
    fn log_ticks_are_decades() {
        let axis = Axis::log(80.0, 10_000_000.0, Unit::Micros);
        assert_eq!(
            labels(&axis),
            ["10 µs", "100 µs", "1 ms", "10 ms", "100 ms", "1 s", "10 s"]
        );
        assert!((axis.fraction(1000.0) - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(axis.fraction(0.0), 0.0);
    }
}
