//! A metadata worker: one connection, one channel, one thread making durable metadata changes
//! (queue declares, binds or deletes) one at a time. Each request waits for its answer before
//! the next goes out, as ordinary applications do, and the instant of every answer is kept for
//! the rate curve (`measure::rate_windows`).
//!
//! Workers of one phase connect first and then start together (`StartGate`), so the
//! handshakes are not part of the curve. The first worker that fails raises the shared stop flag; the
//! others stop before their next request, so a broken broker ends the phase at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{AmqpUri, Connection, QueueOptions};
use crate::measure::counters::Counters;
use crate::report::model::MetadataChange;

/// The channel every metadata worker uses.
const CHANNEL: u16 = 1;
/// How often a connected worker looks whether the gate opened.
pub const GATE_POLL: Duration = Duration::from_millis(1);

/// Holds a phase's workers until all of them are connected (or failed to connect), so that no
/// handshake is part of the curve. A flag rather than a `Barrier`: a worker that never started
/// cannot leave the others waiting, since the phase raises the stop flag instead of opening.
#[derive(Debug, Default)]
pub struct StartGate {
    arrived: AtomicUsize,
    open: AtomicBool,
}

impl StartGate {
    /// Workers that reached the gate, connected or not.
    pub fn arrived_count(&self) -> usize {
        self.arrived.load(Ordering::SeqCst)
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    fn arrive_and_wait(&self, stop: &AtomicBool) {
        self.arrived.fetch_add(1, Ordering::SeqCst);
        while !self.open.load(Ordering::SeqCst) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(GATE_POLL);
        }
    }
}

/// The names of one declare run: queues `<prefix>-<i>`, one exchange `<prefix>`, and binding
/// keys `<i>.<j>` (key j of queue i), distinct across the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclareNames {
    pub prefix: String,
}

impl DeclareNames {
    pub fn queue(&self, queue_index: u64) -> String {
        format!("{}-{queue_index}", self.prefix)
    }

    pub fn exchange(&self) -> &str {
        &self.prefix
    }

    pub fn routing_key(queue_index: u64, key_index: u64) -> String {
        format!("{queue_index}.{key_index}")
    }
}

/// What one worker changes.
#[derive(Debug, Clone)]
pub struct MetadataWorkerConfig {
    pub index: usize,
    pub uri: AmqpUri,
    pub change: MetadataChange,
    pub names: DeclareNames,
    /// The queues this worker declares, binds or deletes, in order.
    pub queue_indexes: Vec<u64>,
    /// Bindings per queue (`QueueBind` only).
    pub bindings_per_queue: u64,
    pub epoch: Instant,
}

/// What one worker did.
#[derive(Debug, Clone, Default)]
pub struct MetadataWorkerResult {
    pub index: usize,
    /// When the first request went out (ns since the run's epoch); `None` if none did.
    pub started_ns: Option<u64>,
    /// When each answer arrived (ns since the run's epoch), in order.
    pub answered_ns: Vec<u64>,
    /// How many of `queue_indexes`, from the first, were fully changed (every binding of a
    /// queue answered, for binds).
    pub queues_done: usize,
    pub error: Option<String>,
}

/// Starts a worker thread. It connects, waits at `gate` for the phase's other workers, and
/// then makes its changes until done, until it fails, or until `stop` is raised.
pub fn spawn(
    config: MetadataWorkerConfig,
    counters: Arc<Counters>,
    gate: Arc<StartGate>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<MetadataWorkerResult>> {
    std::thread::Builder::new()
        .name(format!("hareperf-metadata-{}", config.index))
        .spawn(move || {
            let mut result = MetadataWorkerResult {
                index: config.index,
                answered_ns: Vec::with_capacity(config.answer_count()),
                ..Default::default()
            };
            let connection = Connection::open(&config.uri, "hareperf declare")
                .and_then(|mut c| c.open_channel(CHANNEL).map(|()| c));
            // Connected or not, every worker reaches the gate: the phase counts them.
            gate.arrive_and_wait(&stop);
            let outcome = connection.context("connecting").and_then(|mut connection| {
                config.run(&mut connection, &counters, &stop, &mut result)?;
                connection.close().context("closing the connection")
            });
            if let Err(e) = outcome {
                stop.store(true, Ordering::Relaxed);
                result.error = Some(format!(
                    "{} connection {}: {e:#}",
                    config.change.method_name(),
                    config.index
                ));
            }
            result
        })
}

impl MetadataWorkerConfig {
    /// Answers this worker expects when nothing fails.
    pub fn answer_count(&self) -> usize {
        let per_queue = match self.change {
            MetadataChange::QueueBind => self.bindings_per_queue,
            MetadataChange::QueueDeclare | MetadataChange::QueueDelete => 1,
        };
        usize::try_from(per_queue.saturating_mul(self.queue_indexes.len() as u64))
            .unwrap_or(usize::MAX)
    }

    fn run(
        &self,
        connection: &mut Connection,
        counters: &Counters,
        stop: &AtomicBool,
        result: &mut MetadataWorkerResult,
    ) -> anyhow::Result<()> {
        let options = QueueOptions {
            durable: true,
            ..Default::default()
        };
        for &queue_index in &self.queue_indexes {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            if result.started_ns.is_none() {
                result.started_ns = Some(self.now_ns());
            }
            let queue = self.names.queue(queue_index);
            match self.change {
                MetadataChange::QueueDeclare => {
                    connection
                        .queue_declare(CHANNEL, &queue, options)
                        .with_context(|| format!("declaring durable queue {queue:?}"))?;
                    self.answered(counters, result);
                }
                MetadataChange::QueueBind => {
                    for key_index in 0..self.bindings_per_queue {
                        let key = DeclareNames::routing_key(queue_index, key_index);
                        let exchange = self.names.exchange();
                        connection
                            .queue_bind(CHANNEL, &queue, exchange, &key)
                            .with_context(|| {
                                format!("binding queue {queue:?} to {exchange:?} with key {key:?}")
                            })?;
                        self.answered(counters, result);
                    }
                }
                MetadataChange::QueueDelete => {
                    connection
                        .queue_delete(CHANNEL, &queue)
                        .with_context(|| format!("deleting queue {queue:?}"))?;
                    self.answered(counters, result);
                }
            }
            result.queues_done += 1;
        }
        Ok(())
    }

    fn answered(&self, counters: &Counters, result: &mut MetadataWorkerResult) {
        result.answered_ns.push(self.now_ns());
        Counters::add(&counters.metadata_changes, 1);
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_across_the_run() {
        let names = DeclareNames {
            prefix: "hareperf-declare-abc".into(),
        };
        assert_eq!(names.queue(7), "hareperf-declare-abc-7");
        assert_eq!(names.exchange(), "hareperf-declare-abc");
        assert_ne!(
            DeclareNames::routing_key(1, 11),
            DeclareNames::routing_key(11, 1)
        );
    }
}
