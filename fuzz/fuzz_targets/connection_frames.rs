// The input of `connection_state`: bytes read with `arbitrary::Unstructured` as a sequence of
// client frames, mostly well-formed methods of the spec's classes, so that mutations reach the
// connection's state machine rather than its frame parser. Names come from small sets, so
// that declares, binds, publishes, consumes and deletes in one input meet each other, and so
// that what an input leaves in the broker is bounded (see `cleanup_frames`).

use hare::protocol::properties::BASIC_CLASS_ID;
use hare::protocol::*;
use libfuzzer_sys::arbitrary::{Result, Unstructured};

/// Most operations read from one input.
const OPERATIONS_MAX: usize = 48;
/// Queues and exchanges inputs name; `cleanup_frames` deletes them all.
pub const QUEUES: [&str; 3] = ["q0", "q1", "q2"];
pub const EXCHANGES: [&str; 2] = ["e0", "e1"];

const QUEUE_NAMES: [&str; 7] = ["q0", "q1", "q2", "", "amq.q", "amq.rabbitmq.reply-to", "q0 "];
const EXCHANGE_NAMES: [&str; 9] = [
    "e0",
    "e1",
    "",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.rabbitmq.trace",
];
const EXCHANGE_KINDS: [&str; 7] = [
    "direct",
    "fanout",
    "topic",
    "headers",
    "x-consistent-hash",
    "x-message-deduplication",
    "x-delayed-message",
];
const ROUTING_KEYS: [&str; 9] = [
    "", "q0", "q1", "q2", "a.b", "#", "*.b", "amq.rabbitmq.reply-to", "10",
];
const CONSUMER_TAGS: [&str; 4] = ["", "c0", "c1", "amq.ctag-x"];
const ARGUMENTS: [&str; 24] = [
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-message-ttl",
    "x-expires",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-queue-type",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-consumer-timeout",
    "x-priority",
    "x-match",
    "alternate-exchange",
    "x-message-deduplication",
    "x-deduplication-header",
    "x-cache-size",
    "x-cache-ttl",
    "x-delay",
    "CC",
    "BCC",
];
const STRINGS: [&str; 12] = [
    "", "q0", "e0", "classic", "quorum", "stream", "reject-publish", "drop-head", "all", "any",
    "lazy", "x",
];

fn short(value: &'static str) -> ShortStr {
    ShortStr::from_static(value)
}

