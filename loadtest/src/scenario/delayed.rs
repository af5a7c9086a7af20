//! delayed: many messages, each to be delivered after its own delay; how late does each fire,
//! and what does holding them cost the broker?
//!
//! `--delayed-messages` M (1,000,000), split over `--producers`, each delayed by a different
//! amount spread uniformly from 0 to `--delay-window-s` (60) in a random order (a hash of the
//! id and `--seed`), published with confirms (window `--confirm`, 1,000 unless given). The
//! delay travels where the broker reads it and in the body, after the stamp; the consumers of
//! `<queue>-delayed` (`--consumers`) record how late each message fired: delivery − (publish +
//! delay), on the one clock of this process.
//!
//! `--delay-mode`:
//! - `ttl-dlx` (default): messages go to the holding queue `<queue>-delayed-hold` with
//!   `expiration` = delay; it dead-letters expired messages through the default exchange to
//!   `<queue>-delayed`. RabbitMQ only expires per-message TTLs at the head of a queue, so with
//!   delays out of order most messages fire late there.
//! - `plugin`: an `x-delayed-message` exchange `<queue>-delayed-exchange`
//!   (`x-delayed-type=direct`, RabbitMQ's delayed-message plugin) bound to `<queue>-delayed`,
//!   messages with header `x-delay` = delay. A broker without that exchange type refuses the
//!   declare; the run then stops at once and says so.
//!
//! Phases: **publish** (until the last confirm), then **fire** (until every message arrived,
//! or none arrived for `--delay-window-s` + `--drain-timeout`). The broker's RSS (with
//! `--broker-pid`) is read when publishing starts and when it ends, besides the usual samples.

use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hare_protocol::{FieldTable, FieldValue, ShortStr};

use crate::cli::DelayMode;
use crate::client::delayed_publish::{DelayCarrier, DELAYED_BODY_MIN};
use crate::client::Connection;
use crate::measure::latency::LatencyHistogram;
use crate::measure::received_ids::ReceivedIds;
use crate::report::model::{DelayedResults, PhaseKind};
use crate::worker::inspecting_consumer::{InspectingResult, Inspection};
use crate::worker::producer::DelaySpec;

use super::run_context::RunContext;

/// Confirm window when `--confirm` is not given.
pub const DELAYED_CONFIRM_WINDOW_DEFAULT: usize = 1000;
/// The exchange type of RabbitMQ's delayed-message plugin.
pub const DELAYED_EXCHANGE_TYPE: &str = "x-delayed-message";

/// Where the producers publish.
struct Route {
    exchange: String,
    routing_key: String,
    carrier: DelayCarrier,
}

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    ctx.args
        .confirm
        .get_or_insert(DELAYED_CONFIRM_WINDOW_DEFAULT);
    ctx.args.rate = 0.0;
    ctx.args.size = ctx.args.size.max(DELAYED_BODY_MIN);
    let flags = ctx.args.delayed.clone();
    let target = format!("{}-delayed", ctx.args.queue);
    let (holding, route) = match flags.delay_mode {
        DelayMode::TtlDlx => declare_ttl_dlx(ctx, &target)?,
        DelayMode::Plugin => declare_plugin(ctx, &target)?,
    };
    ctx.delayed = Some(DelayedResults {
        mode: flags.delay_mode.name().to_string(),
        window_s: flags.delay_window_s,
        holding,
        target_queue: target.clone(),
        ..Default::default()
    });
    ctx.start_sampler()?;
    for _ in 0..ctx.args.consumers.max(1) {
        ctx.spawn_inspecting_consumer(&target, Inspection::Delayed)?;
    }

    ctx.phase("publish", PhaseKind::Publish);
    let rss_before = ctx.read_broker_rss();
    let spec = DelaySpec {
        carrier: route.carrier,
        window_ms: flags.window_ms(),
        seed: ctx.args.seed,
    };
    let producers = ctx.args.producer_count(1).max(1) as u64;
    let total = flags.delayed_messages;
    for i in 0..producers {
        let share = total / producers + u64::from(i < total % producers);
        ctx.spawn_producer_with(
            &route.exchange,
            &route.routing_key,
            vec![0],
            Some(share),
            Some(spec),
        )?;
    }
    ctx.publish_until_done(None);
    let rss_published = ctx.read_broker_rss();

    ctx.phase("fire", PhaseKind::Consume);
    // Every message is due at most a window after the last confirm, so nothing may arrive for
    // that long; after that the broker may still be busy firing what is overdue (RabbitMQ with
    // ttl-dlx), which counts as progress: only a broker that stops firing ends the wait early.
    let idle = Duration::from_secs_f64(flags.delay_window_s + ctx.args.drain_timeout.max(0.0));
    ctx.drain_until(idle, None);
    let results = ctx.stop_inspecting_consumers();
    summarise(ctx, &results, rss_before, rss_published);
    Ok(())
}

