//! The soak's setup and ending: fresh queues at the start; at the end the drain (no kills,
//! no refusals, until every confirmed message was acked and the checked queues are empty), a
//! clean stop and start of the broker after which no acked message may be back, the clean-up,
//! and the verdict.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hare_protocol::{BasicAck, BasicConsume, BasicQos, Method};

use crate::cli::RunArgs;
use crate::client::topology::short;
use crate::client::{AmqpUri, ClientError};
use crate::report::model::SoakResults;

use super::chaos::{grew, median, Chaos};
use super::ledger::body_id;
use super::session::{Event, Session};
use super::shared::{error_kind, Shared};

/// How often the drain looks at its progress.
const DRAIN_POLL: Duration = Duration::from_millis(500);
/// The check after the clean restart stops after this long without a delivery.
const FINAL_IDLE: Duration = Duration::from_secs(3);
const POLL: Duration = Duration::from_millis(50);

/// Deletes the fixed queues (left by an earlier run) and declares them anew, so that every
/// message in them is this run's.
pub fn fresh_queues(shared: &Shared) -> anyhow::Result<()> {
    let mut session = shared.open("soak setup", 1, POLL)?;
    delete_queues(shared, &mut session)?;
    shared.queues.declare(&mut session, 1)?;
    session.close()?;
    Ok(())
}

/// Deletes the fixed queues, and churned ones a kill left behind.
fn delete_queues(shared: &Shared, session: &mut Session) -> Result<(), ClientError> {
    for queue in shared.queues.fixed() {
        super::churn::delete_queue(session, &queue)?;
    }
    super::churn::delete_leftovers(shared, session)
}

/// Waits until every confirmed message was acked and the checked queues are empty (`true`),
/// or until no new message was acked for `--drain-timeout` seconds (`false`). Samples the
/// broker meanwhile.
pub fn drain(shared: &Shared, chaos: &mut Chaos, uri: &AmqpUri, drain_timeout_s: f64) -> bool {
    let idle_limit = Duration::from_secs_f64(drain_timeout_s.max(0.0));
    let mut last_acked = 0;
    let mut progress_at = Instant::now();
    let mut probe: Option<Session> = None;
    // Empty twice in a row, one poll apart: a message a consumer had just taken when the
    // queues looked empty has been acked by the second look.
    let mut empty_looks = 0;
    loop {
        chaos.run_until(uri, Instant::now() + DRAIN_POLL, false, || false);
        let (_, acked) = shared.ledger.distinct_counts();
        if acked != last_acked {
            last_acked = acked;
            progress_at = Instant::now();
        }
        if shared.ledger.unacked_confirmed().0 == 0 {
            match checked_ready(shared, &mut probe) {
                Ok(0) if empty_looks > 0 => break true,
                Ok(0) => empty_looks += 1,
                Ok(_) => empty_looks = 0,
                Err(e) => {
                    shared.ledger.error(error_kind(&e));
                    probe = None;
                    empty_looks = 0;
                }
            }
        }
        if progress_at.elapsed() > idle_limit {
            break false;
        }
    }
}

/// Ready messages in the checked queues (passive declares).
fn checked_ready(shared: &Shared, probe: &mut Option<Session>) -> Result<u64, ClientError> {
    let session = match probe {
        Some(session) => session,
        None => probe.insert(shared.open("soak drain probe", 1, POLL)?),
    };
    let mut total = 0u64;
    for queue in &shared.queues.checked {
        let request = hare_protocol::QueueDeclare {
            queue: short(queue)?,
            passive: true,
            ..Default::default()
        };
        if let Method::QueueDeclareOk(ok) = session.rpc(1, Method::QueueDeclare(request))? {
            total += u64::from(ok.message_count);
        }
    }
    Ok(total)
}

/// Ends the run: the clean restart and its check, the clean-up, the broker stopped, and the
/// figures and verdict.
pub fn finish(
    shared: &Shared,
    chaos: &mut Chaos,
    uri: &AmqpUri,
    args: &RunArgs,
    drained: bool,
) -> SoakResults {
    let mut failures = Vec::new();
    let mut left_after_clean_restart = None;
    let mut clean_returns = Vec::new();
    if chaos.broker.is_some() && chaos.restart_failure.is_none() {
        chaos.sample();
        if let Some(Err(e)) = chaos.broker.as_mut().map(super::broker::Broker::stop) {
            failures.push(format!("clean stop: {e:#}"));
        }
        chaos.restart(uri);
        if chaos.restart_failure.is_none() {
            match after_clean_restart(shared) {
                Ok((left, returned)) => {
                    left_after_clean_restart = Some(left);
                    clean_returns = returned;
                }
                Err(e) => failures.push(format!("checking after the clean restart: {e}")),
            }
        }
    }
    if let Some(failure) = &chaos.restart_failure {
        failures.push(failure.clone());
    } else if !args.keep_queues {
        let cleaned = shared
            .open("soak clean-up", 1, POLL)
            .and_then(|mut session| {
                delete_queues(shared, &mut session)?;
                session.close()
            });
        if let Err(e) = cleaned {
            failures.push(format!("deleting the soak's queues: {e}"));
        }
    }
    chaos.sample();
    if let Some(Err(e)) = chaos.broker.as_mut().map(super::broker::Broker::stop) {
        failures.push(format!("final stop: {e:#}"));
    }
    let mut results = figures(shared, chaos, drained);
    results.left_after_clean_restart = left_after_clean_restart;
    results.acked_returns += clean_returns.len() as u64;
    results
        .acked_returns_sample
        .extend(clean_returns.iter().take(10));
    failures.extend(verdict(&results, &args.soak, &clean_returns));
    results.failures = failures;
    results
}

