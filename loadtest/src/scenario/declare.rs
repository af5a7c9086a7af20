//! declare: what a durable metadata change costs as the metadata grows.
//!
//! 1. **queues**: `--declare-queues` durable queues `<queue>-declare-<run>-<i>` (`--queue`,
//!    `hareperf` by default; `<run>` is the start time in hex ms), declared by
//!    `--declare-channels` connections with one channel each; connection c takes queues
//!    c, c + C, c + 2C, … and waits for every `declare-ok` before its next declare.
//! 2. **bindings** (`--declare-bindings-per-queue` B > 0): a durable direct exchange
//!    `<queue>-declare-<run>`, then every queue bound to it with B routing keys `<i>.<j>`.
//! 3. **delete** (unless `--keep-queues`): every queue deleted, then the exchange. With
//!    `--keep-queues` everything stays, for a broker restart that measures recovery.
//!
//! The instant of every answer is kept. Each phase's curve (`measure::rate_windows`) gives the
//! rate per window of `--declare-window` answers (`--declare-binding-window` for bindings), and
//! the rates of the first and the last window and their ratio: about 1 when a change costs the
//! same however much metadata there is, far below 1 when every change costs more than the one
//! before. With one connection this is an application declaring its topology; with several it
//! shows how well the broker commits concurrent changes together.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;

use crate::cli::DECLARE_BINDING_COUNT_MAX;
use crate::measure::rate_windows::RateCurve;
use crate::report::model::{ChangeCurve, DeclareResults, MetadataChange, PhaseKind};
use crate::worker::metadata::{
    self, DeclareNames, MetadataWorkerConfig, MetadataWorkerResult, StartGate, GATE_POLL,
};

use super::run_context::RunContext;

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    // Durable metadata is the point, whatever the flags say.
    ctx.args.persistent = true;
    let flags = ctx.args.declare.clone();
    let binding_count = flags
        .declare_queues
        .checked_mul(flags.declare_bindings_per_queue);
    anyhow::ensure!(
        binding_count.is_some_and(|n| n <= DECLARE_BINDING_COUNT_MAX),
        "--declare-queues × --declare-bindings-per-queue is at most {DECLARE_BINDING_COUNT_MAX}"
    );
    let names = DeclareNames {
        prefix: format!("{}-declare-{:x}", ctx.args.queue, ctx.started_unix_ms),
    };
    ctx.declare = Some(DeclareResults {
        name_prefix: names.prefix.clone(),
        connection_count: flags.declare_channels,
        curves: Vec::new(),
    });
    ctx.start_sampler()?;

    let all_queues: Vec<u64> = (0..flags.declare_queues).collect();
    let declared = change_phase(
        ctx,
        "queues",
        MetadataChange::QueueDeclare,
        &names,
        &all_queues,
    );
    let mut outcome = declared.error.map_or(Ok(()), Err);
    let mut exchange_declared = false;
    if outcome.is_ok() && flags.declare_bindings_per_queue > 0 {
        outcome = bind(ctx, &names, &declared.queues_done, &mut exchange_declared);
    }
    // What was declared goes away even after a failure, unless asked to stay.
    if !ctx.args.keep_queues {
        if let Err(e) = delete(ctx, &names, &declared.queues_done, exchange_declared) {
            match outcome {
                Ok(()) => outcome = Err(e),
                Err(_) => ctx.errors.push(format!("{e:#}")),
            }
        }
    }
    outcome
}

/// Declares the exchange and binds every queue in `queues` to it.
fn bind(
    ctx: &mut RunContext,
    names: &DeclareNames,
    queues: &[u64],
    exchange_declared: &mut bool,
) -> anyhow::Result<()> {
    let exchange = names.exchange();
    ctx.setup()?
        .exchange_declare(1, exchange, "direct", true)
        .with_context(|| format!("declaring durable direct exchange {exchange:?}"))?;
    *exchange_declared = true;
    let bound = change_phase(ctx, "bindings", MetadataChange::QueueBind, names, queues);
    bound.error.map_or(Ok(()), Err)
}

/// Deletes every queue in `queues`, then the exchange if it was declared.
fn delete(
    ctx: &mut RunContext,
    names: &DeclareNames,
    queues: &[u64],
    exchange_declared: bool,
) -> anyhow::Result<()> {
    if !queues.is_empty() {
        let deleted = change_phase(ctx, "delete", MetadataChange::QueueDelete, names, queues);
        if let Some(e) = deleted.error {
            return Err(e);
        }
    }
    if exchange_declared {
        let exchange = names.exchange();
        ctx.setup()?
            .exchange_delete(1, exchange)
            .with_context(|| format!("deleting exchange {exchange:?}"))?;
    }
    Ok(())
}

