//! A consumer that looks inside each message beyond its stamp, for the retry and delayed
//! scenarios. Same loop as `consumer` (one connection, one channel, big reads, frames parsed in
//! place, multiple=true acks before every blocking read), but what it does per message is an
//! `Inspection`:
//!
//! - `Retry`: decodes the content header and counts the message's earlier refusals from its
//!   `x-death` header (the entry for the work queue with reason `rejected`), not from local
//!   state, so any number of consumers agree. A message the policy picked is refused with
//!   requeue=false (the work queue dead-letters it to the retry queue) until it was refused
//!   `times` times, then acked; the others are acked at once. At each final ack it records the
//!   time since the first publish (the stamp travels unchanged through dead lettering) and how
//!   many deliveries the message took.
//! - `Delayed`: reads the delay the body carries after the stamp and records how late the
//!   message fired: now − (publish time + delay).

use std::io::Write;
use std::net::Shutdown;

use crate::client::Stream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use hare_protocol::{
    write_method_frame, BasicAck, BasicNack, BasicReject, ConnectionClose, ContentHeader,
    FieldTable, FieldValue, FrameType, Method, ShortStr,
};

use crate::cli::RetryRefusal;
use crate::client::connection::{channel_closed, connection_closed, is_timeout, RPC_TIMEOUT};
use crate::client::delayed_publish::read_delay_ms;
use crate::client::inbound::{content_body_size, method_ids, parse_deliver};
use crate::client::read_buffer::{scan_frame, InFrame, ReadBuffer};
use crate::client::{AmqpUri, ClientError, ConnectionParts};
use crate::measure::counters::Counters;
use crate::measure::latency::LatencyHistogram;
use crate::message_id::{read_stamp, MessageId};

use super::consumer::{open_consumer, spawn_ready, ConsumerResult};

/// Lateness below this is clock and rounding noise (delays are whole milliseconds), not an
/// early firing.
pub const EARLY_SLACK_NS: u64 = 1_000_000;

/// Which messages a retry consumer refuses, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The queue the consumers consume: its `x-death` entry counts the refusals.
    pub work_queue: String,
    /// Percent of the messages picked for refusal (by a hash of the id, the same everywhere).
    pub percent: u32,
    /// Refusals of a picked message before it is acked.
    pub times: u32,
    pub refusal: RetryRefusal,
    pub seed: u64,
}

impl RetryPolicy {
    /// How many times message `id` is to be refused before it is acked.
    pub fn planned_refusals(&self, id: MessageId) -> u32 {
        let picked = self.percent >= 100
            || mix(id.to_u64() ^ self.seed.rotate_left(17)) % 100 < u64::from(self.percent);
        if picked {
            self.times
        } else {
            0
        }
    }
}

/// What a consumer does with each message beyond checking its stamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inspection {
    Retry(RetryPolicy),
    Delayed,
}

#[derive(Debug, Clone)]
pub struct InspectingConsumerConfig {
    pub index: usize,
    pub uri: AmqpUri,
    pub queue: String,
    pub prefetch: u16,
    pub multi_ack_every: u64,
    pub inspection: Inspection,
    pub epoch: Instant,
}

/// What an inspecting consumer saw. `base.ids` are the acked ids, `base.deliver_latency` the
/// time from the first publish to the ack (retry) or to the delivery (delayed).
#[derive(Debug, Clone, Default)]
pub struct InspectingResult {
    pub base: ConsumerResult,
    /// Entry k: messages acked at their k-th delivery (retry).
    pub deliveries_per_message: Vec<u64>,
    /// Messages acked after another number of deliveries than the policy planned (retry).
    pub off_plan: u64,
    /// Deliveries whose `x-death` header could not be read (retry).
    pub unreadable_headers: u64,
    /// How late each message fired: delivery − (publish + delay), clamped at 0 (delayed).
    pub lateness: LatencyHistogram,
    /// Messages delivered more than `EARLY_SLACK_NS` before their time (delayed).
    pub early: u64,
    /// The earliest of those, in ns before the intended time.
    pub early_max_ns: u64,
}

pub struct InspectingConsumerHandle {
    stop: Arc<AtomicBool>,
    join: JoinHandle<InspectingResult>,
}

impl InspectingConsumerHandle {
    pub fn join(self) -> InspectingResult {
        self.stop.store(true, Ordering::Relaxed);
        self.join.join().unwrap_or_else(|_| InspectingResult {
            base: ConsumerResult {
                error: Some("consumer thread panicked".into()),
                ..Default::default()
            },
            ..Default::default()
        })
    }
}

