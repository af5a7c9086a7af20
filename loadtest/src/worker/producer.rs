//! A producer: one connection, one channel, one thread writing batches of stamped messages.
//!
//! Each batch is many complete publishes appended to one reused buffer and sent with one
//! `write_all`, so the per-message cost is a memcpy and a 16-byte patch. With `--one-per-write`
//! the batch is one message: every publish is a write of its own, as with ordinary clients. With confirms, a batch
//! only goes out when the confirm window has room (see `confirm_window`). With `rate_per_s` the
//! producer paces itself against the clock, not by sleeping a fixed time per message.

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hare_protocol::{write_method_frame, ConnectionClose, Method, ShortStr};

use crate::client::delayed_publish::{delay_for, DelayCarrier, DelayedPublish};
use crate::client::publish_template::PublishTemplate;
use crate::client::{AmqpUri, ClientError, Connection};
use crate::measure::counters::Counters;
use crate::measure::latency::LatencyHistogram;
use crate::message_id::MessageId;

use super::confirm_window::{read_confirms, ConfirmWindow};

/// How long a producer waits for its last confirms after it stops publishing.
pub const CONFIRM_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one producer publishes.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub index: u16,
    pub uri: AmqpUri,
    pub exchange: String,
    pub routing_key: String,
    pub body_size: usize,
    pub persistent: bool,
    /// Unconfirmed messages allowed at once; `None` = no publisher confirms.
    pub confirm_window: Option<usize>,
    /// Messages per second; 0 = as fast as possible.
    pub rate_per_s: f64,
    /// Stop after this many messages (otherwise when told to stop).
    pub message_count: Option<u64>,
    /// Messages per write.
    pub batch_size: usize,
    /// Delay every message (the delayed scenario); `None` for plain messages.
    pub delay: Option<DelaySpec>,
    pub epoch: Instant,
}

/// How a producer delays its messages: each gets `delay_for(id, seed, window_ms)` ms, carried
/// where the broker reads it and in the body (`client::delayed_publish`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelaySpec {
    pub carrier: DelayCarrier,
    pub window_ms: u64,
    pub seed: u64,
}

/// Encodes a producer's messages: one template stamped per message, or a delayed publish
/// encoded per message.
enum MessageEncoder {
    Plain(PublishTemplate),
    Delayed(DelayedPublish, DelaySpec),
}

impl MessageEncoder {
    fn new(config: &ProducerConfig, frame_max: u32) -> Result<MessageEncoder, ClientError> {
        Ok(match config.delay {
            None => MessageEncoder::Plain(PublishTemplate::new(
                1,
                &config.exchange,
                &config.routing_key,
                config.body_size,
                config.persistent,
                frame_max,
            )?),
            Some(spec) => MessageEncoder::Delayed(
                DelayedPublish::new(
                    1,
                    &config.exchange,
                    &config.routing_key,
                    config.body_size,
                    config.persistent,
                    spec.carrier,
                    frame_max,
                )?,
                spec,
            ),
        })
    }

    fn size(&self) -> usize {
        match self {
            MessageEncoder::Plain(template) => template.size(),
            MessageEncoder::Delayed(publish, _) => publish.size_hint(),
        }
    }

    fn append(&mut self, out: &mut Vec<u8>, id: MessageId, publish_ns: u64) {
        match self {
            MessageEncoder::Plain(template) => template.append(out, id, publish_ns),
            MessageEncoder::Delayed(publish, spec) => {
                let delay_ms = delay_for(id, spec.seed, spec.window_ms);
                publish.append(out, id, publish_ns, delay_ms);
            }
        }
    }
}

/// What a producer did.
#[derive(Debug, Clone, Default)]
pub struct ProducerResult {
    pub index: u16,
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub blocked_notices: u64,
    pub confirm_latency: LatencyHistogram,
    /// Seconds since the run's epoch when the first batch was written; `None` if nothing was.
    pub first_publish_s: Option<f64>,
    /// Seconds since the run's epoch when the last batch had been written.
    pub last_publish_s: Option<f64>,
    /// Seconds since the run's epoch when the last confirm arrived (with confirms).
    pub last_confirm_s: Option<f64>,
    /// Seconds since the run's epoch when the last message was published and, with confirms,
    /// confirmed: the later of `last_publish_s` and `last_confirm_s`, or when the producer
    /// stopped if it published nothing. The close handshake is not publishing time.
    pub finished_s: f64,
    pub error: Option<String>,
}