fn pick(u: &mut Unstructured, from: &[&'static str]) -> Result<ShortStr> {
    Ok(short(u.choose(from)?))
}

/// Mostly 0 to 7, now and then anything.
fn small_u64(u: &mut Unstructured) -> Result<u64> {
    let byte: u8 = u.arbitrary()?;
    Ok(if byte < 240 {
        u64::from(byte % 8)
    } else {
        u.arbitrary()?
    })
}

fn value(u: &mut Unstructured, depth: u8) -> Result<FieldValue> {
    Ok(match u.int_in_range(0..=11u8)? {
        0 => FieldValue::Bool(u.arbitrary()?),
        1 => FieldValue::I8(u.arbitrary()?),
        2 => FieldValue::I16(u.arbitrary()?),
        3 | 4 => FieldValue::I32(
            i32::try_from(small_u64(u)?).map_or(i32::MAX, |n| n.saturating_mul(100) - 100),
        ),
        5 => FieldValue::I64(u.arbitrary()?),
        6 => FieldValue::U32(u.arbitrary()?),
        7 | 8 => FieldValue::LongStr(bytes::Bytes::from_static(u.choose(&STRINGS)?.as_bytes())),
        9 if depth < 2 => FieldValue::Table(table(u, depth + 1)?),
        9 => FieldValue::Void,
        10 if depth < 2 => FieldValue::Array(vec![value(u, depth + 1)?, value(u, depth + 1)?]),
        10 => FieldValue::F64(u.arbitrary()?),
        _ => FieldValue::Timestamp(u.arbitrary()?),
    })
}

fn table(u: &mut Unstructured, depth: u8) -> Result<FieldTable> {
    let mut table = FieldTable::new();
    for _ in 0..u.int_in_range(0..=2u8)? {
        table.insert(pick(u, &ARGUMENTS)?, value(u, depth)?);
    }
    Ok(table)
}

/// One client method with fields drawn from the input; `None`: a publish (with content).
fn method(u: &mut Unstructured) -> Result<Method> {
    Ok(match u.int_in_range(0..=35u8)? {
        0 => Method::ChannelOpen(ChannelOpen { out_of_band: short("") }),
        1 => Method::ChannelFlow(ChannelFlow { active: u.arbitrary()? }),
        2 => Method::ChannelClose(ChannelClose {
            reply_code: 200,
            reply_text: short("bye"),
            class_id: 0,
            method_id: 0,
        }),
        3 => Method::ChannelCloseOk(ChannelCloseOk {}),
        4 => Method::AccessRequest(AccessRequest {
            realm: short("/data"),
            exclusive: u.arbitrary()?,
            passive: u.arbitrary()?,
            active: u.arbitrary()?,
            write: u.arbitrary()?,
            read: u.arbitrary()?,
        }),
        5 | 6 => Method::ExchangeDeclare(ExchangeDeclare {
            ticket: 0,
            exchange: pick(u, &EXCHANGE_NAMES)?,
            kind: pick(u, &EXCHANGE_KINDS)?,
            passive: u.ratio(1, 8)?,
            durable: u.arbitrary()?,
            auto_delete: u.ratio(1, 4)?,
            internal: u.ratio(1, 8)?,
            nowait: u.arbitrary()?,
            arguments: table(u, 0)?,
        }),
        7 => Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: pick(u, &EXCHANGE_NAMES)?,
            if_unused: u.arbitrary()?,
            nowait: u.arbitrary()?,
        }),
        8 | 9 => {
            let bind = ExchangeBind {
                ticket: 0,
                destination: pick(u, &EXCHANGE_NAMES)?,
                source: pick(u, &EXCHANGE_NAMES)?,
                routing_key: pick(u, &ROUTING_KEYS)?,
                nowait: u.arbitrary()?,
                arguments: table(u, 0)?,
            };
            if u.arbitrary()? {
                Method::ExchangeBind(bind)
            } else {
                Method::ExchangeUnbind(ExchangeUnbind {
                    ticket: 0,
                    destination: bind.destination,
                    source: bind.source,
                    routing_key: bind.routing_key,
                    nowait: bind.nowait,
                    arguments: bind.arguments,
                })
            }
        }
        10..=12 => {
            let queue = pick(u, &QUEUE_NAMES)?;
            // A server-named queue is always exclusive: a durable one would outlive every
            // cleanup, its name being unknown.
            let exclusive = queue.as_bytes().is_empty() || u.ratio(1, 4)?;
            Method::QueueDeclare(QueueDeclare {
                ticket: 0,
                queue,
                passive: u.ratio(1, 8)?,
                durable: u.arbitrary()?,
                exclusive,
                auto_delete: u.ratio(1, 4)?,
                nowait: u.ratio(1, 4)?,
                arguments: table(u, 0)?,
            })
        }
        13 | 14 => Method::QueueBind(QueueBind {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            exchange: pick(u, &EXCHANGE_NAMES)?,
            routing_key: pick(u, &ROUTING_KEYS)?,
            nowait: u.arbitrary()?,
            arguments: table(u, 0)?,
        }),
        15 => Method::QueueUnbind(QueueUnbind {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            exchange: pick(u, &EXCHANGE_NAMES)?,
            routing_key: pick(u, &ROUTING_KEYS)?,
            arguments: table(u, 0)?,
        }),
        16 => Method::QueuePurge(QueuePurge {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            nowait: u.arbitrary()?,
        }),
        17 => Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            if_unused: u.arbitrary()?,
            if_empty: u.arbitrary()?,
            nowait: u.arbitrary()?,
        }),
        18 => Method::BasicQos(BasicQos {
            prefetch_size: if u.ratio(1, 8)? { u.arbitrary()? } else { 0 },
            prefetch_count: u16::try_from(small_u64(u)?).unwrap_or(u16::MAX),
            global: u.arbitrary()?,
        }),
        19 | 20 => Method::BasicConsume(BasicConsume {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            consumer_tag: pick(u, &CONSUMER_TAGS)?,
            no_local: u.ratio(1, 8)?,
            no_ack: u.arbitrary()?,
            exclusive: u.ratio(1, 4)?,
            nowait: u.ratio(1, 4)?,
            arguments: table(u, 0)?,
        }),
        21 => Method::BasicCancel(BasicCancel {
            consumer_tag: pick(u, &CONSUMER_TAGS)?,
            nowait: u.arbitrary()?,
        }),
        22 => Method::BasicGet(BasicGet {
            ticket: 0,
            queue: pick(u, &QUEUE_NAMES)?,
            no_ack: u.arbitrary()?,
        }),
        23 | 24 => Method::BasicAck(BasicAck {
            delivery_tag: small_u64(u)?,
            multiple: u.arbitrary()?,
        }),
        25 => Method::BasicReject(BasicReject {
            delivery_tag: small_u64(u)?,
            requeue: u.arbitrary()?,
        }),
        26 => Method::BasicNack(BasicNack {
            delivery_tag: small_u64(u)?,
            multiple: u.arbitrary()?,
            requeue: u.arbitrary()?,
        }),
        27 => Method::BasicRecoverAsync(BasicRecoverAsync { requeue: u.arbitrary()? }),
        28 => Method::BasicRecover(BasicRecover { requeue: u.arbitrary()? }),
        29 => Method::ConfirmSelect(ConfirmSelect { nowait: u.arbitrary()? }),
        30 => Method::TxSelect(TxSelect {}),
        31 => Method::TxCommit(TxCommit {}),
        32 => Method::TxRollback(TxRollback {}),
        33 => Method::ConnectionUpdateSecret(ConnectionUpdateSecret {
            new_secret: LongStr::from_static("guest"),
            reason: short("fuzz"),
        }),
        // Methods only a server sends, and connection methods out of their place.
        34 => Method::BasicDeliver(BasicDeliver {
            consumer_tag: pick(u, &CONSUMER_TAGS)?,
            delivery_tag: small_u64(u)?,
            redelivered: false,
            exchange: short(""),
            routing_key: short("q0"),
        }),
        _ => match u.int_in_range(0..=3u8)? {
            0 => Method::ConnectionCloseOk(ConnectionCloseOk {}),
            1 => Method::ConnectionTuneOk(ConnectionTuneOk {
                channel_max: 0,
                frame_max: 4096,
                heartbeat: 0,
            }),
            2 => Method::QueueDeclareOk(QueueDeclareOk {
                queue: short("q0"),
                message_count: 0,
                consumer_count: 0,
            }),
            _ => Method::ChannelOpenOk(ChannelOpenOk {
                channel_id: LongStr::from_static(""),
            }),
        },
    })
}