/// Starts a consumer and returns once its `basic.consume` was accepted.
pub fn spawn(
    config: InspectingConsumerConfig,
    counters: Arc<Counters>,
) -> anyhow::Result<InspectingConsumerHandle> {
    let index = config.index;
    let name = format!("hareperf-inspector-{index}");
    let (stop, join) = spawn_ready(&name, index, move |stop, ready| {
        run(config, &counters, stop, ready)
    })?;
    Ok(InspectingConsumerHandle { stop, join })
}

fn run(
    config: InspectingConsumerConfig,
    counters: &Counters,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<(), String>>,
) -> InspectingResult {
    let label = match config.inspection {
        Inspection::Retry(_) => "retry",
        Inspection::Delayed => "delayed",
    };
    let mut result = InspectingResult {
        base: ConsumerResult {
            index: config.index,
            behaviour: label.to_string(),
            ..Default::default()
        },
        ..Default::default()
    };
    let parts = match open(&config) {
        Ok(parts) => {
            Counters::add(&counters.connections_opened, 1);
            let _ = ready.send(Ok(()));
            parts
        }
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            result.base.error = Some(e.to_string());
            return result;
        }
    };
    let mut consumer = Inspector {
        config: &config,
        counters,
        stream: parts.stream,
        frame_max: parts.frame_max,
        out: Vec::with_capacity(64 * 1024),
        in_flight: None,
        last_accepted_tag: 0,
        unacked: 0,
        now_ns: 0,
        result,
    };
    let mut read = parts.read;
    if let Err(e) = consumer.consume_loop(&mut read, stop) {
        consumer.result.base.error = Some(format!("consumer {}: {e}", config.index));
        let _ = consumer.stream.shutdown(Shutdown::Both);
    }
    consumer.result
}

fn open(config: &InspectingConsumerConfig) -> Result<ConnectionParts, ClientError> {
    open_consumer(
        &config.uri,
        config.index,
        &config.queue,
        config.prefetch,
        false,
    )
}

/// A delivery whose content frames are still arriving.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: u64,
    redelivered: bool,
    /// Body bytes still to come; `None` until the content header arrived.
    remaining: Option<u64>,
    stamp: Option<(MessageId, u64)>,
    delay_ms: Option<u64>,
    /// Earlier refusals by the work queue's consumers, from `x-death`.
    refused_before: Option<u64>,
}

struct Inspector<'a> {
    config: &'a InspectingConsumerConfig,
    counters: &'a Counters,
    stream: Stream,
    frame_max: u32,
    out: Vec<u8>,
    in_flight: Option<InFlight>,
    last_accepted_tag: u64,
    unacked: u64,
    /// The clock, read once per receive buffer.
    now_ns: u64,
    result: InspectingResult,
}

