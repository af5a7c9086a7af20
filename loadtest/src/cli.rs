//! The command line: `hareperf run <scenario> [flags]` and `hareperf compare A.json B.json ...`.
//! Flag names follow RabbitMQ PerfTest where PerfTest has one (short forms included), so a
//! PerfTest command line translates almost word for word.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::measure::sampler::DEPTH_INTERVAL_DEFAULT_MS;

#[derive(Debug, Parser)]
#[command(
    name = "hareperf",
    version,
    about = "Load generator and benchmark reporter for AMQP 0-9-1 brokers"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs a scenario and writes its report.
    Run(Box<RunArgs>),
    /// Prints a Markdown table comparing JSON reports, with ratios against the first, and
    /// with `--html` writes the comparison page with charts.
    Compare {
        /// Two or more reports written by `hareperf run --json`.
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Also write a self-contained HTML page: the table and every chart with a line per
        /// report, phases marked per report (with a single report: the page of `run --html`).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
        /// Treat reports named `<name>-<n>.json` as runs of one setup `<name>`: the table shows
        /// the median of each figure over the runs (loss and duplicates: the worst run), the
        /// charts the median run.
        #[arg(long)]
        median_runs: bool,
    },
}

/// The scenarios; each lives in its own file under `scenario/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// Producers and consumers flat out on one or more queues.
    Throughput,
    /// A fixed publish rate; the point is the latency distribution.
    Latency,
    /// One producer into a fanout exchange bound to N queues, one consumer each.
    Fanout,
    /// Producers first; consumers join later and must catch up on the backlog.
    ConsumersJoinLate,
    /// Connections opened and closed in a loop.
    Churn,
    /// The incident: a persistent flood, misbehaving consumers, then recovery.
    Backlog,
    /// Durable queues, bindings and deletes one after another: the cost of a metadata change
    /// as the metadata grows.
    Declare,
    /// Consumers refuse deliveries; a TTL retry queue with dead lettering sends them back
    /// until they are acked.
    Retry,
    /// Messages delayed over a window (per-message TTL and dead lettering, or the
    /// delayed-message exchange): how late each one fires.
    Delayed,
    /// A mixed durable workload while the broker is killed (SIGKILL) and restarted over and
    /// over: no confirmed message may be lost, no proven ack may come back, memory and
    /// descriptors must stay bounded.
    Soak,
}

impl ScenarioKind {
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::Throughput => "throughput",
            ScenarioKind::Latency => "latency",
            ScenarioKind::Fanout => "fanout",
            ScenarioKind::ConsumersJoinLate => "consumers_join_late",
            ScenarioKind::Churn => "churn",
            ScenarioKind::Backlog => "backlog",
            ScenarioKind::Declare => "declare",
            ScenarioKind::Retry => "retry",
            ScenarioKind::Delayed => "delayed",
            ScenarioKind::Soak => "soak",
        }
    }
}

