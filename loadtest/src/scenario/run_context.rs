//! `RunContext`: what every scenario is built from. It owns the setup connection, the shared
//! counters, the sampler, and every producer and consumer thread, and turns their results into a
//! `Report` at the end.
//!
//! A scenario only decides *what* happens when: declare these queues, start these consumers,
//! publish for so long, mark a phase, wait for the queue to drain.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::RunArgs;
use crate::client::{AmqpUri, Connection, QueueOptions, ServerInfo};
use crate::measure::context_switches::{context_switches, ThreadSwitches};
use crate::measure::counters::{CounterSnapshot, Counters};
use crate::measure::latency::LatencyHistogram;
use crate::measure::perf_stat::PerfStat;
use crate::measure::proc_stat::{cpu_seconds, rss_kib, Process};
use crate::measure::run_status::RunStatus;
use crate::measure::sampler::{self, SamplerConfig, Series};
use crate::message_id::MESSAGE_STAMP_SIZE;
use crate::report::model::{
    DeclareResults, DelayedResults, Phase, PhaseKind, RetryResults, SoakResults,
};
use crate::worker::consumer::{self, ConsumerConfig, ConsumerHandle, ConsumerResult};
use crate::worker::consumer_behaviour::Behaviour;
use crate::worker::inspecting_consumer::{
    self, InspectingConsumerConfig, InspectingConsumerHandle, InspectingResult, Inspection,
};
use crate::worker::producer::{self, DelaySpec, ProducerConfig, ProducerResult};
use hare_protocol::FieldTable;

/// Run time when neither --time nor --pmessages bounds the publishing.
pub const RUN_TIME_DEFAULT_S: f64 = 10.0;
/// How often waits look at the counters.
const POLL: Duration = Duration::from_millis(20);

/// Everything collected while a scenario runs.
pub struct RunContext {
    pub args: RunArgs,
    pub uri: AmqpUri,
    pub epoch: Instant,
    pub counters: Arc<Counters>,
    /// The current phase and its planned end, for the progress line.
    pub status: Arc<RunStatus>,
    pub server: ServerInfo,
    pub started_unix_ms: u64,
    setup: Option<Connection>,
    stop_producers: Arc<AtomicBool>,
    stop_sampler: Arc<AtomicBool>,
    sampler: Option<JoinHandle<Series>>,
    producers: Vec<(JoinHandle<ProducerResult>, Vec<usize>)>,
    pub(crate) producer_results: Vec<(ProducerResult, Vec<usize>)>,
    consumers: Vec<Option<ConsumerHandle>>,
    pub(crate) consumer_results: Vec<ConsumerResult>,
    /// The retry and delayed scenarios' consumers.
    inspectors: Vec<InspectingConsumerHandle>,
    pub(crate) phases: Vec<Phase>,
    /// The counters when the current phase started.
    phase_start_counts: CounterSnapshot,
    pub(crate) errors: Vec<String>,
    pub(crate) connect_latency: LatencyHistogram,
    pub(crate) publish_started_s: Option<f64>,
    pub(crate) publish_ended_s: Option<f64>,
    pub(crate) drained: bool,
    /// When the last outstanding message was accepted, and the accepted count then (`drain`).
    pub(crate) drain_end: Option<(f64, u64)>,
    /// backlog: when the flood's last message was confirmed.
    pub(crate) flood_end_s: Option<f64>,
    /// backlog: when all but the held messages were accepted, and the accepted count then.
    pub(crate) drain_unheld_end: Option<(f64, u64)>,
    pub(crate) broker_rss_start_kib: Option<u64>,
    pub(crate) broker_rss_flood_end_kib: Option<u64>,
    pub(crate) broker_rss_end_kib: Option<u64>,
    /// The largest broker RSS read outside the sampler (phase boundaries, start and end).
    pub(crate) broker_rss_read_max_kib: Option<u64>,
    pub(crate) queue_depth_end: Option<u64>,
    /// declare: the curves of the durable metadata changes.
    pub(crate) declare: Option<DeclareResults>,
    /// retry: the refusals and retries.
    pub(crate) retry: Option<RetryResults>,
    /// delayed: lateness and the broker's memory.
    pub(crate) delayed: Option<DelayedResults>,
    /// soak: kills, restarts and the checks' verdicts.
    pub(crate) soak: Option<SoakResults>,
    pub(crate) client_cpu_start_s: f64,
    pub(crate) broker_cpu_start_s: Option<f64>,
    /// The broker's context switches (every thread) when `broker_cpu_start_s` was read.
    pub(crate) broker_switches_start: Option<ThreadSwitches>,
    /// `perf stat` attached to the broker (`--broker-perf`), stopped when the run is written up.
    pub(crate) broker_perf: Option<PerfStat>,
    queues: Vec<String>,
    exchanges: Vec<String>,
}