impl Inspector<'_> {
    fn consume_loop(
        &mut self,
        read: &mut ReadBuffer,
        stop: &AtomicBool,
    ) -> Result<(), ClientError> {
        loop {
            if stop.load(Ordering::Relaxed) {
                return self.finish(read);
            }
            self.now_ns = self.clock_ns();
            let (delivered, accepted) = (self.result.base.deliveries, self.result.base.accepted);
            let duplicates = self.result.base.ids.duplicates();
            let mut cancelled = false;
            while let Some((frame, used)) = scan_frame(read.unread(), self.frame_max)? {
                cancelled = self.on_frame(frame)?;
                read.consume(used);
                if cancelled {
                    break;
                }
            }
            Counters::add(
                &self.counters.delivered,
                self.result.base.deliveries - delivered,
            );
            Counters::add(
                &self.counters.duplicates,
                self.result.base.ids.duplicates() - duplicates,
            );
            self.counters
                .add_accepted(self.result.base.accepted - accepted, self.clock_ns());
            self.queue_ack();
            self.flush()?;
            if cancelled {
                return self.finish(read);
            }
            match read.fill(&mut self.stream, self.frame_max) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Handles one frame; true when the broker cancelled the consumer.
    fn on_frame(&mut self, frame: InFrame<'_>) -> Result<bool, ClientError> {
        match frame.frame_type {
            FrameType::Method => {
                if let Some(delivery) = parse_deliver(frame.payload) {
                    self.in_flight = Some(InFlight {
                        tag: delivery.delivery_tag,
                        redelivered: delivery.redelivered,
                        remaining: None,
                        stamp: None,
                        delay_ms: None,
                        refused_before: None,
                    });
                    return Ok(false);
                }
                return match Method::decode(&Bytes::copy_from_slice(frame.payload))? {
                    Method::ConnectionClose(close) => Err(connection_closed(&close)),
                    Method::ChannelClose(close) => Err(channel_closed(frame.channel, &close)),
                    Method::BasicCancel(_) => Ok(true),
                    _ => Ok(false),
                };
            }
            FrameType::Header => self.on_header(frame.payload)?,
            FrameType::Body => {
                if let Some(in_flight) = self.in_flight.as_mut() {
                    if in_flight.stamp.is_none() {
                        in_flight.stamp = read_stamp(frame.payload);
                        in_flight.delay_ms = read_delay_ms(frame.payload);
                    }
                    let remaining = in_flight
                        .remaining
                        .unwrap_or(0)
                        .saturating_sub(frame.payload.len() as u64);
                    in_flight.remaining = Some(remaining);
                    if remaining == 0 {
                        let done = *in_flight;
                        self.in_flight = None;
                        self.on_message(done)?;
                    }
                }
            }
            _ => {}
        }
        Ok(false)
    }

    fn on_header(&mut self, payload: &[u8]) -> Result<(), ClientError> {
        let size = content_body_size(payload).ok_or(ClientError::Malformed {
            what: "content header",
        })?;
        let Some(in_flight) = self.in_flight.as_mut() else {
            return Ok(());
        };
        in_flight.remaining = Some(size);
        if let Inspection::Retry(policy) = &self.config.inspection {
            match ContentHeader::decode(&Bytes::copy_from_slice(payload)) {
                Ok(header) => {
                    in_flight.refused_before = Some(
                        header
                            .properties
                            .headers
                            .map_or(0, |h| refusals_in_x_death(&h, &policy.work_queue)),
                    );
                }
                Err(_) => self.result.unreadable_headers += 1,
            }
        }
        Ok(())
    }

    fn on_message(&mut self, message: InFlight) -> Result<(), ClientError> {
        self.result.base.deliveries += 1;
        if message.redelivered {
            self.result.base.redelivered_deliveries += 1;
        }
        let Some((id, publish_ns)) = message.stamp else {
            self.result.base.foreign += 1;
            return self.accept(message.tag);
        };
        match &self.config.inspection {
            Inspection::Retry(policy) => {
                let planned = u64::from(policy.planned_refusals(id));
                let refused_before = message.refused_before.unwrap_or(0);
                if refused_before < planned {
                    return self.refuse(message.tag, policy.refusal);
                }
                let deliveries = usize::try_from(refused_before + 1).unwrap_or(usize::MAX);
                let slots = &mut self.result.deliveries_per_message;
                if deliveries < 1 << 16 {
                    if slots.len() <= deliveries {
                        slots.resize(deliveries + 1, 0);
                    }
                    if let Some(slot) = slots.get_mut(deliveries) {
                        *slot += 1;
                    }
                }
                if refused_before != planned {
                    self.result.off_plan += 1;
                }
            }
            Inspection::Delayed => {
                let due_ns = publish_ns
                    .saturating_add(message.delay_ms.unwrap_or(0).saturating_mul(1_000_000));
                if self.now_ns >= due_ns {
                    self.result.lateness.record_ns(self.now_ns - due_ns);
                } else {
                    let early_ns = due_ns - self.now_ns;
                    self.result.lateness.record_ns(0);
                    if early_ns > EARLY_SLACK_NS {
                        self.result.early += 1;
                        self.result.early_max_ns = self.result.early_max_ns.max(early_ns);
                    }
                }
            }
        }
        self.result
            .base
            .deliver_latency
            .record_ns(self.now_ns.saturating_sub(publish_ns));
        self.result.base.ids.accept(id, message.redelivered);
        self.accept(message.tag)
    }

    /// Refuses with requeue=false, after settling what was accepted before it.
    fn refuse(&mut self, tag: u64, refusal: RetryRefusal) -> Result<(), ClientError> {
        self.queue_ack();
        let method = match refusal {
            RetryRefusal::Reject => Method::BasicReject(BasicReject {
                delivery_tag: tag,
                requeue: false,
            }),
            RetryRefusal::Nack => Method::BasicNack(BasicNack {
                delivery_tag: tag,
                multiple: false,
                requeue: false,
            }),
        };
        write_method_frame(&mut self.out, 1, &method);
        self.result.base.refused += 1;
        Ok(())
    }

    fn accept(&mut self, tag: u64) -> Result<(), ClientError> {
        self.result.base.accepted += 1;
        self.last_accepted_tag = tag;
        self.unacked += 1;
        if self.unacked >= self.config.multi_ack_every.max(1) {
            self.queue_ack();
        }
        Ok(())
    }

    /// Appends one multiple=true ack for everything accepted since the last one.
    fn queue_ack(&mut self) {
        if self.unacked == 0 {
            return;
        }
        let ack = Method::BasicAck(BasicAck {
            delivery_tag: self.last_accepted_tag,
            multiple: true,
        });
        write_method_frame(&mut self.out, 1, &ack);
        self.unacked = 0;
    }

    fn flush(&mut self) -> Result<(), ClientError> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(())
    }

    /// Acks what was accepted, then closes the connection cleanly.
    fn finish(&mut self, read: &mut ReadBuffer) -> Result<(), ClientError> {
        self.queue_ack();
        let close = Method::ConnectionClose(ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("hareperf done"),
            ..Default::default()
        });
        write_method_frame(&mut self.out, 0, &close);
        self.flush()?;
        let deadline = Instant::now() + RPC_TIMEOUT;
        while Instant::now() < deadline {
            while let Some((frame, used)) = scan_frame(read.unread(), self.frame_max)? {
                let close_ok = frame.frame_type == FrameType::Method
                    && method_ids(frame.payload) == Some((10, 51));
                read.consume(used);
                if close_ok {
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return Ok(());
                }
            }
            match read.fill(&mut self.stream, self.frame_max) {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Err(ClientError::Timeout {
            seconds: RPC_TIMEOUT.as_secs(),
            waiting_for: "connection.close-ok",
        })
    }

    fn clock_ns(&self) -> u64 {
        u64::try_from(self.config.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// How many times `queue` refused the message (basic.reject or basic.nack with
/// requeue=false), from the `count` of its `x-death` entry for (`queue`, `rejected`).
pub fn refusals_in_x_death(headers: &FieldTable, queue: &str) -> u64 {
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        return 0;
    };
    fn text<'a>(t: &'a FieldTable, key: &str) -> Option<&'a [u8]> {
        t.get(key).and_then(FieldValue::as_bytes)
    }
    deaths
        .iter()
        .filter_map(|death| match death {
            FieldValue::Table(t) => Some(t),
            _ => None,
        })
        .filter(|t| {
            text(t, "queue") == Some(queue.as_bytes()) && text(t, "reason") == Some(b"rejected")
        })
        .filter_map(|t| t.get("count").and_then(FieldValue::as_i64))
        .map(|count| u64::try_from(count).unwrap_or(0))
        .sum()
}

/// splitmix64's finaliser: a well-mixed hash of `z`.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(queue: &str, reason: &str, count: i64) -> FieldValue {
        let mut t = FieldTable::new();
        let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
        t.insert(ShortStr::from_static("count"), FieldValue::I64(count));
        t.insert(ShortStr::from_static("queue"), text(queue));
        t.insert(ShortStr::from_static("reason"), text(reason));
        FieldValue::Table(t)
    }

    #[test]
    fn refusals_come_from_the_work_queue_entry_with_reason_rejected() {
        let mut headers = FieldTable::new();
        assert_eq!(refusals_in_x_death(&headers, "w"), 0);
        headers.insert(
            ShortStr::from_static("x-death"),
            FieldValue::Array(vec![
                death("r", "expired", 3),
                death("w", "rejected", 3),
                death("other", "rejected", 9),
            ]),
        );
        assert_eq!(refusals_in_x_death(&headers, "w"), 3);
        assert_eq!(refusals_in_x_death(&headers, "r"), 0);
    }

    #[test]
    fn the_policy_picks_the_asked_share_of_messages() {
        let policy = |percent| RetryPolicy {
            work_queue: "w".into(),
            percent,
            times: 2,
            refusal: RetryRefusal::Reject,
            seed: 1,
        };
        let picked = |percent| {
            (0..10_000)
                .filter(|&i| policy(percent).planned_refusals(MessageId::new(0, i)) == 2)
                .count()
        };
        assert_eq!(picked(100), 10_000);
        assert_eq!(picked(0), 0);
        assert!((2_300..2_700).contains(&picked(25)), "{}", picked(25));
    }
}
