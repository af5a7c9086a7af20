//! The one-line progress display on stderr, refreshed each second, shown only when stderr is a
//! terminal so logs and CI output stay clean.

use std::io::{IsTerminal, Write};

use super::sampler::Series;

/// Writes the progress line in place (carriage return, no newline) while enabled.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    shown: bool,
}

impl Progress {
    /// Enabled when asked for and stderr is a terminal.
    pub fn new(wanted: bool) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    pub fn update(&mut self, series: &Series) {
        if !self.enabled {
            return;
        }
        let line = format_line(series);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line:<110}");
        let _ = err.flush();
        self.shown = true;
    }

    /// Ends the line so later output starts on a fresh one.
    pub fn finish(&mut self) {
        if self.shown {
            eprintln!();
            self.shown = false;
        }
    }
}

/// The text of the progress line for the latest sample.
pub fn format_line(series: &Series) -> String {
    let last = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
    let depth = match series.queue_depth.last() {
        Some(Some(depth)) => depth.to_string(),
        _ => "?".to_string(),
    };
    let mut line = format!(
        "[{:>5.0}s] published {:>9.0}/s  confirmed {:>9.0}/s  delivered {:>9.0}/s  depth {:>8}  hareperf cpu {:>4.0}%",
        series.t_s.last().copied().unwrap_or(0.0),
        last(&series.published_per_s),
        last(&series.confirmed_per_s),
        last(&series.delivered_per_s),
        depth,
        last(&series.client_cpu_percent),
    );
    if let Some(&changes) = series.metadata_changes_per_s.last().filter(|c| **c > 0.0) {
        line.push_str(&format!("  metadata {changes:>6.0}/s"));
    }
    if let Some(Some(cpu)) = series.broker_cpu_percent.last() {
        line.push_str(&format!("  broker cpu {cpu:>4.0}%"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_the_latest_sample() {
        let series = Series {
            t_s: vec![1.0, 2.0],
            published_per_s: vec![10.0, 1234.0],
            queue_depth: vec![None, Some(77)],
            broker_cpu_percent: vec![None, Some(55.0)],
            ..Default::default()
        };
        let line = format_line(&series);
        assert!(line.contains("2s]"), "{line}");
        assert!(line.contains("published      1234/s"), "{line}");
        assert!(line.contains("depth       77"), "{line}");
        assert!(line.contains("broker cpu   55%"), "{line}");
        assert!(!line.contains("metadata"), "no metadata changes, no column");
        let declaring = Series {
            t_s: vec![1.0],
            metadata_changes_per_s: vec![551.0],
            ..Default::default()
        };
        assert!(format_line(&declaring).contains("metadata    551/s"));
        assert!(format_line(&Series::default()).contains("depth        ?"));
    }
}
