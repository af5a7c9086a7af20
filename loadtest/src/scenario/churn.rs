//! churn: `--churn-threads` threads open a connection, open a channel, publish
//! `--churn-publishes` stamped messages, close, and start over, for `--time` seconds. The report
//! gives connections per second and the handshake latency (TCP connect to `open-ok`); a consumer
//! on the queue proves the churned connections' messages all arrived.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::publish_template::PublishTemplate;
use crate::client::{AmqpUri, Connection};
use crate::measure::counters::Counters;
use crate::measure::latency::LatencyHistogram;
use crate::message_id::MessageId;
use crate::report::model::PhaseKind;
use crate::worker::producer::ProducerResult;

use super::run_context::RunContext;
use super::throughput::publish_time;

pub fn run(ctx: &mut RunContext) -> anyhow::Result<()> {
    let queue = ctx.args.queue.clone();
    ctx.declare_queues(std::slice::from_ref(&queue), "", "direct")?;
    ctx.start_sampler()?;
    let consumers = ctx.args.consumers;
    ctx.spawn_flag_consumers(std::slice::from_ref(&queue), consumers)?;
    ctx.phase("churn", PhaseKind::Publish);
    let stop = Arc::new(AtomicBool::new(false));
    let first_index = ctx.next_producer_index();
    let mut threads = Vec::new();
    for i in 0..ctx.args.churn.churn_threads.max(1) {
        let loop_config = ChurnLoop {
            index: u16::try_from(first_index + i)?,
            uri: ctx.uri.clone(),
            queue: queue.clone(),
            body_size: ctx.args.size,
            persistent: ctx.args.persistent,
            publishes: ctx.args.churn.churn_publishes,
            epoch: ctx.epoch,
        };
        let counters = Arc::clone(&ctx.counters);
        let stop = Arc::clone(&stop);
        threads.push(
            std::thread::Builder::new()
                .name(format!("hareperf-churn-{i}"))
                .spawn(move || loop_config.run(&counters, &stop))?,
        );
    }
    ctx.publish_started_s = Some(ctx.now_s());
    let time = Duration::from_secs_f64(
        publish_time(ctx)
            .unwrap_or(super::run_context::RUN_TIME_DEFAULT_S)
            .max(0.0),
    );
    ctx.status.plan_end(Instant::now() + time);
    std::thread::sleep(time);
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let (result, latency) = thread.join().unwrap_or_else(|_| {
            let failed = ProducerResult {
                error: Some("churn thread panicked".into()),
                ..Default::default()
            };
            (failed, LatencyHistogram::default())
        });
        ctx.connect_latency.merge(&latency);
        ctx.add_producer_result(result, vec![0]);
    }
    let ended_s = ctx.now_s();
    ctx.publish_ended_s = Some(ended_s);
    ctx.end_phase(ended_s);
    if consumers > 0 {
        ctx.phase("drain", PhaseKind::Consume);
        ctx.drain();
    }
    Ok(())
}

/// One churning thread.
struct ChurnLoop {
    index: u16,
    uri: AmqpUri,
    queue: String,
    body_size: usize,
    persistent: bool,
    publishes: u64,
    epoch: Instant,
}

impl ChurnLoop {
    fn run(&self, counters: &Counters, stop: &AtomicBool) -> (ProducerResult, LatencyHistogram) {
        let mut result = ProducerResult {
            index: self.index,
            ..Default::default()
        };
        let mut latency = LatencyHistogram::default();
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = self.once(counters, &mut result, &mut latency) {
                result.error = Some(format!("churn thread {}: {e}", self.index));
                break;
            }
        }
        (result, latency)
    }

    fn once(
        &self,
        counters: &Counters,
        result: &mut ProducerResult,
        latency: &mut LatencyHistogram,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut connection = Connection::open(&self.uri, "hareperf churn")?;
        latency.record_ns(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
        Counters::add(&counters.connections_opened, 1);
        connection.open_channel(1)?;
        if self.publishes > 0 {
            let template = PublishTemplate::new(
                1,
                "",
                &self.queue,
                self.body_size,
                self.persistent,
                connection.frame_max,
            )?;
            let mut out = Vec::with_capacity(template.size() * 4);
            let publish_ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
            for i in 0..self.publishes {
                let id = MessageId::new(self.index, result.published + i);
                template.append(&mut out, id, publish_ns);
            }
            connection.write_raw(&out)?;
            result.published += self.publishes;
            Counters::add(&counters.published, self.publishes);
        }
        // The close handshake makes the broker finish routing what this connection published
        // before the next one starts.
        connection.close()?;
        Ok(())
    }
}