/// The broker URI of a run, with the TLS client an amqps:// URI needs.
pub fn resolve_uri(args: &RunArgs) -> anyhow::Result<AmqpUri> {
    let mut uri = AmqpUri::parse(&args.uri)?;
    if uri.secure {
        uri.tls = Some(match &args.tls_ca {
            Some(ca) => crate::client::tls::TlsClient::trusting(ca)?,
            None if args.insecure => crate::client::tls::TlsClient::insecure()?,
            None => anyhow::bail!("an amqps:// URI needs --tls-ca FILE or --insecure"),
        });
    }
    Ok(uri)
}

impl RunContext {
    /// Connects once (to learn who the broker is, and for setup) and starts the clock.
    pub fn new(args: RunArgs) -> anyhow::Result<RunContext> {
        anyhow::ensure!(
            args.size >= MESSAGE_STAMP_SIZE,
            "--size must be at least {MESSAGE_STAMP_SIZE} bytes: every body carries its id and publish time"
        );
        let uri = resolve_uri(&args)?;
        let mut setup = Connection::open(&uri, "hareperf setup")
            .with_context(|| format!("connecting to {}", uri.address()))?;
        setup.open_channel(1)?;
        let server = setup.server.clone();
        let started_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        // perf first: it takes a moment to attach, and the /proc reads below are instant.
        let broker_perf = args
            .broker_pid
            .filter(|_| args.broker_perf)
            .map(PerfStat::start);
        let broker_cpu_start_s = args
            .broker_pid
            .and_then(|p| cpu_seconds(Process::Pid(p)).ok());
        let broker_switches_start = args
            .broker_pid
            .and_then(|p| context_switches(Process::Pid(p)).ok());
        let broker_rss_start_kib = args.broker_pid.and_then(|p| rss_kib(Process::Pid(p)).ok());
        Ok(RunContext {
            args,
            uri,
            epoch: Instant::now(),
            counters: Arc::new(Counters::default()),
            status: Arc::new(RunStatus::default()),
            server,
            started_unix_ms,
            setup: Some(setup),
            stop_producers: Arc::new(AtomicBool::new(false)),
            stop_sampler: Arc::new(AtomicBool::new(false)),
            sampler: None,
            producers: Vec::new(),
            producer_results: Vec::new(),
            consumers: Vec::new(),
            consumer_results: Vec::new(),
            inspectors: Vec::new(),
            phases: Vec::new(),
            phase_start_counts: CounterSnapshot::default(),
            errors: Vec::new(),
            connect_latency: LatencyHistogram::default(),
            publish_started_s: None,
            publish_ended_s: None,
            drained: false,
            drain_end: None,
            flood_end_s: None,
            drain_unheld_end: None,
            broker_rss_start_kib,
            broker_rss_flood_end_kib: None,
            broker_rss_end_kib: None,
            broker_rss_read_max_kib: broker_rss_start_kib,
            queue_depth_end: None,
            declare: None,
            retry: None,
            delayed: None,
            soak: None,
            client_cpu_start_s: cpu_seconds(Process::OwnProcess).unwrap_or(0.0),
            broker_cpu_start_s,
            broker_switches_start,
            broker_perf,
            queues: Vec::new(),
            exchanges: Vec::new(),
        })
    }

    /// The setup connection (channel 1 open), for a scenario's own declares and deletes.
    pub fn setup(&mut self) -> anyhow::Result<&mut Connection> {
        self.setup
            .as_mut()
            .context("the setup connection is already closed")
    }