/// Everything a run is parameterised by; stored verbatim in the JSON report.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct RunArgs {
    #[arg(value_enum)]
    pub scenario: ScenarioKind,
    /// Broker URI: amqp://, or amqps:// (TLS; needs --tls-ca or --insecure).
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub uri: String,
    /// CA bundle (PEM) an amqps:// broker's certificate is verified against.
    #[arg(long)]
    #[serde(default)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// amqps:// without verifying the broker's certificate (still encrypted): for a test
    /// broker with a self-made certificate.
    #[arg(long, conflicts_with = "tls_ca")]
    #[serde(default)]
    pub insecure: bool,
    /// Producer connections, one thread each [default: 1; backlog: 4; soak: 2].
    #[arg(short = 'x', long)]
    pub producers: Option<usize>,
    /// Consumer connections (one thread each).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (at least 16: the id and publish time).
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,
    /// Queue name (ignored when --queue-pattern is given).
    #[arg(short = 'u', long, default_value = "hareperf")]
    pub queue: String,
    /// Queue name pattern, `{}` replaced by 1..=--queue-count (e.g. `perf-{}`).
    #[arg(long)]
    pub queue_pattern: Option<String>,
    /// Number of queues made from --queue-pattern.
    #[arg(long, default_value_t = 1)]
    pub queue_count: usize,
    /// Exchange to publish to; "" is the default exchange (routing key = queue name).
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,
    /// Exchange type when --exchange is given.
    #[arg(short = 't', long = "type", default_value = "direct")]
    pub exchange_type: String,
    /// Routing key (default: the queue name, or the queue's binding key for a named exchange).
    #[arg(short = 'k', long)]
    pub routing_key: Option<String>,
    /// Consumer prefetch (basic.qos, per consumer); 0 = unlimited.
    #[arg(short = 'q', long, default_value_t = 1000)]
    pub prefetch: u16,
    /// Publisher confirms with at most this many unconfirmed messages per producer.
    #[arg(short = 'c', long)]
    pub confirm: Option<usize>,
    /// Persistent messages (delivery-mode 2) to durable queues.
    #[arg(short = 'f', long)]
    pub persistent: bool,
    /// Consume with no-ack (auto-ack).
    #[arg(short = 'a', long)]
    pub auto_ack: bool,
    /// Ack with multiple=true every N messages (and always before waiting for more).
    #[arg(short = 'A', long, default_value_t = 100)]
    pub multi_ack_every: u64,
    /// Messages per second per producer; 0 = unlimited.
    #[arg(short = 'r', long, default_value_t = 0.0)]
    pub rate: f64,
    /// Run time in seconds (publishing phase; soak: the kills, 60 s unless given).
    #[arg(short = 'z', long)]
    pub time: Option<f64>,
    /// Messages per producer (publishing stops at this count).
    #[arg(short = 'C', long)]
    pub pmessages: Option<u64>,
    /// Consumer delay per message in microseconds (a slow consumer).
    #[arg(short = 'L', long, default_value_t = 0)]
    pub consumer_latency_us: u64,
    /// Messages per write syscall.
    #[arg(long, default_value_t = 256)]
    pub publish_batch: usize,
    /// Like ordinary clients: each publish (method, header and body frames) goes out with its
    /// own write, and consumers ack every delivery on its own (multiple=false) with its own
    /// write as soon as they accept it. Overrides --publish-batch and --multi-ack-every.
    #[arg(long)]
    #[serde(default)]
    pub one_per_write: bool,
    /// Seconds to wait for consumers to drain after publishing ends, without progress.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Broker process id: sample its CPU (utime+stime) and RSS from /proc.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// With --broker-pid: also count the broker's syscalls, io_uring_enter calls and context
    /// switches with `perf stat` over the run. The tracepoints slow every syscall of the broker
    /// a little, so this is off by default; without a usable perf the counts are absent.
    #[arg(long, requires = "broker_pid")]
    #[serde(default)]
    pub broker_perf: bool,
    /// Milliseconds between two queue depth polls (passive queue.declare).
    #[arg(long, default_value_t = DEPTH_INTERVAL_DEFAULT_MS, value_parser = clap::value_parser!(u64).range(1..))]
    #[serde(default = "depth_interval_default_ms")]
    pub depth_interval_ms: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seed for the random failures of flaky consumers.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Keep the queues (and exchange) after the run instead of deleting them.
    #[arg(long)]
    pub keep_queues: bool,
    #[command(flatten)]
    pub fanout: FanoutArgs,
    #[command(flatten)]
    pub late: LateArgs,
    #[command(flatten)]
    pub churn: ChurnArgs,
    #[command(flatten)]
    pub backlog: BacklogArgs,
    #[command(flatten)]
    #[serde(default)]
    pub declare: DeclareArgs,
    #[command(flatten)]
    #[serde(default)]
    pub retry: RetryArgs,
    #[command(flatten)]
    #[serde(default)]
    pub delayed: DelayedArgs,
    #[command(flatten)]
    #[serde(default)]
    pub soak: SoakArgs,
}

