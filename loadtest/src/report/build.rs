//! Turns a finished run's worker results, time series and counters into a `Report`: merges the
//! latency histograms, merges each queue group's received ids and checks them against what was
//! published.

use std::collections::BTreeMap;

use crate::measure::context_switches::context_switches;
use crate::measure::latency::LatencyHistogram;
use crate::measure::machine::Machine;
use crate::measure::perf_stat::{PerfCounts, PerfStat};
use crate::measure::proc_stat::{cpu_seconds, Process};
use crate::measure::received_ids::ReceivedIds;
use crate::measure::sampler::Series;
use crate::message_id::MessageId;
use crate::scenario::run_context::RunContext;
use crate::worker::consumer::ConsumerResult;

use super::model::{
    BrokerReport, ConsumerReport, Report, Results, Verification, REPORT_FORMAT_VERSION,
};

/// Stops whatever still runs and writes up the run.
pub fn finish(mut ctx: RunContext) -> Report {
    let series = ctx.stop_all();
    let duration_s = ctx.now_s();
    let client_cpu_s = cpu_seconds(Process::OwnProcess).unwrap_or(0.0) - ctx.client_cpu_start_s;
    let broker = BrokerEnd::read(&mut ctx);
    let broker_cpu_s = broker.cpu_s;

    let ProducerTotals {
        confirm_latency,
        published,
        confirmed,
        nacked,
    } = producer_totals(&ctx);
    let mut deliver_latency = LatencyHistogram::default();
    for result in &ctx.consumer_results {
        deliver_latency.merge(&result.deliver_latency);
    }
    let verification = verify(&ctx);
    let left_queued_errors = check_left_queued(&ctx, &verification, published, confirmed);
    ctx.errors.extend(left_queued_errors);
    let sum = |f: fn(&ConsumerResult) -> u64| ctx.consumer_results.iter().map(f).sum::<u64>();
    let publish_duration_s = match (ctx.publish_started_s, ctx.publish_ended_s) {
        (Some(start), Some(end)) => (end - start).max(1e-9),
        _ => duration_s,
    };
    let accepted = sum(|r| r.accepted);
    let deliver_end_s = ctx.counters.accepted_at().1.map(RunContext::seconds);
    let deliver_duration_s = match (ctx.publish_started_s, deliver_end_s) {
        (Some(start), Some(end)) => (end - start).max(1e-9),
        _ => duration_s,
    };
    let timings = backlog_timings(&ctx, confirmed);
    let peak = |v: &Vec<f64>| v.iter().copied().fold(0.0, f64::max);
    let (queue_depth_max, broker_rss_max_kib) = (
        queue_depth_max(&ctx, &series),
        broker_rss_max_kib(&ctx, &series),
    );
    let mut results = Results {
        duration_s,
        publish_duration_s,
        publish_start_s: ctx.publish_started_s,
        publish_end_s: ctx.publish_ended_s,
        deliver_end_s,
        deliver_duration_s,
        published,
        confirmed,
        nacked,
        returned: ctx.counters.snapshot().returned,
        deliveries: sum(|r| r.deliveries),
        accepted,
        refused: sum(|r| r.refused),
        redelivered_deliveries: sum(|r| r.redelivered_deliveries),
        publish_rate_per_s: published as f64 / publish_duration_s,
        deliver_rate_per_s: accepted as f64 / deliver_duration_s.max(1e-9),
        flood_end_s: timings.flood_end_s,
        flood_rate_per_s: timings.flood_rate_per_s,
        drain_end_s: timings.drain_end_s,
        drain_rate_per_s: timings.drain_rate_per_s,
        drain_unheld_end_s: timings.drain_unheld_end_s,
        drain_unheld_rate_per_s: timings.drain_unheld_rate_per_s,
        publish_rate_peak_per_s: peak(&series.published_per_s),
        deliver_rate_peak_per_s: peak(&series.accepted_per_s),
        confirm_latency: confirm_latency.summary(),
        deliver_latency: deliver_latency.summary(),
        connect_latency: ctx.connect_latency.summary(),
        connections_opened: ctx.counters.snapshot().connections_opened,
        verification,
        client_cpu_s,
        client_cpu_percent: client_cpu_s / duration_s.max(1e-9) * 100.0,
        broker_cpu_s,
        broker_cpu_percent: broker_cpu_s.map(|s| s / duration_s.max(1e-9) * 100.0),
        broker_rss_max_kib,
        broker_rss_start_kib: ctx.broker_rss_start_kib,
        broker_rss_flood_end_kib: ctx.broker_rss_flood_end_kib,
        broker_rss_end_kib: ctx.broker_rss_end_kib,
        queue_depth_max,
        queue_depth_end: ctx.queue_depth_end,
        ..scenario_results(&ctx)
    };
    broker.add_cost(&mut results);
    Report {
        format_version: REPORT_FORMAT_VERSION,
        hareperf_version: env!("CARGO_PKG_VERSION").to_string(),
        scenario: ctx.args.scenario.name().to_string(),
        started_unix_ms: ctx.started_unix_ms,
        parameters: redacted(&ctx.args),
        broker: BrokerReport {
            label: ctx.server.label(),
            server: ctx.server.clone(),
            pid: ctx.args.broker_pid,
        },
        machine: Machine::current(),
        results,
        phases: ctx.phases.clone(),
        consumers: consumer_reports(&ctx.consumer_results),
        series,
        errors: ctx.errors.clone(),
    }
}

