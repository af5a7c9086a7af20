//! Which bodies of stored messages stay in RAM. A persistent message in a durable queue is in
//! the shard's log from the moment it is published, so its body needs to be in RAM only when
//! it is about to be delivered. A queue keeps the bodies of at most `RESIDENT_MESSAGES_MAX`
//! ready messages (and `RESIDENT_BYTES_MAX` bytes) near its head; messages enqueued behind a
//! longer backlog keep only their 32-byte entry, and the shard's fetcher reads the next batch
//! back (one coalesced read per nearby run of records) before the resident head runs out.
//! Transient messages behind such a head are paged to the log instead of joining the queue in
//! RAM (`shard::queues::page_out`), by a rule of bytes only (`Queue::keeps_next_transient`).

use hare_storage::RecordLocation;

use crate::ids::MessageId;

/// Ready messages of one queue whose bodies stay in RAM at enqueue.
pub const RESIDENT_MESSAGES_MAX: usize = 2048;
/// Body bytes of one queue's ready messages that stay in RAM at enqueue.
pub const RESIDENT_BYTES_MAX: usize = 8 << 20;
/// A fetch starts when fewer resident messages than this remain (read-ahead), so consumers
/// are not left waiting for the disk.
pub const FETCH_LOW_WATER_MESSAGES: usize = 512;
/// Messages one fetch reads back.
pub const FETCH_BATCH_MESSAGES_MAX: usize = 1024;
/// Record bytes one fetch reads back (at least one record, however large).
pub const FETCH_BATCH_BYTES_MAX: u64 = 2 << 20;
/// Entries a fetch plan examines from the head: bounds the work when many resident
/// (transient or requeued) messages come first.
pub const FETCH_SCAN_MAX: usize = 16 * 1024;

/// Stored messages whose bodies to read back, in queue order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FetchPlan {
    pub ids: Vec<MessageId>,
    pub locations: Vec<RecordLocation>,
}