    /// Seconds since the run started.
    pub fn now_s(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }

    /// Nanoseconds since the run started (as stamped by workers) in seconds.
    pub fn seconds(ns: u64) -> f64 {
        ns as f64 / 1e9
    }

    /// Ready messages over the run's queues now, polled on the setup connection (passive
    /// declares); `None` if a poll failed. Phase boundaries use it: the sampler's poller
    /// connection only polls on its own clock.
    pub fn poll_depth_now(&mut self) -> Option<u64> {
        let queues = self.queues.clone();
        if queues.is_empty() {
            return None;
        }
        let setup = self.setup.as_mut()?;
        let mut total = 0u64;
        for queue in &queues {
            match setup.queue_message_count(1, queue) {
                Ok(count) => total += u64::from(count),
                Err(e) => {
                    // A missing queue closes the channel; the setup connection still needs it
                    // to delete the queues at the end.
                    if e.is_broker_close() {
                        let _ = setup.open_channel(1);
                    }
                    return None;
                }
            }
        }
        Some(total)
    }

    /// The broker's RSS now (with `--broker-pid`), also kept for `broker_rss_max_kib`.
    pub fn read_broker_rss(&mut self) -> Option<u64> {
        let kib = rss_kib(Process::Pid(self.args.broker_pid?)).ok()?;
        self.broker_rss_read_max_kib = self.broker_rss_read_max_kib.max(Some(kib));
        Some(kib)
    }

    /// Declares (and empties) queues; durable when the run is persistent. With a named exchange
    /// it is declared too and each queue bound with its routing key.
    pub fn declare_queues(
        &mut self,
        queues: &[String],
        exchange: &str,
        kind: &str,
    ) -> anyhow::Result<()> {
        let durable = self.args.persistent;
        let keys: Vec<String> = queues
            .iter()
            .map(|q| self.args.routing_key_for(q))
            .collect();
        let setup = self.setup()?;
        if !exchange.is_empty() {
            setup
                .exchange_declare(1, exchange, kind, durable)
                .with_context(|| format!("declaring exchange {exchange:?}"))?;
        }
        for (queue, key) in queues.iter().zip(&keys) {
            let options = QueueOptions {
                durable,
                ..Default::default()
            };
            setup
                .queue_declare(1, queue, options)
                .with_context(|| format!("declaring queue {queue:?} (durable: {durable})"))?;
            setup.queue_purge(1, queue)?;
            if !exchange.is_empty() {
                setup.queue_bind(1, queue, exchange, key)?;
            }
        }
        self.queues.extend(queues.iter().cloned());
        if !exchange.is_empty() {
            self.exchanges.push(exchange.to_string());
        }
        Ok(())
    }

    /// Declares (and empties) one queue with `arguments`, durable when the run is persistent,
    /// and keeps it for depth polls and the clean-up.
    pub fn declare_queue_with(&mut self, queue: &str, arguments: FieldTable) -> anyhow::Result<()> {
        let durable = self.args.persistent;
        let options = QueueOptions {
            durable,
            ..Default::default()
        };
        let setup = self.setup()?;
        setup
            .queue_declare_with(1, queue, options, arguments)
            .with_context(|| format!("declaring queue {queue:?} (durable: {durable})"))?;
        setup.queue_purge(1, queue)?;
        self.queues.push(queue.to_string());
        Ok(())
    }

    /// Keeps an exchange a scenario declared itself, for the clean-up.
    pub fn keep_exchange(&mut self, exchange: &str) {
        self.exchanges.push(exchange.to_string());
    }

    /// Starts the once-a-second sampler over the declared queues.
    pub fn start_sampler(&mut self) -> anyhow::Result<()> {
        let config = SamplerConfig {
            uri: self.uri.clone(),
            queues: self.queues.clone(),
            broker_pid: self.args.broker_pid,
            progress: !self.args.quiet,
            epoch: self.epoch,
            depth_interval: Duration::from_millis(self.args.depth_interval_ms.max(1)),
            status: Arc::clone(&self.status),
        };
        self.sampler = Some(sampler::start(
            config,
            Arc::clone(&self.counters),
            Arc::clone(&self.stop_sampler),
        )?);
        Ok(())
    }

