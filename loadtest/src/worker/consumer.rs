//! A consumer: one connection, one channel, one thread that reads big buffers of deliveries,
//! parses them in place, checks each message's stamp and acks with multiple=true.
//!
//! Acks go out every `multi_ack_every` accepted messages and always before the thread blocks in
//! `read`, so a prefetch window can never stall on acks sitting in our own buffer. With
//! `ack_each_at_once` (`--one-per-write`) every accepted delivery is acked on its own
//! (multiple=false) with a write of its own, the way ordinary client libraries ack. What a
//! consumer does with a delivery is its `Behaviour`: accept, refuse with requeue, hold it, or
//! hold it and then lose its connection (socket shut down without `connection.close`).

use std::io::Write;
use std::net::Shutdown;

use crate::client::Stream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hare_protocol::{
    write_method_frame, BasicAck, BasicNack, BasicReject, ConnectionClose, FrameType, Method,
    ShortStr,
};

use crate::client::connection::{channel_closed, connection_closed, is_timeout, RPC_TIMEOUT};
use crate::client::inbound::{content_body_size, parse_deliver};
use crate::client::read_buffer::{scan_frame, InFrame, ReadBuffer};
use crate::client::{AmqpUri, ClientError, Connection};
use crate::measure::counters::Counters;
use crate::measure::latency::LatencyHistogram;
use crate::measure::received_ids::ReceivedIds;
use crate::message_id::{read_stamp, MessageId};

use super::consumer_behaviour::{Behaviour, Failure, Refusal, Rng};

/// How long a blocked `read` waits before the consumer looks at its stop flag.
const READ_POLL: Duration = Duration::from_millis(50);

/// What one consumer consumes and how it behaves.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub index: usize,
    pub uri: AmqpUri,
    pub queue: String,
    /// Consumers of the same queue share a group: their ids are merged to check for loss.
    pub group: usize,
    /// basic.qos prefetch count (0 = unlimited).
    pub prefetch: u16,
    pub auto_ack: bool,
    /// Ack (multiple=true) after this many accepted messages; they are also acked before
    /// every blocking read.
    pub multi_ack_every: u64,
    /// Ack each accepted delivery alone (multiple=false), written at once.
    pub ack_each_at_once: bool,
    pub behaviour: Behaviour,
    pub epoch: Instant,
}

/// What a consumer saw and did.
#[derive(Debug, Clone, Default)]
pub struct ConsumerResult {
    pub index: usize,
    pub group: usize,
    pub behaviour: String,
    pub ids: ReceivedIds,
    pub deliveries: u64,
    pub accepted: u64,
    pub refused: u64,
    pub redelivered_deliveries: u64,
    /// Deliveries whose body carried no hareperf stamp (someone else's messages).
    pub foreign: u64,
    /// Deliveries held unacked by a never-ack or dropped consumer.
    pub held: Vec<MessageId>,
    /// True if this consumer's socket was shut down without a close.
    pub dropped: bool,
    pub deliver_latency: LatencyHistogram,
    pub error: Option<String>,
}

/// A running consumer.
#[derive(Debug)]
pub struct ConsumerHandle {
    stop: Arc<AtomicBool>,
    join: JoinHandle<ConsumerResult>,
}

impl ConsumerHandle {
    /// Asks the consumer to finish: close cleanly (or drop, if that is its behaviour).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    pub fn is_finished(&self) -> bool {
        self.join.is_finished()
    }

    pub fn join(self) -> ConsumerResult {
        self.stop();
        self.join.join().unwrap_or_else(|_| ConsumerResult {
            error: Some("consumer thread panicked".into()),
            ..Default::default()
        })
    }
}

/// Starts a consumer and returns once its `basic.consume` was accepted.
pub fn spawn(
    config: ConsumerConfig,
    counters: Arc<Counters>,
) -> Result<ConsumerHandle, anyhow::Error> {
    let index = config.index;
    let (stop, join) = spawn_ready(
        &format!("hareperf-consumer-{index}"),
        index,
        move |stop, ready| run(config, &counters, stop, ready),
    )?;
    Ok(ConsumerHandle { stop, join })
}

