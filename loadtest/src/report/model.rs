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
use crate::measure::rate_windows::RateCurve;
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
    /// Time from the first publish to the last publish or, with confirms, the last confirm
    /// (`publish_end_s - publish_start_s`).
    pub publish_duration_s: f64,
    /// When the first message was published, in seconds since the run started (µs-exact, like
    /// every `*_s` instant below; they all share the run's monotonic clock).
    #[serde(default)]
    pub publish_start_s: Option<f64>,
    /// When the last message was published or, with confirms, confirmed.
    #[serde(default)]
    pub publish_end_s: Option<f64>,
    /// When a consumer accepted the last message it accepted.
    #[serde(default)]
    pub deliver_end_s: Option<f64>,
    /// Time from the first publish to the last accepted delivery.
    #[serde(default)]
    pub deliver_duration_s: f64,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub deliveries: u64,
    pub accepted: u64,
    /// Deliveries consumers refused with requeue (nack or reject).
    pub refused: u64,
    pub redelivered_deliveries: u64,
    /// Published messages over `publish_duration_s`.
    pub publish_rate_per_s: f64,
    /// Accepted deliveries over `deliver_duration_s` (first publish to last accept).
    pub deliver_rate_per_s: f64,
    /// backlog: when the last message of the flood was confirmed.
    #[serde(default)]
    pub flood_end_s: Option<f64>,
    /// backlog: confirmed messages per second from the first publish to `flood_end_s`.
    #[serde(default)]
    pub flood_rate_per_s: Option<f64>,
    /// backlog: when the last outstanding message was accepted (the queue was drained).
    #[serde(default)]
    pub drain_end_s: Option<f64>,
    /// backlog: messages accepted in the trouble and recovery phases per second from
    /// `flood_end_s` to `drain_end_s`. The messages stalled consumers hold come back only when
    /// the trouble phase ends, so this never beats backlog ÷ trouble time.
    #[serde(default)]
    pub drain_rate_per_s: Option<f64>,
    /// backlog: when every message but those the stalled consumers still held at the end of
    /// the trouble phase had been accepted (`drain_end_s` if the recovery consumers had more
    /// than those to do).
    #[serde(default)]
    pub drain_unheld_end_s: Option<f64>,
    /// backlog: messages accepted by `drain_unheld_end_s`, per second from `flood_end_s`: the
    /// drain rate without the wait for the held messages.
    #[serde(default)]
    pub drain_unheld_rate_per_s: Option<f64>,
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
    /// The broker's CPU (utime + stime) from just after hareperf's setup connection opened to
    /// the end of the run, after the queues were deleted: the window of every `broker_*`
    /// count below.
    pub broker_cpu_s: Option<f64>,
    pub broker_cpu_percent: Option<f64>,
    /// `broker_cpu_s` ÷ `published`, in µs.
    #[serde(default)]
    pub broker_cpu_us_per_message: Option<f64>,
    /// Voluntary + involuntary context switches summed over the broker's threads (from
    /// `/proc/PID/task/*/status`), end − start; threads that exited during the run are lost.
    #[serde(default)]
    pub broker_context_switches: Option<u64>,
    /// `broker_context_switches` ÷ `published`.
    #[serde(default)]
    pub broker_context_switches_per_message: Option<f64>,
    /// The broker's syscalls as counted by `perf stat` (`--broker-perf`).
    #[serde(default)]
    pub broker_syscalls: Option<u64>,
    #[serde(default)]
    pub broker_syscalls_per_message: Option<f64>,
    /// The broker's `io_uring_enter` calls as counted by `perf stat` (`--broker-perf`).
    #[serde(default)]
    pub broker_io_uring_enter: Option<u64>,
    #[serde(default)]
    pub broker_io_uring_enter_per_message: Option<f64>,
    /// Context switches as counted by `perf stat` (`--broker-perf`): a check on
    /// `broker_context_switches`, counting threads that exited too.
    #[serde(default)]
    pub broker_perf_context_switches: Option<u64>,
    /// Why `--broker-perf` counted nothing (no perf, no permission, no tracepoints).
    #[serde(default)]
    pub broker_perf_unavailable: Option<String>,
    /// The largest broker RSS read: per-second samples, phase boundaries and the run's end.
    pub broker_rss_max_kib: Option<u64>,
    /// Broker RSS when the run started (after connecting, before declaring anything).
    #[serde(default)]
    pub broker_rss_start_kib: Option<u64>,
    /// backlog: broker RSS right after the flood, with the whole backlog queued.
    #[serde(default)]
    pub broker_rss_flood_end_kib: Option<u64>,
    /// Broker RSS at the end of the run, before hareperf deletes its queues: with `-y 0`, the
    /// cost of holding what was published.
    #[serde(default)]
    pub broker_rss_end_kib: Option<u64>,
    /// The deepest the queues were seen: every poll (`--depth-interval-ms`) and phase boundary.
    pub queue_depth_max: Option<u64>,
    /// Ready messages when the run ended, before hareperf deletes its queues.
    #[serde(default)]
    pub queue_depth_end: Option<u64>,
    /// declare: the rate curve of each kind of durable metadata change.
    #[serde(default)]
    pub declare: Option<DeclareResults>,
    /// retry: refusals through a TTL retry queue until every message is acked.
    #[serde(default)]
    pub retry: Option<RetryResults>,
    /// delayed: how late delayed messages fired, and what holding them cost the broker.
    #[serde(default)]
    pub delayed: Option<DelayedResults>,
    /// soak: kills and restarts, and what the checks found.
    #[serde(default)]
    pub soak: Option<SoakResults>,
}