/// Flags of the soak scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SoakArgs {
    /// Shell command that starts the broker (run as `sh -c "exec CMD"` in its own process
    /// group). hareperf starts it, kills the group with SIGKILL every --kill-every seconds and
    /// starts it again; without it nothing is killed (a soak of a broker already running).
    #[arg(long, value_name = "CMD")]
    pub restart_cmd: Option<String>,
    /// Mean seconds between two kills; each interval is drawn between half and one and a half
    /// times this, from --seed.
    #[arg(long, default_value_t = 5.0, value_name = "SECS")]
    pub kill_every: f64,
    /// Append the broker's stdout and stderr to this file (default: discarded).
    #[arg(long, value_name = "FILE")]
    pub broker_log: Option<PathBuf>,
    /// Fail when the broker's resident memory exceeds this many MiB.
    #[arg(long, default_value_t = 2048)]
    pub max_rss_mb: u64,
    /// Fail when the broker has more open file descriptors than this.
    #[arg(long, default_value_t = 4096)]
    pub max_fds: u64,
    /// Fail when the per-start maxima of RSS or descriptors grow steadily: the median of the
    /// last third of the starts above the median of the first third by more than this percent
    /// (checked from 6 starts on).
    #[arg(long, default_value_t = 100)]
    pub max_growth_percent: u64,
    /// Messages per second of each confirming publisher (--producers of them, default 2).
    #[arg(long, default_value_t = 100.0)]
    pub soak_rate: f64,
    /// Percent of deliveries the consumers refuse (nack or reject, with requeue).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=90))]
    pub soak_refuse_percent: u32,
    /// Consumers that drop their connection while holding deliveries, again and again.
    #[arg(long, default_value_t = 1)]
    pub soak_crashers: usize,
}

impl Default for SoakArgs {
    /// The flags' defaults, for reports written before the soak scenario existed.
    fn default() -> Self {
        SoakArgs {
            restart_cmd: None,
            kill_every: 5.0,
            broker_log: None,
            max_rss_mb: 2048,
            max_fds: 4096,
            max_growth_percent: 100,
            soak_rate: 100.0,
            soak_refuse_percent: 5,
            soak_crashers: 1,
        }
    }
}

/// Flags of the fanout scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct FanoutArgs {
    /// Queues bound to the fanout exchange (one consumer each).
    #[arg(long, default_value_t = 4)]
    pub fanout_queues: usize,
}

/// Flags of the consumers_join_late scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct LateArgs {
    /// Seconds after the producers start before the consumers join.
    #[arg(long, default_value_t = 5.0)]
    pub consumers_join_after: f64,
}

/// Flags of the churn scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct ChurnArgs {
    /// Threads each opening and closing connections in a loop.
    #[arg(long, default_value_t = 2)]
    pub churn_threads: usize,
    /// Messages each churned connection publishes before it closes.
    #[arg(long, default_value_t = 1)]
    pub churn_publishes: u64,
}

/// Flags of the backlog scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct BacklogArgs {
    /// Messages in the flood, split across the producers.
    #[arg(long, default_value_t = 100_000)]
    pub backlog_messages: u64,
    /// Seconds the trouble phase lasts.
    #[arg(long, default_value_t = 5.0)]
    pub trouble_time: f64,
    /// Slow consumers in the trouble phase.
    #[arg(long, default_value_t = 2)]
    pub slow_consumers: usize,
    /// Delay per message of a slow consumer, in microseconds.
    #[arg(long, default_value_t = 2000)]
    pub slow_delay_us: u64,
    /// Consumers that refuse (nack or reject, with requeue) a share of their deliveries.
    #[arg(long, default_value_t = 2)]
    pub flaky_consumers: usize,
    /// Percent of deliveries a flaky consumer refuses.
    #[arg(long, default_value_t = 20)]
    pub flaky_percent: u32,
    /// Consumers that never ack (they hold their prefetch until closed).
    #[arg(long, default_value_t = 1)]
    pub stalled_consumers: usize,
    /// Consumers whose connection is dropped (socket shutdown, no close) while holding
    /// unacked messages.
    #[arg(long, default_value_t = 1)]
    pub dropped_consumers: usize,
    /// Prefetch of the troubled consumers (what a stalled or dropped one holds).
    #[arg(long, default_value_t = 50)]
    pub trouble_prefetch: u16,
    /// Healthy consumers in the recovery phase.
    #[arg(long, default_value_t = 4)]
    pub recovery_consumers: usize,
}