/// Runs a consumer thread and waits until it reports its `basic.consume` accepted (or its
/// failure): the stop flag it watches and its handle. Shared by every kind of consumer.
pub(crate) fn spawn_ready<R: Send + 'static>(
    name: &str,
    index: usize,
    run: impl FnOnce(&AtomicBool, &mpsc::Sender<Result<(), String>>) -> R + Send + 'static,
) -> Result<(Arc<AtomicBool>, JoinHandle<R>), anyhow::Error> {
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
    let thread_stop = Arc::clone(&stop);
    let join = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || run(&thread_stop, &ready_tx))?;
    match ready_rx.recv_timeout(RPC_TIMEOUT) {
        Ok(Ok(())) => Ok((stop, join)),
        Ok(Err(e)) => Err(anyhow::anyhow!("consumer {index}: {e}")),
        Err(_) => {
            stop.store(true, Ordering::Relaxed);
            Err(anyhow::anyhow!(
                "consumer {index} did not start within {RPC_TIMEOUT:?}"
            ))
        }
    }
}

fn run(
    config: ConsumerConfig,
    counters: &Counters,
    stop: &AtomicBool,
    ready: &mpsc::Sender<Result<(), String>>,
) -> ConsumerResult {
    let mut result = ConsumerResult {
        index: config.index,
        group: config.group,
        behaviour: config.behaviour.label(),
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
            result.error = Some(e.to_string());
            return result;
        }
    };
    let seed = match config.behaviour.failure {
        Failure::Requeue { seed, .. } => seed,
        _ => 0,
    };
    let mut consumer = Consumer {
        config: &config,
        counters,
        stream: parts.stream,
        frame_max: parts.frame_max,
        out: Vec::with_capacity(64 * 1024),
        rng: Rng::new(seed),
        in_flight: None,
        last_accepted_tag: 0,
        unacked: 0,
        now_ns: 0,
        result,
    };
    let mut read = parts.read;
    if let Err(e) = consumer.consume_loop(&mut read, stop) {
        consumer.result.error = Some(format!("consumer {}: {e}", config.index));
        let _ = consumer.stream.shutdown(Shutdown::Both);
    }
    consumer.result
}

fn open(config: &ConsumerConfig) -> Result<crate::client::ConnectionParts, ClientError> {
    open_consumer(
        &config.uri,
        config.index,
        &config.queue,
        config.prefetch,
        config.auto_ack,
    )
}

/// A connection with one channel consuming `queue` (prefetch unless `auto_ack`), read with a
/// short timeout so the consumer can watch its stop flag.
pub(crate) fn open_consumer(
    uri: &AmqpUri,
    index: usize,
    queue: &str,
    prefetch: u16,
    auto_ack: bool,
) -> Result<crate::client::ConnectionParts, ClientError> {
    let mut connection = Connection::open(uri, &format!("hareperf consumer {index}"))?;
    connection.open_channel(1)?;
    if !auto_ack {
        connection.basic_qos(1, prefetch)?;
    }
    connection.basic_consume(1, queue, &format!("hareperf-{index}"), auto_ack)?;
    let parts = connection.into_parts();
    parts.stream.set_read_timeout(Some(READ_POLL))?;
    Ok(parts)
}

/// A delivery whose content frames are still arriving.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    tag: u64,
    redelivered: bool,
    /// Body bytes still to come; `None` until the content header arrived.
    remaining: Option<u64>,
    stamp: Option<(MessageId, u64)>,
}

struct Consumer<'a> {
    config: &'a ConsumerConfig,
    counters: &'a Counters,
    stream: Stream,
    frame_max: u32,
    out: Vec<u8>,
    rng: Rng,
    in_flight: Option<InFlight>,
    last_accepted_tag: u64,
    unacked: u64,
    /// The clock, read once per receive buffer (and after each delay).
    now_ns: u64,
    result: ConsumerResult,
}

enum Step {
    Continue,
    /// The broker cancelled the consumer (its queue was deleted).
    Cancelled,
}

