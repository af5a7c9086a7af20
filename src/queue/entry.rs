//! One message as a queue holds it. A backlog of millions costs this entry per message and
//! nothing else in RAM: 32 bytes, with the body either resident (shared `Rc`) or only in the
//! shard's log, where `StoredAt` finds it. The priority level and the body size
//! (`x-max-length-bytes`) fit in what was padding, so priorities cost nothing per message.

use std::num::NonZeroU32;
use std::sync::Arc;

use hare_storage::{RecordLocation, SegmentId};

use crate::ids::MessageId;
use crate::queue::message::Message;
use crate::queue::Gone;

/// Where a message's record is in the shard's log: `RecordLocation` packed into 12 bytes so
/// that `Option<StoredAt>` costs no tag (segment ids start at 1). The record is either a
/// message record (persistent, in a durable queue: settling it must be logged) or a paged
/// record (a message written out of RAM behind a backlog, which recovery ignores); the top
/// bit of the length says which, as no record comes near 2 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAt {
    segment: NonZeroU32,
    offset: u32,
    length_and_paged: u32,
}

const PAGED_BIT: u32 = 1 << 31;

impl StoredAt {
    /// A message record's location.
    pub fn new(location: RecordLocation) -> StoredAt {
        StoredAt::packed(location, 0)
    }

    /// A paged record's location.
    pub fn paged(location: RecordLocation) -> StoredAt {
        StoredAt::packed(location, PAGED_BIT)
    }

    fn packed(location: RecordLocation, paged: u32) -> StoredAt {
        // A record is at most a frame-limited message plus its head, far below 2 GiB; the
        // log refuses anything near it.
        debug_assert!(location.length < PAGED_BIT, "record length fits 31 bits");
        StoredAt {
            // The log numbers segments from 1 (SegmentId's contract); a 0 would be a bug in
            // the storage crate, not a condition to handle.
            segment: NonZeroU32::new(location.segment.0).expect("segment ids start at 1"),
            offset: location.offset,
            length_and_paged: location.length | paged,
        }
    }

    pub fn location(self) -> RecordLocation {
        RecordLocation {
            segment: SegmentId(self.segment.get()),
            offset: self.offset,
            length: self.length_and_paged & !PAGED_BIT,
        }
    }

    /// A paged record: nothing is logged when its message leaves, and it is not recovered.
    pub fn is_paged(self) -> bool {
        self.length_and_paged & PAGED_BIT != 0
    }
}

/// A message waiting in a queue or waiting for its ack.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: MessageId,
    /// The message, when it is in RAM. `None` only for stored messages whose body was left
    /// on disk (a backlog, an unacked delivery, a recovered message): reading it back is the
    /// shard fetcher's job.
    pub message: Option<Arc<Message>>,
    /// Where the message's record is in the shard's log: a persistent message in a durable
    /// queue (settling it for good must be recorded there), or a paged one.
    pub stored: Option<StoredAt>,
    pub redelivered: bool,
    /// The priority level the message is queued at (0 without `x-max-priority`).
    pub priority: u8,
    /// For a stored message, the record bytes that are not the body (saturating): the body
    /// size is then known without the body in RAM.
    pub record_overhead: u16,
}

/// The per-message cost the storage design promises (docs/ARCHITECTURE.md, Backlogs on disk).
pub const QUEUED_MESSAGE_BYTES_MAX: usize = 32;
const _: () = assert!(std::mem::size_of::<QueuedMessage>() <= QUEUED_MESSAGE_BYTES_MAX);

impl QueuedMessage {
    pub fn is_resident(&self) -> bool {
        self.message.is_some()
    }

    /// Body bytes this entry keeps in RAM.
    pub fn resident_bytes(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.body_size())
    }

    /// Neither body nor record: an entry left in place by a message that expired in the middle
    /// of its queue (`queue::ready`), or whose record was lost with a failed log.
    pub fn is_tombstone(&self) -> bool {
        self.message.is_none() && self.stored.is_none()
    }

    /// The body size, for `x-max-length-bytes`, whether or not the body is in RAM. A
    /// message's answer never changes while it is queued.
    pub fn body_bytes(&self) -> u64 {
        match (self.stored, &self.message) {
            (Some(stored), _) => u64::from(
                stored
                    .location()
                    .length
                    .saturating_sub(u32::from(self.record_overhead)),
            ),
            (None, Some(message)) => message.body_size() as u64,
            (None, None) => 0,
        }
    }

    pub fn location(&self) -> Option<RecordLocation> {
        self.stored.map(StoredAt::location)
    }

    /// What the log must learn when this message leaves its queue for good: nothing for a
    /// message that has no record.
    pub fn gone(&self) -> Option<Gone> {
        self.stored.map(|stored| Gone {
            id: self.id,
            location: stored.location(),
            paged: stored.is_paged(),
        })
    }
}
