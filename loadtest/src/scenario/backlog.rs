//! backlog: the incident, in three phases on one durable queue.
//!
//! 1. **flood**: `--backlog-messages` persistent messages from `--producers` producers (4 by
//!    default) as fast as the broker confirms them (confirm window `--confirm`, 1,000 unless
//!    given). No consumer is attached: the whole flood becomes a backlog.
//! 2. **trouble** (`--trouble-time` s): slow consumers (a delay per message), flaky consumers
//!    (refuse a share of their deliveries with nack or reject and requeue), consumers that
//!    never ack (they hold their prefetch), and consumers whose connection is dropped — socket
//!    shut down, no `connection.close` — while holding unacked messages. At the end of the
//!    phase the troubled consumers are closed.
//! 3. **recovery**: `--recovery-consumers` healthy consumers until every message was accepted
//!    (or `--drain-timeout` passes without progress).
//!
//! The report proves no message was lost, counts duplicates and redeliveries, and checks that
//! what the dropped and stalled consumers held came back flagged redelivered. It times the
//! incident exactly: the flood ends with its last confirm, the drain with the last message a
//! consumer accepted (and, without the wait for what the stalled consumers held until the
//! trouble phase ended, with the last message accepted before that).

use std::time::{Duration, Instant};

use crate::report::model::PhaseKind;
use crate::worker::consumer_behaviour::{Behaviour, Failure, Refusal};

use super::run_context::RunContext;

/// Confirm window of the flood when `--confirm` is not given.
pub const FLOOD_CONFIRM_WINDOW_DEFAULT: usize = 1000;
/// Producers of the flood when `--producers` is not given.
pub const FLOOD_PRODUCERS_DEFAULT: usize = 4;

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    // The incident is about persistent messages on a durable queue, whatever the flags say.
    ctx.args.persistent = true;
    ctx.args.confirm.get_or_insert(FLOOD_CONFIRM_WINDOW_DEFAULT);
    ctx.args.rate = 0.0;
    let queue = ctx.args.queue.clone();
    ctx.declare_queues(std::slice::from_ref(&queue), "", "direct")?;
    ctx.start_sampler()?;

    ctx.phase("flood", PhaseKind::Publish);
    flood(ctx, &queue)?;
    ctx.flood_end_s = ctx.publish_ended_s;
    ctx.broker_rss_flood_end_kib = ctx.read_broker_rss();

    ctx.phase("trouble", PhaseKind::Consume);
    let troubled = start_trouble(ctx, &queue)?;
    let trouble_end =
        Instant::now() + Duration::from_secs_f64(ctx.args.backlog.trouble_time.max(0.0));
    ctx.status.plan_end(trouble_end);
    while Instant::now() < trouble_end {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &index in &troubled {
        ctx.stop_consumer(index);
    }
    note_unheld_drain(ctx, &troubled);

    ctx.phase("recovery", PhaseKind::Consume);
    let behaviour = Behaviour::healthy(Duration::ZERO);
    let prefetch = ctx.args.prefetch;
    for _ in 0..ctx.args.backlog.recovery_consumers.max(1) {
        ctx.spawn_consumer(&queue, 0, behaviour, prefetch)?;
    }
    ctx.drain();
    Ok(())
}

/// Publishes the flood, split evenly over the producers, and waits for every confirm.
fn flood(ctx: &mut RunContext, queue: &str) -> anyhow::Result<()> {
    let producers = ctx.args.producer_count(FLOOD_PRODUCERS_DEFAULT).max(1) as u64;
    let total = ctx.args.backlog.backlog_messages;
    for i in 0..producers {
        let share = total / producers + u64::from(i < total % producers);
        ctx.spawn_producer("", queue, vec![0], Some(share))?;
    }
    ctx.publish_until_done(None);
    Ok(())
}

/// After the troubled consumers closed: if all that is left of the backlog is what the stalled
/// ones held (it comes back only now, by design), the backlog was drained, held messages
/// aside, when the last message was accepted.
fn note_unheld_drain(ctx: &mut RunContext, troubled: &[usize]) {
    let stalled_held: u64 = ctx
        .consumer_results
        .iter()
        .filter(|r| troubled.contains(&r.index) && !r.dropped)
        .map(|r| r.held.len() as u64)
        .sum();
    let (accepted, at_ns) = ctx.counters.accepted_at();
    if let Some(at_ns) = at_ns {
        if accepted + stalled_held >= ctx.expected_deliveries() {
            ctx.drain_unheld_end = Some((RunContext::seconds(at_ns), accepted));
        }
    }
}

/// Starts the troubled consumers; returns their indexes.
fn start_trouble(ctx: &mut RunContext, queue: &str) -> anyhow::Result<Vec<usize>> {
    let b = ctx.args.backlog.clone();
    let prefetch = b.trouble_prefetch.max(1);
    let mut behaviours = Vec::new();
    let slow = Duration::from_micros(b.slow_delay_us);
    behaviours.extend((0..b.slow_consumers).map(|_| Behaviour::healthy(slow)));
    behaviours.extend((0..b.flaky_consumers).map(|i| Behaviour {
        delay: Duration::ZERO,
        failure: Failure::Requeue {
            percent: b.flaky_percent,
            with: if i % 2 == 0 {
                Refusal::Nack
            } else {
                Refusal::Reject
            },
            seed: ctx.args.seed.wrapping_add(i as u64),
        },
    }));
    behaviours.extend((0..b.stalled_consumers).map(|_| Behaviour {
        delay: Duration::ZERO,
        failure: Failure::NeverAck,
    }));
    behaviours.extend((0..b.dropped_consumers).map(|_| Behaviour {
        delay: Duration::ZERO,
        failure: Failure::DropConnection {
            after_held: usize::from(prefetch),
        },
    }));
    let mut indexes = Vec::new();
    for behaviour in behaviours {
        indexes.push(ctx.spawn_consumer(queue, 0, behaviour, prefetch)?);
    }
    Ok(indexes)
}
