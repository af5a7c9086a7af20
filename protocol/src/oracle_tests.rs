//! Differential tests against the `amq-protocol` crate (a dev-dependency used only as an
//! oracle): what we encode it must parse to the same fields and re-encode to the same bytes, and
//! what it encodes we must decode.
//!
//! Known lossy cases are kept out of the samples rather than skipped here: the oracle stores
//! tables in a sorted map (so samples use unique, sorted keys), short strings as UTF-8 (samples
//! are ASCII) and long-long integers as i64 in tables (samples stay ≤ i64::MAX). It drops the
//! reserved fields (`ticket`, `out_of_band`, ...) and basic.qos prefetch-size and writes fixed
//! values for them, which
//! `with_oracle_reserved` mirrors.

use amq_protocol::frame::{gen_frame, parse_frame as oracle_parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::basic::{gen_properties, parse_properties, AMQPMethod as Basic};
use amq_protocol::protocol::connection::AMQPMethod as Connection;
use amq_protocol::protocol::queue::AMQPMethod as Queue;
use amq_protocol::protocol::{gen_class, parse_class, AMQPClass};
use amq_protocol::types::generation::gen_field_table;
use bytes::{Bytes, BytesMut};

use super::test_support::{random_properties, Rng};
use super::*;

fn ours(m: &Method) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    out
}

fn oracle_decode(bytes: &[u8]) -> AMQPClass {
    let (rest, class) = parse_class(bytes).unwrap();
    assert!(rest.is_empty());
    class
}

fn oracle_encode(class: &AMQPClass) -> Vec<u8> {
    gen_class(class)(WriteContext::from(Vec::new()))
        .unwrap()
        .write
}

fn oracle_table(t: &amq_protocol::types::FieldTable) -> Vec<u8> {
    gen_field_table(t)(WriteContext::from(Vec::new()))
        .unwrap()
        .write
}

fn our_table(t: &FieldTable) -> Vec<u8> {
    let mut out = Vec::new();
    t.encode(&mut out);
    out
}

/// `m` with its reserved fields set to what the oracle writes for them.
fn with_oracle_reserved(mut m: Method) -> Method {
    let empty = ShortStr::default;
    match &mut m {
        Method::ConnectionOpen(x) => {
            x.capabilities = empty();
            x.insist = false;
        }
        Method::ConnectionOpenOk(x) => x.known_hosts = empty(),
        Method::ChannelOpen(x) => x.out_of_band = empty(),
        Method::ChannelOpenOk(x) => x.channel_id = LongStr::default(),
        Method::AccessRequestOk(x) => x.ticket = 1,
        Method::BasicGetEmpty(x) => x.cluster_id = empty(),
        // The oracle has no prefetch-size field (RabbitMQ refuses non-zero values anyway).
        Method::BasicQos(x) => x.prefetch_size = 0,
        Method::ExchangeDeclare(ExchangeDeclare { ticket, .. })
        | Method::ExchangeDelete(ExchangeDelete { ticket, .. })
        | Method::ExchangeBind(ExchangeBind { ticket, .. })
        | Method::ExchangeUnbind(ExchangeUnbind { ticket, .. })
        | Method::QueueDeclare(QueueDeclare { ticket, .. })
        | Method::QueueBind(QueueBind { ticket, .. })
        | Method::QueuePurge(QueuePurge { ticket, .. })
        | Method::QueueDelete(QueueDelete { ticket, .. })
        | Method::QueueUnbind(QueueUnbind { ticket, .. })
        | Method::BasicConsume(BasicConsume { ticket, .. })
        | Method::BasicPublish(BasicPublish { ticket, .. })
        | Method::BasicGet(BasicGet { ticket, .. }) => *ticket = 0,
        _ => {}
    }
    m
}

#[test]
fn every_method_agrees_with_the_oracle_both_ways() {
    for seed in 1..=30 {
        for m in Method::samples(&mut Rng::new(seed)) {
            let expected = with_oracle_reserved(m.clone());
            let class = oracle_decode(&ours(&m));
            let oracle_bytes = oracle_encode(&class);
            assert_eq!(oracle_bytes, ours(&expected), "seed {seed} {}", m.name());
            assert_eq!(
                Method::decode(&Bytes::from(oracle_bytes)),
                Ok(expected),
                "seed {seed} {}",
                m.name()
            );
        }
    }
}

fn same_str(ours: &ShortStr, theirs: &amq_protocol::types::ShortString) -> bool {
    ours.as_bytes() == theirs.as_str().as_bytes()
}

