//! One vhost's durable definitions: the exchanges, queues and bindings that must survive a
//! restart, with the id counter and the shard count the queues were placed for. `collect`
//! takes them from a vhost, `build_vhost` checks them and builds the vhost back, and their
//! *body* encoding below is what each vhost's part of a metadata log snapshot holds
//! (`metadata_record`). The sealed file around a body is format 1 of the durable definitions,
//! one `dir/definitions` file that was rewritten on every change; start-up still reads such a
//! file once and converts it into the metadata log (`shard::metadata_recovery`). This module
//! knows nothing about messages (those live in the shard logs); `load` is blocking `std::fs`,
//! for start-up only.
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
//! kind:     direct 1, fanout 2, topic 3, headers 4, x-consistent-hash 5, x-message-deduplication 6
//! destination_kind: queue 1, exchange 2
//! ```
//!
//! Every integer outside the embedded AMQP tables is little-endian. `durable` is not stored
//! (only durable objects are), and a loaded queue has no exclusive owner (exclusive queues are
//! never stored). Decoding checks the header, the length and the checksum, then every field and
//! every cross reference, so `deltas()` of a decoded value always applies to a fresh vhost.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::ops::Range;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::protocol::{DecodeError, ShortStr};
use crate::vhost::definitions_codec::{
    put_binding, put_count, put_exchange, put_queue, put_short_str, read_binding, read_exchange,
    read_queue, Cursor,
};
use crate::vhost::delta::{BindingDefinition, DestinationName, MetaDelta};
use crate::vhost::exchange::{Destination, ExchangeDefinition};
use crate::vhost::queue_definition::QueueDefinition;
use crate::vhost::{binding_arguments, Registry, VHost, STANDARD_EXCHANGES};

/// The name of the definitions file inside the data directory.
pub const FILE_NAME: &str = "definitions";
/// The temporary file the format-1 writer renamed over `FILE_NAME`; deleted at conversion.
pub const TEMPORARY_FILE_NAME: &str = "definitions.tmp";
/// First bytes of every definitions file.
pub const MAGIC: [u8; 8] = *b"HAREDEF\0";
/// The only format version this build reads and writes. A change of layout takes a new version.
pub const FORMAT_VERSION: u16 = 1;
/// magic, version, reserved, body length, checksum.
pub const HEADER_SIZE_BYTES: usize = 20;
const _: () = assert!(HEADER_SIZE_BYTES == MAGIC.len() + 2 + 2 + 4 + 4);

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
            // In bind order: replay then rebuilds a consistent-hash ring the same.
            for (routing_key, arguments, destination) in source.bindings.iter_in_bind_order() {
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
        self.build_vhost().map(|_| ())
    }

    /// The vhost these definitions describe, built from scratch with every check `validate`
    /// names: the metadata log's replay continues from it.
    pub fn build_vhost(&self) -> Result<VHost, DefinitionsError> {
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
            check_exchange_arguments(exchange)?;
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
        for binding in &self.bindings {
            apply_binding(&mut scratch, binding, BindingChange::Bind)?;
        }
        Ok(scratch)
    }

    /// True if nothing is stored (no exchange, queue or binding).
    pub fn is_empty(&self) -> bool {
        self.exchanges.is_empty() && self.queues.is_empty() && self.bindings.is_empty()
    }

    /// The body of a snapshot of the metadata log. `collect` builds consistent definitions by
    /// construction, and replay checks every snapshot it reads, so the O(n) rebuild of
    /// `check_invariants` runs in debug builds only: in release it would stall the metadata
    /// shard for as long as the collection itself.
    pub fn encode_checked_body(&self) -> Vec<u8> {
        if cfg!(debug_assertions) {
            self.check_invariants();
        }
        self.encode_body()
    }

    /// Reads a body embedded at `bytes[range]`, field by field, without the cross-reference
    /// checks: `build_vhost` makes those.
    pub fn decode_unchecked_body(
        bytes: &[u8],
        range: Range<usize>,
    ) -> Result<Definitions, DefinitionsError> {
        let mut cursor = Cursor::new(bytes, range);
        let definitions = read_body(&mut cursor)?;
        check(cursor.is_empty(), "bytes after the last binding")?;
        Ok(definitions)
    }

    /// The body, unchecked: `encode` validates first; tests use this to build bad files.
    fn encode_body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.next_id.to_le_bytes());
        out.extend_from_slice(&self.shard_count.to_le_bytes());
        put_short_str(&mut out, &self.vhost);
        put_count(&mut out, self.exchanges.len());
        for exchange in &self.exchanges {
            put_exchange(&mut out, exchange);
        }
        put_count(&mut out, self.queues.len());
        for queue in &self.queues {
            put_queue(&mut out, queue);
        }
        put_count(&mut out, self.bindings.len());
        for binding in &self.bindings {
            put_binding(&mut out, binding);
        }
        out
    }
}

