//! The one-line progress display on stderr, refreshed each second, shown only when stderr is a
//! terminal so logs and CI output stay clean.

use std::io::{IsTerminal, Write};
use std::time::Instant;

use crate::report::axis::short_count;

use super::counters::CounterSnapshot;
use super::run_status::RunStatus;
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

    pub fn update(&mut self, series: &Series, live: &Live) {
        if !self.enabled {
            return;
        }
        let line = format_line(series, live);
        let mut err = std::io::stderr().lock();
        // Padded so a shorter line wipes the end of a longer one.
        let _ = write!(err, "\r{line:<LINE_WIDTH$}");
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

/// The widest the line is meant to get (longest phase name, every optional field).
pub const LINE_WIDTH: usize = 130;

/// What the line says besides the latest sample: where the scenario is, and what the run can
/// already tell about loss.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Live {
    /// The phase the scenario is in; `None` before the first.
    pub phase: Option<String>,
    /// Seconds until the current phase's planned end, when it runs for a set time.
    pub remaining_s: Option<f64>,
    /// `None` until something was published: nothing can be owed or lost before.
    pub loss: Option<LossSoFar>,
}

/// Loss as far as it is known while the run goes on. Only the end can say what was lost: a
/// message not yet accepted may still be queued, in flight or held unacked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LossSoFar {
    /// Deliveries consumers owe: each publish once per queue group it reaches, less the
    /// distinct acceptances so far. What is still owed when the run ends is lost.
    pub owed: u64,
    /// Publishes the broker nacked or returned unroutable: it did not take them in.
    pub refused: u64,
    /// Ids a consumer accepted a second time (duplicates across consumers are found only at
    /// the end).
    pub duplicates: u64,
}

impl Live {
    /// The view at `now` from the counters and the scenario's status.
    pub fn now(counters: &CounterSnapshot, status: &RunStatus, now: Instant) -> Live {
        let phase = status.phase();
        let remaining_s = phase
            .planned_end
            .map(|end| end.saturating_duration_since(now).as_secs_f64());
        let loss = (counters.published > 0).then(|| {
            let owed_total = counters
                .published
                .saturating_mul(status.deliveries_per_publish());
            let unique_accepted = counters.accepted.saturating_sub(counters.duplicates);
            LossSoFar {
                owed: owed_total.saturating_sub(unique_accepted),
                refused: counters.nacked + counters.returned,
                duplicates: counters.duplicates,
            }
        });
        Live {
            phase: phase.name,
            remaining_s,
            loss,
        }
    }
}