/// The consumed queue, and the holding queue that dead-letters expired messages to it.
fn declare_ttl_dlx(ctx: &mut RunContext, target: &str) -> anyhow::Result<(String, Route)> {
    let holding = format!("{target}-hold");
    ctx.declare_queue_with(target, FieldTable::new())?;
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    let mut arguments = FieldTable::new();
    arguments.insert(ShortStr::from_static("x-dead-letter-exchange"), text(""));
    arguments.insert(
        ShortStr::from_static("x-dead-letter-routing-key"),
        text(target),
    );
    ctx.declare_queue_with(&holding, arguments)?;
    let route = Route {
        exchange: String::new(),
        routing_key: holding.clone(),
        carrier: DelayCarrier::Expiration,
    };
    Ok((holding, route))
}

/// The delayed-message exchange, bound to the consumed queue. The exchange is declared first,
/// on a connection of its own: a broker without the exchange type closes that connection, and
/// the run ends there with nothing else declared.
fn declare_plugin(ctx: &mut RunContext, target: &str) -> anyhow::Result<(String, Route)> {
    let exchange = format!("{target}-exchange");
    let durable = ctx.args.persistent;
    let mut arguments = FieldTable::new();
    arguments.insert(
        ShortStr::from_static("x-delayed-type"),
        FieldValue::LongStr(Bytes::from_static(b"direct")),
    );
    let mut probe = Connection::open(&ctx.uri, "hareperf delayed exchange")
        .with_context(|| format!("connecting to {}", ctx.uri.address()))?;
    probe.open_channel(1)?;
    probe
        .exchange_declare_with(1, &exchange, DELAYED_EXCHANGE_TYPE, durable, arguments)
        .with_context(|| {
            format!(
                "declaring exchange {exchange:?} of type {DELAYED_EXCHANGE_TYPE} (RabbitMQ's \
                 delayed-message plugin); a broker without it refuses this: use \
                 --delay-mode ttl-dlx"
            )
        })?;
    ctx.keep_exchange(&exchange);
    let _ = probe.close();
    ctx.declare_queue_with(target, FieldTable::new())?;
    ctx.setup()?
        .queue_bind(1, target, &exchange, target)
        .with_context(|| format!("binding {target:?} to {exchange:?}"))?;
    let route = Route {
        exchange: exchange.clone(),
        routing_key: target.to_string(),
        carrier: DelayCarrier::DelayHeader,
    };
    Ok((exchange, route))
}

/// Fills the run's delayed results from what the consumers saw.
fn summarise(
    ctx: &mut RunContext,
    results: &[InspectingResult],
    rss_before: Option<u64>,
    rss_published: Option<u64>,
) {
    let mut ids = ReceivedIds::default();
    let mut lateness = LatencyHistogram::default();
    for result in results {
        ids.merge(&result.base.ids);
        lateness.merge(&result.lateness);
    }
    let messages = ctx.args.delayed.delayed_messages;
    let fire_end_s = ctx.counters.accepted_at().1.map(RunContext::seconds);
    let Some(delayed) = ctx.delayed.as_mut() else {
        return;
    };
    delayed.fired = ids.unique_count();
    delayed.lateness = lateness.summary();
    delayed.early = results.iter().map(|r| r.early).sum();
    delayed.early_max_us = results.iter().map(|r| r.early_max_ns).max().unwrap_or(0) / 1000;
    delayed.fire_end_s = fire_end_s;
    delayed.broker_rss_before_kib = rss_before;
    delayed.broker_rss_published_kib = rss_published;
    delayed.broker_rss_per_message_bytes = rss_before
        .zip(rss_published)
        .map(|(before, after)| (after as f64 - before as f64) * 1024.0 / messages.max(1) as f64);
}