/// The soak scenario's figures and verdicts (`scenario/soak/`). `failures` lists every
/// violated check in words; the run passes only when it is empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SoakResults {
    /// SIGKILLs sent to the broker (0 without `--restart-cmd`).
    pub kills: u64,
    /// Starts after a kill or a clean stop that reached AMQP (not the first start).
    pub restarts: u64,
    /// Time from spawning the command to an accepted AMQP handshake, per restart.
    pub time_to_accept_median_ms: Option<f64>,
    pub time_to_accept_max_ms: Option<f64>,
    /// Messages published (every queue), and the checked ones the broker took responsibility
    /// for: confirmed (`basic.ack`) or committed (`tx.commit-ok`).
    pub published: u64,
    pub confirmed: u64,
    pub committed: u64,
    pub nacked: u64,
    /// Deliveries of checked queues, how many had `redelivered` set, acks, refusals (with
    /// requeue).
    pub consumed: u64,
    pub redelivered: u64,
    pub acked: u64,
    pub refused: u64,
    /// Acks proven on disk by a confirmed marker (see loadtest/README.md, "soak").
    pub proven_acks: u64,
    /// Deliveries of an id whose ack was sent but not proven: allowed after a crash.
    pub acked_again: u64,
    /// Deliveries whose body carried no id.
    pub unknown_deliveries: u64,
    /// Confirmed or committed checked messages never acked by the end: must be 0.
    pub lost: u64,
    pub lost_sample: Vec<u64>,
    /// Deliveries of a message whose ack was proven on disk, plus messages left in the
    /// checked queues after the final clean restart (all of them were acked): must be 0.
    pub acked_returns: u64,
    pub acked_returns_sample: Vec<u64>,
    /// Messages found in the checked queues after the clean stop and start that end the run.
    pub left_after_clean_restart: Option<u64>,
    /// True when the final drain acked every confirmed message.
    pub drained: bool,
    pub crashed_consumers: u64,
    pub churned_queues: u64,
    pub dead_lettered: u64,
    pub connections: u64,
    /// The broker's largest resident memory and open descriptor count, sampled every second.
    pub rss_max_kib: Option<u64>,
    pub fds_max: Option<u64>,
    /// The largest of each, per broker process (one per start), in start order.
    pub rss_max_per_start_kib: Vec<u64>,
    pub fds_max_per_start: Vec<u64>,
    /// Client errors by kind (mostly the kills, seen from the clients).
    pub client_errors: std::collections::BTreeMap<String, u64>,
    pub failures: Vec<String>,
}

/// The retry scenario's figures. Loss and duplicates are in `verification` (acked ids against
/// published ids); `deliver_latency` is the time from the first publish to the final ack.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryResults {
    /// The queue consumed (it dead-letters refused messages to `retry_queue`).
    pub work_queue: String,
    /// The queue refused messages wait in for `ttl_ms`, then go back to `work_queue`.
    pub retry_queue: String,
    pub ttl_ms: u64,
    /// Messages acked (distinct ids).
    pub acked: u64,
    /// Every delivery, refused or acked.
    pub deliveries: u64,
    /// Deliveries refused with requeue=false.
    pub refused: u64,
    /// `deliveries` ÷ `acked`.
    pub deliveries_per_message: Option<f64>,
    /// `[k, messages]`: messages acked at their k-th delivery.
    pub deliveries_histogram: Vec<(u64, u64)>,
    /// Messages acked after another number of deliveries than the plan (a refusal the
    /// broker did not count in `x-death`, or a redelivery).
    pub off_plan: u64,
    /// First publish to the last final ack.
    pub end_s: Option<f64>,
    /// `acked` ÷ (`end_s` − first publish): messages fully done per second.
    pub acked_rate_per_s: Option<f64>,
}