/// After a clean stop every ack is on disk: consumes what the checked queues still hold and
/// returns how many messages that was and the ids among them that had been acked.
fn after_clean_restart(shared: &Shared) -> Result<(u64, Vec<u64>), ClientError> {
    let mut session = shared.open("soak final check", 1, POLL)?;
    session.rpc(
        1,
        Method::BasicQos(BasicQos {
            prefetch_size: 0,
            prefetch_count: 100,
            global: false,
        }),
    )?;
    for queue in &shared.queues.checked {
        session.rpc(
            1,
            Method::BasicConsume(BasicConsume {
                queue: short(queue)?,
                consumer_tag: short(&format!("soak-final-{queue}"))?,
                ..Default::default()
            }),
        )?;
    }
    let mut left = 0u64;
    let mut returned = Vec::new();
    let mut last = Instant::now();
    while last.elapsed() < FINAL_IDLE {
        if let Some(Event::Deliver {
            delivery_tag, body, ..
        }) = session.next_event()?
        {
            last = Instant::now();
            left += 1;
            if let Some(id) = body_id(&body).filter(|&id| shared.ledger.was_acked(id)) {
                returned.push(id);
            }
            session.send(
                1,
                &Method::BasicAck(BasicAck {
                    delivery_tag,
                    multiple: false,
                }),
            )?;
        }
    }
    session.close()?;
    Ok((left, returned))
}

/// The figures of the run, from the ledger and the chaos loop.
fn figures(shared: &Shared, chaos: &Chaos, drained: bool) -> SoakResults {
    let totals = shared.ledger.totals();
    let (lost, lost_sample) = shared.ledger.unacked_confirmed();
    let accept_ms: Vec<f64> = chaos
        .restart_times
        .iter()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    let sampled = chaos.per_start.iter().any(|u| u.rss_kib > 0);
    SoakResults {
        kills: chaos.kills,
        restarts: chaos.restart_times.len() as u64,
        time_to_accept_median_ms: median(&accept_ms),
        time_to_accept_max_ms: accept_ms.iter().copied().reduce(f64::max),
        published: totals.published,
        confirmed: totals.confirmed,
        committed: totals.committed,
        nacked: totals.nacked,
        consumed: totals.deliveries,
        redelivered: totals.redelivered,
        acked: totals.acked,
        refused: totals.refused,
        proven_acks: totals.proven_acked,
        acked_again: totals.acked_again,
        unknown_deliveries: totals.unknown_deliveries,
        lost,
        lost_sample,
        acked_returns: totals.acked_returns,
        acked_returns_sample: totals.acked_returns_sample,
        left_after_clean_restart: None,
        drained,
        crashed_consumers: shared.crashes.load(Ordering::Relaxed),
        churned_queues: shared.churned_queues.load(Ordering::Relaxed),
        dead_lettered: shared.dead_lettered.load(Ordering::Relaxed),
        connections: shared.connections.load(Ordering::Relaxed),
        rss_max_kib: sampled.then(|| chaos.per_start.iter().map(|u| u.rss_kib).max().unwrap_or(0)),
        fds_max: sampled.then(|| chaos.per_start.iter().map(|u| u.fds).max().unwrap_or(0)),
        rss_max_per_start_kib: chaos.per_start.iter().map(|u| u.rss_kib).collect(),
        fds_max_per_start: chaos.per_start.iter().map(|u| u.fds).collect(),
        client_errors: shared.ledger.errors(),
        failures: Vec::new(),
    }
}

/// Every violated check, in words.
fn verdict(
    results: &SoakResults,
    flags: &crate::cli::SoakArgs,
    clean_returns: &[u64],
) -> Vec<String> {
    let mut failures = Vec::new();
    if results.lost > 0 {
        failures.push(format!(
            "{} confirmed messages were never consumed (ids {:?})",
            results.lost, results.lost_sample
        ));
    }
    if !results.drained {
        failures.push("the final drain did not empty the checked queues".to_string());
    }
    let proven_returns = results.acked_returns - clean_returns.len() as u64;
    if proven_returns > 0 {
        failures.push(format!(
            "{proven_returns} deliveries of messages whose ack was proven on disk (ids {:?})",
            results.acked_returns_sample
        ));
    }
    if !clean_returns.is_empty() {
        failures.push(format!(
            "{} acked messages were back after a clean stop and start (ids {:?})",
            clean_returns.len(),
            clean_returns.iter().take(10).collect::<Vec<_>>()
        ));
    }
    if let Some(rss) = results
        .rss_max_kib
        .filter(|&kib| kib > flags.max_rss_mb * 1024)
    {
        failures.push(format!(
            "broker RSS reached {} MiB (--max-rss-mb {})",
            rss / 1024,
            flags.max_rss_mb
        ));
    }
    if let Some(fds) = results.fds_max.filter(|&fds| fds > flags.max_fds) {
        failures.push(format!(
            "the broker had {fds} open descriptors (--max-fds {})",
            flags.max_fds
        ));
    }
    let growth = [
        ("RSS (KiB)", &results.rss_max_per_start_kib),
        ("open descriptors", &results.fds_max_per_start),
    ];
    for (what, per_start) in growth {
        if let Some((first, last)) = grew(per_start, flags.max_growth_percent) {
            failures.push(format!(
                "the broker's {what} grew across restarts: median per start {first:.0} in the first third, {last:.0} in the last (--max-growth-percent {})",
                flags.max_growth_percent
            ));
        }
    }
    failures
}
