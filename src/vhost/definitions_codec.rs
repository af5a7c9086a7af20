//! The byte encoding of stored metadata objects shared by the definitions file
//! (`definitions`) and the metadata log's records (`metadata_record`): one exchange, queue or
//! binding, and a bounds-checked little-endian cursor to read them back. `definitions.rs` has
//! the byte diagram. Every integer outside the embedded AMQP tables is little-endian.

use std::ops::Range;

use bytes::Bytes;

use crate::ids::{ExchangeId, QueueId, ShardId};
use crate::protocol::{FieldTable, ShortStr};
use crate::routing::ExchangeKind;
use crate::vhost::definitions::{check, invalid, DefinitionsError};
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::exchange::ExchangeDefinition;
use crate::vhost::queue_definition::QueueDefinition;

pub(super) const EXCHANGE_AUTO_DELETE: u8 = 1 << 0;
const EXCHANGE_INTERNAL: u8 = 1 << 1;
const EXCHANGE_DELAYED: u8 = 1 << 2;
const QUEUE_AUTO_DELETE: u8 = 1 << 0;
/// On-disk codes of the exchange kinds; 0 is never written, so a zeroed byte is refused.
/// Codes are never reused or renumbered: a new kind takes the next one.
const KIND_CODES: [(ExchangeKind, u8); 6] = [
    (ExchangeKind::Direct, 1),
    (ExchangeKind::Fanout, 2),
    (ExchangeKind::Topic, 3),
    (ExchangeKind::Headers, 4),
    (ExchangeKind::ConsistentHash, 5),
    (ExchangeKind::MessageDeduplication, 6),
];
pub(super) const DESTINATION_QUEUE: u8 = 1;
pub(super) const DESTINATION_EXCHANGE: u8 = 2;

fn kind_code(kind: ExchangeKind) -> u8 {
    let (_, code) = KIND_CODES
        .iter()
        .find(|(k, _)| *k == kind)
        .expect("every kind has a code");
    *code
}

fn kind_from_code(code: u8) -> Option<ExchangeKind> {
    KIND_CODES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(kind, _)| *kind)
}

/// One stored exchange: `id u64 | name shortstr | kind u8 | flags u8 | table`.
pub(super) fn put_exchange(out: &mut Vec<u8>, exchange: &ExchangeDefinition) {
    out.extend_from_slice(&exchange.id.0.to_le_bytes());
    put_short_str(out, &exchange.name);
    out.push(kind_code(exchange.kind));
    out.push(
        (u8::from(exchange.auto_delete) * EXCHANGE_AUTO_DELETE)
            | (u8::from(exchange.internal) * EXCHANGE_INTERNAL)
            | (u8::from(exchange.delayed) * EXCHANGE_DELAYED),
    );
    put_table(out, &exchange.arguments);
}

/// One stored queue: `id u64 | name shortstr | owner_shard u16 | flags u8 | table`.
pub(super) fn put_queue(out: &mut Vec<u8>, queue: &QueueDefinition) {
    out.extend_from_slice(&queue.id.0.to_le_bytes());
    put_short_str(out, &queue.name);
    out.extend_from_slice(&queue.owner_shard.0.to_le_bytes());
    out.push(u8::from(queue.auto_delete) * QUEUE_AUTO_DELETE);
    put_table(out, &queue.arguments);
}

/// One binding: `source shortstr | destination_kind u8 | destination shortstr |
/// routing_key shortstr | table`.
pub(super) fn put_binding(out: &mut Vec<u8>, binding: &BindingDefinition) {
    put_short_str(out, &binding.source);
    let (code, name) = match &binding.destination {
        DestinationName::Queue(name) => (DESTINATION_QUEUE, name),
        DestinationName::Exchange(name) => (DESTINATION_EXCHANGE, name),
    };
    out.push(code);
    put_short_str(out, name);
    put_short_str(out, &binding.routing_key);
    put_table(out, &binding.arguments);
}

pub(super) fn read_exchange(
    cursor: &mut Cursor<'_>,
) -> Result<ExchangeDefinition, DefinitionsError> {
    let id = ExchangeId(cursor.u64()?);
    let name = cursor.short_str()?;
    let kind = kind_from_code(cursor.u8()?).ok_or(invalid("unknown exchange kind"))?;
    let flags = cursor.u8()?;
    check(
        flags & !(EXCHANGE_AUTO_DELETE | EXCHANGE_INTERNAL | EXCHANGE_DELAYED) == 0,
        "unknown exchange flag bits",
    )?;
    Ok(ExchangeDefinition {
        id,
        name,
        kind,
        durable: true,
        auto_delete: flags & EXCHANGE_AUTO_DELETE != 0,
        internal: flags & EXCHANGE_INTERNAL != 0,
        delayed: flags & EXCHANGE_DELAYED != 0,
        arguments: cursor.table()?,
    })
}

