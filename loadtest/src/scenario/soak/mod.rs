//! soak: a mixed durable workload against one broker while hareperf kills it (SIGKILL) and
//! starts it again, every `--kill-every` seconds (jittered from `--seed`), for `--time`
//! seconds (60 unless given); then a drain without kills, a clean stop and start, and the
//! verdict. loadtest/README.md, "soak", says what runs and what is checked, and why.
//!
//! - `broker`: the broker process (start, kill, stop) and its `/proc` readings.
//! - `chaos`: the kill schedule and the once-a-second readings.
//! - `session`: the workers' blocking connection (deliveries with bodies, confirms, requests).
//! - `ledger`: ids confirmed, acked and proven acked; the loss and acked-return checks.
//! - `topology`: the queues, and which are checked.
//! - `publishers`, `consumers`, `churn`: the workers; `shared`: what they share and their
//!   reconnect loop.
//! - `finale`: the drain, the clean restart and the verdict.

pub mod broker;
pub mod chaos;
pub mod churn;
pub mod consumers;
pub mod finale;
pub mod ledger;
pub mod publishers;
pub mod session;
pub mod shared;
pub mod topology;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::cli::RunArgs;
use crate::report::build::finish;
use crate::report::model::{PhaseKind, Report};

use super::run_context::{resolve_uri, RunContext};
use broker::Broker;
use chaos::Chaos;
use ledger::Ledger;
use shared::Shared;
use topology::Queues;

/// Seconds of kills when `--time` is not given.
pub const SOAK_TIME_DEFAULT_S: f64 = 60.0;
/// Confirming publishers when `--producers` is not given.
pub const SOAK_PRODUCERS_DEFAULT: usize = 2;

/// Runs the soak; see the module doc.
pub fn run(mut args: RunArgs) -> anyhow::Result<Report> {
    let flags = args.soak.clone();
    args.persistent = true;
    let uri = resolve_uri(&args)?;
    let mut broker = flags
        .restart_cmd
        .clone()
        .map(|command| Broker::new(command, flags.broker_log.clone()));
    if let Some(broker) = broker.as_mut() {
        broker.start(&uri)?;
    }
    // hareperf's own broker changes pid at every start: the chaos loop follows it, and the
    // generic once-per-run readings of --broker-pid would read a dead process.
    let fixed_pid = args.broker_pid.filter(|_| broker.is_none());
    if broker.is_some() {
        args.broker_pid = None;
    }
    let mut ctx = RunContext::new(args)?;
    ctx.close_setup();
    let shared = Arc::new(Shared {
        uri: uri.clone(),
        queues: Queues::new(&ctx.args.queue),
        ledger: Ledger::default(),
        stop_load: AtomicBool::new(false),
        stop_consumers: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        rate: flags.soak_rate.max(0.1),
        size: ctx.args.size,
        refuse_percent: flags.soak_refuse_percent,
        seed: ctx.args.seed,
        crashes: AtomicU64::new(0),
        churned_queues: AtomicU64::new(0),
        churn_pending: std::sync::Mutex::default(),
        dead_lettered: AtomicU64::new(0),
        connections: AtomicU64::new(0),
    });
    finale::fresh_queues(&shared)?;
    let mut chaos = Chaos::new(broker, fixed_pid, flags.kill_every, ctx.args.seed);
    let (load, consumers) = spawn_workers(&shared, &ctx.args);

    ctx.phase("soak", PhaseKind::Publish);
    let soak_time = Duration::from_secs_f64(ctx.args.time.unwrap_or(SOAK_TIME_DEFAULT_S).max(0.0));
    chaos.run_until(&uri, Instant::now() + soak_time, true, || false);
    shared.stop_load.store(true, Ordering::Relaxed);
    join(load);

    ctx.phase("drain", PhaseKind::Consume);
    shared.draining.store(true, Ordering::Relaxed);
    let drained = chaos.restart_failure.is_none()
        && finale::drain(&shared, &mut chaos, &uri, ctx.args.drain_timeout);
    shared.stop_consumers.store(true, Ordering::Relaxed);
    join(consumers);
    let results = finale::finish(&shared, &mut chaos, &uri, &ctx.args, drained);
    ctx.soak = Some(results);
    Ok(finish(ctx))
}

type Workers = Vec<JoinHandle<()>>;

/// Starts every worker thread: (load that stops first, consumers that stop after the drain).
fn spawn_workers(shared: &Arc<Shared>, args: &RunArgs) -> (Workers, Workers) {
    let mut worker = 0u32;
    let mut spawn = |into: &mut Workers, body: fn(&Shared, u32)| {
        worker += 1;
        let shared = Arc::clone(shared);
        let number = worker;
        into.push(std::thread::spawn(move || body(&shared, number)));
    };
    let mut load = Vec::new();
    let mut consumers = Vec::new();
    for _ in 0..args.producer_count(SOAK_PRODUCERS_DEFAULT) {
        spawn(&mut load, publishers::confirming);
    }
    spawn(&mut load, publishers::transactional);
    for _ in 0..args.soak.soak_crashers {
        spawn(&mut load, consumers::crashing);
    }
    spawn(&mut load, churn::churning);
    for _ in 0..args.consumers.max(1) {
        spawn(&mut consumers, consumers::consuming);
    }
    (load, consumers)
}

fn join(workers: Workers) {
    for worker in workers {
        let _ = worker.join();
    }
}
