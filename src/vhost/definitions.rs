//! The durable definitions store: the exchanges, queues and bindings that must survive a
//! restart, with the id counter and the shard count the queues were placed for. The metadata
//! shard collects them from its copy of a vhost, encodes them and replaces `dir/definitions`
//! atomically (write a temporary file, fsync, rename, fsync the directory), so a crash leaves
//! either the old file or the new one, never a mix. At start-up the file is loaded and turned
//! back into metadata deltas. This module knows nothing about messages (those live in the shard
//! logs) and does no I/O on an executor: its file functions use blocking `std::fs`.
//!
//! ```text
//! file:     magic "HAREDEF\0" (8) | version u16 | reserved u16 (0) | body_len u32 | crc32 u32 | body
//!           (header 20 bytes; crc32 = crc32fast over the body_len body bytes; nothing may follow)
//! body:     next_id u64 | shard_count u16 | vhost shortstr
//!           | exchange_count u32 | exchange* | queue_count u32 | queue* | binding_count u32 | binding*
//! exchange: id u64 | name shortstr | kind u8 | flags u8 (bit 0 auto_delete, bit 1 internal) | table
//! queue:    id u64 | name shortstr | owner_shard u16 | flags u8 (bit 0 auto_delete) | table
//! binding:  source shortstr | destination_kind u8 | destination shortstr | routing_key shortstr | table
//! shortstr: len u8 | bytes[len]
//! table:    len u32 | exactly what `FieldTable::encode` writes (its own u32 length and values are
//!           big-endian, as on the wire)
//! kind:     direct 1, fanout 2, topic 3, headers 4        destination_kind: queue 1, exchange 2
//! ```
//!
//! Every integer outside the embedded AMQP tables is little-endian. `durable` is not stored
//! (only durable objects are), and a loaded queue has no exclusive owner (exclusive queues are
//! never stored). Decoding checks the header, the length and the checksum, then every field and
//! every cross reference, so `deltas()` of a decoded value always applies to a fresh vhost.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::ids::{ExchangeId, QueueId, ShardId};
use crate::protocol::{DecodeError, FieldTable, ShortStr};
use crate::routing::ExchangeKind;
use crate::vhost::delta::{BindingDefinition, DestinationName, MetaDelta};
use crate::vhost::exchange::{Destination, ExchangeDefinition};
use crate::vhost::queue_definition::QueueDefinition;
use crate::vhost::{binding_arguments, Registry, VHost, STANDARD_EXCHANGES};

/// The name of the definitions file inside the data directory.
pub const FILE_NAME: &str = "definitions";
/// The temporary file a new version is written to before it is renamed over `FILE_NAME`.
pub const TEMPORARY_FILE_NAME: &str = "definitions.tmp";
/// First bytes of every definitions file.
pub const MAGIC: [u8; 8] = *b"HAREDEF\0";
/// The only format version this build reads and writes. A change of layout takes a new version.
pub const FORMAT_VERSION: u16 = 1;
/// magic, version, reserved, body length, checksum.
pub const HEADER_SIZE_BYTES: usize = 20;
const _: () = assert!(HEADER_SIZE_BYTES == MAGIC.len() + 2 + 2 + 4 + 4);

const EXCHANGE_AUTO_DELETE: u8 = 1 << 0;
const EXCHANGE_INTERNAL: u8 = 1 << 1;
const QUEUE_AUTO_DELETE: u8 = 1 << 0;
/// On-disk codes of the exchange kinds; 0 is never written, so a zeroed byte is refused.
const KIND_CODES: [(ExchangeKind, u8); 4] = [
    (ExchangeKind::Direct, 1),
    (ExchangeKind::Fanout, 2),
    (ExchangeKind::Topic, 3),
    (ExchangeKind::Headers, 4),
];
const DESTINATION_QUEUE: u8 = 1;
const DESTINATION_EXCHANGE: u8 = 2;

/// Durable metadata: what must survive a restart.
#[derive(Debug, Clone, PartialEq)]
pub struct Definitions {
    /// The next exchange/queue id the metadata shard will assign (so ids are never reused).
    pub next_id: u64,
    /// The shard count the queues were placed for (queues keep their owner shard).
    pub shard_count: u16,
    pub vhost: ShortStr,
    /// Durable, user-declared exchanges (not the standard `amq.*` and `""` ones), by id.
    pub exchanges: Vec<ExchangeDefinition>,
    /// Durable, non-exclusive queues, by id.
    pub queues: Vec<QueueDefinition>,
    /// Bindings whose ends are both stored or standard exchanges.
    pub bindings: Vec<BindingDefinition>,
}

