//! The broker's records in a shard's log (the log itself knows only opaque payloads). A
//! persistent message for durable queues is written once, listing every queue of the shard it
//! went to; settlements (ack, reject without requeue, purge) and queue deletions follow as
//! small records, never fsynced on their own. Recovery replays them in LSN order.
//!
//! ```text
//! message (kind 1), little-endian:
//! +-----+---------+----------------------------+----+--------+----+-----+--------+------------+------+
//! | ver | entries | (queue u64, message u64) * | el | exch.  | rl | key | pl u32 | properties | body |
//! | u8  |   u16   |                            | u8 | bytes  | u8 |     |        |  (raw)     | rest |
//! +-----+---------+----------------------------+----+--------+----+-----+--------+------------+------+
//! version 2, for a message with a deadline or a priority: each entry also has its absolute
//! deadline (deadline u64, ms since the epoch, 0 = none), and a priority u8 follows the entries.
//! settled (kind 2): queue u64 | ranges u32 | (first message u64, count u32) *
//! queue deleted (kind 3): queue u64
//! paged (kind 4): a transient message (or any message of a non-durable queue) written out of
//!   RAM behind a backlog; the message layout, always version 3: version 2's entries with
//!   deadlines and priority, then a flags u8 (bit 0: persistent) before the exchange.
//!   Recovery skips these records: what they hold does not survive a restart.
//! ```

use std::ops::Range;

use bytes::Bytes;

use crate::ids::{MessageId, QueueId};
use crate::protocol::ShortStr;
use crate::queue::message::Message;

pub const RECORD_MESSAGE: u8 = 1;
pub const RECORD_SETTLED: u8 = 2;
pub const RECORD_QUEUE_DELETED: u8 = 3;
pub const RECORD_PAGED: u8 = 4;

/// Version of the message record layout; bumped when the layout changes.
pub const MESSAGE_RECORD_VERSION: u8 = 1;
/// The layout with deadlines and a priority, written only when a message has one of them, so
/// ordinary messages cost no more on disk.
pub const MESSAGE_RECORD_VERSION_TIMED: u8 = 2;
/// The layout of paged records: version 2's plus a flags byte, because a paged message need
/// not be persistent.
pub const MESSAGE_RECORD_VERSION_PAGED: u8 = 3;
const FLAG_PERSISTENT: u8 = 1;

/// One queue's entry in a message record: the queue, the message's id there, and its
/// deadline in that queue (ms since the epoch, 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordEntry {
    pub queue: QueueId,
    pub id: MessageId,
    pub deadline: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record truncated at byte {offset}")]
    Truncated { offset: usize },
    #[error("unsupported message record version {version}")]
    Version { version: u8 },
    #[error("invalid {what} in record")]
    Invalid { what: &'static str },
}

/// The header part of a message record: everything but the body, which is appended as its
/// own slice so the body is not copied into a temporary buffer.
pub fn encode_message_head(entries: &[RecordEntry], message: &Message) -> Vec<u8> {
    let timed = message.priority != 0 || entries.iter().any(|entry| entry.deadline != 0);
    let version = if timed {
        MESSAGE_RECORD_VERSION_TIMED
    } else {
        MESSAGE_RECORD_VERSION
    };
    encode_head(version, entries, message)
}

/// The header part of a paged record (kind 4): always version 3.
pub fn encode_paged_head(entries: &[RecordEntry], message: &Message) -> Vec<u8> {
    encode_head(MESSAGE_RECORD_VERSION_PAGED, entries, message)
}

fn encode_head(version: u8, entries: &[RecordEntry], message: &Message) -> Vec<u8> {
    let entry_count = u16::try_from(entries.len()).expect("a shard routes to < 65536 queues");
    let timed = version != MESSAGE_RECORD_VERSION;
    let mut out = Vec::with_capacity(
        17 + entries.len() * 24 + message.exchange.len() + message.routing_key.len(),
    );
    out.push(version);
    out.extend_from_slice(&entry_count.to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&entry.queue.0.to_le_bytes());
        out.extend_from_slice(&entry.id.0.to_le_bytes());
        if timed {
            out.extend_from_slice(&entry.deadline.to_le_bytes());
        }
    }
    if timed {
        out.push(message.priority);
    }
    if version == MESSAGE_RECORD_VERSION_PAGED {
        out.push(if message.persistent {
            FLAG_PERSISTENT
        } else {
            0
        });
    }
    push_shortstr(&mut out, &message.exchange);
    push_shortstr(&mut out, &message.routing_key);
    let properties_len =
        u32::try_from(message.properties_raw.len()).expect("properties fit a frame");
    out.extend_from_slice(&properties_len.to_le_bytes());
    out.extend_from_slice(&message.properties_raw);
    out
}

/// A decoded message record.
#[derive(Debug, PartialEq)]
pub struct MessageRecord {
    pub entries: Vec<RecordEntry>,
    pub message: Message,
}