/// Field-by-field comparison for a representative set of methods.
fn fields_agree(ours: &Method, theirs: &AMQPClass) -> bool {
    match (ours, theirs) {
        (Method::ConnectionStart(o), AMQPClass::Connection(Connection::Start(t))) => {
            o.version_major == t.version_major
                && o.version_minor == t.version_minor
                && our_table(&o.server_properties) == oracle_table(&t.server_properties)
                && o.mechanisms.as_bytes() == t.mechanisms.as_bytes()
                && o.locales.as_bytes() == t.locales.as_bytes()
        }
        (Method::ConnectionStartOk(o), AMQPClass::Connection(Connection::StartOk(t))) => {
            our_table(&o.client_properties) == oracle_table(&t.client_properties)
                && same_str(&o.mechanism, &t.mechanism)
                && o.response.as_bytes() == t.response.as_bytes()
                && same_str(&o.locale, &t.locale)
        }
        (Method::ConnectionTune(o), AMQPClass::Connection(Connection::Tune(t))) => {
            o.channel_max == t.channel_max
                && o.frame_max == t.frame_max
                && o.heartbeat == t.heartbeat
        }
        (Method::ConnectionOpen(o), AMQPClass::Connection(Connection::Open(t))) => {
            same_str(&o.virtual_host, &t.virtual_host)
        }
        (Method::ConnectionClose(o), AMQPClass::Connection(Connection::Close(t))) => {
            o.reply_code == t.reply_code
                && same_str(&o.reply_text, &t.reply_text)
                && o.class_id == t.class_id
                && o.method_id == t.method_id
        }
        (Method::QueueDeclare(o), AMQPClass::Queue(Queue::Declare(t))) => {
            same_str(&o.queue, &t.queue)
                && o.passive == t.passive
                && o.durable == t.durable
                && o.exclusive == t.exclusive
                && o.auto_delete == t.auto_delete
                && o.nowait == t.nowait
                && our_table(&o.arguments) == oracle_table(&t.arguments)
        }
        (Method::QueueDeclareOk(o), AMQPClass::Queue(Queue::DeclareOk(t))) => {
            same_str(&o.queue, &t.queue)
                && o.message_count == t.message_count
                && o.consumer_count == t.consumer_count
        }
        (Method::QueueBind(o), AMQPClass::Queue(Queue::Bind(t))) => {
            same_str(&o.queue, &t.queue)
                && same_str(&o.exchange, &t.exchange)
                && same_str(&o.routing_key, &t.routing_key)
                && o.nowait == t.nowait
                && our_table(&o.arguments) == oracle_table(&t.arguments)
        }
        (Method::BasicQos(o), AMQPClass::Basic(Basic::Qos(t))) => {
            o.prefetch_count == t.prefetch_count && o.global == t.global
        }
        (Method::BasicConsume(o), AMQPClass::Basic(Basic::Consume(t))) => {
            same_str(&o.queue, &t.queue)
                && same_str(&o.consumer_tag, &t.consumer_tag)
                && o.no_local == t.no_local
                && o.no_ack == t.no_ack
                && o.exclusive == t.exclusive
                && o.nowait == t.nowait
                && our_table(&o.arguments) == oracle_table(&t.arguments)
        }
        (Method::BasicPublish(o), AMQPClass::Basic(Basic::Publish(t))) => {
            same_str(&o.exchange, &t.exchange)
                && same_str(&o.routing_key, &t.routing_key)
                && o.mandatory == t.mandatory
                && o.immediate == t.immediate
        }
        (Method::BasicReturn(o), AMQPClass::Basic(Basic::Return(t))) => {
            o.reply_code == t.reply_code
                && same_str(&o.reply_text, &t.reply_text)
                && same_str(&o.exchange, &t.exchange)
                && same_str(&o.routing_key, &t.routing_key)
        }
        (Method::BasicDeliver(o), AMQPClass::Basic(Basic::Deliver(t))) => {
            same_str(&o.consumer_tag, &t.consumer_tag)
                && o.delivery_tag == t.delivery_tag
                && o.redelivered == t.redelivered
                && same_str(&o.exchange, &t.exchange)
                && same_str(&o.routing_key, &t.routing_key)
        }
        (Method::BasicGetOk(o), AMQPClass::Basic(Basic::GetOk(t))) => {
            o.delivery_tag == t.delivery_tag
                && o.redelivered == t.redelivered
                && same_str(&o.exchange, &t.exchange)
                && same_str(&o.routing_key, &t.routing_key)
                && o.message_count == t.message_count
        }
        (Method::BasicAck(o), AMQPClass::Basic(Basic::Ack(t))) => {
            o.delivery_tag == t.delivery_tag && o.multiple == t.multiple
        }
        (Method::BasicNack(o), AMQPClass::Basic(Basic::Nack(t))) => {
            o.delivery_tag == t.delivery_tag && o.multiple == t.multiple && o.requeue == t.requeue
        }
        _ => panic!("no field comparison for {}", ours.name()),
    }
}