/// Why a definitions file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionsError {
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("not a definitions file: bad magic")]
    BadMagic,
    #[error(
        "definitions format version {version} is not supported (this build reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion { version: u16 },
    #[error("definitions checksum mismatch: header has {expected:#010x}, body has {found:#010x}")]
    Checksum { expected: u32, found: u32 },
    /// The file ends inside the value that starts at `offset` (a file offset).
    #[error("definitions file truncated at offset {offset}")]
    Truncated { offset: usize },
    #[error("invalid definitions: {what}")]
    Invalid { what: &'static str },
    /// An embedded field table did not decode; `source` has offsets within that table.
    #[error("invalid field table at file offset {offset}: {source}")]
    FieldTable { offset: usize, source: DecodeError },
}

impl Definitions {
    /// What of `vhost` must survive a restart. Output is sorted by id, so the same metadata
    /// always encodes to the same bytes.
    pub fn collect(vhost: &VHost, next_id: u64, shard_count: u16) -> Definitions {
        // Standard exchanges are durable too: they are not stored, but their bindings are.
        let mut sources: Vec<_> = vhost
            .exchanges()
            .filter(|exchange| exchange.definition.durable)
            .collect();
        sources.sort_by_key(|exchange| exchange.id());
        let exchanges = sources
            .iter()
            .filter(|exchange| !is_standard(exchange.name()))
            .map(|exchange| exchange.definition.clone())
            .collect();
        let mut queues: Vec<QueueDefinition> = vhost
            .queues()
            .filter(|queue| is_stored_queue(queue))
            .cloned()
            .collect();
        queues.sort_by_key(|queue| queue.id);
        let mut bindings = Vec::new();
        for source in sources {
            for (routing_key, arguments, destination) in source.bindings.iter() {
                let Some(destination) = stored_destination(vhost, destination) else {
                    continue;
                };
                bindings.push(BindingDefinition {
                    source: source.name().clone(),
                    destination,
                    routing_key: bound_short_str(routing_key),
                    arguments: arguments
                        .iter()
                        .map(|(key, value)| (bound_short_str(key), value.clone()))
                        .collect(),
                });
            }
        }
        Definitions {
            next_id,
            shard_count,
            vhost: vhost.name.clone(),
            exchanges,
            queues,
            bindings,
        }
    }

    /// The whole file: header and body. Panics if the definitions are inconsistent (a bug in
    /// whoever built them), because a file that `decode` would refuse must never be written.
    pub fn encode(&self) -> Vec<u8> {
        self.check_invariants();
        let file = seal(&self.encode_body());
        debug_assert!(Definitions::decode(&file).is_ok(), "encodings decode");
        file
    }

