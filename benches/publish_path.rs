//! The broker's publish → deliver → ack path for one message, in process and without sockets or
//! shards: the steps a message takes through the broker's own code, one after the other.
//!
//! Per message: parse and decode the client's basic.publish, content header and body frames;
//! build the queue's `Message` from them as `connection/publish.rs` does; route it through the
//! vhost's `amq.direct` exchange (one binding to one queue); enqueue it as the owner shard does
//! for a non-durable queue; dispatch it to the queue's one consumer; encode basic.deliver and
//! its content into a reused output buffer; return the consumer's flow credit; ack it.
//!
//! Not included: socket reads and writes, the cross-shard messages between the publisher's,
//! the queue's and the consumer's shard, the channel's delivery-tag map, publisher confirms,
//! decoding the client's basic.ack frame, and the log (messages are transient, the queue is not
//! durable; `storage/benches` measures the log).

use std::hint::black_box;
use std::sync::Arc;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hare::ids::{ChannelId, ConnectionId, QueueId, ShardId};
use hare::protocol::{
    parse_frame, write_content, write_method_frame, BasicDeliver, BasicProperties, BasicPublish,
    ContentHeader, FieldTable, FrameType, Method, ShortStr,
};
use hare::queue::channel_limits::ChannelLimits;
use hare::queue::consumer::{Consumer, ConsumerKey, FLOW_CREDIT_INITIAL};
use hare::queue::message::Message;
use hare::queue::{Delivery, Gone, Queue, SettleAction};
use hare::vhost::delta::{BindingDefinition, DestinationName, MetaDelta};
use hare::vhost::queue_definition::QueueDefinition;
use hare::vhost::route::{RouteScratch, RoutedMessage};
use hare::vhost::{Registry, VHost, DEFAULT_VHOST};

mod support;

/// The frame size the client and broker agreed on (RabbitMQ's default).
const FRAME_SIZE_MAX: u32 = 131_072;
/// The channel the client publishes and consumes on.
const CHANNEL: ChannelId = ChannelId(1);
const EXCHANGE: &str = "amq.direct";
const ROUTING_KEY: &str = "bench.key";
const QUEUE: &str = "bench.queue";
/// Every body byte; the printed checksum is this times the messages delivered.
const BODY_BYTE: u8 = 7;
/// Deliveries one dispatch may make, as the shard's dispatcher allows per round.
const DISPATCH_ROUND_MAX: usize = hare::shard::queues::DISPATCH_ROUND_MAX;

fn publish_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_path");
    for body_size in [16usize, 1024] {
        let wire = publish_frames(body_size);
        let mut broker = Broker::new();
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("{body_size}B"), |b| {
            b.iter(|| black_box(broker.publish_deliver_ack(black_box(&wire))));
        });
        broker.check_drained();
        println!(
            "publish_path/{body_size}B: {} messages, {} bytes written, checksum {}",
            broker.delivered_count, broker.written_size, broker.checksum
        );
    }
    group.finish();
}

/// Everything the path touches, set up once as the broker would have it after
/// `queue.declare`, `queue.bind` and `basic.consume`.
struct Broker {
    vhost: VHost,
    queue: Queue,
    limits: ChannelLimits,
    consumer: ConsumerKey,
    route_scratch: RouteScratch,
    route_queues: Vec<QueueId>,
    deliveries: Vec<Delivery>,
    gone: Vec<Gone>,
    /// The consumer connection's output buffer, reused like its socket buffer.
    output: Vec<u8>,
    delivery_tag_next: u64,
    delivered_count: u64,
    written_size: u64,
    checksum: u64,
}

impl Broker {
    fn new() -> Broker {
        let queue_id = QueueId(Registry::FIRST_DYNAMIC_ID);
        let queue_name = ShortStr::from_static(QUEUE);
        let mut vhost = VHost::new(ShortStr::from_static(DEFAULT_VHOST), 1);
        vhost.apply(&MetaDelta::QueueDeclared(QueueDefinition {
            id: queue_id,
            name: queue_name.clone(),
            owner_shard: ShardId(0),
            durable: false,
            exclusive_owner: None,
            auto_delete: false,
            arguments: FieldTable::new(),
        }));
        vhost.apply(&MetaDelta::Bound(BindingDefinition {
            source: ShortStr::from_static(EXCHANGE),
            destination: DestinationName::Queue(queue_name.clone()),
            routing_key: ShortStr::from_static(ROUTING_KEY),
            arguments: FieldTable::new(),
        }));

        let consumer = ConsumerKey {
            connection: ConnectionId::new(ShardId(0), 1),
            channel: CHANNEL,
            tag: ShortStr::from_static("amq.ctag-bench"),
        };
        let mut queue = Queue::new(queue_id, queue_name, false, false);
        queue
            .add_consumer(Consumer {
                key: consumer.clone(),
                no_ack: false,
                exclusive: false,
                prefetch_count: 0,
                unacked_count: 0,
                priority: 0,
                flow_credit: FLOW_CREDIT_INITIAL,
                arguments: Default::default(),
            })
            .expect("the first consumer of a queue is never refused");
        let mut limits = ChannelLimits::default();
        // basic.consume without a channel-wide prefetch, as in shard/queues.rs.
        limits.entry(consumer.channel_key()).queues.push(queue_id);

        Broker {
            vhost,
            queue,
            limits,
            consumer,
            route_scratch: RouteScratch::default(),
            route_queues: Vec::new(),
            deliveries: Vec::with_capacity(DISPATCH_ROUND_MAX),
            gone: Vec::new(),
            output: Vec::with_capacity(4096),
            delivery_tag_next: 1,
            delivered_count: 0,
            written_size: 0,
            checksum: 0,
        }
    }

