//! The delayed-message exchange (`x-delayed-message`, the interface of RabbitMQ's
//! delayed-message plugin): a message published to it with a positive `x-delay` header waits in
//! its publisher's shard, in a delay store, and is routed through the exchange when its time
//! comes. The store is an internal queue of each shard and vhost whose every message has a
//! deadline: it reuses the queue's deadline index, the shard's timers and the log, so a
//! delayed message costs its 32-byte entry and one deadline in RAM, its body waits on disk,
//! and it survives `kill -9` (the record carries the deadline). Releasing it takes the dead
//! lettering path (`shard::dead_letter`): the stored record is settled only once every copy
//! is safe.
//!
//! The plugin keeps delayed messages in memory tables; it also returns a mandatory delayed
//! message at once as unroutable, which Hare does not (docs/rabbitmq-compatibility.md §10).

use std::rc::Rc;

use crate::ids::QueueId;
use crate::protocol::{FieldTable, FieldValue, ShortStr};
use crate::queue::settings::QueueSettings;
use crate::queue::Queue;
use crate::shard::Shard;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::MetaDelta;

/// Delay-store ids have the top bit set: the metadata never allocates such ids.
const STORE_ID_BIT: u64 = 1 << 63;

/// The delay store of a vhost (the same id on every shard: each shard's log is its own).
pub fn store_id(vhost: &ShortStr) -> QueueId {
    // FNV-1a: stable across builds and restarts, as the id is written in the log.
    let hash = vhost
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    QueueId(STORE_ID_BIT | (hash & !STORE_ID_BIT))
}

/// Creates this shard's delay store for every vhost. Before recovery, which refills them.
pub fn install_stores(shard: &Rc<Shard>) {
    let vhosts: Vec<ShortStr> = shard
        .registry
        .borrow()
        .vhosts()
        .map(|vhost| vhost.name.clone())
        .collect();
    for vhost in vhosts {
        install_store(shard, vhost);
    }
}

fn install_store(shard: &Shard, vhost: ShortStr) {
    let id = store_id(&vhost);
    shard.queues.borrow_mut().entry(id).or_insert_with(|| {
        Queue::new(id, ShortStr::from_static("amq.delayed"), false, true)
            .with_settings(vhost, QueueSettings::default())
            .into_delay_store()
    });
}

/// A vhost created by a metadata update gets its delay store on every shard; a deleted one
/// loses it, with its waiting messages, durably: a vhost created again under the same name
/// (and so the same store id) must not see them again.
pub fn follow_vhosts(shard: &Shard, deltas: &[MetaDelta]) {
    for delta in deltas {
        match delta {
            MetaDelta::Access(AccessDelta::VHostPut { name, .. }) => {
                install_store(shard, ShortStr::copy_from_str(name).expect("checked name"));
            }
            MetaDelta::Access(AccessDelta::VHostDeleted { name }) => {
                let vhost = ShortStr::copy_from_str(name).expect("checked name");
                remove_store(shard, &vhost);
            }
            _ => {}
        }
    }
}

fn remove_store(shard: &Shard, vhost: &ShortStr) {
    let id = store_id(vhost);
    let Some(store) = shard.queues.borrow_mut().remove(&id) else {
        return;
    };
    let gone = store.all_persistent();
    if gone.is_empty() {
        return;
    }
    let persistence = shard.persistence();
    if let Err(error) = persistence.append_queue_deleted(id) {
        tracing::warn!(%error, shard = %shard.id, "cannot record a delay store's deletion");
    }
    for entry in &gone {
        persistence.entry_dead(entry.location);
    }
}

/// The `x-delay` header as the plugin reads it: an integer of any type, a float (truncated)
/// or a string of an integer. A message is delayed when it is in 1 ..= 2^32 - 1 ms;
/// anything else routes at once.
pub fn delay_of(headers: Option<&FieldTable>) -> Option<u32> {
    let value = headers?.get("x-delay")?;
    let delay = match value {
        FieldValue::F32(float) => Some(*float as i64),
        FieldValue::F64(float) => Some(*float as i64),
        FieldValue::LongStr(text) => std::str::from_utf8(text).ok()?.parse::<i64>().ok(),
        other => other.as_i64(),
    }?;
    u32::try_from(delay).ok().filter(|delay| *delay > 0)
}

/// The header a released message carries: the delay negated, so no later delayed exchange
/// delays it again (the plugin's marker).
pub fn released_header(delay: u32) -> FieldValue {
    let negated = -i64::from(delay);
    i32::try_from(negated).map_or(FieldValue::I64(negated), FieldValue::I32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn headers(value: FieldValue) -> FieldTable {
        let mut table = FieldTable::new();
        table.insert(ShortStr::from_static("x-delay"), value);
        table
    }

    #[test]
    fn delays_are_read_as_the_plugin_reads_them() {
        let cases = [
            (FieldValue::I32(1500), Some(1500)),
            (FieldValue::U8(7), Some(7)),
            (FieldValue::F64(250.9), Some(250)),
            (FieldValue::LongStr(Bytes::from_static(b"300")), Some(300)),
            (FieldValue::LongStr(Bytes::from_static(b"soon")), None),
            (FieldValue::I32(0), None),
            (FieldValue::I32(-5), None),
            (FieldValue::I64(1 << 33), None),
            (FieldValue::Bool(true), None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                delay_of(Some(&headers(value.clone()))),
                expected,
                "{value:?}"
            );
        }
        assert_eq!(delay_of(None), None);
    }

    #[test]
    fn store_ids_are_stable_and_never_metadata_ids() {
        let id = store_id(&ShortStr::from_static("/"));
        assert_eq!(id, store_id(&ShortStr::from_static("/")));
        assert_ne!(id, store_id(&ShortStr::from_static("other")));
        assert!(id.0 & STORE_ID_BIT != 0);
    }

    #[test]
    fn the_released_marker_is_the_negated_delay() {
        assert_eq!(released_header(1500), FieldValue::I32(-1500));
        assert_eq!(
            released_header(u32::MAX),
            FieldValue::I64(-i64::from(u32::MAX))
        );
    }
}