    /// Checks the header, length, checksum, every field and every reference; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Definitions, DefinitionsError> {
        let body = unseal(bytes)?;
        let mut cursor = Cursor::new(bytes, body);
        let definitions = read_body(&mut cursor)?;
        if !cursor.is_empty() {
            return Err(invalid("bytes after the last binding"));
        }
        definitions.validate()?;
        Ok(definitions)
    }

    /// Deltas that rebuild these definitions on a fresh Registry (exchanges, then queues, then
    /// bindings, so that every binding finds both of its ends).
    pub fn deltas(&self) -> Vec<MetaDelta> {
        let exchanges = self
            .exchanges
            .iter()
            .cloned()
            .map(MetaDelta::ExchangeDeclared);
        let queues = self.queues.iter().cloned().map(MetaDelta::QueueDeclared);
        let bindings = self.bindings.iter().cloned().map(MetaDelta::Bound);
        exchanges.chain(queues).chain(bindings).collect()
    }

    /// Asserts what `decode` checks: O(n), called before every encode.
    pub fn check_invariants(&self) {
        if let Err(error) = self.validate() {
            panic!("definitions to be stored are consistent: {error}");
        }
    }

    /// A dry run of `deltas()` on a scratch vhost that first checks, as an error, everything
    /// `VHost::apply` asserts; plus the id rules (unique, from the dynamic range, below
    /// `next_id`) and the owner rule (below `shard_count`).
    fn validate(&self) -> Result<(), DefinitionsError> {
        check(self.shard_count > 0, "shard count is zero")?;
        let next_id_ok = self.next_id >= Registry::FIRST_DYNAMIC_ID;
        check(next_id_ok, "next id below the first dynamic id")?;
        check(!self.vhost.is_empty(), "empty vhost name")?;
        // Standard exchanges get ids below FIRST_DYNAMIC_ID, as in every real vhost.
        let mut scratch = VHost::new(self.vhost.clone(), 1);
        let mut ids = HashSet::new();
        for exchange in &self.exchanges {
            check_id(exchange.id.0, self.next_id, &mut ids)?;
            check(exchange.durable, "stored exchange is transient")?;
            check(!exchange.name.is_empty(), "stored exchange has no name")?;
            let taken = scratch.exchange(&exchange.name).is_some();
            check(!taken, "exchange name repeated or standard")?;
            scratch.apply(&MetaDelta::ExchangeDeclared(exchange.clone()));
        }
        for queue in &self.queues {
            check_id(queue.id.0, self.next_id, &mut ids)?;
            check(queue.durable, "stored queue is transient")?;
            check(queue.exclusive_owner.is_none(), "stored queue is exclusive")?;
            check(!queue.name.is_empty(), "stored queue has no name")?;
            let owner_ok = queue.owner_shard.0 < self.shard_count;
            check(owner_ok, "queue owner shard not below the shard count")?;
            check(scratch.queue(&queue.name).is_none(), "queue name repeated")?;
            scratch.apply(&MetaDelta::QueueDeclared(queue.clone()));
        }
        // Bindings go straight into the scratch tables, which refuse exactly what apply would.
        let default_exchange = DestinationName::Exchange(ShortStr::default());
        for binding in &self.bindings {
            let default = binding.source.is_empty() || binding.destination == default_exchange;
            check(!default, "binding with the default exchange")?;
            let destination = scratch
                .destination_id(&binding.destination)
                .ok_or(invalid("binding destination does not exist"))?;
            let source = scratch
                .exchanges
                .get_mut(&binding.source)
                .ok_or(invalid("binding source does not exist"))?;
            let arguments = binding_arguments(&binding.arguments);
            let added = source
                .bindings
                .bind(binding.routing_key.as_bytes(), arguments, destination)
                .map_err(|_| invalid("binding arguments refused by the exchange kind"))?;
            check(added, "binding repeated")?;
        }
        Ok(())
    }

    /// The body, unchecked: `encode` validates first; tests use this to build bad files.
    fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out.extend_from_slice(&self.shard_count.to_le_bytes());
        put_short_str(&mut out, &self.vhost);
        put_count(&mut out, self.exchanges.len());
        for exchange in &self.exchanges {
            out.extend_from_slice(&exchange.id.0.to_le_bytes());
            put_short_str(&mut out, &exchange.name);
            out.push(kind_code(exchange.kind));
            out.push(
                (u8::from(exchange.auto_delete) * EXCHANGE_AUTO_DELETE)
                    | (u8::from(exchange.internal) * EXCHANGE_INTERNAL),
            );
            put_table(&mut out, &exchange.arguments);
        }
        put_count(&mut out, self.queues.len());
        for queue in &self.queues {
            out.extend_from_slice(&queue.id.0.to_le_bytes());
            put_short_str(&mut out, &queue.name);
            out.extend_from_slice(&queue.owner_shard.0.to_le_bytes());
            out.push(u8::from(queue.auto_delete) * QUEUE_AUTO_DELETE);
            put_table(&mut out, &queue.arguments);
        }
        put_count(&mut out, self.bindings.len());
        for binding in &self.bindings {
            put_short_str(&mut out, &binding.source);
            let (code, name) = match &binding.destination {
                DestinationName::Queue(name) => (DESTINATION_QUEUE, name),
                DestinationName::Exchange(name) => (DESTINATION_EXCHANGE, name),
            };
            out.push(code);
            put_short_str(&mut out, name);
            put_short_str(&mut out, &binding.routing_key);
            put_table(&mut out, &binding.arguments);
        }
        out
    }
}