pub fn decode_message(payload: &Bytes) -> Result<MessageRecord, RecordError> {
    let mut entries = Vec::new();
    let head = decode_head(payload, |entry| entries.push(entry))?;
    let shortstr = |range: Range<usize>| {
        ShortStr::try_from_bytes(payload.slice(range)).ok_or(RecordError::Invalid {
            what: "short string",
        })
    };
    // The raw properties were decoded when the message was published and the record's CRC
    // covers them, so they are forwarded as they are.
    let properties_raw = payload.slice(head.properties);
    Ok(MessageRecord {
        entries,
        message: Message {
            exchange: shortstr(head.exchange)?,
            routing_key: shortstr(head.routing_key)?,
            persistent: head.persistent,
            // A stored message is never routed again as it is: the queue entry's deadline
            // is in the record's head.
            ttl: None,
            priority: head.priority,
            properties_raw,
            body: payload.slice(head.body_start..),
        },
    })
}

/// What recovery needs of a message record besides its entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordSummary {
    pub priority: u8,
    pub body_len: usize,
}

/// Calls `each` with the entries of a message record after checking that its head is well
/// formed. Recovery needs no more: the body stays on disk until a consumer wants it, and the
/// properties are decoded then.
pub fn decode_message_entries(
    payload: &[u8],
    each: impl FnMut(RecordEntry),
) -> Result<RecordSummary, RecordError> {
    let head = decode_head(payload, each)?;
    Ok(RecordSummary {
        priority: head.priority,
        body_len: payload.len() - head.body_start,
    })
}

/// Where the parts of a message record are.
struct Head {
    priority: u8,
    /// Message records (kind 1) hold only persistent messages; paged ones say.
    persistent: bool,
    exchange: Range<usize>,
    routing_key: Range<usize>,
    properties: Range<usize>,
    body_start: usize,
}

fn decode_head(payload: &[u8], mut each: impl FnMut(RecordEntry)) -> Result<Head, RecordError> {
    let mut reader = Cursor::new(payload);
    let version = reader.u8()?;
    let timed = match version {
        MESSAGE_RECORD_VERSION => false,
        MESSAGE_RECORD_VERSION_TIMED | MESSAGE_RECORD_VERSION_PAGED => true,
        _ => return Err(RecordError::Version { version }),
    };
    let count = reader.u16()?;
    for _ in 0..count {
        let queue = QueueId(reader.u64()?);
        let id = MessageId(reader.u64()?);
        let deadline = if timed { reader.u64()? } else { 0 };
        each(RecordEntry {
            queue,
            id,
            deadline,
        });
    }
    let priority = if timed { reader.u8()? } else { 0 };
    let persistent = if version == MESSAGE_RECORD_VERSION_PAGED {
        reader.u8()? & FLAG_PERSISTENT != 0
    } else {
        true
    };
    let exchange_len = usize::from(reader.u8()?);
    let exchange = reader.take(exchange_len)?;
    let routing_key_len = usize::from(reader.u8()?);
    let routing_key = reader.take(routing_key_len)?;
    let properties_len = usize::try_from(reader.u32()?).unwrap_or(usize::MAX);
    let properties = reader.take(properties_len)?;
    Ok(Head {
        priority,
        persistent,
        exchange,
        routing_key,
        properties,
        body_start: reader.offset,
    })
}

