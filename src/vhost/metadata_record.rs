//! What the metadata log (`hare_storage::MetadataLog`) holds for the broker: a snapshot of every
//! vhost's durable definitions, and one change entry per metadata change that touched
//! something durable. Both are plain values built from the same deltas every shard applies,
//! so a replicated log could carry them unchanged; this module only turns them into bytes and
//! back. Decoding never panics: every field is checked, and `metadata_replay` checks that a
//! change fits the state it is applied to.
//!
//! ```text
//! snapshot: shard_count u16 | next_id u64 | vhost_count u32 | (body_len u32 | body)*
//!           [access_len u32 | access]
//!           body: a definitions body (definitions.rs) whose next_id and shard_count equal
//!           the snapshot's
//!           access: the users, vhosts, permissions, policies and limits as one JSON
//!           `AccessDocument`; absent in snapshots written before users existed
//! change:   next_id u64 | vhost shortstr | delta_count u32 | delta*
//! delta:    tag u8 | fields
//!           1 exchange declared: exchange       2 exchange deleted: name shortstr
//!           3 queue declared:    queue          4 queue deleted:    name shortstr
//!           5 bound:             binding        6 unbound:          binding
//!           7 access:            json_len u32 | one `AccessDelta` as JSON
//! ```
//!
//! `exchange`, `queue` and `binding` are encoded as in the definitions body
//! (`definitions_codec`). Integers are little-endian.

use crate::protocol::ShortStr;
use crate::vhost::access::AccessDocument;
use crate::vhost::definitions::{check, invalid, Definitions, DefinitionsError};
use crate::vhost::definitions_codec::{
    put_binding, put_count, put_exchange, put_queue, put_short_str, read_binding, read_exchange,
    read_queue, Cursor,
};
use crate::vhost::delta::MetaDelta;
use crate::vhost::Registry;

const TAG_EXCHANGE_DECLARED: u8 = 1;
const TAG_EXCHANGE_DELETED: u8 = 2;
const TAG_QUEUE_DECLARED: u8 = 3;
const TAG_QUEUE_DELETED: u8 = 4;
const TAG_BOUND: u8 = 5;
const TAG_UNBOUND: u8 = 6;
const TAG_ACCESS: u8 = 7;

/// Every vhost's durable definitions at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataSnapshot {
    /// The shard count the queues were placed for (queues keep their owner shard).
    pub shard_count: u16,
    /// The next exchange/queue id to assign, so ids are never reused.
    pub next_id: u64,
    /// Only vhosts that hold something durable.
    pub vhosts: Vec<Definitions>,
    /// Users, vhosts, permissions, policies; None in a log from before they existed (start-up
    /// then installs the defaults).
    pub access: Option<AccessDocument>,
}

/// One metadata change's durable deltas, in the order they were applied.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataChange {
    /// The next id to assign after the change.
    pub next_id: u64,
    pub vhost: ShortStr,
    pub deltas: Vec<MetaDelta>,
}

impl MetadataSnapshot {
    /// A snapshot with nothing stored.
    pub fn empty(shard_count: u16, next_id: u64) -> MetadataSnapshot {
        MetadataSnapshot {
            shard_count,
            next_id,
            vhosts: Vec::new(),
            access: None,
        }
    }

    /// What of `registry` must survive a restart; the same metadata always gives the same
    /// bytes (vhosts by name, objects by id).
    pub fn collect(registry: &Registry, next_id: u64, shard_count: u16) -> MetadataSnapshot {
        let mut vhosts: Vec<Definitions> = registry
            .vhosts()
            .map(|vhost| Definitions::collect(vhost, next_id, shard_count))
            .filter(|definitions| !definitions.is_empty())
            .collect();
        vhosts.sort_by(|a, b| a.vhost.as_bytes().cmp(b.vhost.as_bytes()));
        MetadataSnapshot {
            shard_count,
            next_id,
            vhosts,
            access: Some(registry.access().document()),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.shard_count.to_le_bytes());
        out.extend_from_slice(&self.next_id.to_le_bytes());
        put_count(&mut out, self.vhosts.len());
        for definitions in &self.vhosts {
            assert_eq!(definitions.next_id, self.next_id);
            assert_eq!(definitions.shard_count, self.shard_count);
            let body = definitions.encode_checked_body();
            put_count(&mut out, body.len());
            out.extend_from_slice(&body);
        }
        if let Some(access) = &self.access {
            put_json(&mut out, access);
        }
        out
    }

