//! Turns a finished run's worker results, time series and counters into a `Report`: merges the
//! latency histograms, merges each queue group's received ids and checks them against what was
//! published.

use std::collections::BTreeMap;

use crate::measure::latency::LatencyHistogram;
use crate::measure::machine::Machine;
use crate::measure::proc_stat::{cpu_seconds, Process};
use crate::measure::received_ids::ReceivedIds;
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
    let broker_cpu_s = ctx
        .args
        .broker_pid
        .and_then(|p| cpu_seconds(Process::Pid(p)).ok())
        .zip(ctx.broker_cpu_start_s)
        .map(|(end, start)| end - start);

    let mut confirm_latency = LatencyHistogram::default();
    let (mut published, mut confirmed, mut nacked) = (0, 0, 0);
    for (result, _) in &ctx.producer_results {
        confirm_latency.merge(&result.confirm_latency);
        published += result.published;
        confirmed += result.confirmed;
        nacked += result.nacked;
    }
    let mut deliver_latency = LatencyHistogram::default();
    for result in &ctx.consumer_results {
        deliver_latency.merge(&result.deliver_latency);
    }
    let verification = verify(&ctx);
    let sum = |f: fn(&ConsumerResult) -> u64| ctx.consumer_results.iter().map(f).sum::<u64>();
    let publish_duration_s = match (ctx.publish_started_s, ctx.publish_ended_s) {
        (Some(start), Some(end)) => (end - start).max(1e-9),
        _ => duration_s,
    };
    let accepted = sum(|r| r.accepted);
    let peak = |v: &Vec<f64>| v.iter().copied().fold(0.0, f64::max);
    let results = Results {
        duration_s,
        publish_duration_s,
        published,
        confirmed,
        nacked,
        returned: ctx.counters.snapshot().returned,
        deliveries: sum(|r| r.deliveries),
        accepted,
        refused: sum(|r| r.refused),
        redelivered_deliveries: sum(|r| r.redelivered_deliveries),
        publish_rate_per_s: published as f64 / publish_duration_s,
        deliver_rate_per_s: accepted as f64 / duration_s.max(1e-9),
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
        broker_rss_max_kib: series.broker_rss_kib.iter().flatten().copied().max(),
        queue_depth_max: series.queue_depth.iter().flatten().copied().max(),
    };
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

/// Merges each queue group's ids and checks them against the producers that reach the group.
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
    v
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
