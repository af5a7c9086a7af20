//! retry: the classic retry with back-off on TTL and dead lettering, and what it costs.
//!
//! Two durable queues: the work queue `<queue>-retry-work` dead-letters (through the default
//! exchange) to the retry queue `<queue>-retry-wait`, whose `x-message-ttl` (`--retry-ttl-ms`,
//! 1,000) sends each message back, dead-lettered again, to the work queue.
//!
//! 1. **publish**: `--retry-messages` (100,000) persistent messages, split over `--producers`,
//!    with confirms (window `--confirm`, 1,000 unless given), while `--consumers` consume the
//!    work queue.
//! 2. **retry**: until every message was acked (or nothing happened for `--drain-timeout` plus
//!    the TTL). A consumer refuses (`--retry-with` reject or nack, requeue=false) the messages
//!    `--retry-percent` (100) picks, by id, until each was refused `--retry-times` (1) times,
//!    and acks the rest. It counts earlier refusals from the message's `x-death` header, not
//!    from memory, so any number of consumers work.
//!
//! The report proves every id was acked (`verification.lost`, with the missing ids), counts
//! duplicates, how many deliveries each message took, and the time from the first publish to
//! the final ack (`deliver_latency`, p50/p99); `results.retry.acked_rate_per_s` is messages fully
//! done per second, first publish to last ack.

use std::time::Duration;

use bytes::Bytes;
use hare_protocol::{FieldTable, FieldValue, ShortStr};

use crate::measure::received_ids::ReceivedIds;
use crate::report::model::{PhaseKind, RetryResults};
use crate::worker::inspecting_consumer::{InspectingResult, Inspection, RetryPolicy};

use super::run_context::RunContext;

/// Confirm window when `--confirm` is not given.
pub const RETRY_CONFIRM_WINDOW_DEFAULT: usize = 1000;

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    // Retried work is persistent work, whatever the flags say.
    ctx.args.persistent = true;
    ctx.args.confirm.get_or_insert(RETRY_CONFIRM_WINDOW_DEFAULT);
    ctx.args.rate = 0.0;
    let flags = ctx.args.retry.clone();
    let work = format!("{}-retry-work", ctx.args.queue);
    let wait = format!("{}-retry-wait", ctx.args.queue);
    ctx.retry = Some(RetryResults {
        work_queue: work.clone(),
        retry_queue: wait.clone(),
        ttl_ms: flags.retry_ttl_ms,
        ..Default::default()
    });
    ctx.declare_queue_with(&work, dead_letter_to(&wait))?;
    let mut wait_arguments = dead_letter_to(&work);
    wait_arguments.insert(
        ShortStr::from_static("x-message-ttl"),
        FieldValue::I64(i64::try_from(flags.retry_ttl_ms).unwrap_or(i64::MAX)),
    );
    ctx.declare_queue_with(&wait, wait_arguments)?;
    ctx.start_sampler()?;
    let policy = RetryPolicy {
        work_queue: work.clone(),
        percent: flags.retry_percent,
        times: flags.retry_times,
        refusal: flags.retry_with,
        seed: ctx.args.seed,
    };
    for _ in 0..ctx.args.consumers.max(1) {
        ctx.spawn_inspecting_consumer(&work, Inspection::Retry(policy.clone()))?;
    }

    ctx.phase("publish", PhaseKind::Publish);
    let producers = ctx.args.producer_count(1).max(1) as u64;
    let total = flags.retry_messages;
    for i in 0..producers {
        let share = total / producers + u64::from(i < total % producers);
        ctx.spawn_producer("", &work, vec![0], Some(share))?;
    }
    ctx.publish_until_done(None);

    ctx.phase("retry", PhaseKind::Consume);
    // A message may wait a whole TTL in the retry queue without anything being acked.
    let idle = Duration::from_secs_f64(ctx.args.drain_timeout.max(0.0))
        + Duration::from_millis(flags.retry_ttl_ms);
    ctx.drain_until(idle, None);
    let results = ctx.stop_inspecting_consumers();
    summarise(ctx, &results);
    Ok(())
}

/// Arguments that dead-letter a queue's refused or expired messages to `queue` through the
/// default exchange.
fn dead_letter_to(queue: &str) -> FieldTable {
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let mut arguments = FieldTable::new();
    arguments.insert(ShortStr::from_static("x-dead-letter-exchange"), text(""));
    arguments.insert(
        ShortStr::from_static("x-dead-letter-routing-key"),
        text(queue),
    );
    arguments
}

/// Fills the run's retry results from what the consumers saw.
fn summarise(ctx: &mut RunContext, results: &[InspectingResult]) {
    let mut ids = ReceivedIds::default();
    let mut histogram: Vec<u64> = Vec::new();
    for result in results {
        ids.merge(&result.base.ids);
        if histogram.len() < result.deliveries_per_message.len() {
            histogram.resize(result.deliveries_per_message.len(), 0);
        }
        for (total, count) in histogram.iter_mut().zip(&result.deliveries_per_message) {
            *total += count;
        }
    }
    let acked = ids.unique_count();
    let deliveries: u64 = results.iter().map(|r| r.base.deliveries).sum();
    let end_s = ctx.counters.accepted_at().1.map(RunContext::seconds);
    let acked_rate_per_s = ctx
        .publish_started_s
        .zip(end_s)
        .filter(|(start, end)| end > start)
        .map(|(start, end)| acked as f64 / (end - start));
    let Some(retry) = ctx.retry.as_mut() else {
        return;
    };
    retry.acked = acked;
    retry.deliveries = deliveries;
    retry.refused = results.iter().map(|r| r.base.refused).sum();
    retry.deliveries_per_message = (acked > 0).then(|| deliveries as f64 / acked as f64);
    retry.deliveries_histogram = histogram
        .iter()
        .enumerate()
        .filter(|(_, &count)| count > 0)
        .map(|(k, &count)| (k as u64, count))
        .collect();
    retry.off_plan = results.iter().map(|r| r.off_plan).sum();
    retry.end_s = end_s;
    retry.acked_rate_per_s = acked_rate_per_s;
    let unreadable: u64 = results.iter().map(|r| r.unreadable_headers).sum();
    if unreadable > 0 {
        ctx.errors.push(format!(
            "{unreadable} deliveries had a content header hareperf could not decode"
        ));
    }
}