impl Consumer<'_> {
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
            let (delivered, accepted) = (self.result.deliveries, self.result.accepted);
            let duplicates = self.result.ids.duplicates();
            let mut step = Step::Continue;
            while let Some((frame, used)) = scan_frame(read.unread(), self.frame_max)? {
                step = self.on_frame(frame)?;
                read.consume(used);
                if matches!(step, Step::Cancelled) {
                    break;
                }
            }
            Counters::add(&self.counters.delivered, self.result.deliveries - delivered);
            Counters::add(
                &self.counters.duplicates,
                self.result.ids.duplicates() - duplicates,
            );
            self.counters
                .add_accepted(self.result.accepted - accepted, self.clock_ns());
            self.queue_ack();
            self.flush()?;
            if matches!(step, Step::Cancelled) {
                return self.finish(read);
            }
            if let Failure::DropConnection { after_held } = self.config.behaviour.failure {
                if self.result.held.len() >= after_held {
                    self.drop_connection();
                    return Ok(());
                }
            }
            match read.fill(&mut self.stream, self.frame_max) {
                Ok(0) => return Err(ClientError::Eof),
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn on_frame(&mut self, frame: InFrame<'_>) -> Result<Step, ClientError> {
        match frame.frame_type {
            FrameType::Method => {
                if let Some(delivery) = parse_deliver(frame.payload) {
                    self.in_flight = Some(InFlight {
                        tag: delivery.delivery_tag,
                        redelivered: delivery.redelivered,
                        remaining: None,
                        stamp: None,
                    });
                    return Ok(Step::Continue);
                }
                return self.on_control(frame);
            }
            FrameType::Header => {
                let size = content_body_size(frame.payload).ok_or(ClientError::Malformed {
                    what: "content header",
                })?;
                if let Some(in_flight) = self.in_flight.as_mut() {
                    in_flight.remaining = Some(size);
                }
            }
            FrameType::Body => {
                if let Some(in_flight) = self.in_flight.as_mut() {
                    if in_flight.stamp.is_none() {
                        in_flight.stamp = read_stamp(frame.payload);
                    }
                    let remaining = in_flight.remaining.unwrap_or(0);
                    let remaining = remaining.saturating_sub(frame.payload.len() as u64);
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
        Ok(Step::Continue)
    }

    fn on_control(&mut self, frame: InFrame<'_>) -> Result<Step, ClientError> {
        match Method::decode(&Bytes::copy_from_slice(frame.payload))? {
            Method::ConnectionClose(close) => Err(connection_closed(&close)),
            Method::ChannelClose(close) => Err(channel_closed(frame.channel, &close)),
            Method::BasicCancel(_) => Ok(Step::Cancelled),
            _ => Ok(Step::Continue),
        }
    }

    fn on_message(&mut self, message: InFlight) -> Result<(), ClientError> {
        self.result.deliveries += 1;
        if message.redelivered {
            self.result.redelivered_deliveries += 1;
        }
        let behaviour = self.config.behaviour;
        if !behaviour.delay.is_zero() {
            std::thread::sleep(behaviour.delay);
            self.now_ns = self.clock_ns();
        }
        let Some((id, publish_ns)) = message.stamp else {
            self.result.foreign += 1;
            self.accept(message.tag)?;
            return Ok(());
        };
        match behaviour.failure {
            Failure::NeverAck | Failure::DropConnection { .. } => {
                self.result.held.push(id);
                return Ok(());
            }
            Failure::Requeue { percent, with, .. } if self.rng.chance(percent) => {
                // Settle what was accepted first: a later multiple=true ack must not be the
                // only thing standing between these and the refusal.
                self.queue_ack();
                let refusal = match with {
                    Refusal::Nack => Method::BasicNack(BasicNack {
                        delivery_tag: message.tag,
                        multiple: false,
                        requeue: true,
                    }),
                    Refusal::Reject => Method::BasicReject(BasicReject {
                        delivery_tag: message.tag,
                        requeue: true,
                    }),
                };
                write_method_frame(&mut self.out, 1, &refusal);
                self.result.refused += 1;
                return self.flush();
            }
            _ => {}
        }
        self.result
            .deliver_latency
            .record_ns(self.now_ns.saturating_sub(publish_ns));
        self.result.ids.accept(id, message.redelivered);
        self.accept(message.tag)
    }

    fn accept(&mut self, tag: u64) -> Result<(), ClientError> {
        self.result.accepted += 1;
        if self.config.auto_ack {
            return Ok(());
        }
        if self.config.ack_each_at_once {
            let ack = Method::BasicAck(BasicAck {
                delivery_tag: tag,
                multiple: false,
            });
            write_method_frame(&mut self.out, 1, &ack);
            return self.flush();
        }
        self.last_accepted_tag = tag;
        self.unacked += 1;
        if self.unacked >= self.config.multi_ack_every.max(1) {
            self.queue_ack();
            if !self.config.behaviour.delay.is_zero() {
                self.flush()?;
            }
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

    /// The incident's lost consumer: the socket goes away with deliveries unacked and without
    /// `connection.close`, as when a process dies or a network path breaks.
    fn drop_connection(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.result.dropped = true;
    }

    /// Acks what was accepted, then closes the connection cleanly; deliveries still unacked
    /// (held, or arriving meanwhile) go back to the queue.
    fn finish(&mut self, read: &mut ReadBuffer) -> Result<(), ClientError> {
        if let Failure::DropConnection { .. } = self.config.behaviour.failure {
            self.drop_connection();
            return Ok(());
        }
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
                    && crate::client::inbound::method_ids(frame.payload) == Some((10, 51));
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