/// Writes `bytes` as `dir/definitions` atomically: write `dir/definitions.tmp`, fsync it,
/// rename over `definitions`, fsync the directory. Blocking std::fs: callers run it on a
/// blocking thread or before executors start. `bytes` must come from `Definitions::encode`;
/// header and checksum are verified again here (a second check before the write), and a
/// mismatch is a bug that panics.
pub fn write_atomically(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Err(error) = unseal(bytes) {
        panic!("definitions written to disk are sealed: {error}");
    }
    let temporary = dir.join(TEMPORARY_FILE_NAME);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)?;
    file.write_all(bytes)?;
    // The data must be durable before the rename can make it the visible version.
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, dir.join(FILE_NAME))?;
    // The rename itself is durable only once the directory entry is.
    File::open(dir)?.sync_all()
}

/// Loads `dir/definitions`; Ok(None) if it does not exist. A leftover `definitions.tmp` (a
/// crash before its rename) is ignored: the next `write_atomically` truncates it. Blocking
/// std::fs, like `write_atomically`.
pub fn load(dir: &Path) -> Result<Option<Definitions>, DefinitionsError> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Definitions::decode(&bytes).map(Some),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DefinitionsError::Io { path, source }),
    }
}

fn is_standard(name: &ShortStr) -> bool {
    STANDARD_EXCHANGES
        .iter()
        .any(|(standard, _, _)| name == standard)
}

/// Exclusive queues die with their connection, so they are never stored, whatever `durable`.
fn is_stored_queue(queue: &QueueDefinition) -> bool {
    queue.durable && queue.exclusive_owner.is_none()
}

fn stored_destination(vhost: &VHost, destination: Destination) -> Option<DestinationName> {
    match destination {
        Destination::Queue(id) => vhost
            .queue_by_id(id)
            .filter(|queue| is_stored_queue(queue))
            .map(|queue| DestinationName::Queue(queue.name.clone())),
        Destination::Exchange(id) => vhost
            .exchange_by_id(id)
            .filter(|exchange| exchange.definition.durable)
            .map(|exchange| DestinationName::Exchange(exchange.name().clone())),
    }
}

/// Routing keys and argument names in a binding table were short strings when bound.
fn bound_short_str(bytes: &[u8]) -> ShortStr {
    ShortStr::try_from_bytes(Bytes::copy_from_slice(bytes))
        .expect("binding keys and argument names were short strings when bound")
}

fn invalid(what: &'static str) -> DefinitionsError {
    DefinitionsError::Invalid { what }
}

fn check(condition: bool, what: &'static str) -> Result<(), DefinitionsError> {
    if condition {
        Ok(())
    } else {
        Err(invalid(what))
    }
}

fn check_id(id: u64, next_id: u64, seen: &mut HashSet<u64>) -> Result<(), DefinitionsError> {
    check(
        id >= Registry::FIRST_DYNAMIC_ID,
        "id below the first dynamic id",
    )?;
    check(id < next_id, "id not below next id")?;
    check(seen.insert(id), "id repeated")
}

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