/// Settled message ids of one queue, as ranges of consecutive ids.
pub fn encode_settled(queue: QueueId, ids: &[MessageId]) -> Vec<u8> {
    let mut sorted: Vec<u64> = ids.iter().map(|id| id.0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut ranges: Vec<(u64, u32)> = Vec::new();
    for id in sorted {
        match ranges.last_mut() {
            Some((first, count)) if *first + u64::from(*count) == id && *count < u32::MAX => {
                *count += 1;
            }
            _ => ranges.push((id, 1)),
        }
    }
    let mut out = Vec::with_capacity(12 + ranges.len() * 12);
    out.extend_from_slice(&queue.0.to_le_bytes());
    let range_count = u32::try_from(ranges.len()).expect("ranges fit u32");
    out.extend_from_slice(&range_count.to_le_bytes());
    for (first, count) in ranges {
        out.extend_from_slice(&first.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
    out
}

/// A decoded settled record: the queue and its (first id, count) ranges.
pub fn decode_settled(payload: &[u8]) -> Result<(QueueId, Vec<(u64, u32)>), RecordError> {
    let mut reader = Cursor::new(payload);
    let queue = QueueId(reader.u64()?);
    let count = reader.u32()?;
    let mut ranges = Vec::new();
    for _ in 0..count {
        let first = reader.u64()?;
        let length = reader.u32()?;
        ranges.push((first, length));
    }
    reader.expect_end()?;
    Ok((queue, ranges))
}

pub fn encode_queue_deleted(queue: QueueId) -> Vec<u8> {
    queue.0.to_le_bytes().to_vec()
}

pub fn decode_queue_deleted(payload: &[u8]) -> Result<QueueId, RecordError> {
    let mut reader = Cursor::new(payload);
    let queue = QueueId(reader.u64()?);
    reader.expect_end()?;
    Ok(queue)
}

fn push_shortstr(out: &mut Vec<u8>, value: &ShortStr) {
    out.push(u8::try_from(value.len()).expect("short strings are at most 255 bytes"));
    out.extend_from_slice(value.as_bytes());
}

/// A bounds-checked reader over a record payload; every read is checked before slicing.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Cursor<'a> {
        Cursor { bytes, offset: 0 }
    }

    /// The range of the next `length` bytes.
    fn take(&mut self, length: usize) -> Result<Range<usize>, RecordError> {
        let end = self
            .offset
            .checked_add(length)
            .filter(|end| *end <= self.bytes.len())
            .ok_or(RecordError::Truncated {
                offset: self.offset,
            })?;
        let range = self.offset..end;
        self.offset = end;
        Ok(range)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let range = self.take(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[range]);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn expect_end(&self) -> Result<(), RecordError> {
        if self.offset == self.bytes.len() {
            Ok(())
        } else {
            Err(RecordError::Invalid {
                what: "trailing bytes",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BasicProperties, FieldTable};

    fn message() -> Message {
        let properties = BasicProperties {
            delivery_mode: Some(2),
            content_type: Some(ShortStr::from_static("text/plain")),
            headers: Some(FieldTable::new()),
            ..Default::default()
        };
        Message {
            exchange: ShortStr::from_static("amq.topic"),
            routing_key: ShortStr::from_static("a.b"),
            persistent: true,
            ttl: None,
            priority: 0,
            properties_raw: properties.to_raw(),
            body: Bytes::from_static(b"hello body"),
        }
    }

    #[test]
    fn message_records_round_trip() {
        let message = message();
        let entry = |queue, id, deadline| RecordEntry {
            queue: QueueId(queue),
            id: MessageId(id),
            deadline,
        };
        let entries = [entry(7, 1, 0), entry(9, 42, 0)];
        let mut payload = encode_message_head(&entries, &message);
        assert_eq!(payload[0], MESSAGE_RECORD_VERSION, "no deadline: version 1");
        payload.extend_from_slice(&message.body);
        let decoded = decode_message(&Bytes::from(payload)).expect("valid record");
        assert_eq!(decoded.entries, entries);
        assert_eq!(decoded.message, message);

        let timed = Message {
            priority: 7,
            ..message.clone()
        };
        let entries = [entry(7, 1, 1_700_000_000_123), entry(9, 42, 0)];
        let mut payload = encode_message_head(&entries, &timed);
        assert_eq!(payload[0], MESSAGE_RECORD_VERSION_TIMED);
        payload.extend_from_slice(&timed.body);
        let decoded = decode_message(&Bytes::from(payload.clone())).expect("valid record");
        assert_eq!(decoded.entries, entries);
        assert_eq!(decoded.message, timed);
        let summary = decode_message_entries(&payload, |_| {}).expect("valid");
        assert_eq!(summary.priority, 7);
        assert_eq!(summary.body_len, timed.body.len());
    }

    #[test]
    fn paged_records_keep_whether_the_message_is_persistent() {
        for persistent in [false, true] {
            let message = Message {
                persistent,
                priority: 3,
                ..message()
            };
            let entries = [RecordEntry {
                queue: QueueId(4),
                id: MessageId(8),
                deadline: 1_700_000_000_000,
            }];
            let mut payload = encode_paged_head(&entries, &message);
            assert_eq!(payload[0], MESSAGE_RECORD_VERSION_PAGED);
            payload.extend_from_slice(&message.body);
            let decoded = decode_message(&Bytes::from(payload)).expect("valid record");
            assert_eq!(decoded.entries, entries);
            assert_eq!(decoded.message, message);
        }
    }

    #[test]
    fn truncated_message_records_are_errors_not_panics() {
        let message = message();
        let entry = RecordEntry {
            queue: QueueId(1),
            id: MessageId(1),
            deadline: 5,
        };
        let head = encode_message_head(&[entry], &message);
        // Every cut inside the head is an error; the body is whatever follows.
        for cut in 0..head.len() {
            let payload = Bytes::copy_from_slice(&head[..cut]);
            assert!(decode_message(&payload).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn settled_ids_compress_into_ranges() {
        let ids: Vec<MessageId> = [5, 1, 2, 3, 9, 10, 3].into_iter().map(MessageId).collect();
        let payload = Bytes::from(encode_settled(QueueId(4), &ids));
        let (queue, ranges) = decode_settled(&payload).expect("valid");
        assert_eq!(queue, QueueId(4));
        assert_eq!(ranges, vec![(1, 3), (5, 1), (9, 2)]);
        for cut in 0..payload.len() {
            assert!(decode_settled(&payload.slice(..cut)).is_err());
        }
    }

    #[test]
    fn queue_deleted_round_trips() {
        let payload = Bytes::from(encode_queue_deleted(QueueId(77)));
        assert_eq!(decode_queue_deleted(&payload), Ok(QueueId(77)));
        assert!(decode_queue_deleted(&payload.slice(..3)).is_err());
    }
}