/// Starts a producer thread; it stops at its message count or when `stop` is set.
pub fn spawn(
    config: ProducerConfig,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<ProducerResult>> {
    std::thread::Builder::new()
        .name(format!("hareperf-producer-{}", config.index))
        .spawn(move || {
            let mut result = ProducerResult {
                index: config.index,
                ..Default::default()
            };
            if let Err(e) = run(&config, &counters, &stop, &mut result) {
                result
                    .error
                    .get_or_insert(format!("producer {}: {e}", config.index));
            }
            result
        })
}

fn run(
    config: &ProducerConfig,
    counters: &Arc<Counters>,
    stop: &AtomicBool,
    result: &mut ProducerResult,
) -> anyhow::Result<()> {
    let mut connection =
        Connection::open(&config.uri, &format!("hareperf producer {}", config.index))?;
    Counters::add(&counters.connections_opened, 1);
    connection.open_channel(1)?;
    if config.confirm_window.is_some() {
        connection.confirm_select(1)?;
    }
    let mut encoder = MessageEncoder::new(config, connection.frame_max)?;
    let parts = connection.into_parts();
    let mut stream = parts.stream;
    let window = Arc::new(ConfirmWindow::new(config.confirm_window));
    let reader = {
        let stream = stream.try_clone()?;
        let window = Arc::clone(&window);
        let counters = Arc::clone(counters);
        let epoch = config.epoch;
        std::thread::Builder::new()
            .name(format!("hareperf-confirms-{}", config.index))
            .spawn(move || {
                read_confirms(
                    stream,
                    parts.read,
                    parts.frame_max,
                    &window,
                    &counters,
                    epoch,
                )
            })?
    };
    let mut times = PublishTimes::default();
    let published = publish_loop(
        config,
        &mut encoder,
        &mut stream,
        &window,
        counters,
        stop,
        &mut times,
    );
    result.published = published.as_ref().map_or_else(|(n, _)| *n, |n| *n);
    if published.is_ok() && config.confirm_window.is_some() {
        let outstanding = window.drain(CONFIRM_DRAIN_TIMEOUT);
        if outstanding > 0 {
            result.error = Some(format!(
                "producer {}: {outstanding} messages still unconfirmed after {} s",
                config.index,
                CONFIRM_DRAIN_TIMEOUT.as_secs()
            ));
        }
    }
    let stopped_s = config.epoch.elapsed().as_secs_f64();
    window.mark_closing();
    let mut close = Vec::new();
    write_method_frame(
        &mut close,
        0,
        &Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("hareperf done"),
            ..Default::default()
        }),
    );
    if stream.write_all(&close).is_err() {
        let _ = stream.shutdown(Shutdown::Both);
    }
    result.confirm_latency = reader.join().unwrap_or_default();
    let _ = stream.shutdown(Shutdown::Both);
    let (confirmed, nacked, blocked, failure) = window.totals();
    result.confirmed = confirmed;
    result.nacked = nacked;
    result.blocked_notices = blocked;
    let seconds = |ns: u64| ns as f64 / 1e9;
    result.first_publish_s = times.first_ns.map(seconds);
    result.last_publish_s = times.last_ns.map(seconds);
    result.last_confirm_s = window.last_settled_ns().map(seconds);
    result.finished_s = match (result.last_publish_s, result.last_confirm_s) {
        (Some(published), Some(confirmed)) => published.max(confirmed),
        (Some(published), None) => published,
        _ => stopped_s,
    };
    if let Some(failure) = failure {
        result.error = Some(format!("producer {}: {failure}", config.index));
    } else if let Err((_, e)) = published {
        result.error = Some(format!("producer {}: {e}", config.index));
    }
    Ok(())
}

/// When a producer's first and last batches went out, in ns since the run's epoch.
#[derive(Debug, Clone, Copy, Default)]
struct PublishTimes {
    /// Just before the first batch was written.
    first_ns: Option<u64>,
    /// Just after the last batch was written.
    last_ns: Option<u64>,
}

/// Publishes until done; returns the count, or the count so far and the error.
fn publish_loop(
    config: &ProducerConfig,
    encoder: &mut MessageEncoder,
    stream: &mut impl Write,
    window: &ConfirmWindow,
    counters: &Counters,
    stop: &AtomicBool,
    times: &mut PublishTimes,
) -> Result<u64, (u64, String)> {
    let batch_size = config.batch_size.max(1);
    let mut out = Vec::with_capacity(batch_size * encoder.size());
    let mut sequence = 0u64;
    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(sequence);
        }
        let mut wanted = batch_size as u64;
        if let Some(count) = config.message_count {
            wanted = wanted.min(count - sequence);
            if wanted == 0 {
                return Ok(sequence);
            }
        }
        if config.rate_per_s > 0.0 {
            let due = (started.elapsed().as_secs_f64() * config.rate_per_s) as u64 + 1;
            let allowed = due.saturating_sub(sequence);
            if allowed == 0 {
                let next_s = sequence as f64 / config.rate_per_s;
                let wait = Duration::from_secs_f64(next_s).saturating_sub(started.elapsed());
                std::thread::sleep(wait.min(Duration::from_millis(10)));
                continue;
            }
            wanted = wanted.min(allowed);
        }
        let wanted = usize::try_from(wanted).unwrap_or(batch_size);
        let n = window
            .reserve(wanted, Duration::from_millis(100))
            .map_err(|e| (sequence, e))? as u64;
        if n == 0 {
            continue;
        }
        let publish_ns = u64::try_from(config.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        times.first_ns.get_or_insert(publish_ns);
        out.clear();
        for i in 0..n {
            encoder.append(
                &mut out,
                MessageId::new(config.index, sequence + i),
                publish_ns,
            );
        }
        // Delivery tags count from 1; registering before the write means no confirm can
        // arrive for a message the window does not know yet.
        window.register(sequence + 1, n, publish_ns);
        if let Err(e) = stream.write_all(&out) {
            // The reader thread usually knows why (the broker closed the connection).
            let reason = window
                .reserve(0, Duration::from_millis(500))
                .err()
                .unwrap_or_else(|| e.to_string());
            return Err((sequence, reason));
        }
        times.last_ns = Some(u64::try_from(config.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX));
        sequence += n;
        Counters::add(&counters.published, n);
    }
}