/// The delayed scenario's figures. `deliver_latency` is publish → delivery (delay included);
/// `lateness` is what matters: delivery − (publish + delay).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DelayedResults {
    /// `ttl-dlx` or `plugin`.
    pub mode: String,
    pub window_s: f64,
    /// Where the messages wait: the holding queue (ttl-dlx) or the delayed exchange (plugin).
    pub holding: String,
    /// The queue consumed.
    pub target_queue: String,
    /// Messages received (distinct ids).
    pub fired: u64,
    pub lateness: Option<LatencySummary>,
    /// Messages delivered more than 1 ms before their time, and the earliest of them.
    pub early: u64,
    pub early_max_us: u64,
    /// When the last message was received.
    pub fire_end_s: Option<f64>,
    /// Broker RSS when publishing started, and when the last message had been confirmed.
    pub broker_rss_before_kib: Option<u64>,
    pub broker_rss_published_kib: Option<u64>,
    /// (`broker_rss_published_kib` − `broker_rss_before_kib`) ÷ messages, in bytes. The
    /// messages that fired during publishing are gone by then, so this slightly flatters
    /// short windows.
    pub broker_rss_per_message_bytes: Option<f64>,
}

/// The declare scenario's figures: one curve per kind of durable metadata change, in the order
/// the run made them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeclareResults {
    /// The run's queues are `<name_prefix>-<i>` (i from 0) and its exchange `<name_prefix>`.
    pub name_prefix: String,
    /// Connections that shared the changes, each waiting for every answer before its next
    /// request.
    pub connection_count: u64,
    pub curves: Vec<ChangeCurve>,
}

impl DeclareResults {
    /// The curve of `change`, if the run made that change.
    pub fn curve(&self, change: MetadataChange) -> Option<&ChangeCurve> {
        self.curves.iter().find(|c| c.change == change)
    }
}

/// The kinds of durable metadata change the declare scenario times.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetadataChange {
    /// A durable queue declared.
    QueueDeclare,
    /// A queue bound to a durable exchange.
    QueueBind,
    /// A durable queue deleted.
    QueueDelete,
}

impl MetadataChange {
    /// Every change, in the order the scenario makes them.
    pub const ALL: [MetadataChange; 3] = [
        MetadataChange::QueueDeclare,
        MetadataChange::QueueBind,
        MetadataChange::QueueDelete,
    ];

    /// The AMQP method that makes the change.
    pub fn method_name(self) -> &'static str {
        match self {
            MetadataChange::QueueDeclare => "queue.declare",
            MetadataChange::QueueBind => "queue.bind",
            MetadataChange::QueueDelete => "queue.delete",
        }
    }
}

/// How fast one kind of change was answered as the metadata grew (or, for deletes, shrank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeCurve {
    pub change: MetadataChange,
    /// Changes asked for; `rates.count` of them were answered (fewer only after an error).
    pub requested: u64,
    #[serde(flatten)]
    pub rates: RateCurve,
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
    /// Runs without consumers (`-y 0`): the messages left in the queues at the end (the final
    /// depth), which are then not counted as lost. `None` when the run had consumers.
    #[serde(default)]
    pub left_queued: Option<u64>,
}

/// A named stretch of a run. `start_s` is when the scenario entered the phase; `end_s` is
/// exact where the phase ends with an event (the flood with its last confirm, a publishing
/// phase with its last publish or confirm, a drain with its last accepted message) and when
/// the next phase started otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    #[serde(default)]
    pub duration_s: f64,
    #[serde(default)]
    pub kind: PhaseKind,
    /// What the phase did: messages confirmed (published, without confirms) in a publish
    /// phase, accepted by consumers in a consume phase, metadata changes answered in a
    /// metadata phase.
    #[serde(default)]
    pub messages: u64,
    /// `messages / duration_s`.
    #[serde(default)]
    pub rate_per_s: f64,
    /// Ready messages polled right when the phase started and ended.
    #[serde(default)]
    pub queue_depth_start: Option<u64>,
    #[serde(default)]
    pub queue_depth_end: Option<u64>,
}

