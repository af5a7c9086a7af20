//! The sampler thread: once a second it turns the counters into rates, reads hareperf's and the
//! broker's CPU and memory, and refreshes the progress line. Between those samples it polls the
//! queue depth every `depth_interval` (passive `queue.declare` on a connection of its own, so it
//! works on any broker): a broker that drains a backlog in half a second still shows it.
//! When told to stop it takes one last, shorter sample, so a run shorter than a second still
//! has one. Every 10 ms it also adds the counters to the fine `timeline`, from which reports
//! draw rates of runs too short for per-second buckets.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{AmqpUri, Connection};

use super::counters::{CounterSnapshot, Counters, DEPTH_UNKNOWN};
use super::proc_stat::{cpu_seconds, rss_kib, Process};
use super::progress::{Live, Progress};
use super::run_status::RunStatus;
use super::timeline::Timeline;

/// Sampling period: the width of every time-series bucket (the last one may be shorter).
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);
/// Queue depth polling period when `--depth-interval-ms` is not given.
pub const DEPTH_INTERVAL_DEFAULT_MS: u64 = 100;
/// The shortest last bucket worth a sample when the sampler stops.
const FINAL_SAMPLE_MIN: Duration = Duration::from_millis(10);
/// How often a sleeping sampler looks at its stop flag, and the timeline's finest step.
const STOP_POLL: Duration = Duration::from_millis(10);

/// Per-second time series. Every vector but `queue_depth_polls` has one entry per sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Seconds since the run started, at the end of each bucket.
    pub t_s: Vec<f64>,
    pub published_per_s: Vec<f64>,
    pub confirmed_per_s: Vec<f64>,
    pub delivered_per_s: Vec<f64>,
    pub accepted_per_s: Vec<f64>,
    pub connections_per_s: Vec<f64>,
    /// Metadata changes answered per second (the declare scenario); empty in reports written
    /// before it existed.
    #[serde(default)]
    pub metadata_changes_per_s: Vec<f64>,
    /// Ready messages summed over the run's queues at the last poll before each sample;
    /// `None` when that poll failed.
    pub queue_depth: Vec<Option<u64>>,
    /// hareperf's CPU use in percent of one core.
    pub client_cpu_percent: Vec<f64>,
    /// The broker's CPU use in percent of one core (with `--broker-pid`).
    pub broker_cpu_percent: Vec<Option<f64>>,
    pub broker_rss_kib: Vec<Option<u64>>,
    /// Every successful depth poll as (seconds since the run started, ready messages), one per
    /// `--depth-interval-ms`.
    #[serde(default)]
    pub queue_depth_polls: Vec<(f64, u64)>,
    /// Cumulative counts every 10 ms (coarser in long runs); empty in reports written before
    /// it existed.
    #[serde(default)]
    pub timeline: Timeline,
}

impl Series {
    /// The deepest the queues were seen, over every poll and sample.
    pub fn queue_depth_max(&self) -> Option<u64> {
        let polls = self.queue_depth_polls.iter().map(|&(_, depth)| depth);
        self.queue_depth
            .iter()
            .flatten()
            .copied()
            .chain(polls)
            .max()
    }
}

/// What the sampler watches.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub uri: AmqpUri,
    pub queues: Vec<String>,
    pub broker_pid: Option<u32>,
    pub progress: bool,
    pub epoch: Instant,
    /// Time between two queue depth polls.
    pub depth_interval: Duration,
    /// The scenario's phase, for the progress line.
    pub status: Arc<RunStatus>,
}

/// Starts the sampler; it returns its series when `stop` is set.
pub fn start(
    config: SamplerConfig,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<Series>> {
    assert!(
        !config.depth_interval.is_zero(),
        "a zero depth interval would poll the broker in a busy loop"
    );
    std::thread::Builder::new()
        .name("hareperf-sampler".into())
        .spawn(move || run(&config, &counters, &stop))
}

fn run(config: &SamplerConfig, counters: &Counters, stop: &AtomicBool) -> Series {
    let mut sampler = Sampler {
        config,
        counters,
        series: Series::default(),
        broker: config.broker_pid.map(Process::Pid),
        last: counters.snapshot(),
        last_at: Instant::now(),
        last_cpu: cpu_seconds(Process::OwnProcess).unwrap_or(0.0),
        last_broker_cpu: None,
        last_depth: None,
    };
    sampler.last_broker_cpu = sampler.broker.and_then(|b| cpu_seconds(b).ok());
    let mut depth = DepthPoller::new(config.uri.clone(), config.queues.clone());
    let mut progress = Progress::new(config.progress);
    let mut next_sample = sampler.last_at + SAMPLE_PERIOD;
    let mut next_poll = sampler.last_at;
    sampler.record_timeline(false);
    loop {
        if stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now.duration_since(sampler.last_at) >= FINAL_SAMPLE_MIN {
                sampler.sample(now);
            }
            sampler.record_timeline(true);
            progress.finish();
            return sampler.series;
        }
        sampler.record_timeline(false);
        let now = Instant::now();
        if now >= next_poll {
            next_poll += config.depth_interval;
            // A slow poll (a busy broker) must not make the next ones pile up.
            next_poll = next_poll.max(now);
            sampler.poll_depth(&mut depth);
        }
        if Instant::now() >= next_sample {
            next_sample += SAMPLE_PERIOD;
            let now = Instant::now();
            sampler.sample(now);
            let live = Live::now(&sampler.last, &config.status, now);
            progress.update(&sampler.series, &live);
        }
        // Sleep in short steps so a stop request is noticed quickly.
        let left = next_poll
            .min(next_sample)
            .saturating_duration_since(Instant::now());
        std::thread::sleep(STOP_POLL.min(left));
    }
}