/// Header in front of `body`.
fn seal(body: &[u8]) -> Vec<u8> {
    let body_len = u32::try_from(body.len()).expect("definitions bodies are far below 4 GiB");
    let mut out = Vec::with_capacity(HEADER_SIZE_BYTES + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&body_len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    assert_eq!(out.len(), HEADER_SIZE_BYTES);
    out.extend_from_slice(body);
    out
}

/// Checks the header, the exact length and the checksum; returns the body's range. Every
/// header field is checked exactly, so a flipped bit anywhere in the file is detected (the
/// CRC covers the body).
fn unseal(bytes: &[u8]) -> Result<Range<usize>, DefinitionsError> {
    let mut header = Cursor::new(bytes, 0..bytes.len());
    if header.take(MAGIC.len())? != MAGIC {
        return Err(DefinitionsError::BadMagic);
    }
    let version = header.u16()?;
    if version != FORMAT_VERSION {
        return Err(DefinitionsError::UnsupportedVersion { version });
    }
    check(header.u16()? == 0, "reserved header field is not zero")?;
    let body_len = header.length()?;
    let expected = header.u32()?;
    let body = header.position..header.position.saturating_add(body_len);
    if body.end > bytes.len() {
        return Err(DefinitionsError::Truncated { offset: body.start });
    }
    check(body.end == bytes.len(), "bytes after the body")?;
    let found = crc32fast::hash(&bytes[body.clone()]);
    if found != expected {
        return Err(DefinitionsError::Checksum { expected, found });
    }
    Ok(body)
}

fn read_body(cursor: &mut Cursor<'_>) -> Result<Definitions, DefinitionsError> {
    let next_id = cursor.u64()?;
    let shard_count = cursor.u16()?;
    let vhost = cursor.short_str()?;
    // No capacity from the counts: they are only trusted as far as the bytes go.
    let mut exchanges = Vec::new();
    for _ in 0..cursor.u32()? {
        let id = ExchangeId(cursor.u64()?);
        let name = cursor.short_str()?;
        let kind = kind_from_code(cursor.u8()?).ok_or(invalid("unknown exchange kind"))?;
        let flags = cursor.u8()?;
        check(
            flags & !(EXCHANGE_AUTO_DELETE | EXCHANGE_INTERNAL) == 0,
            "unknown exchange flag bits",
        )?;
        exchanges.push(ExchangeDefinition {
            id,
            name,
            kind,
            durable: true,
            auto_delete: flags & EXCHANGE_AUTO_DELETE != 0,
            internal: flags & EXCHANGE_INTERNAL != 0,
            arguments: cursor.table()?,
        });
    }
    let mut queues = Vec::new();
    for _ in 0..cursor.u32()? {
        let id = QueueId(cursor.u64()?);
        let name = cursor.short_str()?;
        let owner_shard = ShardId(cursor.u16()?);
        let flags = cursor.u8()?;
        check(flags & !QUEUE_AUTO_DELETE == 0, "unknown queue flag bits")?;
        queues.push(QueueDefinition {
            id,
            name,
            owner_shard,
            durable: true,
            exclusive_owner: None,
            auto_delete: flags & QUEUE_AUTO_DELETE != 0,
            arguments: cursor.table()?,
        });
    }
    let mut bindings = Vec::new();
    for _ in 0..cursor.u32()? {
        let source = cursor.short_str()?;
        let destination = match (cursor.u8()?, cursor.short_str()?) {
            (DESTINATION_QUEUE, name) => DestinationName::Queue(name),
            (DESTINATION_EXCHANGE, name) => DestinationName::Exchange(name),
            _ => return Err(invalid("unknown binding destination kind")),
        };
        bindings.push(BindingDefinition {
            source,
            destination,
            routing_key: cursor.short_str()?,
            arguments: cursor.table()?,
        });
    }
    Ok(Definitions {
        next_id,
        shard_count,
        vhost,
        exchanges,
        queues,
        bindings,
    })
}

/// `fn u16(&mut self) -> Result<u16, _>` and so on: little-endian reads of each width.
macro_rules! read_le {
    ($($int:ident),*) => {$(
        fn $int(&mut self) -> Result<$int, DefinitionsError> {
            Ok($int::from_le_bytes(self.array()?))
        }
    )*};
}

/// A little-endian cursor over `bytes[range]`; offsets in errors are file offsets. Every read
/// checks the remaining length first, so no input can make it panic.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
    end: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8], range: Range<usize>) -> Cursor<'a> {
        assert!(range.start <= range.end);
        assert!(range.end <= bytes.len());
        Cursor {
            bytes,
            position: range.start,
            end: range.end,
        }
    }

    fn is_empty(&self) -> bool {
        self.position == self.end
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DefinitionsError> {
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
    fn length(&mut self) -> Result<usize, DefinitionsError> {
        Ok(usize::try_from(self.u32()?).unwrap_or(usize::MAX))
    }

    fn short_str(&mut self) -> Result<ShortStr, DefinitionsError> {
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

fn put_count(out: &mut Vec<u8>, count: usize) {
    let count = u32::try_from(count).expect("fewer than 2^32 objects per vhost");
    out.extend_from_slice(&count.to_le_bytes());
}

fn put_short_str(out: &mut Vec<u8>, value: &ShortStr) {
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

#[cfg(test)]
#[path = "definitions_tests.rs"]
mod tests;