/// The text of the progress line for the latest sample, at most about `LINE_WIDTH` columns:
/// `[trouble] 12s / ~18s left  pub     0/s conf     0/s deliv 3.82k/s  depth  1.2M  owed  1.2M
/// dup 12  cpu  95%  broker 180%`.
pub fn format_line(series: &Series, live: &Live) -> String {
    let last = |v: &Vec<f64>| short_count(v.last().copied().unwrap_or(0.0));
    let depth = match series.queue_depth.last() {
        Some(Some(depth)) => short_count(*depth as f64),
        _ => "?".to_string(),
    };
    let elapsed = series.t_s.last().copied().unwrap_or(0.0);
    let mut line = match &live.phase {
        Some(phase) => format!("[{phase}] {elapsed:.0}s"),
        None => format!("{elapsed:.0}s"),
    };
    if let Some(remaining) = live.remaining_s {
        // "~": the phase ends when the scenario next looks at the clock, and a drain that
        // follows it lasts as long as it takes.
        line.push_str(&format!(" / ~{remaining:.0}s left"));
    }
    line.push_str(&format!(
        "  pub {:>5}/s conf {:>5}/s deliv {:>5}/s  depth {depth:>5}",
        last(&series.published_per_s),
        last(&series.confirmed_per_s),
        last(&series.delivered_per_s),
    ));
    if let Some(loss) = live.loss {
        let count = |n: u64| short_count(n as f64);
        line.push_str(&format!("  owed {:>5}", count(loss.owed)));
        // Shown once they happen: zeros would cost a sixth of the line on every healthy run.
        if loss.refused > 0 {
            line.push_str(&format!(" refused {}", count(loss.refused)));
        }
        if loss.duplicates > 0 {
            line.push_str(&format!(" dup {}", count(loss.duplicates)));
        }
    }
    if let Some(&changes) = series.metadata_changes_per_s.last().filter(|c| **c > 0.0) {
        line.push_str(&format!("  metadata {:>5}/s", short_count(changes)));
    }
    line.push_str(&format!(
        "  cpu {:>3.0}%",
        series.client_cpu_percent.last().copied().unwrap_or(0.0)
    ));
    if let Some(Some(cpu)) = series.broker_cpu_percent.last() {
        line.push_str(&format!("  broker {cpu:>3.0}%"));
    }
    line
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let line = format_line(&series, &Live::default());
        assert!(line.starts_with("2s  pub"), "no phase yet: {line}");
        assert!(line.contains("pub 1.23k/s"), "{line}");
        assert!(line.contains("depth    77"), "{line}");
        assert!(line.contains("broker  55%"), "{line}");
        assert!(!line.contains("metadata"), "no metadata changes, no column");
        assert!(!line.contains("owed"), "nothing published, nothing owed");
        let declaring = Series {
            t_s: vec![1.0],
            metadata_changes_per_s: vec![551.0],
            ..Default::default()
        };
        let line = format_line(&declaring, &Live::default());
        assert!(line.contains("metadata   551/s"), "{line}");
        let line = format_line(&Series::default(), &Live::default());
        assert!(line.contains("depth     ?"), "{line}");
    }

    #[test]
    fn line_shows_phase_loss_so_far_and_remaining_time_when_planned() {
        let series = Series {
            t_s: vec![12.2],
            published_per_s: vec![150_000.0],
            queue_depth: vec![Some(1_200_000)],
            ..Default::default()
        };
        let mut live = Live {
            phase: Some("trouble".into()),
            remaining_s: Some(17.6),
            loss: Some(LossSoFar {
                owed: 1_200_000,
                refused: 3,
                duplicates: 12,
            }),
        };
        let line = format_line(&series, &live);
        assert!(
            line.starts_with("[trouble] 12s / ~18s left  pub  150k/s"),
            "{line}"
        );
        assert!(line.contains("owed  1.2M refused 3 dup 12"), "{line}");
        live.remaining_s = None;
        live.loss = Some(LossSoFar {
            owed: 5,
            ..Default::default()
        });
        let line = format_line(&series, &live);
        assert!(
            line.starts_with("[trouble] 12s  pub"),
            "a drain has no planned end: {line}"
        );
        assert!(!line.contains("left"), "{line}");
        assert!(
            line.contains("owed     5  cpu"),
            "no refusals, no duplicates: {line}"
        );
    }

    #[test]
    fn a_wide_line_fits() {
        let big = |v: f64| vec![v];
        let series = Series {
            t_s: big(3_599.0),
            published_per_s: big(1_234_567.0),
            confirmed_per_s: big(1_234_567.0),
            delivered_per_s: big(1_234_567.0),
            queue_depth: vec![Some(12_345_678)],
            client_cpu_percent: big(199.0),
            broker_cpu_percent: vec![Some(999.0)],
            ..Default::default()
        };
        let columns = |live: &Live| format_line(&series, live).chars().count();
        let mut live = Live {
            phase: Some("consumers joined".into()),
            remaining_s: Some(3_000.0),
            loss: Some(LossSoFar {
                owed: 12_345_678,
                ..Default::default()
            }),
        };
        assert!(
            columns(&live) <= LINE_WIDTH,
            "{}",
            format_line(&series, &live)
        );
        // A run in trouble: a shorter phase name, no plan, refusals and duplicates.
        live.phase = Some("recovery".into());
        live.remaining_s = None;
        live.loss = Some(LossSoFar {
            owed: 12_345_678,
            refused: 1_234,
            duplicates: 12_345,
        });
        assert!(
            columns(&live) <= LINE_WIDTH,
            "{}",
            format_line(&series, &live)
        );
    }

    #[test]
    fn loss_so_far_counts_fanout_deliveries_and_known_duplicates() {
        let status = RunStatus::default();
        let now = Instant::now();
        let nothing = Live::now(&CounterSnapshot::default(), &status, now);
        assert_eq!(
            nothing,
            Live::default(),
            "before the first phase and publish"
        );
        status.start_phase("publish");
        status.plan_end(now + Duration::from_secs(18));
        status.set_deliveries_per_publish(3);
        let counters = CounterSnapshot {
            published: 100,
            accepted: 250,
            duplicates: 10,
            nacked: 2,
            returned: 1,
            ..Default::default()
        };
        let live = Live::now(&counters, &status, now);
        assert_eq!(live.phase.as_deref(), Some("publish"));
        assert_eq!(live.remaining_s, Some(18.0));
        assert_eq!(
            live.loss,
            Some(LossSoFar {
                owed: 60,
                refused: 3,
                duplicates: 10
            }),
            "300 deliveries owed, 240 distinct ones accepted"
        );
        let later = Live::now(&counters, &status, now + Duration::from_secs(60));
        assert_eq!(later.remaining_s, Some(0.0), "late, never negative");
    }
}
