//! The scenarios, one file each, all built on `run_context::RunContext`.
//!
//! - `throughput`: producers and consumers flat out.
//! - `latency`: a fixed publish rate, for the latency distribution.
//! - `fanout`: one producer, a fanout exchange, N queues with a consumer each.
//! - `consumers_join_late`: a backlog builds, then consumers join and catch up.
//! - `churn`: connections opened and closed in a loop.
//! - `backlog`: the incident: a persistent flood, misbehaving consumers, recovery.
//! - `declare`: durable queues, bindings and deletes: the cost of a change as metadata grows.
//! - `retry`: refusals through a TTL retry queue and dead lettering until everything is acked.
//! - `delayed`: messages delayed over a window: how late each fires, what holding them costs.
//! - `soak`: a mixed durable workload while the broker is killed and restarted; checks that
//!   nothing confirmed is lost and no proven ack comes back.

pub mod backlog;
pub mod churn;
pub mod consumers_join_late;
pub mod declare;
pub mod delayed;
pub mod fanout;
pub mod latency;
pub mod retry;
pub mod run_context;
pub mod soak;
pub mod throughput;

use crate::cli::{RunArgs, ScenarioKind};
use crate::report::build::finish;
use crate::report::model::Report;

use run_context::RunContext;

/// Runs the scenario the arguments name and returns its report. Failures after the broker was
/// reached are recorded in `Report::errors` (the report still says what happened until then);
/// only failing to connect at all is an `Err`.
pub fn run(args: RunArgs) -> anyhow::Result<Report> {
    let scenario: fn(&mut RunContext) -> anyhow::Result<()> = match args.scenario {
        ScenarioKind::Throughput => throughput::run,
        ScenarioKind::Latency => latency::run,
        ScenarioKind::Fanout => fanout::run,
        ScenarioKind::ConsumersJoinLate => consumers_join_late::run,
        ScenarioKind::Churn => churn::run,
        ScenarioKind::Backlog => backlog::run,
        ScenarioKind::Declare => declare::run,
        ScenarioKind::Retry => retry::run,
        ScenarioKind::Delayed => delayed::run,
        // The soak starts the broker itself before anything can connect.
        ScenarioKind::Soak => return soak::run(args),
    };
    let mut ctx = RunContext::new(args)?;
    if let Err(e) = scenario(&mut ctx) {
        ctx.errors.push(format!("{e:#}"));
    }
    Ok(finish(ctx))
}
