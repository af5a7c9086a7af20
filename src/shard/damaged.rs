//! Stored messages whose record is damaged on disk (its checksum, header or location does not
//! check, or its content does not decode). Such a message can never be delivered as it was
//! published, so it is dropped from its queue, loudly (an error log naming the queue, the
//! message and where its record is), rather than delivered corrupted or left at the head where
//! it would block every message behind it. Its record is settled like an acked one.

use std::rc::Rc;

use hare_storage::RecordLocation;

use crate::ids::{MessageId, QueueId};
use crate::shard::persistence::PersistenceError;
use crate::shard::queues::record_gone;
use crate::shard::Shard;

/// A message of a fetch plan whose record is damaged.
pub struct Damaged {
    pub id: MessageId,
    pub location: RecordLocation,
    pub error: PersistenceError,
}

/// Drops the damaged messages from `queue` (those still ready there), logging each, and
/// settles their records.
pub fn drop_damaged(shard: &Rc<Shard>, queue: QueueId, damaged: &[Damaged]) {
    let mut gone = Vec::new();
    {
        let mut queues = shard.queues.borrow_mut();
        let Some(runtime) = queues.get_mut(&queue) else {
            return;
        };
        for message in damaged {
            tracing::error!(
                error = %message.error,
                shard = %shard.id,
                queue = %runtime.name,
                message_id = message.id.0,
                segment = message.location.segment.0,
                offset = message.location.offset,
                "stored message is damaged on disk and cannot be delivered; dropping it from the queue"
            );
        }
        let ids: Vec<MessageId> = damaged.iter().map(|message| message.id).collect();
        let dropped = runtime.drop_damaged(&ids, &mut gone);
        shard
            .damaged_dropped
            .set(shard.damaged_dropped.get() + dropped as u64);
    }
    record_gone(shard, queue, &gone);
    shard.mark_dirty(queue);
}