    /// One message from the publisher's bytes to the consumer's ack; returns the bytes
    /// written to the consumer.
    fn publish_deliver_ack(&mut self, wire: &[u8]) -> usize {
        let (message, properties) = decode_message(wire);

        // Route on the vhost's copy of the metadata, as connection/publish.rs does.
        let exchange = self
            .vhost
            .exchange(&message.exchange)
            .expect("amq.direct exists in every vhost");
        self.vhost.route(
            exchange,
            &message.routing_key,
            &RoutedMessage::new(&message.routing_key, &properties),
            &mut self.route_scratch,
            &mut self.route_queues,
        );
        assert_eq!(
            self.route_queues,
            [self.queue.id],
            "routes to the one queue"
        );

        // The owner shard enqueues a transient message without touching the log.
        assert!(!message.persistent || !self.queue.durable);
        self.queue.enqueue(Arc::new(message));

        self.deliveries.clear();
        self.queue.dispatch(
            &mut self.limits,
            DISPATCH_ROUND_MAX,
            &mut self.deliveries,
            &mut self.gone,
        );
        assert_eq!(
            self.deliveries.len(),
            1,
            "one message, one consumer with room"
        );

        let mut written_size = 0;
        for delivery in self.deliveries.drain(..) {
            let delivery_tag = self.delivery_tag_next;
            self.delivery_tag_next += 1;
            let content = delivery.message.clone();
            self.output.clear();
            write_method_frame(
                &mut self.output,
                CHANNEL.0,
                &Method::BasicDeliver(BasicDeliver {
                    consumer_tag: delivery.consumer.tag,
                    delivery_tag,
                    redelivered: delivery.redelivered,
                    exchange: content.exchange.clone(),
                    routing_key: content.routing_key.clone(),
                }),
            );
            write_content(
                &mut self.output,
                CHANNEL.0,
                60,
                &content.properties_raw,
                &content.body,
                FRAME_SIZE_MAX,
            );
            written_size += self.output.len();
            // The body's last byte, just before the frame-end octet.
            let body_last = self.output[self.output.len() - 2];
            self.checksum = self.checksum.wrapping_add(u64::from(body_last));

            // The consumer's connection wrote the delivery out and returns its credit.
            self.queue.return_credit(&self.consumer, 1);

            // basic.ack for that delivery tag, settled on the owner shard.
            let outcome = self.queue.settle(
                self.consumer.channel_key(),
                &[delivery.id],
                SettleAction::Ack,
                &mut self.gone,
            );
            assert_eq!(outcome.total, 1, "the delivery was unacked");
            self.limits
                .settled(&self.consumer.channel_key(), outcome.consumer_deliveries);
            assert!(
                self.gone.is_empty(),
                "transient messages leave no log entry"
            );
        }
        self.delivered_count += 1;
        self.written_size += u64::try_from(written_size).expect("a delivery's size fits u64");
        written_size
    }

    /// After a run every message was delivered and acked.
    fn check_drained(&self) {
        assert_eq!(self.queue.ready_count(), 0);
        assert_eq!(self.queue.unacked_count(), 0);
        self.queue.check_invariants();
    }
}

/// Parses the client's frames and builds the message the queues hold, as the connection does
/// with its content assembly and `connection/publish.rs`, with the decoded properties routing
/// looks at.
fn decode_message(wire: &[u8]) -> (Message, BasicProperties) {
    // The socket read fills a buffer like this one; frames are slices of it.
    let mut buffer = BytesMut::from(wire);
    let mut publish = None;
    let mut header = None;
    let mut body = None;
    while let Some(frame) = parse_frame(&mut buffer, FRAME_SIZE_MAX).expect("valid frames") {
        assert_eq!(frame.channel, CHANNEL.0);
        match frame.frame_type {
            FrameType::Method => match Method::decode(&frame.payload).expect("valid method") {
                Method::BasicPublish(method) => publish = Some(method),
                other => panic!("the bench sends only basic.publish, got {other:?}"),
            },
            FrameType::Header => {
                header = Some(ContentHeader::decode(&frame.payload).expect("valid header"));
            }
            FrameType::Body => {
                assert!(body.is_none(), "bodies up to 1 KiB fit one frame");
                body = Some(frame.payload);
            }
            FrameType::Heartbeat => panic!("the bench sends no heartbeats"),
        }
    }
    let publish: BasicPublish = publish.expect("the wire holds a basic.publish");
    let header = header.expect("the wire holds a content header");
    let body = body.expect("the wire holds a body frame");
    assert_eq!(
        Some(header.body_size),
        u64::try_from(body.len()).ok(),
        "the body is complete"
    );
    let message = Message {
        exchange: publish.exchange,
        routing_key: publish.routing_key,
        persistent: header.properties.is_persistent(),
        ttl: None,
        priority: 0,
        properties_raw: header.properties_raw,
        body,
    };
    (message, header.properties)
}

/// One published message as a client sends it: method, header and body frames.
fn publish_frames(body_size: usize) -> Vec<u8> {
    let properties = BasicProperties {
        content_type: Some(ShortStr::from_static("application/octet-stream")),
        ..Default::default()
    };
    let mut out = Vec::new();
    write_method_frame(
        &mut out,
        CHANNEL.0,
        &Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from_static(EXCHANGE),
            routing_key: ShortStr::from_static(ROUTING_KEY),
            ..Default::default()
        }),
    );
    write_content(
        &mut out,
        CHANNEL.0,
        60,
        &properties.to_raw(),
        &vec![BODY_BYTE; body_size],
        FRAME_SIZE_MAX,
    );
    out
}

criterion_group! {
    name = benches;
    config = support::config();
    targets = publish_path
}
criterion_main!(benches);