    /// Starts a producer publishing to `exchange` with `routing_key`; `groups` are the queue
    /// groups its messages reach (for the loss check).
    pub fn spawn_producer(
        &mut self,
        exchange: &str,
        routing_key: &str,
        groups: Vec<usize>,
        message_count: Option<u64>,
    ) -> anyhow::Result<()> {
        self.spawn_producer_with(exchange, routing_key, groups, message_count, None)
    }

    /// `spawn_producer`, delaying every message per `delay` (the delayed scenario).
    pub fn spawn_producer_with(
        &mut self,
        exchange: &str,
        routing_key: &str,
        groups: Vec<usize>,
        message_count: Option<u64>,
        delay: Option<DelaySpec>,
    ) -> anyhow::Result<()> {
        let index = u16::try_from(self.producers.len() + self.producer_results.len())
            .context("at most 65536 producers")?;
        self.status.set_deliveries_per_publish(groups.len() as u64);
        let config = ProducerConfig {
            index,
            uri: self.uri.clone(),
            exchange: exchange.to_string(),
            routing_key: routing_key.to_string(),
            body_size: self.args.size,
            persistent: self.args.persistent,
            confirm_window: self.args.confirm,
            rate_per_s: self.args.rate,
            message_count,
            // One publish per buffer is one write_all: one write syscall per message.
            batch_size: if self.args.one_per_write {
                1
            } else {
                self.args.publish_batch
            },
            delay,
            epoch: self.epoch,
        };
        let handle = producer::spawn(
            config,
            Arc::clone(&self.counters),
            Arc::clone(&self.stop_producers),
        )?;
        self.producers.push((handle, groups));
        Ok(())
    }

    /// Records a producer-like thread's result (the churn scenario's loops).
    pub fn add_producer_result(&mut self, result: ProducerResult, groups: Vec<usize>) {
        if let Some(error) = &result.error {
            self.errors.push(error.clone());
        }
        self.producer_results.push((result, groups));
    }

    /// The index the next producer (or producer-like thread) gets.
    pub fn next_producer_index(&self) -> usize {
        self.producers.len() + self.producer_results.len()
    }

    /// Starts a consumer; returns its index for `stop_consumer`.
    pub fn spawn_consumer(
        &mut self,
        queue: &str,
        group: usize,
        behaviour: Behaviour,
        prefetch: u16,
    ) -> anyhow::Result<usize> {
        let index = self.consumers.len();
        let config = ConsumerConfig {
            index,
            uri: self.uri.clone(),
            queue: queue.to_string(),
            group,
            prefetch,
            auto_ack: self.args.auto_ack,
            multi_ack_every: self.args.multi_ack_every,
            ack_each_at_once: self.args.one_per_write,
            behaviour,
            epoch: self.epoch,
        };
        let handle = consumer::spawn(config, Arc::clone(&self.counters))?;
        self.consumers.push(Some(handle));
        Ok(index)
    }

    /// Healthy consumers per the flags, spread over `queues` round-robin (group = queue index).
    pub fn spawn_flag_consumers(&mut self, queues: &[String], count: usize) -> anyhow::Result<()> {
        let behaviour = Behaviour::healthy(Duration::from_micros(self.args.consumer_latency_us));
        for i in 0..count {
            let group = i % queues.len().max(1);
            let queue = queues.get(group).context("at least one queue")?.clone();
            self.spawn_consumer(&queue, group, behaviour, self.args.prefetch)?;
        }
        Ok(())
    }

    /// Starts a consumer of `queue` that inspects its messages (group 0).
    pub fn spawn_inspecting_consumer(
        &mut self,
        queue: &str,
        inspection: Inspection,
    ) -> anyhow::Result<()> {
        let config = InspectingConsumerConfig {
            index: self.consumers.len() + self.inspectors.len(),
            uri: self.uri.clone(),
            queue: queue.to_string(),
            prefetch: self.args.prefetch,
            multi_ack_every: self.args.multi_ack_every,
            inspection,
            epoch: self.epoch,
        };
        let handle = inspecting_consumer::spawn(config, Arc::clone(&self.counters))?;
        self.inspectors.push(handle);
        Ok(())
    }