/// What a phase's `messages` counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    /// Messages confirmed (published, without confirms).
    #[default]
    Publish,
    /// Messages accepted by consumers.
    Consume,
    /// Durable metadata changes the broker answered (the declare scenario).
    Metadata,
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
    /// True when the run went as planned and lost nothing: hareperf's exit status. A run
    /// without consumers loses nothing by definition; it fails when a publish went unconfirmed
    /// or the queues hold less than was confirmed (both are in `errors`).
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && self.results.verification.lost == 0
            && self
                .results
                .soak
                .as_ref()
                .is_none_or(|soak| soak.failures.is_empty())
    }

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
            duration_s: 9.5,
            kind: PhaseKind::Publish,
            messages: 1_000_000,
            rate_per_s: 1_000_000.0 / 9.5,
            queue_depth_start: Some(0),
            queue_depth_end: Some(42),
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

/// A declare run's report for the report modules' tests: 300 queues declared in windows of
/// 100 at 100, 50 and 25 declares/s (the rate halves each window), then deleted at a steady
/// 200/s.
#[cfg(test)]
pub(crate) fn sample_declare_report() -> Report {
    let ms = 1_000_000u64;
    let mut declared: Vec<u64> = (1..=300u64)
        .map(|i| match i {
            1..=100 => i * 10 * ms,
            101..=200 => 1000 * ms + (i - 100) * 20 * ms,
            _ => 3000 * ms + (i - 200) * 40 * ms,
        })
        .collect();
    let mut deleted: Vec<u64> = (1..=300u64).map(|i| 7000 * ms + i * 5 * ms).collect();
    let curve = |change, instants: &mut Vec<u64>, start_ns| ChangeCurve {
        change,
        requested: 300,
        rates: RateCurve::from_instants(start_ns, instants, 100),
    };
    let mut report = sample_report(0.0);
    report.scenario = "declare".into();
    report.parameters =
        RunArgs::parse_from(["declare", "--declare-queues", "300"]).expect("valid arguments");
    report.results = Results {
        duration_s: 8.6,
        publish_duration_s: 8.6,
        deliver_duration_s: 8.6,
        declare: Some(DeclareResults {
            name_prefix: "hareperf-declare-1".into(),
            connection_count: 1,
            curves: vec![
                curve(MetadataChange::QueueDeclare, &mut declared, 0),
                curve(MetadataChange::QueueDelete, &mut deleted, 7000 * ms),
            ],
        }),
        ..Default::default()
    };
    report.phases.clear();
    report
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
        assert_eq!(read.phases, report.phases);
        let declare = sample_declare_report();
        declare.write_json(&path).unwrap();
        let read = Report::read_json(&path).unwrap();
        assert_eq!(
            read.results, declare.results,
            "the curves read back exactly"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"change\": \"queue_declare\""),
            "kinds of change are words"
        );
        assert!(
            text.contains("\"last_to_first_ratio\""),
            "a curve's figures sit next to its kind of change"
        );
        std::fs::write(&path, "{").unwrap();
        assert!(Report::read_json(&path).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn reports_without_the_exact_timings_still_read() {
        let mut value = serde_json::to_value(sample_report(1.0)).unwrap();
        let results = value["results"].as_object_mut().unwrap();
        for field in [
            "publish_start_s",
            "flood_rate_per_s",
            "broker_rss_end_kib",
            "queue_depth_end",
        ] {
            assert!(results.remove(field).is_some(), "{field} is written");
        }
        let phase = value["phases"][0].as_object_mut().unwrap();
        phase.retain(|k, _| ["name", "start_s", "end_s"].contains(&k.as_str()));
        let parameters = value["parameters"].as_object_mut().unwrap();
        parameters.remove("depth_interval_ms");
        assert!(
            parameters.remove("declare").is_some(),
            "declare flags are written"
        );
        let read: Report = serde_json::from_value(value).unwrap();
        assert_eq!(read.results.flood_rate_per_s, None);
        assert_eq!(read.results.declare, None);
        assert_eq!(read.parameters.declare.declare_queues, 100_000);
        assert_eq!(read.phases[0].kind, PhaseKind::Publish);
        assert_eq!(read.phases[0].messages, 0);
        assert_eq!(
            read.parameters.depth_interval_ms,
            crate::measure::sampler::DEPTH_INTERVAL_DEFAULT_MS
        );
    }
}