/// Most queues the declare scenario declares in one run: its per-operation instants stay in
/// memory (8 bytes each) until the run ends.
pub const DECLARE_QUEUE_COUNT_MAX: u64 = 10_000_000;
/// Most bindings per queue the declare scenario makes.
pub const DECLARE_BINDINGS_PER_QUEUE_MAX: u64 = 1000;
/// Most bindings the declare scenario makes in one run (queues × bindings per queue).
pub const DECLARE_BINDING_COUNT_MAX: u64 = 20_000_000;
/// Most connections the declare scenario runs at once.
pub const DECLARE_CONNECTION_COUNT_MAX: u64 = 256;

/// Flags of the declare scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct DeclareArgs {
    /// Durable queues to declare, one after another per connection.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=DECLARE_QUEUE_COUNT_MAX))]
    pub declare_queues: u64,
    /// Connections (one channel each) sharing the declares, binds and deletes; each waits for
    /// every answer before its next request. 1 is what an ordinary application does; more
    /// measure how the broker commits concurrent changes together.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=DECLARE_CONNECTION_COUNT_MAX))]
    pub declare_channels: u64,
    /// Queue declares (and queue deletes) per window of the rate curve.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub declare_window: u64,
    /// Bindings of each queue to the scenario's durable direct exchange, each with its own
    /// routing key; 0 skips the bindings phase.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=DECLARE_BINDINGS_PER_QUEUE_MAX))]
    pub declare_bindings_per_queue: u64,
    /// Bindings per window of the bindings curve [default: --declare-window × bindings per
    /// queue, so that each window covers the bindings of --declare-window queues].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub declare_binding_window: Option<u64>,
}

impl Default for DeclareArgs {
    /// The flags' defaults, for reports written before the declare scenario existed.
    fn default() -> Self {
        DeclareArgs {
            declare_queues: 100_000,
            declare_channels: 1,
            declare_window: 1000,
            declare_bindings_per_queue: 0,
            declare_binding_window: None,
        }
    }
}

impl DeclareArgs {
    /// Bindings per window of the bindings curve.
    pub fn binding_window(&self) -> u64 {
        self.declare_binding_window.unwrap_or_else(|| {
            self.declare_window
                .saturating_mul(self.declare_bindings_per_queue)
                .max(1)
        })
    }
}

/// How a refusing retry consumer refuses a delivery (always with requeue=false, so that the
/// work queue dead-letters it to the retry queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum RetryRefusal {
    /// `basic.reject` requeue=false.
    #[default]
    Reject,
    /// `basic.nack` multiple=false requeue=false.
    Nack,
}

/// Flags of the retry scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct RetryArgs {
    /// Messages to publish, split across the producers.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_messages: u64,
    /// Time a refused message waits in the retry queue (its `x-message-ttl`), in ms.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=u64::from(u32::MAX)))]
    pub retry_ttl_ms: u64,
    /// Percent of the messages that are refused (chosen by id, so every consumer agrees).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100))]
    pub retry_percent: u32,
    /// How many times a chosen message is refused before it is acked.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=1000))]
    pub retry_times: u32,
    /// How consumers refuse: reject or nack (both with requeue=false).
    #[arg(long, value_enum, default_value_t = RetryRefusal::Reject)]
    pub retry_with: RetryRefusal,
}

impl Default for RetryArgs {
    /// The flags' defaults, for reports written before the retry scenario existed.
    fn default() -> Self {
        RetryArgs {
            retry_messages: 100_000,
            retry_ttl_ms: 1000,
            retry_percent: 100,
            retry_times: 1,
            retry_with: RetryRefusal::Reject,
        }
    }
}

/// How the delayed scenario delays its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[value(rename_all = "kebab-case")]
pub enum DelayMode {
    /// The per-message `expiration` on a holding queue that dead-letters to the consumed
    /// queue: the way without plugins.
    #[default]
    TtlDlx,
    /// An `x-delayed-message` exchange (RabbitMQ's delayed-message plugin) and the `x-delay`
    /// header.
    Plugin,
}