/// The sampler thread's state between two samples.
struct Sampler<'a> {
    config: &'a SamplerConfig,
    counters: &'a Counters,
    series: Series,
    broker: Option<Process>,
    last: CounterSnapshot,
    last_at: Instant,
    last_cpu: f64,
    last_broker_cpu: Option<f64>,
    /// The latest depth poll (`None` if it failed).
    last_depth: Option<u64>,
}

impl Sampler<'_> {
    fn record_timeline(&mut self, force: bool) {
        let t_us = u64::try_from(self.config.epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.series
            .timeline
            .record(t_us, &self.counters.snapshot(), force);
    }

    fn poll_depth(&mut self, depth: &mut DepthPoller) {
        let polled = depth.poll();
        let at_s = self.config.epoch.elapsed().as_secs_f64();
        self.counters
            .queue_depth
            .store(polled.unwrap_or(DEPTH_UNKNOWN), Ordering::Relaxed);
        if let Some(polled) = polled {
            self.series.queue_depth_polls.push((at_s, polled));
        }
        self.last_depth = polled;
    }

    /// Closes the bucket that started at `last_at`.
    fn sample(&mut self, now: Instant) {
        let elapsed_s = now.duration_since(self.last_at).as_secs_f64().max(1e-9);
        let snapshot = self.counters.snapshot();
        let cpu = cpu_seconds(Process::OwnProcess).unwrap_or(self.last_cpu);
        let broker_cpu = self.broker.and_then(|b| cpu_seconds(b).ok());
        let last = self.last;
        let rate = |f: fn(&CounterSnapshot) -> u64| {
            f(&snapshot).saturating_sub(f(&last)) as f64 / elapsed_s
        };
        let series = &mut self.series;
        series
            .t_s
            .push(now.duration_since(self.config.epoch).as_secs_f64());
        series.published_per_s.push(rate(|s| s.published));
        series.confirmed_per_s.push(rate(|s| s.confirmed));
        series.delivered_per_s.push(rate(|s| s.delivered));
        series.accepted_per_s.push(rate(|s| s.accepted));
        series
            .connections_per_s
            .push(rate(|s| s.connections_opened));
        series
            .metadata_changes_per_s
            .push(rate(|s| s.metadata_changes));
        series.queue_depth.push(self.last_depth);
        series
            .client_cpu_percent
            .push((cpu - self.last_cpu) / elapsed_s * 100.0);
        series.broker_cpu_percent.push(
            broker_cpu
                .zip(self.last_broker_cpu)
                .map(|(now, before)| (now - before) / elapsed_s * 100.0),
        );
        series
            .broker_rss_kib
            .push(self.broker.and_then(|b| rss_kib(b).ok()));
        self.last = snapshot;
        self.last_at = now;
        self.last_cpu = cpu;
        self.last_broker_cpu = broker_cpu;
    }
}

/// Polls queue depths with passive declares, reconnecting after any failure.
struct DepthPoller {
    uri: AmqpUri,
    queues: Vec<String>,
    connection: Option<Connection>,
}

impl DepthPoller {
    fn new(uri: AmqpUri, queues: Vec<String>) -> DepthPoller {
        DepthPoller {
            uri,
            queues,
            connection: None,
        }
    }

    /// The summed ready count, or `None` if any queue could not be polled this time.
    fn poll(&mut self) -> Option<u64> {
        if self.queues.is_empty() {
            return None;
        }
        if self.connection.is_none() {
            let mut connection = Connection::open(&self.uri, "hareperf depth poller").ok()?;
            connection.open_channel(1).ok()?;
            self.connection = Some(connection);
        }
        let connection = self.connection.as_mut()?;
        let mut total = 0u64;
        for queue in &self.queues {
            match connection.queue_message_count(1, queue) {
                Ok(count) => total += u64::from(count),
                Err(e) => {
                    // A missing queue closes only the channel; anything else, start over.
                    if e.is_broker_close() && connection.open_channel(1).is_ok() {
                        return None;
                    }
                    self.connection = None;
                    return None;
                }
            }
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_max_sees_polls_between_samples() {
        let series = Series {
            queue_depth: vec![Some(0), None, Some(3)],
            queue_depth_polls: vec![(0.1, 0), (0.2, 90_000), (0.3, 0)],
            ..Default::default()
        };
        assert_eq!(series.queue_depth_max(), Some(90_000));
        let samples_only = Series {
            queue_depth: vec![None, Some(3)],
            ..Default::default()
        };
        assert_eq!(samples_only.queue_depth_max(), Some(3));
        assert_eq!(Series::default().queue_depth_max(), None);
    }
}