    /// Checks every field; the cross references of each vhost's definitions are checked when
    /// `metadata_replay` builds the vhost from them.
    pub fn decode(bytes: &[u8]) -> Result<MetadataSnapshot, DefinitionsError> {
        let mut cursor = Cursor::new(bytes, 0..bytes.len());
        let shard_count = cursor.u16()?;
        let next_id = cursor.u64()?;
        let mut vhosts: Vec<Definitions> = Vec::new();
        for _ in 0..cursor.u32()? {
            let len = cursor.length()?;
            let start = cursor.position();
            cursor.take(len)?;
            let definitions = Definitions::decode_unchecked_body(bytes, start..start + len)?;
            check(definitions.next_id == next_id, "vhost next id differs")?;
            check(
                definitions.shard_count == shard_count,
                "vhost shard count differs",
            )?;
            let repeated = vhosts.iter().any(|other| other.vhost == definitions.vhost);
            check(!repeated, "vhost repeated in the snapshot")?;
            vhosts.push(definitions);
        }
        let access = if cursor.is_empty() {
            None
        } else {
            Some(read_json(&mut cursor)?)
        };
        check(cursor.is_empty(), "bytes after the access document")?;
        check(shard_count > 0, "shard count is zero")?;
        check(
            next_id >= Registry::FIRST_DYNAMIC_ID,
            "next id below the first dynamic id",
        )?;
        Ok(MetadataSnapshot {
            shard_count,
            next_id,
            vhosts,
            access,
        })
    }
}

impl MetadataChange {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.next_id.to_le_bytes());
        put_short_str(&mut out, &self.vhost);
        put_count(&mut out, self.deltas.len());
        for delta in &self.deltas {
            match delta {
                MetaDelta::ExchangeDeclared(exchange) => {
                    out.push(TAG_EXCHANGE_DECLARED);
                    put_exchange(&mut out, exchange);
                }
                MetaDelta::ExchangeDeleted { name } => {
                    out.push(TAG_EXCHANGE_DELETED);
                    put_short_str(&mut out, name);
                }
                MetaDelta::QueueDeclared(queue) => {
                    out.push(TAG_QUEUE_DECLARED);
                    put_queue(&mut out, queue);
                }
                MetaDelta::QueueDeleted { name } => {
                    out.push(TAG_QUEUE_DELETED);
                    put_short_str(&mut out, name);
                }
                MetaDelta::Bound(binding) => {
                    out.push(TAG_BOUND);
                    put_binding(&mut out, binding);
                }
                MetaDelta::Unbound(binding) => {
                    out.push(TAG_UNBOUND);
                    put_binding(&mut out, binding);
                }
                MetaDelta::Access(access) => {
                    out.push(TAG_ACCESS);
                    put_json(&mut out, access);
                }
            }
        }
        out
    }

    /// Checks the framing and every field; whether the change fits the state before it is
    /// `metadata_replay`'s check.
    pub fn decode(bytes: &[u8]) -> Result<MetadataChange, DefinitionsError> {
        let mut cursor = Cursor::new(bytes, 0..bytes.len());
        let next_id = cursor.u64()?;
        let vhost = cursor.short_str()?;
        let mut deltas = Vec::new();
        for _ in 0..cursor.u32()? {
            let delta = match cursor.u8()? {
                TAG_EXCHANGE_DECLARED => MetaDelta::ExchangeDeclared(read_exchange(&mut cursor)?),
                TAG_EXCHANGE_DELETED => MetaDelta::ExchangeDeleted {
                    name: cursor.short_str()?,
                },
                TAG_QUEUE_DECLARED => MetaDelta::QueueDeclared(read_queue(&mut cursor)?),
                TAG_QUEUE_DELETED => MetaDelta::QueueDeleted {
                    name: cursor.short_str()?,
                },
                TAG_BOUND => MetaDelta::Bound(read_binding(&mut cursor)?),
                TAG_UNBOUND => MetaDelta::Unbound(read_binding(&mut cursor)?),
                TAG_ACCESS => MetaDelta::Access(read_json(&mut cursor)?),
                _ => return Err(invalid("unknown metadata change tag")),
            };
            deltas.push(delta);
        }
        check(cursor.is_empty(), "bytes after the last delta")?;
        check(!vhost.is_empty(), "empty vhost name")?;
        Ok(MetadataChange {
            next_id,
            vhost,
            deltas,
        })
    }
}

/// `len u32 | JSON`: the access part is JSON because its values are RabbitMQ's own definitions
/// (policy definitions are free-form JSON objects), and it changes rarely.
fn put_json<T: serde::Serialize>(out: &mut Vec<u8>, value: &T) {
    let json = serde_json::to_vec(value).expect("access values serialise");
    put_count(out, json.len());
    out.extend_from_slice(&json);
}

fn read_json<T: serde::de::DeserializeOwned>(
    cursor: &mut Cursor<'_>,
) -> Result<T, DefinitionsError> {
    let len = cursor.length()?;
    let bytes = cursor.take(len)?;
    serde_json::from_slice(bytes).map_err(|_| invalid("malformed access JSON"))
}