/// Whether `apply_binding` adds or removes the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingChange {
    Bind,
    Unbind,
}

/// Adds or removes a binding of a vhost being rebuilt, refusing as an error what
/// `VHost::apply` would assert on (the metadata log's replay uses it too).
pub fn apply_binding(
    vhost: &mut VHost,
    binding: &BindingDefinition,
    change: BindingChange,
) -> Result<(), DefinitionsError> {
    let default_exchange = DestinationName::Exchange(Default::default());
    let default = binding.source.is_empty() || binding.destination == default_exchange;
    check(!default, "binding with the default exchange")?;
    let destination = vhost
        .destination_id(&binding.destination)
        .ok_or(invalid("binding destination does not exist"))?;
    let source = vhost
        .exchanges
        .get_mut(&binding.source)
        .ok_or(invalid("binding source does not exist"))?;
    let arguments = binding_arguments(&binding.arguments);
    match change {
        BindingChange::Bind => {
            let added = source
                .bindings
                .bind(binding.routing_key.as_bytes(), arguments, destination)
                .map_err(|_| invalid("binding arguments refused by the exchange kind"))?;
            check(added, "binding repeated")
        }
        BindingChange::Unbind => {
            let removed =
                source
                    .bindings
                    .unbind(binding.routing_key.as_bytes(), &arguments, destination);
            check(removed, "binding removed while absent")
        }
    }
}

/// Loads a format-1 `dir/definitions`; Ok(None) if it does not exist. A leftover
/// `definitions.tmp` (a crash of the old writer before its rename) is ignored. Blocking
/// std::fs, for start-up.
pub fn load(dir: &Path) -> Result<Option<Definitions>, DefinitionsError> {
    let path = dir.join(FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => Definitions::decode(&bytes).map(Some),
        Err(error) if error.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DefinitionsError::Io { path, source }),
    }
}

/// Refuses the exchange arguments declare would have refused (the consistent-hash and
/// deduplication kinds').
pub(super) fn check_exchange_arguments(
    exchange: &ExchangeDefinition,
) -> Result<(), DefinitionsError> {
    check(
        exchange.check_arguments().is_ok(),
        "exchange arguments refused by the exchange kind",
    )
}

pub(super) fn is_standard(name: &ShortStr) -> bool {
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

pub(super) fn invalid(what: &'static str) -> DefinitionsError {
    DefinitionsError::Invalid { what }
}

pub(super) fn check(condition: bool, what: &'static str) -> Result<(), DefinitionsError> {
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
    let body = header.position()..header.position().saturating_add(body_len);
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
        exchanges.push(read_exchange(cursor)?);
    }
    let mut queues = Vec::new();
    for _ in 0..cursor.u32()? {
        queues.push(read_queue(cursor)?);
    }
    let mut bindings = Vec::new();
    for _ in 0..cursor.u32()? {
        bindings.push(read_binding(cursor)?);
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

#[cfg(test)]
#[path = "definitions_tests.rs"]
mod tests;