/// The broker's counters at the end of the run, read together so they share one window.
struct BrokerEnd {
    /// CPU seconds since the run started.
    cpu_s: Option<f64>,
    /// Context switches since the run started.
    switches: Option<u64>,
    perf: Option<Result<PerfCounts, String>>,
}

impl BrokerEnd {
    fn read(ctx: &mut RunContext) -> BrokerEnd {
        let process = ctx.args.broker_pid.map(Process::Pid);
        let cpu_s = process
            .and_then(|p| cpu_seconds(p).ok())
            .zip(ctx.broker_cpu_start_s)
            .map(|(end, start)| end - start);
        let switches = process
            .and_then(|p| context_switches(p).ok())
            .zip(ctx.broker_switches_start)
            .map(|(end, start)| end.switches.saturating_sub(start.switches));
        let perf = ctx.broker_perf.take().map(PerfStat::stop);
        BrokerEnd {
            cpu_s,
            switches,
            perf,
        }
    }

    /// The per-message figures: each count ÷ the messages published.
    fn add_cost(self, results: &mut Results) {
        let messages = results.published;
        let per_message = |count: f64| (messages > 0).then(|| count / messages as f64);
        results.broker_cpu_us_per_message = self.cpu_s.and_then(|s| per_message(s * 1e6));
        results.broker_context_switches = self.switches;
        results.broker_context_switches_per_message =
            self.switches.and_then(|n| per_message(n as f64));
        match self.perf {
            Some(Ok(counts)) => {
                results.broker_syscalls = counts.syscalls;
                results.broker_syscalls_per_message =
                    counts.syscalls.and_then(|n| per_message(n as f64));
                results.broker_io_uring_enter = counts.io_uring_enter;
                results.broker_io_uring_enter_per_message =
                    counts.io_uring_enter.and_then(|n| per_message(n as f64));
                results.broker_perf_context_switches = counts.context_switches;
            }
            Some(Err(reason)) => results.broker_perf_unavailable = Some(reason),
            None => {}
        }
    }
}

/// The figures only some scenarios have (declare, retry, delayed); the rest left default.
fn scenario_results(ctx: &RunContext) -> Results {
    Results {
        declare: ctx.declare.clone(),
        retry: ctx.retry.clone(),
        soak: ctx.soak.clone(),
        delayed: ctx.delayed.clone(),
        ..Default::default()
    }
}

/// What every producer published, summed, with their confirm latencies merged.
struct ProducerTotals {
    confirm_latency: LatencyHistogram,
    published: u64,
    confirmed: u64,
    nacked: u64,
}

fn producer_totals(ctx: &RunContext) -> ProducerTotals {
    let mut totals = ProducerTotals {
        confirm_latency: LatencyHistogram::default(),
        published: 0,
        confirmed: 0,
        nacked: 0,
    };
    for (result, _) in &ctx.producer_results {
        totals.confirm_latency.merge(&result.confirm_latency);
        totals.published += result.published;
        totals.confirmed += result.confirmed;
        totals.nacked += result.nacked;
    }
    totals
}

/// The deepest the queues were: in the sampled series or at a phase boundary.
fn queue_depth_max(ctx: &RunContext, series: &Series) -> Option<u64> {
    let depth_boundaries = ctx
        .phases
        .iter()
        .flat_map(|p| [p.queue_depth_start, p.queue_depth_end])
        .chain([ctx.queue_depth_end])
        .flatten();
    series
        .queue_depth_max()
        .into_iter()
        .chain(depth_boundaries)
        .max()
}

/// The broker's largest RSS: sampled, or read at a phase boundary.
fn broker_rss_max_kib(ctx: &RunContext, series: &Series) -> Option<u64> {
    series
        .broker_rss_kib
        .iter()
        .flatten()
        .copied()
        .chain(ctx.broker_rss_read_max_kib)
        .max()
}

/// The backlog scenario's exact timings and the rates they give.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct BacklogTimings {
    flood_end_s: Option<f64>,
    flood_rate_per_s: Option<f64>,
    drain_end_s: Option<f64>,
    drain_rate_per_s: Option<f64>,
    drain_unheld_end_s: Option<f64>,
    drain_unheld_rate_per_s: Option<f64>,
}