impl DelayMode {
    pub fn name(self) -> &'static str {
        match self {
            DelayMode::TtlDlx => "ttl-dlx",
            DelayMode::Plugin => "plugin",
        }
    }
}

/// Most messages the delayed scenario publishes in one run.
pub const DELAYED_MESSAGE_COUNT_MAX: u64 = 100_000_000;
/// Longest delay window of the delayed scenario: a day, in seconds.
pub const DELAY_WINDOW_MAX_S: f64 = 86_400.0;

/// Flags of the delayed scenario.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct DelayedArgs {
    /// Delayed messages to publish, split across the producers.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=DELAYED_MESSAGE_COUNT_MAX))]
    pub delayed_messages: u64,
    /// Delays are spread uniformly (in a random order) from 0 to this many seconds.
    #[arg(long, default_value_t = 60.0, value_parser = parse_delay_window)]
    pub delay_window_s: f64,
    /// How messages are delayed: ttl-dlx (per-message TTL on a holding queue, dead-lettered to
    /// the consumed queue) or plugin (an `x-delayed-message` exchange and `x-delay`).
    #[arg(long, value_enum, default_value_t = DelayMode::TtlDlx)]
    pub delay_mode: DelayMode,
}

impl Default for DelayedArgs {
    /// The flags' defaults, for reports written before the delayed scenario existed.
    fn default() -> Self {
        DelayedArgs {
            delayed_messages: 1_000_000,
            delay_window_s: 60.0,
            delay_mode: DelayMode::TtlDlx,
        }
    }
}

impl DelayedArgs {
    /// The window in whole milliseconds.
    pub fn window_ms(&self) -> u64 {
        (self.delay_window_s * 1000.0).round() as u64
    }
}

fn parse_delay_window(text: &str) -> Result<f64, String> {
    let seconds: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if !(0.0..=DELAY_WINDOW_MAX_S).contains(&seconds) {
        return Err(format!("the window is 0 to {DELAY_WINDOW_MAX_S} s"));
    }
    Ok(seconds)
}

/// `--depth-interval-ms` of reports written before the flag existed.
fn depth_interval_default_ms() -> u64 {
    DEPTH_INTERVAL_DEFAULT_MS
}

impl RunArgs {
    /// The run's queue names: from the pattern, or the single --queue.
    pub fn queue_names(&self) -> Vec<String> {
        match &self.queue_pattern {
            Some(pattern) => (1..=self.queue_count.max(1))
                .map(|i| pattern.replace("{}", &i.to_string()))
                .collect(),
            None => vec![self.queue.clone()],
        }
    }

    /// --producers, or the scenario's default.
    pub fn producer_count(&self, default: usize) -> usize {
        self.producers.unwrap_or(default)
    }

    /// The routing key for a queue: --routing-key, else the queue name.
    pub fn routing_key_for(&self, queue: &str) -> String {
        self.routing_key
            .clone()
            .unwrap_or_else(|| queue.to_string())
    }