pub(super) fn read_queue(cursor: &mut Cursor<'_>) -> Result<QueueDefinition, DefinitionsError> {
    let id = QueueId(cursor.u64()?);
    let name = cursor.short_str()?;
    let owner_shard = ShardId(cursor.u16()?);
    let flags = cursor.u8()?;
    check(flags & !QUEUE_AUTO_DELETE == 0, "unknown queue flag bits")?;
    Ok(QueueDefinition {
        id,
        name,
        owner_shard,
        durable: true,
        exclusive_owner: None,
        auto_delete: flags & QUEUE_AUTO_DELETE != 0,
        arguments: cursor.table()?,
    })
}

pub(super) fn read_binding(cursor: &mut Cursor<'_>) -> Result<BindingDefinition, DefinitionsError> {
    let source = cursor.short_str()?;
    let destination = match (cursor.u8()?, cursor.short_str()?) {
        (DESTINATION_QUEUE, name) => DestinationName::Queue(name),
        (DESTINATION_EXCHANGE, name) => DestinationName::Exchange(name),
        _ => return Err(invalid("unknown binding destination kind")),
    };
    Ok(BindingDefinition {
        source,
        destination,
        routing_key: cursor.short_str()?,
        arguments: cursor.table()?,
    })
}

/// `fn u16(&mut self) -> Result<u16, _>` and so on: little-endian reads of each width.
macro_rules! read_le {
    ($($int:ident),*) => {$(
        pub(super) fn $int(&mut self) -> Result<$int, DefinitionsError> {
            Ok($int::from_le_bytes(self.array()?))
        }
    )*};
}

/// A little-endian cursor over `bytes[range]`; offsets in errors are file offsets. Every read
/// checks the remaining length first, so no input can make it panic.
pub(super) struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    pub(super) fn new(bytes: &'a [u8], range: Range<usize>) -> Cursor<'a> {
        assert!(range.start <= range.end);
        assert!(range.end <= bytes.len());
        Cursor {
            bytes,
            position: range.start,
            end: range.end,
        }
    }

    pub(super) fn position(&self) -> usize {
        self.position
    }

    pub(super) fn is_empty(&self) -> bool {
        self.position == self.end
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], DefinitionsError> {
        if n > self.end - self.position {
            return Err(DefinitionsError::Truncated {
                offset: self.position,
            });
        }
        let start = self.position;
        self.position += n;
        Ok(&self.bytes[start..self.position])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DefinitionsError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    read_le!(u8, u16, u32, u64);

    /// A u32 length. One that does not fit a usize cannot fit the input either, so it
    /// saturates and the following `take` reports the truncation.
    pub(super) fn length(&mut self) -> Result<usize, DefinitionsError> {
        Ok(usize::try_from(self.u32()?).unwrap_or(usize::MAX))
    }

    pub(super) fn short_str(&mut self) -> Result<ShortStr, DefinitionsError> {
        let len = self.u8()?;
        let bytes = self.take(usize::from(len))?;
        Ok(ShortStr::try_from_bytes(Bytes::copy_from_slice(bytes))
            .expect("a one-octet length is at most 255"))
    }

    fn table(&mut self) -> Result<FieldTable, DefinitionsError> {
        let len = self.length()?;
        let offset = self.position;
        let raw = Bytes::copy_from_slice(self.take(len)?);
        FieldTable::decode(&raw).map_err(|source| DefinitionsError::FieldTable { offset, source })
    }
}

pub(super) fn put_count(out: &mut Vec<u8>, count: usize) {
    let count = u32::try_from(count).expect("fewer than 2^32 objects per vhost");
    out.extend_from_slice(&count.to_le_bytes());
}

pub(super) fn put_short_str(out: &mut Vec<u8>, value: &ShortStr) {
    out.push(u8::try_from(value.len()).expect("ShortStr invariant: length <= 255"));
    out.extend_from_slice(value.as_bytes());
}

/// The table's u32 LE length, then `FieldTable::encode`'s output (length patched afterwards,
/// never computed by hand).
fn put_table(out: &mut Vec<u8>, table: &FieldTable) {
    let at = out.len();
    out.extend_from_slice(&0u32.to_le_bytes());
    table.encode(out);
    let len = u32::try_from(out.len() - at - 4).expect("field tables fit in u32");
    out[at..at + 4].copy_from_slice(&len.to_le_bytes());
}
