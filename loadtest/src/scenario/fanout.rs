//! fanout: producers publish into a fanout exchange (`--exchange`, default `hareperf.fanout`)
//! bound to `--fanout-queues` queues (`<queue>-1`, ... or `--queue-pattern`), one consumer
//! each. Every queue must receive every message.

use crate::report::model::PhaseKind;

use super::run_context::RunContext;
use super::throughput::publish_time;

/// Exchange used when `--exchange` is not given.
pub const FANOUT_EXCHANGE_DEFAULT: &str = "hareperf.fanout";

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    let count = ctx.args.fanout.fanout_queues.max(1);
    let queues: Vec<String> = match &ctx.args.queue_pattern {
        Some(pattern) => (1..=count)
            .map(|i| pattern.replace("{}", &i.to_string()))
            .collect(),
        None => (1..=count)
            .map(|i| format!("{}-{i}", ctx.args.queue))
            .collect(),
    };
    let exchange = if ctx.args.exchange.is_empty() {
        FANOUT_EXCHANGE_DEFAULT.to_string()
    } else {
        ctx.args.exchange.clone()
    };
    ctx.declare_queues(&queues, &exchange, "fanout")?;
    ctx.start_sampler()?;
    ctx.spawn_flag_consumers(&queues, queues.len())?;
    ctx.phase("publish", PhaseKind::Publish);
    let all_groups: Vec<usize> = (0..queues.len()).collect();
    let routing_key = ctx.args.routing_key.clone().unwrap_or_default();
    for _ in 0..ctx.args.producer_count(1) {
        let count = ctx.args.pmessages;
        ctx.spawn_producer(&exchange, &routing_key, all_groups.clone(), count)?;
    }
    ctx.publish_until_done(publish_time(ctx));
    ctx.phase("drain", PhaseKind::Consume);
    ctx.drain();
    Ok(())
}
