//! latency: throughput at a fixed publish rate (`--rate`, 1,000 msg/s per producer unless
//! given), far below saturation, so the publish→deliver and publish→confirm distributions show
//! the broker's latency and not its queueing.

use super::run_context::RunContext;
use super::throughput;

/// Publish rate per producer when `--rate` is not given.
pub const LATENCY_RATE_DEFAULT: f64 = 1000.0;

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    if ctx.args.rate <= 0.0 {
        ctx.args.rate = LATENCY_RATE_DEFAULT;
    }
    throughput::run(ctx)
}