fn backlog_timings(ctx: &RunContext, confirmed: u64) -> BacklogTimings {
    let Some(flood_end_s) = ctx.flood_end_s else {
        return BacklogTimings::default();
    };
    // Recovery consumers that had more to do than the held messages finish both together.
    let unheld = ctx.drain_unheld_end.or(ctx.drain_end);
    BacklogTimings {
        flood_end_s: Some(flood_end_s),
        flood_rate_per_s: ctx
            .publish_started_s
            .and_then(|start| rate(confirmed, start, flood_end_s)),
        drain_end_s: ctx.drain_end.map(|(end_s, _)| end_s),
        drain_rate_per_s: ctx
            .drain_end
            .and_then(|(end_s, accepted)| rate(accepted, flood_end_s, end_s)),
        drain_unheld_end_s: unheld.map(|(end_s, _)| end_s),
        drain_unheld_rate_per_s: unheld
            .and_then(|(end_s, accepted)| rate(accepted, flood_end_s, end_s)),
    }
}

/// `messages` per second from `start_s` to `end_s`; `None` unless time passed.
fn rate(messages: u64, start_s: f64, end_s: f64) -> Option<f64> {
    (end_s > start_s).then(|| messages as f64 / (end_s - start_s))
}

/// Merges each queue group's ids and checks them against the producers that reach the group.
/// A run without consumers cannot prove anything per id: what it published must still be
/// queued, so it reports the final depth as `left_queued` instead of counting loss.
fn verify(ctx: &RunContext) -> Verification {
    let mut groups: BTreeMap<usize, ReceivedIds> = BTreeMap::new();
    for result in &ctx.consumer_results {
        groups.entry(result.group).or_default().merge(&result.ids);
    }
    let mut v = Verification {
        drained: ctx.drained,
        ..Default::default()
    };
    let group_indexes: std::collections::BTreeSet<usize> = ctx
        .producer_results
        .iter()
        .flat_map(|(_, g)| g.iter().copied())
        .chain(groups.keys().copied())
        .collect();
    let empty = ReceivedIds::default();
    for group in group_indexes {
        let ids = groups.get(&group).unwrap_or(&empty);
        let published: Vec<(u16, u64)> = ctx
            .producer_results
            .iter()
            .filter(|(_, g)| g.contains(&group))
            .map(|(r, _)| (r.index, r.published))
            .collect();
        v.expected += published.iter().map(|(_, n)| n).sum::<u64>();
        v.received_unique += ids.unique_count();
        v.duplicates += ids.duplicates();
        v.redelivered_accepted += ids.redelivered_count();
        let missing = ids.missing(&published);
        v.lost += missing.count;
        v.lost_sample
            .extend(missing.sample.iter().map(|id| label(*id)));
        for result in ctx.consumer_results.iter().filter(|r| r.group == group) {
            let returned = result
                .held
                .iter()
                .filter(|id| ids.accepted_redelivered(**id))
                .count() as u64;
            if result.dropped {
                v.dropped_held += result.held.len() as u64;
                v.dropped_returned_redelivered += returned;
            } else {
                v.stalled_held += result.held.len() as u64;
                v.stalled_returned_redelivered += returned;
            }
        }
    }
    v.lost_sample
        .truncate(crate::measure::received_ids::MISSING_SAMPLE_MAX);
    if ctx.consumer_results.is_empty() {
        v.lost = 0;
        v.lost_sample.clear();
        v.left_queued = ctx.queue_depth_end;
    }
    v
}

/// What a run without consumers can check: with confirms, every publish was confirmed and the
/// queues hold at least what was confirmed. Returns the errors to report.
fn check_left_queued(
    ctx: &RunContext,
    v: &Verification,
    published: u64,
    confirmed: u64,
) -> Vec<String> {
    let mut errors = Vec::new();
    if !ctx.consumer_results.is_empty() || ctx.args.confirm.is_none() {
        return errors;
    }
    if confirmed < published {
        errors.push(format!(
            "only {confirmed} of {published} published messages were confirmed"
        ));
    } else if let Some(left) = v.left_queued.filter(|&left| left < v.expected) {
        errors.push(format!(
            "the queues hold {left} messages, but {} were published and confirmed",
            v.expected
        ));
    }
    errors
}

/// The parameters with the URI's password replaced, so reports can be shared.
fn redacted(args: &crate::cli::RunArgs) -> crate::cli::RunArgs {
    let mut args = args.clone();
    args.uri = redact_password(&args.uri);
    args
}

/// `amqp://user:secret@host/` → `amqp://user:***@host/`.
pub fn redact_password(uri: &str) -> String {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return uri.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => uri.to_string(),
    }
}

fn label(id: MessageId) -> String {
    format!("{}:{}", id.producer_index, id.sequence)
}

fn consumer_reports(results: &[ConsumerResult]) -> Vec<ConsumerReport> {
    let mut reports: Vec<ConsumerReport> = results
        .iter()
        .map(|r| ConsumerReport {
            index: r.index,
            queue_group: r.group,
            behaviour: r.behaviour.clone(),
            deliveries: r.deliveries,
            accepted: r.accepted,
            refused: r.refused,
            held: r.held.len() as u64,
            dropped: r.dropped,
        })
        .collect();
    reports.sort_by_key(|r| r.index);
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_report() {
        assert_eq!(
            redact_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_password("amqp://h:1/v"), "amqp://h:1/v");
        assert_eq!(redact_password("amqp://u:p@w@h"), "amqp://u:***@h");
    }
}