#[test]
fn representative_methods_agree_field_by_field() {
    const COMPARED: [&str; 16] = [
        "connection.start",
        "connection.start-ok",
        "connection.tune",
        "connection.open",
        "connection.close",
        "queue.declare",
        "queue.declare-ok",
        "queue.bind",
        "basic.qos",
        "basic.consume",
        "basic.publish",
        "basic.return",
        "basic.deliver",
        "basic.get-ok",
        "basic.ack",
        "basic.nack",
    ];
    for seed in 1..=30 {
        for m in Method::samples(&mut Rng::new(seed))
            .into_iter()
            .filter(|m| COMPARED.contains(&m.name()))
        {
            let class = oracle_decode(&ours(&m));
            assert!(
                fields_agree(&m, &class),
                "seed {seed} {} vs {class:?}",
                m.name()
            );
        }
    }
}

#[test]
fn properties_agree_with_the_oracle() {
    let mut rng = Rng::new(0x0_4ac1e);
    for case in 0..1_000 {
        let props = random_properties(&mut rng);
        let raw = props.to_raw();
        let (rest, theirs) = parse_properties(&raw[..]).unwrap();
        assert!(rest.is_empty());
        let oracle_raw = gen_properties(&theirs)(WriteContext::from(Vec::new()))
            .unwrap()
            .write;
        assert_eq!(oracle_raw, raw, "case {case}");
        assert_eq!(
            BasicProperties::decode(&Bytes::from(oracle_raw)),
            Ok(props.clone())
        );
        let str_agrees =
            |o: &Option<ShortStr>, t: &Option<amq_protocol::types::ShortString>| match (o, t) {
                (Some(o), Some(t)) => same_str(o, t),
                (None, None) => true,
                _ => false,
            };
        assert!(str_agrees(&props.content_type, theirs.content_type()));
        assert!(str_agrees(&props.kind, theirs.kind()));
        assert_eq!(&props.delivery_mode, theirs.delivery_mode());
        assert_eq!(&props.timestamp, theirs.timestamp());
        assert_eq!(
            props.headers.as_ref().map(our_table),
            theirs.headers().as_ref().map(oracle_table)
        );
    }
}

/// Parses a whole buffer with the oracle's frame parser.
fn oracle_frames(mut bytes: &[u8]) -> Vec<AMQPFrame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        let (rest, frame) = oracle_parse_frame(bytes).unwrap();
        frames.push(frame);
        bytes = rest;
    }
    frames
}

#[test]
fn frames_we_write_parse_with_the_oracle() {
    let mut rng = Rng::new(0xf4a3e);
    let props = random_properties(&mut rng);
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let publish = BasicPublish {
        exchange: ShortStr::from_static("ex"),
        mandatory: true,
        ..BasicPublish::default()
    };
    let mut out = Vec::new();
    write_method_frame(&mut out, 5, &publish.clone().into());
    write_content(&mut out, 5, 60, &props.to_raw(), &body, 4096);
    write_heartbeat(&mut out);
    let frames = oracle_frames(&out);
    assert_eq!(frames.len(), 1 + 1 + 3 + 1);
    let AMQPFrame::Method(5, class) = &frames[0] else {
        panic!("{:?}", frames[0])
    };
    assert!(fields_agree(&publish.into(), class));
    let AMQPFrame::Header(5, header) = &frames[1] else {
        panic!("{:?}", frames[1])
    };
    assert_eq!(header.class_id, 60);
    assert_eq!(header.body_size, body.len() as u64);
    let oracle_raw = gen_properties(&header.properties)(WriteContext::from(Vec::new()))
        .unwrap()
        .write;
    assert_eq!(oracle_raw, props.to_raw());
    let mut joined = Vec::new();
    for frame in &frames[2..5] {
        let AMQPFrame::Body(5, chunk) = frame else {
            panic!("{frame:?}")
        };
        assert!(chunk.len() <= 4096 - FRAME_OVERHEAD_SIZE);
        joined.extend_from_slice(chunk);
    }
    assert_eq!(joined, body);
    assert_eq!(frames[5], AMQPFrame::Heartbeat);
}

#[test]
fn frames_the_oracle_writes_parse_with_ours() {
    let mut rng = Rng::new(0xf4a3f);
    let mut out = Vec::new();
    let mut expected = Vec::new();
    for (channel, m) in Method::samples(&mut rng).into_iter().enumerate() {
        let m = with_oracle_reserved(m);
        let class = oracle_decode(&ours(&m));
        let frame = AMQPFrame::Method(channel as u16, class);
        out = gen_frame(&frame)(WriteContext::from(out)).unwrap().write;
        expected.push((channel as u16, m));
    }
    out = gen_frame(&AMQPFrame::Heartbeat)(WriteContext::from(out))
        .unwrap()
        .write;
    let mut buf = BytesMut::from(&out[..]);
    for (channel, m) in expected {
        let frame = parse_frame(&mut buf, 0).unwrap().unwrap();
        assert_eq!(frame.frame_type, FrameType::Method);
        assert_eq!(frame.channel, channel);
        assert_eq!(Method::decode(&frame.payload), Ok(m));
    }
    let heartbeat = parse_frame(&mut buf, 0).unwrap().unwrap();
    assert_eq!(heartbeat.frame_type, FrameType::Heartbeat);
    assert!(buf.is_empty());
}