    /// Parses a run command line (`run` and what follows), as tests and scripts use it.
    pub fn parse_from<I, T>(args: I) -> Result<RunArgs, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Cli::try_parse_from(
            std::iter::once("hareperf".into())
                .chain(std::iter::once("run".into()).chain(args.into_iter().map(Into::into))),
        )?;
        match cli.command {
            Command::Run(args) => Ok(*args),
            Command::Compare { .. } => unreachable!("the first argument is `run`"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perftest_style_flags_parse() {
        let args = RunArgs::parse_from([
            "throughput",
            "-x",
            "2",
            "-y",
            "3",
            "-s",
            "1000",
            "-c",
            "500",
            "-f",
            "-r",
            "100",
            "--queue-pattern",
            "perf-{}",
            "--queue-count",
            "3",
            "-z",
            "5",
        ])
        .unwrap();
        assert_eq!(args.scenario, ScenarioKind::Throughput);
        assert_eq!(
            (args.producer_count(1), args.consumers, args.size),
            (2, 3, 1000)
        );
        assert_eq!(args.confirm, Some(500));
        assert!(args.persistent);
        assert_eq!(args.queue_names(), vec!["perf-1", "perf-2", "perf-3"]);
        assert_eq!(args.routing_key_for("perf-2"), "perf-2");
        assert_eq!(args.time, Some(5.0));
        assert_eq!(args.depth_interval_ms, DEPTH_INTERVAL_DEFAULT_MS);
        let args = RunArgs::parse_from(["backlog", "--depth-interval-ms", "25"]).unwrap();
        assert_eq!(args.depth_interval_ms, 25);
        assert!(
            RunArgs::parse_from(["backlog", "--depth-interval-ms", "0"]).is_err(),
            "a zero interval would poll in a busy loop"
        );
    }

    #[test]
    fn scenario_names_match_their_command_line_spelling() {
        let args = RunArgs::parse_from(["consumers_join_late"]).unwrap();
        assert_eq!(args.scenario.name(), "consumers_join_late");
        assert_eq!(args.queue_names(), vec!["hareperf"]);
        assert!(RunArgs::parse_from(["nope"]).is_err());
    }

    #[test]
    fn declare_flags_have_bounds_and_the_binding_window_follows_the_queue_window() {
        let args = RunArgs::parse_from(["declare"]).unwrap();
        assert_eq!(args.scenario, ScenarioKind::Declare);
        assert_eq!(args.scenario.name(), "declare");
        let d = &args.declare;
        assert_eq!(
            (d.declare_queues, d.declare_channels, d.declare_window),
            (100_000, 1, 1000)
        );
        assert_eq!(d.declare_bindings_per_queue, 0);
        let args = RunArgs::parse_from([
            "declare",
            "--declare-queues",
            "300",
            "--declare-window",
            "100",
            "--declare-bindings-per-queue",
            "2",
            "--declare-channels",
            "2",
        ])
        .unwrap();
        assert_eq!(args.declare.binding_window(), 200);
        let args = RunArgs::parse_from(["declare", "--declare-binding-window", "7"]).unwrap();
        assert_eq!(args.declare.binding_window(), 7);
        for bad in [
            ["--declare-window", "0"],
            ["--declare-queues", "0"],
            ["--declare-channels", "0"],
            ["--declare-channels", "257"],
            ["--declare-bindings-per-queue", "1001"],
        ] {
            assert!(
                RunArgs::parse_from(["declare", bad[0], bad[1]]).is_err(),
                "{bad:?} is refused"
            );
        }
    }

    #[test]
    fn retry_and_delayed_flags_have_defaults_and_bounds() {
        let args = RunArgs::parse_from(["retry"]).unwrap();
        assert_eq!(args.scenario.name(), "retry");
        let r = &args.retry;
        assert_eq!(
            (
                r.retry_messages,
                r.retry_ttl_ms,
                r.retry_percent,
                r.retry_times
            ),
            (100_000, 1000, 100, 1)
        );
        assert_eq!(r.retry_with, RetryRefusal::Reject);
        let args = RunArgs::parse_from(["retry", "--retry-with", "nack"]).unwrap();
        assert_eq!(args.retry.retry_with, RetryRefusal::Nack);
        let args = RunArgs::parse_from(["delayed"]).unwrap();
        assert_eq!(args.scenario.name(), "delayed");
        let d = &args.delayed;
        assert_eq!(d.delayed_messages, 1_000_000);
        assert_eq!(d.window_ms(), 60_000);
        assert_eq!(d.delay_mode, DelayMode::TtlDlx);
        let args = RunArgs::parse_from([
            "delayed",
            "--delay-mode",
            "plugin",
            "--delay-window-s",
            "2.5",
        ])
        .unwrap();
        assert_eq!(args.delayed.delay_mode, DelayMode::Plugin);
        assert_eq!(args.delayed.window_ms(), 2500);
        for bad in [
            ["retry", "--retry-percent", "101"],
            ["retry", "--retry-messages", "0"],
            ["delayed", "--delay-window-s", "-1"],
            ["delayed", "--delay-mode", "nope"],
            ["delayed", "--delayed-messages", "0"],
        ] {
            assert!(RunArgs::parse_from(bad).is_err(), "{bad:?} is refused");
        }
    }
}
