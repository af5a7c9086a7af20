//! The sampler thread: once a second it turns the counters into rates, polls the queue depth
//! (passive `queue.declare` on a connection of its own, so it works on any broker), reads
//! hareperf's and the broker's CPU and memory, and refreshes the progress line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::client::{AmqpUri, Connection};

use super::counters::{CounterSnapshot, Counters, DEPTH_UNKNOWN};
use super::proc_stat::{cpu_seconds, rss_kib, Process};
use super::progress::Progress;

/// Sampling period: the width of every time-series bucket.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Per-second time series. Every vector has one entry per sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Seconds since the run started, at the end of each bucket.
    pub t_s: Vec<f64>,
    pub published_per_s: Vec<f64>,
    pub confirmed_per_s: Vec<f64>,
    pub delivered_per_s: Vec<f64>,
    pub accepted_per_s: Vec<f64>,
    pub connections_per_s: Vec<f64>,
    /// Ready messages summed over the run's queues; `None` when the poll failed.
    pub queue_depth: Vec<Option<u64>>,
    /// hareperf's CPU use in percent of one core.
    pub client_cpu_percent: Vec<f64>,
    /// The broker's CPU use in percent of one core (with `--broker-pid`).
    pub broker_cpu_percent: Vec<Option<f64>>,
    pub broker_rss_kib: Vec<Option<u64>>,
}

/// What the sampler watches.
#[derive(Debug, Clone)]
pub struct SamplerConfig {
    pub uri: AmqpUri,
    pub queues: Vec<String>,
    pub broker_pid: Option<u32>,
    pub progress: bool,
    pub epoch: Instant,
}

/// Starts the sampler; it returns its series when `stop` is set.
pub fn start(
    config: SamplerConfig,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<Series>> {
    std::thread::Builder::new()
        .name("hareperf-sampler".into())
        .spawn(move || run(&config, &counters, &stop))
}

fn run(config: &SamplerConfig, counters: &Counters, stop: &AtomicBool) -> Series {
    let mut series = Series::default();
    let mut depth = DepthPoller::new(config.uri.clone(), config.queues.clone());
    let broker = config.broker_pid.map(Process::Pid);
    let mut progress = Progress::new(config.progress);
    let mut last = counters.snapshot();
    let mut last_at = Instant::now();
    let mut last_cpu = cpu_seconds(Process::OwnProcess).unwrap_or(0.0);
    let mut last_broker_cpu = broker.and_then(|b| cpu_seconds(b).ok());
    let mut next = last_at + SAMPLE_PERIOD;
    loop {
        // Sleep in short steps so a stop request is noticed quickly.
        while Instant::now() < next {
            if stop.load(Ordering::Relaxed) {
                progress.finish();
                return series;
            }
            std::thread::sleep(Duration::from_millis(20).min(next - Instant::now()));
        }
        next += SAMPLE_PERIOD;
        let now = Instant::now();
        let elapsed_s = now.duration_since(last_at).as_secs_f64().max(1e-9);
        let snapshot = counters.snapshot();
        let queue_depth = depth.poll();
        counters
            .queue_depth
            .store(queue_depth.unwrap_or(DEPTH_UNKNOWN), Ordering::Relaxed);
        let cpu = cpu_seconds(Process::OwnProcess).unwrap_or(last_cpu);
        let broker_cpu = broker.and_then(|b| cpu_seconds(b).ok());
        let rate = |f: fn(&CounterSnapshot) -> u64| {
            f(&snapshot).saturating_sub(f(&last)) as f64 / elapsed_s
        };
        series
            .t_s
            .push(now.duration_since(config.epoch).as_secs_f64());
        series.published_per_s.push(rate(|s| s.published));
        series.confirmed_per_s.push(rate(|s| s.confirmed));
        series.delivered_per_s.push(rate(|s| s.delivered));
        series.accepted_per_s.push(rate(|s| s.accepted));
        series
            .connections_per_s
            .push(rate(|s| s.connections_opened));
        series.queue_depth.push(queue_depth);
        series
            .client_cpu_percent
            .push((cpu - last_cpu) / elapsed_s * 100.0);
        series.broker_cpu_percent.push(
            broker_cpu
                .zip(last_broker_cpu)
                .map(|(now, before)| (now - before) / elapsed_s * 100.0),
        );
        series
            .broker_rss_kib
            .push(broker.and_then(|b| rss_kib(b).ok()));
        progress.update(&series);
        last = snapshot;
        last_at = now;
        last_cpu = cpu;
        last_broker_cpu = broker_cpu;
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