/// What a phase left behind.
struct PhaseOutcome {
    /// The queues whose change was fully answered, in ascending order.
    queues_done: Vec<u64>,
    /// The first worker's error, if any failed (the others are in `ctx.errors`).
    error: Option<anyhow::Error>,
}

/// Runs one phase of changes to `queues`, shared by `--declare-channels` workers, and adds its
/// curve to the run's declare results.
fn change_phase(
    ctx: &mut RunContext,
    name: &str,
    change: MetadataChange,
    names: &DeclareNames,
    queues: &[u64],
) -> PhaseOutcome {
    let flags = ctx.args.declare.clone();
    let worker_count = usize::try_from(flags.declare_channels)
        .unwrap_or(usize::MAX)
        .min(queues.len())
        .max(1);
    let share = |index: usize| queues.iter().skip(index).step_by(worker_count).copied();
    let configs: Vec<MetadataWorkerConfig> = (0..worker_count)
        .map(|index| MetadataWorkerConfig {
            index,
            uri: ctx.uri.clone(),
            change,
            names: names.clone(),
            queue_indexes: share(index).collect(),
            bindings_per_queue: flags.declare_bindings_per_queue,
            epoch: ctx.epoch,
        })
        .collect();
    let requested = configs.iter().map(|c| c.answer_count() as u64).sum();
    ctx.phase(name, PhaseKind::Metadata);
    let (results, mut errors) = run_workers(ctx, configs);

    let start_ns = results.iter().filter_map(|r| r.started_ns).min();
    let mut instants: Vec<u64> = results
        .iter()
        .flat_map(|r| r.answered_ns.iter().copied())
        .collect();
    let per_window = match change {
        MetadataChange::QueueBind => flags.binding_window(),
        MetadataChange::QueueDeclare | MetadataChange::QueueDelete => flags.declare_window,
    };
    let now_ns = u64::try_from(ctx.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let rates = RateCurve::from_instants(start_ns.unwrap_or(now_ns), &mut instants, per_window);
    let end_s = if rates.count > 0 {
        rates.end_s
    } else {
        ctx.now_s()
    };
    ctx.end_phase(end_s);
    let mut queues_done: Vec<u64> = results
        .iter()
        .flat_map(|r| share(r.index).take(r.queues_done))
        .collect();
    queues_done.sort_unstable();
    if let Some(declare) = ctx.declare.as_mut() {
        declare.curves.push(ChangeCurve {
            change,
            requested,
            rates,
        });
    }
    errors.extend(
        results
            .iter()
            .filter_map(|r| r.error.as_ref())
            .map(|e| anyhow::anyhow!("{e}")),
    );
    let mut errors = errors.into_iter();
    let error = errors.next();
    ctx.errors.extend(errors.map(|e| format!("{e:#}")));
    PhaseOutcome { queues_done, error }
}

/// Starts a worker per config, lets them go together once all are connected, and waits for
/// them. Returns their results and the errors of starting them (theirs are in the results).
fn run_workers(
    ctx: &RunContext,
    configs: Vec<MetadataWorkerConfig>,
) -> (Vec<MetadataWorkerResult>, Vec<anyhow::Error>) {
    let gate = Arc::new(StartGate::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::with_capacity(configs.len());
    let mut errors = Vec::new();
    for config in configs {
        let counters = Arc::clone(&ctx.counters);
        match metadata::spawn(config, counters, Arc::clone(&gate), Arc::clone(&stop)) {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                errors.push(anyhow::Error::new(e).context("starting a metadata worker thread"));
                break;
            }
        }
    }
    // Every started worker reaches the gate, connected or not, unless it panicked.
    while gate.arrived_count() < handles.len()
        && !stop.load(Ordering::Relaxed)
        && !handles.iter().any(|h| h.is_finished())
    {
        std::thread::sleep(GATE_POLL);
    }
    gate.open();
    let results = handles
        .into_iter()
        .map(|handle| {
            handle.join().unwrap_or_else(|_| MetadataWorkerResult {
                error: Some("a metadata worker thread panicked".to_string()),
                ..Default::default()
            })
        })
        .collect();
    (results, errors)
}