    /// Stops the inspecting consumers; keeps their common results (and errors) with the other
    /// consumers' and returns everything they saw.
    pub fn stop_inspecting_consumers(&mut self) -> Vec<InspectingResult> {
        let results: Vec<InspectingResult> = std::mem::take(&mut self.inspectors)
            .into_iter()
            .map(InspectingConsumerHandle::join)
            .collect();
        for result in &results {
            if let Some(error) = &result.base.error {
                self.errors.push(error.clone());
            }
            self.consumer_results.push(result.base.clone());
        }
        results
    }

    /// Stops a consumer (clean close, or drop for a dropped consumer) and keeps its result.
    pub fn stop_consumer(&mut self, index: usize) {
        if let Some(handle) = self.consumers.get_mut(index).and_then(Option::take) {
            let result = handle.join();
            if let Some(error) = &result.error {
                self.errors.push(error.clone());
            }
            self.consumer_results.push(result);
        }
    }

    pub fn consumer_finished(&self, index: usize) -> bool {
        self.consumers
            .get(index)
            .and_then(Option::as_ref)
            .is_none_or(ConsumerHandle::is_finished)
    }

    /// Lets the producers run: until they reach their message counts, or for `time_s` seconds
    /// (then they are told to stop). Joins them either way, and ends the current phase when
    /// the last message was published (or, with confirms, confirmed).
    pub fn publish_until_done(&mut self, time_s: Option<f64>) {
        let deadline = time_s.map(|t| Instant::now() + Duration::from_secs_f64(t.max(0.0)));
        if let Some(deadline) = deadline {
            self.status.plan_end(deadline);
        }
        while !self.producers.iter().all(|(h, _)| h.is_finished()) {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            std::thread::sleep(POLL);
        }
        self.stop_producers.store(true, Ordering::Relaxed);
        for (handle, groups) in std::mem::take(&mut self.producers) {
            let result = handle.join().unwrap_or_else(|_| ProducerResult {
                error: Some("producer thread panicked".into()),
                ..Default::default()
            });
            self.add_producer_result(result, groups);
        }
        // Exact instants from the producers themselves: the first write, and the last write
        // or confirm. Producers that published nothing do not count.
        let publishers = || {
            self.producer_results
                .iter()
                .filter_map(|(r, _)| r.first_publish_s.map(|first| (first, r.finished_s)))
        };
        let first_s = publishers().map(|(first, _)| first).reduce(f64::min);
        let finished_s = publishers().map(|(_, finished)| finished).reduce(f64::max);
        self.publish_started_s = first_s.or(self.publish_started_s);
        let ended_s = finished_s.unwrap_or_else(|| self.now_s());
        self.publish_ended_s = Some(ended_s);
        self.end_phase(ended_s);
    }

    /// Deliveries owed to consumers: each published message once per group it reaches.
    pub fn expected_deliveries(&self) -> u64 {
        self.producer_results
            .iter()
            .map(|(r, groups)| r.published * groups.len() as u64)
            .sum()
    }

    /// Waits until consumers accepted `expected` messages; gives up after `idle_timeout` without
    /// progress. Returns true if everything arrived.
    pub fn wait_for_accepted(&mut self, expected: u64, idle_timeout: Duration) -> bool {
        self.wait_for_accepted_until(expected, idle_timeout, None)
    }

