//! consumers_join_late: producers start alone, a backlog builds for
//! `--consumers-join-after` seconds, then the consumers join and must catch up while publishing
//! goes on. The depth chart shows whether the consumers win.

use std::time::{Duration, Instant};

use crate::report::model::PhaseKind;

use super::run_context::RunContext;
use super::throughput::{publish_time, start_producers};

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    let queues = ctx.args.queue_names();
    let exchange = ctx.args.exchange.clone();
    let kind = ctx.args.exchange_type.clone();
    ctx.declare_queues(&queues, &exchange, &kind)?;
    ctx.start_sampler()?;
    ctx.phase("producers only", PhaseKind::Publish);
    start_producers(ctx, &queues, &exchange)?;
    let join_after = ctx.args.late.consumers_join_after.max(0.0);
    let wait = Duration::from_secs_f64(join_after);
    ctx.status.plan_end(Instant::now() + wait);
    std::thread::sleep(wait);
    ctx.phase("consumers joined", PhaseKind::Consume);
    let consumers = ctx.args.consumers.max(1);
    ctx.spawn_flag_consumers(&queues, consumers)?;
    let remaining = publish_time(ctx).map(|t| (t - join_after).max(0.0));
    ctx.publish_until_done(remaining);
    ctx.phase("drain", PhaseKind::Consume);
    ctx.drain();
    Ok(())
}
