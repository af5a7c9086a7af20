//! The report of one run, as written to JSON and read back by `compare`.
//!
//! The format is versioned by `format_version`; fields are only ever added, with serde
//! defaults, so older reports stay comparable.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::cli::RunArgs;
use crate::client::ServerInfo;
use crate::measure::latency::LatencySummary;
use crate::measure::machine::Machine;
use crate::measure::sampler::Series;

/// The current report format.
pub const REPORT_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub format_version: u32,
    pub hareperf_version: String,
    pub scenario: String,
    pub started_unix_ms: u64,
    pub parameters: RunArgs,
    pub broker: BrokerReport,
    pub machine: Machine,
    pub results: Results,
    /// Named phases of the run (the backlog scenario's flood, trouble and recovery).
    #[serde(default)]
    pub phases: Vec<Phase>,
    #[serde(default)]
    pub consumers: Vec<ConsumerReport>,
    pub series: Series,
    /// Errors of workers and setup; an empty list means the run went as planned.
    #[serde(default)]
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BrokerReport {
    pub label: String,
    pub server: ServerInfo,
    pub pid: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Results {
    pub duration_s: f64,
    /// Time from the first to the last publish.
    pub publish_duration_s: f64,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub deliveries: u64,
    pub accepted: u64,
    /// Deliveries consumers refused with requeue (nack or reject).
    pub refused: u64,
    pub redelivered_deliveries: u64,
    /// Mean publish rate over the publishing time.
    pub publish_rate_per_s: f64,
    /// Mean accept rate over the whole run.
    pub deliver_rate_per_s: f64,
    pub publish_rate_peak_per_s: f64,
    pub deliver_rate_peak_per_s: f64,
    pub confirm_latency: Option<LatencySummary>,
    pub deliver_latency: Option<LatencySummary>,
    /// Connection handshake latency (the churn scenario).
    pub connect_latency: Option<LatencySummary>,
    pub connections_opened: u64,
    pub verification: Verification,
    pub client_cpu_s: f64,
    /// hareperf's CPU over the run, in percent of one core.
    pub client_cpu_percent: f64,
    pub broker_cpu_s: Option<f64>,
    pub broker_cpu_percent: Option<f64>,
    pub broker_rss_max_kib: Option<u64>,
    pub queue_depth_max: Option<u64>,
}

/// The proof that every message arrived: ids published against ids accepted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Message deliveries owed: each published id once per queue it was routed to.
    pub expected: u64,
    pub received_unique: u64,
    /// Expected ids never accepted by the end of the run.
    pub lost: u64,
    /// Accepted more than once.
    pub duplicates: u64,
    /// Distinct ids accepted from a delivery flagged redelivered.
    pub redelivered_accepted: u64,
    /// Some of the lost ids, as `producer:sequence`.
    pub lost_sample: Vec<String>,
    /// Messages held unacked by consumers whose connection was dropped.
    pub dropped_held: u64,
    /// How many of those came back and were accepted with the redelivered flag.
    pub dropped_returned_redelivered: u64,
    /// Messages held by never-ack consumers until they were closed.
    pub stalled_held: u64,
    pub stalled_returned_redelivered: u64,
    /// True when the consumers drained everything before the run ended.
    pub drained: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ConsumerReport {
    pub index: usize,
    pub queue_group: usize,
    pub behaviour: String,
    pub deliveries: u64,
    pub accepted: u64,
    pub refused: u64,
    pub held: u64,
    pub dropped: bool,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
    }

    pub fn read_json(path: &Path) -> anyhow::Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// A small, fully populated report for the report modules' tests.
#[cfg(test)]
pub(crate) fn sample_report(publish_rate_per_s: f64) -> Report {
    use crate::measure::latency::LatencyHistogram;

    let mut latency = LatencyHistogram::default();
    for us in [100u64, 200, 300, 5000] {
        latency.record_ns(us * 1000);
    }
    let parameters = RunArgs::parse_from(["throughput", "-x", "2"]).expect("valid arguments");
    Report {
        format_version: REPORT_FORMAT_VERSION,
        hareperf_version: "0.1.0".into(),
        scenario: "throughput".into(),
        started_unix_ms: 1,
        parameters,
        broker: BrokerReport {
            label: "Hare 0.1.0".into(),
            server: ServerInfo::default(),
            pid: None,
        },
        machine: Machine::default(),
        results: Results {
            duration_s: 10.0,
            publish_duration_s: 10.0,
            published: 1_000_000,
            accepted: 1_000_000,
            publish_rate_per_s,
            deliver_rate_per_s: 90_000.0,
            deliver_latency: latency.summary(),
            client_cpu_s: 2.5,
            client_cpu_percent: 25.0,
            queue_depth_max: Some(42),
            ..Default::default()
        },
        phases: vec![Phase {
            name: "publish".into(),
            start_s: 0.5,
            end_s: 10.0,
        }],
        consumers: Vec::new(),
        series: Series {
            t_s: vec![1.0, 2.0, 3.0],
            published_per_s: vec![10.0, 20.0, 15.0],
            accepted_per_s: vec![5.0, 20.0, 20.0],
            queue_depth: vec![Some(1), None, Some(42)],
            client_cpu_percent: vec![20.0, 30.0, 25.0],
            broker_cpu_percent: vec![None, None, None],
            ..Default::default()
        },
        errors: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_exactly() {
        let report = sample_report(123_456.789);
        let dir = std::env::temp_dir().join(format!("hareperf-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("r.json");
        report.write_json(&path).unwrap();
        let read = Report::read_json(&path).unwrap();
        assert_eq!(read.results, report.results);
        assert_eq!(read.series, report.series);
        assert_eq!(read.parameters.producer_count(1), 2);
        std::fs::write(&path, "{").unwrap();
        assert!(Report::read_json(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