    /// `wait_for_accepted`, also giving up at `deadline` if one is given.
    pub fn wait_for_accepted_until(
        &mut self,
        expected: u64,
        idle_timeout: Duration,
        deadline: Option<Instant>,
    ) -> bool {
        let mut last = self.counters.accepted.load(Ordering::Relaxed);
        let mut last_progress = Instant::now();
        loop {
            let accepted = self.counters.accepted.load(Ordering::Relaxed);
            if accepted >= expected {
                self.drained = true;
                return true;
            }
            if accepted != last {
                last = accepted;
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= idle_timeout {
                self.drained = false;
                return false;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.drained = false;
                return false;
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for consumers to accept everything published, per --drain-timeout. When they
    /// do, records when the last of it was accepted (`drain_end`) and ends the current phase
    /// there.
    pub fn drain(&mut self) -> bool {
        let idle = Duration::from_secs_f64(self.args.drain_timeout.max(0.0));
        self.drain_until(idle, None)
    }

    /// `drain` with its own idle timeout and an optional deadline.
    pub fn drain_until(&mut self, idle: Duration, deadline: Option<Instant>) -> bool {
        let expected = self.expected_deliveries();
        let drained = self.wait_for_accepted_until(expected, idle, deadline);
        if drained {
            let (accepted, at_ns) = self.counters.accepted_at();
            if let Some(at_ns) = at_ns {
                let end_s = Self::seconds(at_ns);
                self.drain_end = Some((end_s, accepted));
                self.end_phase(end_s);
            }
        }
        drained
    }

    /// Closes the previous phase (if still open, now) and opens `name`, polling the queue
    /// depth and the broker's RSS at the boundary.
    pub fn phase(&mut self, name: &str, kind: PhaseKind) {
        let now = self.now_s();
        self.end_phase(now);
        self.status.start_phase(name);
        let depth = self.poll_depth_now();
        self.read_broker_rss();
        self.phase_start_counts = self.counters.snapshot();
        self.phases.push(Phase {
            name: name.to_string(),
            start_s: now,
            end_s: -1.0,
            duration_s: 0.0,
            kind,
            messages: 0,
            rate_per_s: 0.0,
            queue_depth_start: depth,
            queue_depth_end: None,
        });
    }

    /// Ends the current phase, if still open, at `end_s` (an exact instant that has passed,
    /// such as the last confirm; never before the phase started), polling the depth now.
    pub fn end_phase(&mut self, end_s: f64) {
        if self.phases.last().is_none_or(|p| p.end_s >= p.start_s) {
            return;
        }
        let depth = self.poll_depth_now();
        self.read_broker_rss();
        let counts = self.counters.snapshot();
        let start = self.phase_start_counts;
        let confirms = self.args.confirm.is_some();
        let Some(phase) = self.phases.last_mut() else {
            return;
        };
        phase.end_s = end_s.max(phase.start_s);
        phase.duration_s = phase.end_s - phase.start_s;
        phase.messages = match phase.kind {
            PhaseKind::Publish if confirms => counts.confirmed - start.confirmed,
            PhaseKind::Publish => counts.published - start.published,
            PhaseKind::Consume => counts.accepted - start.accepted,
            PhaseKind::Metadata => counts.metadata_changes - start.metadata_changes,
        };
        phase.rate_per_s = if phase.duration_s > 0.0 {
            phase.messages as f64 / phase.duration_s
        } else {
            0.0
        };
        phase.queue_depth_end = depth;
    }

    /// Stops everything still running, cleans up the broker side, and collects the results.
    pub(crate) fn stop_all(&mut self) -> Series {
        if !self.producers.is_empty() {
            self.publish_until_done(Some(0.0));
        }
        for index in 0..self.consumers.len() {
            self.stop_consumer(index);
        }
        self.stop_inspecting_consumers();
        let now = self.now_s();
        self.end_phase(now);
        // Before the queues are deleted: what a run without consumers leaves behind, and what
        // holding it costs the broker.
        self.queue_depth_end = self.poll_depth_now();
        self.broker_rss_end_kib = self.read_broker_rss();
        self.stop_sampler.store(true, Ordering::Relaxed);
        let series = self
            .sampler
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if let Err(e) = self.clean_up() {
            self.errors.push(format!("cleaning up: {e}"));
        }
        series
    }

    /// Closes the setup connection for a scenario that does its own setup and cleaning up
    /// (soak: the connection would not survive the first kill of the broker).
    pub(crate) fn close_setup(&mut self) {
        if let Some(setup) = self.setup.take() {
            let _ = setup.close();
        }
    }

    fn clean_up(&mut self) -> anyhow::Result<()> {
        let Some(mut setup) = self.setup.take() else {
            return Ok(());
        };
        if !self.args.keep_queues {
            for queue in &self.queues {
                setup.queue_delete(1, queue)?;
            }
            for exchange in &self.exchanges {
                setup.exchange_delete(1, exchange)?;
            }
        }
        setup.close()?;
        Ok(())
    }
}