fn properties(u: &mut Unstructured) -> Result<BasicProperties> {
    let mut properties = BasicProperties::default();
    if u.ratio(1, 2)? {
        properties.delivery_mode = Some(u.int_in_range(1..=2u8)?);
    }
    if u.ratio(1, 4)? {
        properties.priority = Some(u.int_in_range(0..=11u8)?);
    }
    if u.ratio(1, 4)? {
        properties.expiration = Some(pick(u, &["0", "1", "100", "-1", "x", ""])?);
    }
    if u.ratio(1, 4)? {
        properties.headers = Some(table(u, 0)?);
    }
    if u.ratio(1, 6)? {
        properties.reply_to = Some(pick(u, &["amq.rabbitmq.reply-to", "q1", ""])?);
    }
    if u.ratio(1, 8)? {
        properties.user_id = Some(pick(u, &["guest", "other"])?);
    }
    if u.ratio(1, 8)? {
        properties.message_id = Some(pick(u, &["m0", "m1"])?);
    }
    Ok(properties)
}

/// Appends one frame.
fn frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&channel.to_be_bytes());
    let size = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(payload);
    out.push(FRAME_END);
}

/// basic.publish, its content header and body frames: usually the declared size, split in
/// up to three frames; now and then a size that does not match the body.
fn publish(u: &mut Unstructured, out: &mut Vec<u8>, channel: u16) -> Result<()> {
    let publish = Method::BasicPublish(BasicPublish {
        ticket: 0,
        exchange: pick(u, &EXCHANGE_NAMES)?,
        routing_key: pick(u, &ROUTING_KEYS)?,
        mandatory: u.arbitrary()?,
        immediate: u.ratio(1, 32)?,
    });
    write_method_frame(out, channel, &publish);
    if u.ratio(1, 16)? {
        return Ok(()); // no content at all
    }
    let body_len = usize::from(u.int_in_range(0..=40u8)?);
    let body = u.bytes(body_len.min(u.len()))?;
    let body_size = if u.ratio(1, 16)? {
        small_u64(u)?
    } else {
        body.len() as u64
    };
    let mut header = Vec::new();
    header.extend_from_slice(&BASIC_CLASS_ID.to_be_bytes());
    header.extend_from_slice(&0u16.to_be_bytes());
    header.extend_from_slice(&body_size.to_be_bytes());
    properties(u)?.encode(&mut header);
    frame(out, FrameType::Header as u8, channel, &header);
    let split = body.len().min(usize::from(u.int_in_range(0..=40u8)?));
    for part in [&body[..split], &body[split..]] {
        if !part.is_empty() {
            frame(out, FrameType::Body as u8, channel, part);
        }
    }
    Ok(())
}

