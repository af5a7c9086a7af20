//! throughput: `--producers` publish flat out (or at `--rate`) to the run's queues while
//! `--consumers` consume them; producer i uses queue i mod n, consumer j queue j mod n. Publishing
//! stops after `--time` or `--pmessages`; the consumers then drain what is left, and the report
//! checks every id arrived.

use crate::report::model::PhaseKind;

use super::run_context::{RunContext, RUN_TIME_DEFAULT_S};

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    let queues = ctx.args.queue_names();
    let exchange = ctx.args.exchange.clone();
    let kind = ctx.args.exchange_type.clone();
    ctx.declare_queues(&queues, &exchange, &kind)?;
    ctx.start_sampler()?;
    let consumers = ctx.args.consumers;
    ctx.spawn_flag_consumers(&queues, consumers)?;
    ctx.phase("publish", PhaseKind::Publish);
    start_producers(ctx, &queues, &exchange)?;
    ctx.publish_until_done(publish_time(ctx));
    if consumers > 0 {
        ctx.phase("drain", PhaseKind::Consume);
        ctx.drain();
    }
    Ok(())
}

/// Starts `--producers` producers, producer i on queue i mod n.
pub fn start_producers(
    ctx: &mut RunContext,
    queues: &[String],
    exchange: &str,
) -> anyhow::Result<()> {
    for i in 0..ctx.args.producer_count(1) {
        let group = i % queues.len().max(1);
        let queue = queues.get(group).map_or("", String::as_str);
        let routing_key = ctx.args.routing_key_for(queue);
        let count = ctx.args.pmessages;
        ctx.spawn_producer(exchange, &routing_key, vec![group], count)?;
    }
    Ok(())
}

/// --time, or the default when no message count bounds the run either.
pub fn publish_time(ctx: &RunContext) -> Option<f64> {
    match (ctx.args.time, ctx.args.pmessages) {
        (Some(time), _) => Some(time),
        (None, Some(_)) => None,
        (None, None) => Some(RUN_TIME_DEFAULT_S),
    }
}