/// Channels 1 to 3 mostly; now and then 0 or any.
fn channel(u: &mut Unstructured) -> Result<u16> {
    let byte: u8 = u.arbitrary()?;
    Ok(match byte {
        0..=249 => u16::from(byte % 3) + 1,
        250..=252 => 0,
        _ => u.arbitrary()?,
    })
}

/// The frames of one input.
pub fn frames(data: &[u8]) -> Vec<u8> {
    let mut u = Unstructured::new(data);
    let mut out = Vec::new();
    // The channels most inputs use, opened first (an input may close and reopen them).
    for channel in 1..=3 {
        write_method_frame(
            &mut out,
            channel,
            &Method::ChannelOpen(ChannelOpen { out_of_band: short("") }),
        );
    }
    for _ in 0..OPERATIONS_MAX {
        if u.is_empty() || operation(&mut u, &mut out).is_err() {
            break;
        }
    }
    out
}

fn operation(u: &mut Unstructured, out: &mut Vec<u8>) -> Result<()> {
    let channel = channel(u)?;
    // Empty, arbitrary and broken frames end the connection (mostly): rarer than methods.
    match u.int_in_range(0..=63u8)? {
        0..=43 => write_method_frame(out, channel, &method(u)?),
        44..=59 => publish(u, out, channel)?,
        60 => {
            let kind = *u.choose(&[1u8, 2, 3, 8])?;
            frame(out, kind, channel, &[]);
        }
        61 => write_heartbeat(out),
        // A frame of any kind with any payload.
        62 => {
            let kind = u.arbitrary()?;
            let len = usize::from(u.int_in_range(0..=16u8)?).min(u.len());
            frame(out, kind, channel, u.bytes(len)?);
        }
        // Bytes as they are: broken framing.
        _ => {
            let len = usize::from(u.int_in_range(0..=16u8)?).min(u.len());
            out.extend_from_slice(u.bytes(len)?);
        }
    }
    Ok(())
}

/// Deletes every queue and exchange inputs name, each on a channel of its own (one that
/// fails closes only its channel).
pub fn cleanup_frames() -> Vec<u8> {
    let mut out = Vec::new();
    let mut deletes: Vec<Method> = Vec::new();
    for queue in QUEUES {
        deletes.push(Method::QueueDelete(QueueDelete {
            ticket: 0,
            queue: short(queue),
            if_unused: false,
            if_empty: false,
            nowait: false,
        }));
    }
    for exchange in EXCHANGES {
        deletes.push(Method::ExchangeDelete(ExchangeDelete {
            ticket: 0,
            exchange: short(exchange),
            if_unused: false,
            nowait: false,
        }));
    }
    for (channel, delete) in (1..).zip(&deletes) {
        let open = Method::ChannelOpen(ChannelOpen { out_of_band: short("") });
        write_method_frame(&mut out, channel, &open);
        write_method_frame(&mut out, channel, delete);
    }
    out
}
