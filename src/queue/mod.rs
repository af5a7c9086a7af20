//! A queue's runtime state, owned by exactly one shard: the ready list, the unacked map and the
//! consumers, with RabbitMQ's dispatch rules (round robin among consumers with room; prefetch
//! per consumer and per channel; requeue at the original position with redelivered=true).
//! Pure state: it never sends anything itself, it returns what should be delivered.

pub mod channel_limits;
pub mod consumer;
pub mod counters;
pub mod death;
pub mod entry;
pub mod expiry;
pub mod message;
pub mod policy_settings;
pub mod ready;
pub mod record;
pub mod residency;
pub mod settings;

use crate::fast_map::FastMap;
use std::sync::Arc;

use hare_storage::RecordLocation;

use crate::ids::{ChannelId, ConnectionId, MessageId, QueueId};
use crate::protocol::ShortStr;
use channel_limits::ChannelLimits;
use consumer::{ChannelKey, Consumer, ConsumerKey};
pub use entry::{QueuedMessage, StoredAt};
use expiry::ExpiryIndex;
use message::Message;
use ready::ReadyList;
use residency::FetchPlan;
use settings::{Overflow, QueueSettings};

/// How far ahead of their deadlines the bodies of messages to dead-letter or release are read
/// back from disk.
pub const READ_AHEAD_MS: u64 = 50;

/// At most this many bodies are read ahead per timer round; the rest are read when due.
const READ_AHEAD_MESSAGES_MAX: usize = 4096;

/// What a resident message costs in RAM besides its body (its `Message`, the `Arc`, the
/// allocator's share): an estimate for queue memory and transient paging.
const RESIDENT_MESSAGE_BYTES: usize = 192;

/// A message with a record in the log that left its queue for good (acked, rejected,
/// purged, deleted with the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    pub id: MessageId,
    pub location: RecordLocation,
    /// A paged record: its segment loses a live entry, but no settled record is written,
    /// because recovery never brings paged messages back.
    pub paged: bool,
}

/// A delivery decided by `Queue::dispatch`, to be sent to the consumer's connection.
#[derive(Debug)]
pub struct Delivery {
    pub consumer: ConsumerKey,
    pub no_ack: bool,
    pub id: MessageId,
    pub redelivered: bool,
    pub message: Arc<Message>,
}

/// What basic.get found.
#[derive(Debug)]
pub enum GetOutcome {
    Empty,
    Got {
        id: MessageId,
        redelivered: bool,
        message: Arc<Message>,
    },
    /// The head's body is on disk: fetch it, then ask again.
    NeedsFetch,
}

/// Why a message is dead-lettered: the `reason` of its `x-death` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    Maxlen,
    DeliveryLimit,
}

impl DeathReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::Maxlen => "maxlen",
            DeathReason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A message that left its queue to be dead-lettered. Its record (if stored) stays live in
/// the log until the dead-lettered copy is safe in every queue it went to.
#[derive(Debug)]
pub struct Dead {
    pub entry: QueuedMessage,
    pub reason: DeathReason,
}

/// What left a queue outside the caller's own `gone` list (expiry, length limits, rejects):
/// the shard records `gone` in the log and dead-letters `dead`.
#[derive(Debug, Default)]
pub struct Leaving {
    pub gone: Vec<Gone>,
    pub dead: Vec<Dead>,
}

impl Leaving {
    pub fn is_empty(&self) -> bool {
        self.gone.is_empty() && self.dead.is_empty()
    }
}

/// Whether a queue takes a new message (`x-overflow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Accept,
    /// Full with `reject-publish`: refuse it (a nack for a confirming publisher).
    Reject,
    /// Full with `reject-publish-dlx`: refuse it and dead-letter it.
    RejectDeadLetter,
}

/// What to do with settled (acked, rejected, nacked, recovered) deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAction {
    Ack,
    /// Back to the ready list at the original position, redelivered=true.
    Requeue,
    /// Rejected without requeue: dead-lettered with reason `rejected`, or dropped.
    Discard,
}

#[derive(Debug)]
struct Unacked {
    message: QueuedMessage,
    channel: ChannelKey,
    /// None for basic.get deliveries, which count against no consumer.
    consumer_tag: Option<ShortStr>,
    /// Its deadline passed while it was out: expire it if it comes back.
    expired: bool,
}

/// What a settle did: how many deliveries it settled, and how many of those were consumer
/// deliveries (basic.get deliveries count against no prefetch limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SettleOutcome {
    pub total: u32,
    pub consumer_deliveries: u32,
}

/// Why a consume request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeRefusal {
    /// The queue has an exclusive consumer, or an exclusive consume found other consumers.
    ExclusiveInUse,
}

#[derive(Debug)]
pub struct Queue {
    pub id: QueueId,
    pub name: ShortStr,
    /// The vhost the queue is in: dead lettering routes there.
    pub vhost: ShortStr,
    pub auto_delete: bool,
    pub settings: QueueSettings,
    /// `settings` has anything a publish must look at (`has_special_settings`).
    special: bool,
    /// A shard's delay store (`shard::delayed`): every message is stored, and released
    /// through its exchange when its deadline comes.
    delay_store: bool,
    ready: ReadyList,
    /// Body bytes of the ready messages (`x-max-length-bytes`).
    ready_bytes: u64,
    expiry: ExpiryIndex,
    /// What left the queue since the shard last took it (`take_leaving`).
    leaving: Leaving,
    /// A message with TTL 0 was enqueued: it goes to a consumer now or expires.
    zero_ttl_pending: bool,
    /// When the queue was last used (`x-expires`): milliseconds since the epoch.
    last_used_ms: u64,
    /// The earliest timer the shard holds for this queue (`shard::timers`).
    pub timer_scheduled: Option<u64>,
    /// Bodies of messages due up to this time were asked for (`read_ahead_plan`).
    read_ahead_to: u64,
    /// How often each message still in the queue was returned (requeued), for
    /// `x-delivery-limit` and the `x-delivery-count` header; only returned messages have one.
    returns: FastMap<MessageId, u32>,
    /// Not every consumer has the same `x-priority`: dispatch must look for the highest.
    consumer_priorities_differ: bool,
    unacked: FastMap<MessageId, Unacked>,
    consumers: Vec<Consumer>,
    /// Round-robin position in `consumers`.
    next_consumer_index: usize,
    next_message_id: u64,
    /// Auto-delete queues go only after having had a consumer.
    had_consumer: bool,
    /// Ready messages whose body is in RAM, and their body bytes.
    resident: usize,
    resident_bytes: usize,
    /// A fetch plan was handed out and its result has not come back.
    fetching: bool,
    /// Persistent messages in a durable queue go to the shard's log.
    pub durable: bool,
    /// `x-message-deduplication`: the header values of the messages in the queue.
    dedup: Option<Box<DedupValues>>,
    /// Queue-TTL deadlines are kept one by one, not as runs: the queue holds messages from
    /// before its TTL changed (`apply_settings`, `restore`), with no deadline or a later one,
    /// that a run would take with it. Cleared when the queue is empty again.
    ttl_singles: bool,
    /// Messages through the queue, for the management API (`shard::stats`).
    pub counters: counters::QueueCounters,
}

/// The deduplication header values of the messages a deduplicating queue holds, ready or
/// unacked, by message id: a value is free again once its message leaves for good. Kept in
/// RAM only; after a restart it starts empty (recovered messages are not in it).
#[derive(Debug, Default)]
struct DedupValues {
    by_id: FastMap<MessageId, bytes::Bytes>,
    present: crate::fast_map::FastSet<bytes::Bytes>,
}

impl DedupValues {
    /// Frees the value of message `id`, if the queue deduplicates and the message had one.
    /// Takes the field, not the queue, so it can run while a consumer is borrowed.
    fn forget(dedup: &mut Option<Box<DedupValues>>, id: MessageId) {
        if let Some(dedup) = dedup.as_mut() {
            if let Some(value) = dedup.by_id.remove(&id) {
                dedup.present.remove(&value);
            }
        }
    }
}

impl Queue {
    pub fn new(id: QueueId, name: ShortStr, auto_delete: bool, durable: bool) -> Queue {
        Queue {
            id,
            name,
            vhost: ShortStr::default(),
            auto_delete,
            settings: QueueSettings::default(),
            special: false,
            delay_store: false,
            ready: ReadyList::new(1),
            ready_bytes: 0,
            expiry: ExpiryIndex::default(),
            leaving: Leaving::default(),
            zero_ttl_pending: false,
            last_used_ms: expiry::now_ms(),
            timer_scheduled: None,
            read_ahead_to: 0,
            returns: FastMap::default(),
            consumer_priorities_differ: false,
            unacked: FastMap::default(),
            consumers: Vec::new(),
            next_consumer_index: 0,
            next_message_id: 1,
            had_consumer: false,
            resident: 0,
            resident_bytes: 0,
            fetching: false,
            durable,
            dedup: None,
            ttl_singles: false,
            counters: counters::QueueCounters::default(),
        }
    }

    /// Sets the vhost and the effective settings of a new, empty queue.
    pub fn with_settings(mut self, vhost: ShortStr, settings: QueueSettings) -> Queue {
        assert!(self.ready.entries() == 0, "settings of a new queue");
        self.ready = ReadyList::new(settings.priority_levels());
        self.vhost = vhost;
        self.special = settings.affects_publish();
        self.dedup = settings
            .message_deduplication
            .then(|| Box::new(DedupValues::default()));
        self.settings = settings;
        self
    }

    /// Replaces the effective settings of a live queue, as a policy changed them
    /// (docs/rabbitmq-compatibility.md §16): length limits apply now (drop-head drops, or
    /// dead-letters, from the head: `take_leaving`), a changed `expires` counts from now,
    /// messages already queued keep the deadlines they got. True if anything changed.
    pub fn apply_settings(&mut self, settings: QueueSettings, now: u64) -> bool {
        if settings == self.settings {
            return false;
        }
        assert_eq!(
            settings.priority_levels(),
            self.settings.priority_levels(),
            "no policy sets x-max-priority"
        );
        let holds_messages = !self.ready.is_empty() || !self.unacked.is_empty();
        if settings.message_ttl != self.settings.message_ttl && holds_messages {
            self.ttl_singles = true;
        }
        if settings.expires != self.settings.expires {
            self.touch(now);
        }
        self.special = settings.affects_publish();
        self.settings = settings;
        self.drop_over_limits();
        true
    }

    /// Makes a new queue a delay store.
    pub fn into_delay_store(mut self) -> Queue {
        self.delay_store = true;
        self
    }

    pub fn is_delay_store(&self) -> bool {
        self.delay_store
    }

    /// True if every message is written to the log, persistent or not: a delay store's
    /// messages must outlive a restart whatever their delivery mode.
    pub fn stores_every_message(&self) -> bool {
        self.delay_store
    }

    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    pub fn consumer_count(&self) -> usize {
        self.consumers.len()
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> u64 {
        self.ready_bytes
    }

    /// Body bytes of the unacknowledged deliveries. Walks them: for stats requests only,
    /// never the data path.
    pub fn unacked_bytes(&self) -> u64 {
        self.unacked
            .values()
            .map(|entry| entry.message.body_bytes())
            .sum()
    }

    /// When the queue was last used (consumed from, got from, declared), ms since the epoch.
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms
    }

    /// Ready messages whose body is in RAM.
    pub fn resident_count(&self) -> usize {
        self.resident
    }

    /// About what the queue holds in RAM: entries, resident messages with their bodies, and
    /// unacked deliveries (publisher flow control, `shard::pressure`).
    pub fn ram_bytes(&self) -> usize {
        const UNACKED_BYTES: usize = 128;
        self.ready.entries() * entry::QUEUED_MESSAGE_BYTES_MAX
            + self.expiry.entries() * 24
            + self.resident * RESIDENT_MESSAGE_BYTES
            + self.resident_bytes
            + self.unacked.len() * UNACKED_BYTES
    }

    /// Whether the queue takes a new message now (`x-overflow` reject-publish: refused while
    /// at or over a limit, as RabbitMQ does).
    pub fn admission(&self) -> Admission {
        let refusal = match self.settings.overflow {
            Overflow::DropHead => return Admission::Accept,
            Overflow::RejectPublish => Admission::Reject,
            Overflow::RejectPublishDlx => Admission::RejectDeadLetter,
        };
        let full = self
            .settings
            .max_length
            .is_some_and(|max| self.ready.len() as u64 >= max)
            || self
                .settings
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes >= max);
        if full {
            refusal
        } else {
            Admission::Accept
        }
    }

    /// True if the queue deduplicates (`x-message-deduplication`).
    pub fn deduplicates(&self) -> bool {
        self.dedup.is_some()
    }

    /// False if a message with this deduplication header value is in the queue.
    pub fn admits_dedup_value(&self, value: &bytes::Bytes) -> bool {
        self.dedup
            .as_ref()
            .is_none_or(|dedup| !dedup.present.contains(value))
    }

    /// Records the deduplication header value of the message just enqueued as `id`.
    pub fn remember_dedup_value(&mut self, id: MessageId, value: bytes::Bytes) {
        if let Some(dedup) = self.dedup.as_mut() {
            dedup.present.insert(value.clone());
            dedup.by_id.insert(id, value);
        }
    }

    /// The message left for good: its return count goes, and its deduplication value may come
    /// again.
    fn left_for_good(&mut self, id: MessageId) {
        self.returns.remove(&id);
        DedupValues::forget(&mut self.dedup, id);
    }

    /// Enqueues a transient message (or any message of a non-durable queue) in RAM.
    pub fn enqueue(&mut self, message: Arc<Message>) -> MessageId {
        let id = self.reserve_id();
        self.enqueue_reserved(id, message, expiry::now_ms());
        id
    }

    /// Enqueues in RAM a message under an id from `reserve_id`: a paged message the log could
    /// not take.
    pub fn enqueue_reserved(&mut self, id: MessageId, message: Arc<Message>, now: u64) {
        let priority = self.settings.level_of(message.priority);
        let ttl = message.ttl;
        self.push_ready(QueuedMessage {
            id,
            message: Some(message),
            stored: None,
            redelivered: false,
            priority,
            record_overhead: 0,
        });
        self.after_enqueue(id, ttl, now);
    }

    /// The TTL a message with `message_ttl` gets here: the smaller of the queue's and its own.
    fn effective_ttl(&self, message_ttl: Option<u32>) -> Option<u32> {
        match (self.settings.message_ttl, message_ttl) {
            (Some(queue), Some(own)) => Some(queue.min(own)),
            (queue, own) => queue.or(own),
        }
    }

    /// The absolute deadline a message with `message_ttl` enqueued at `now` gets here (0 for
    /// none).
    pub fn deadline_for(&self, message_ttl: Option<u32>, now: u64) -> u64 {
        self.effective_ttl(message_ttl)
            .map_or(0, |ttl| now + u64::from(ttl))
    }

    /// Deadline bookkeeping and length limits after a new message joined the ready list.
    fn after_enqueue(&mut self, id: MessageId, message_ttl: Option<u32>, now: u64) {
        if self.ttl_singles && self.ready.len() == 1 && self.unacked.is_empty() {
            self.ttl_singles = false;
        }
        self.counters.publish += 1;
        if let Some(ttl) = self.effective_ttl(message_ttl) {
            let deadline = now + u64::from(ttl);
            // The queue's TTL gives deadlines that grow with ids (runs); a shorter one of the
            // message's own does not.
            if self.settings.message_ttl == Some(ttl) && !self.ttl_singles {
                self.expiry.add_queue_ttl(id, deadline);
            } else {
                self.expiry.add_single(id, deadline);
            }
            self.zero_ttl_pending |= ttl == 0;
        }
        self.drop_over_limits();
    }

    /// `x-overflow` drop-head: the oldest ready messages go (dead-lettered with reason
    /// `maxlen`) until the queue is within its limits again.
    fn drop_over_limits(&mut self) {
        let max_length = self.settings.max_length.unwrap_or(u64::MAX);
        let max_bytes = self.settings.max_length_bytes.unwrap_or(u64::MAX);
        if self.settings.overflow != Overflow::DropHead {
            return;
        }
        while self.ready.len() as u64 > max_length || self.ready_bytes > max_bytes {
            let Some(entry) = self.ready.pop_front() else {
                break;
            };
            self.left_ready(&entry);
            self.drop_entry(entry, DeathReason::Maxlen);
        }
    }

    /// A message leaves for good without being delivered: dead-lettered if the queue has a
    /// dead-letter exchange, otherwise dropped.
    fn drop_entry(&mut self, entry: QueuedMessage, reason: DeathReason) {
        self.left_for_good(entry.id);
        if self.settings.dead_letter_exchange.is_some() || self.delay_store {
            self.leaving.dead.push(Dead { entry, reason });
        } else {
            self.leaving.gone.extend(entry.gone());
        }
    }

    /// True if the queue has settings a publish must look at after enqueueing.
    pub fn has_special_settings(&self) -> bool {
        self.special
    }

    /// A publish refused by `reject-publish-dlx`: dead-lettered with reason `maxlen`
    /// without ever being queued.
    pub fn refuse_dead_letter(&mut self, message: Arc<Message>) {
        if self.settings.dead_letter_exchange.is_none() {
            return;
        }
        let priority = self.settings.level_of(message.priority);
        let entry = QueuedMessage {
            id: MessageId(0),
            message: Some(message),
            stored: None,
            redelivered: false,
            priority,
            record_overhead: 0,
        };
        self.leaving.dead.push(Dead {
            entry,
            reason: DeathReason::Maxlen,
        });
    }

    /// What left the queue by expiry, length limits or rejects since the last call.
    pub fn take_leaving(&mut self) -> Leaving {
        std::mem::take(&mut self.leaving)
    }

    /// True once after a message with TTL 0 was enqueued: the shard dispatches at once,
    /// then expires what no consumer took (`expire_now`).
    pub fn take_zero_ttl_pending(&mut self) -> bool {
        std::mem::take(&mut self.zero_ttl_pending)
    }

    /// Expires every ready message whose deadline is at or before `now`, wherever it is in
    /// the queue. Unacked ones are marked, and expire if they come back.
    pub fn expire(&mut self, now: u64) {
        let due = self.expiry.take_due(now);
        let mut expired = Vec::new();
        if let Some(through) = due.through {
            self.ready.take_through(through, &mut expired);
        }
        for id in due.singles {
            match self.ready.take(id) {
                Some(entry) => expired.push(entry),
                None => {
                    if let Some(unacked) = self.unacked.get_mut(&id) {
                        unacked.expired = true;
                    }
                }
            }
        }
        for entry in expired {
            self.left_ready(&entry);
            self.drop_entry(entry, DeathReason::Expired);
        }
    }

    /// True if messages that expire here need their bodies: to dead-letter them, or to release
    /// them from a delay store.
    fn expiry_needs_bodies(&self) -> bool {
        self.delay_store || self.settings.dead_letter_exchange.is_some()
    }

    /// The stored messages due within `READ_AHEAD_MS` whose bodies are on disk, to read back
    /// before their time so that dead-lettering or releasing them waits for no disk read.
    /// Each deadline is looked at once.
    pub fn read_ahead_plan(&mut self, now: u64) -> Option<FetchPlan> {
        if !self.expiry_needs_bodies() {
            return None;
        }
        let until = now + READ_AHEAD_MS;
        let from = self.read_ahead_to.max(now.saturating_sub(1));
        if until <= from {
            return None;
        }
        self.read_ahead_to = until;
        let due = self.expiry.due_between(from, until);
        let mut plan = FetchPlan::default();
        let add = |queued: &QueuedMessage, plan: &mut FetchPlan| {
            if let (false, Some(location)) = (queued.is_resident(), queued.location()) {
                if plan.ids.len() < READ_AHEAD_MESSAGES_MAX {
                    plan.ids.push(queued.id);
                    plan.locations.push(location);
                }
            }
        };
        if let Some(through) = due.through {
            for queued in self.ready.iter().take_while(|queued| queued.id <= through) {
                add(queued, &mut plan);
            }
        }
        for id in due.singles {
            if let Some(queued) = self.ready.get_mut(id) {
                add(queued, &mut plan);
            }
        }
        (!plan.ids.is_empty()).then_some(plan)
    }

    /// The next time the queue needs its timer: a message deadline, the next read-ahead, or
    /// its own expiry.
    pub fn next_timer(&self) -> Option<u64> {
        let read_ahead = self
            .expiry_needs_bodies()
            .then(|| self.expiry.first_deadline_after(self.read_ahead_to))
            .flatten()
            .map(|deadline| deadline.saturating_sub(READ_AHEAD_MS));
        let messages = match (self.expiry.next_deadline(), read_ahead) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let unused = self.expires_at();
        match (messages, unused) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `x-expires`: when the queue goes if it stays unused (no consumer, no get, no
    /// redeclare) until then.
    pub fn expires_at(&self) -> Option<u64> {
        let expires = self.settings.expires?;
        self.consumers
            .is_empty()
            .then(|| self.last_used_ms + u64::from(expires))
    }

    /// The queue was used (consume, cancel, get, redeclare): its expiry starts again.
    pub fn touch(&mut self, now: u64) {
        self.last_used_ms = now;
    }

    /// Keeps the counters in step as `entry` leaves the ready list.
    fn left_ready(&mut self, entry: &QueuedMessage) {
        self.count_resident(entry, false);
        self.ready_bytes -= entry.body_bytes();
    }

    /// Makes the next id at least `next` (ids named by the log's records, even settled ones,
    /// are never reused).
    pub fn skip_ids_below(&mut self, next: MessageId) {
        self.next_message_id = self.next_message_id.max(next.0);
    }

    /// The id the next enqueued message gets: a persistent message's record names it before
    /// the message is enqueued.
    pub fn reserve_id(&mut self) -> MessageId {
        let id = MessageId(self.next_message_id);
        self.next_message_id += 1;
        id
    }

    /// True if a stored message enqueued now keeps its body in RAM: every ready message
    /// before it is resident and the resident limits have room.
    fn keeps_next_body(&self) -> bool {
        self.resident == self.ready.len()
            && self.resident < residency::RESIDENT_MESSAGES_MAX
            && self.resident_bytes < residency::RESIDENT_BYTES_MAX
    }

    /// True if a transient message enqueued now stays in RAM rather than being paged to the
    /// log (`shard::queues::page_out`): every ready message before it is resident and what
    /// the resident ones cost in RAM, bodies and per-message overhead, is under
    /// `RESIDENT_BYTES_MAX`. No count limit, unlike stored messages, whose records are
    /// written anyway: paging a small body saves little RAM and costs a write and a read, so
    /// a queue of 16-byte messages pages only beyond about 40,000 of them, one of 64 KiB
    /// messages beyond 128.
    pub fn keeps_next_transient(&self) -> bool {
        self.resident == self.ready.len()
            && self.resident_bytes + self.resident * RESIDENT_MESSAGE_BYTES
                < residency::RESIDENT_BYTES_MAX
    }

    /// Enqueues a message whose record is in the log (a message record or a paged one), under
    /// an id from `reserve_id`. Its body stays in RAM only while the queue has no backlog
    /// beyond the resident limits.
    pub fn enqueue_stored(
        &mut self,
        id: MessageId,
        message: Arc<Message>,
        stored: StoredAt,
        now: u64,
    ) {
        // A paged message was paged because it should not stay in RAM.
        let keep = !stored.is_paged() && self.keeps_next_body();
        let priority = self.settings.level_of(message.priority);
        let ttl = message.ttl;
        let overhead = stored
            .location()
            .length
            .saturating_sub(message.body_size() as u32);
        self.push_ready(QueuedMessage {
            id,
            record_overhead: u16::try_from(overhead).unwrap_or(u16::MAX),
            message: keep.then_some(message),
            stored: Some(stored),
            redelivered: false,
            priority,
        });
        self.after_enqueue(id, ttl, now);
    }

    /// Refills an empty queue with recovered messages (bodies on disk), sorted by id, and
    /// the absolute deadlines their records carry.
    pub fn restore(&mut self, mut messages: Vec<QueuedMessage>, deadlines: &[(MessageId, u64)]) {
        assert!(
            self.ready.is_empty() && self.unacked.is_empty(),
            "restore into an empty queue"
        );
        if !messages.windows(2).all(|w| w[0].id < w[1].id) {
            messages.sort_unstable_by_key(|m| m.id);
            messages.dedup_by_key(|m| m.id);
        }
        if let Some(last) = messages.last() {
            self.next_message_id = self.next_message_id.max(last.id.0 + 1);
        }
        self.resident = messages.iter().filter(|m| m.is_resident()).count();
        self.resident_bytes = messages.iter().map(QueuedMessage::resident_bytes).sum();
        self.ready_bytes = messages.iter().map(QueuedMessage::body_bytes).sum();
        let max_level = self.settings.level_of(u8::MAX);
        for message in &mut messages {
            message.priority = message.priority.min(max_level);
        }
        self.ready.restore(messages);
        // With a queue TTL every message has a deadline, and in id order the deadlines that
        // do not go down make runs as at enqueue: a run (D, X) says every id up to X is due by
        // D, which holds because an earlier deadline above D would have been kept as a single.
        // So a recovered TTL queue costs runs, not a deadline per message. Without a queue TTL
        // some messages have no deadline, and a run would take them too: singles only.
        // A message from before a policy gave the queue its TTL has no deadline: singles then,
        // and for the messages that follow it (`ttl_singles`).
        let with_deadline = deadlines
            .iter()
            .filter(|(id, _)| self.ready.get_mut(*id).is_some())
            .count();
        self.ttl_singles = with_deadline < self.ready.len();
        let runs = self.settings.message_ttl.is_some() && !self.ttl_singles;
        for &(id, deadline) in deadlines {
            if self.ready.get_mut(id).is_some() {
                if runs {
                    self.expiry.add_queue_ttl(id, deadline);
                } else {
                    self.expiry.add_single(id, deadline);
                }
            }
        }
    }

    fn push_ready(&mut self, queued: QueuedMessage) {
        self.next_message_id = self.next_message_id.max(queued.id.0 + 1);
        self.count_resident(&queued, true);
        self.ready_bytes += queued.body_bytes();
        self.ready.push_back(queued);
    }

    /// Keeps `resident` and `resident_bytes` in step as `queued` enters or leaves `ready`.
    fn count_resident(&mut self, queued: &QueuedMessage, entering: bool) {
        if !queued.is_resident() {
            return;
        }
        if entering {
            self.resident += 1;
            self.resident_bytes += queued.resident_bytes();
        } else {
            self.resident -= 1;
            self.resident_bytes -= queued.resident_bytes();
        }
    }

    /// Pops the head if its body is resident.
    fn pop_resident_head(&mut self) -> Option<(QueuedMessage, Arc<Message>)> {
        let message = self.ready.front()?.message.clone()?;
        let queued = self.ready.pop_front().expect("front checked above");
        self.left_ready(&queued);
        Some((queued, message))
    }

    /// What an unacked entry keeps: a stored message's body can be read back if it is
    /// requeued, so only transient ones keep theirs.
    fn unacked_entry(mut queued: QueuedMessage) -> QueuedMessage {
        if queued.stored.is_some() {
            queued.message = None;
        }
        queued
    }

    /// The stored messages to read back next, when the resident head is running low and
    /// someone will take them (a consumer, or `force` for basic.get). At most one plan per
    /// queue is out at a time; `fetched` or `fetch_failed` ends it.
    pub fn fetch_plan(&mut self, force: bool) -> Option<FetchPlan> {
        if self.fetching || self.resident == self.ready.len() {
            return None;
        }
        let head_on_disk = self.ready.front().is_some_and(|m| !m.is_resident());
        let running_low = self.resident < residency::FETCH_LOW_WATER_MESSAGES
            && self.resident_bytes < residency::RESIDENT_BYTES_MAX / 2;
        let someone_waits = force || !self.consumers.is_empty();
        if !(head_on_disk || running_low) || !someone_waits {
            return None;
        }
        let mut plan = FetchPlan::default();
        let mut bytes = 0u64;
        for queued in self.ready.iter().take(residency::FETCH_SCAN_MAX) {
            if queued.is_resident() {
                continue;
            }
            let location = queued.location().expect("only stored messages leave RAM");
            if !plan.ids.is_empty()
                && (plan.ids.len() == residency::FETCH_BATCH_MESSAGES_MAX
                    || bytes + u64::from(location.length) > residency::FETCH_BATCH_BYTES_MAX)
            {
                break;
            }
            bytes += u64::from(location.length);
            plan.ids.push(queued.id);
            plan.locations.push(location);
        }
        if plan.ids.is_empty() {
            return None;
        }
        self.fetching = true;
        Some(plan)
    }

    /// Installs bodies read back for a fetch plan. Messages that left the ready list in the
    /// meantime (delivered by another path, purged) are skipped.
    pub fn fetched(&mut self, loaded: impl IntoIterator<Item = (MessageId, Arc<Message>)>) {
        self.fetching = false;
        for (id, message) in loaded {
            let Some(queued) = self.ready.get_mut(id) else {
                continue;
            };
            if queued.message.is_none() {
                self.resident += 1;
                self.resident_bytes += message.body_size();
                queued.message = Some(message);
            }
        }
    }

    /// A fetch plan could not be read; a later one may try again.
    pub fn fetch_failed(&mut self) {
        self.fetching = false;
    }

    pub fn add_consumer(&mut self, consumer: Consumer) -> Result<(), ConsumeRefusal> {
        let exclusive_taken = self.consumers.iter().any(|c| c.exclusive);
        if exclusive_taken || (consumer.exclusive && !self.consumers.is_empty()) {
            return Err(ConsumeRefusal::ExclusiveInUse);
        }
        self.consumers.push(consumer);
        self.note_consumer_priorities();
        self.had_consumer = true;
        self.touch(expiry::now_ms());
        Ok(())
    }

    /// Removes a consumer; its unacked deliveries stay ackable on its channel.
    pub fn remove_consumer(&mut self, key: &ConsumerKey) -> bool {
        let Some(index) = self.consumers.iter().position(|c| c.key == *key) else {
            return false;
        };
        self.consumers.remove(index);
        if self.next_consumer_index > index {
            self.next_consumer_index -= 1;
        }
        self.note_consumer_priorities();
        self.touch(expiry::now_ms());
        true
    }

    /// Removes every consumer of a channel (or of a whole connection when `channel` is None).
    pub fn remove_consumers_of(&mut self, connection: ConnectionId, channel: Option<ChannelId>) {
        let keys: Vec<ConsumerKey> = self
            .consumers
            .iter()
            .filter(|c| {
                c.key.connection == connection && channel.is_none_or(|ch| c.key.channel == ch)
            })
            .map(|c| c.key.clone())
            .collect();
        for key in keys {
            self.remove_consumer(&key);
        }
    }

    /// True when an auto-delete queue has lost its last consumer.
    pub fn should_auto_delete(&self) -> bool {
        self.auto_delete && self.had_consumer && self.consumers.is_empty()
    }

    pub fn return_credit(&mut self, key: &ConsumerKey, count: u32) {
        if let Some(consumer) = self.consumers.iter_mut().find(|c| c.key == *key) {
            consumer.flow_credit = consumer.flow_credit.saturating_add(count);
        }
    }

    /// Hands ready messages to consumers with room, round robin, until either runs out.
    /// `deliveries_max` bounds one call so a long queue cannot monopolise the shard. Stored
    /// messages delivered to no-ack consumers are settled at once and added to `gone`.
    pub fn dispatch(
        &mut self,
        limits: &mut ChannelLimits,
        deliveries_max: usize,
        out: &mut Vec<Delivery>,
        gone: &mut Vec<Gone>,
    ) {
        let mut delivered = 0;
        while delivered < deliveries_max
            && self.ready.front().is_some_and(QueuedMessage::is_resident)
            && !self.consumers.is_empty()
        {
            let Some(index) = self.next_consumer_with_capacity(limits) else {
                break;
            };
            let (queued, message) = self.pop_resident_head().expect("head checked above");
            let message = self.as_delivered(queued.id, message);
            let consumer = &mut self.consumers[index];
            consumer.flow_credit -= 1;
            if !consumer.no_ack {
                consumer.unacked_count += 1;
                let channel = consumer.key.channel_key();
                limits.delivered(channel);
                self.unacked.insert(
                    queued.id,
                    Unacked {
                        message: Self::unacked_entry(queued.clone()),
                        channel,
                        consumer_tag: Some(consumer.key.tag.clone()),
                        expired: false,
                    },
                );
            } else {
                gone.extend(queued.gone());
            }
            let no_ack = consumer.no_ack;
            self.counters.delivered(
                counters::DeliveryKind::of_consumer(no_ack),
                queued.redelivered,
            );
            out.push(Delivery {
                consumer: consumer.key.clone(),
                no_ack,
                id: queued.id,
                redelivered: queued.redelivered,
                message,
            });
            if no_ack {
                self.left_for_good(queued.id);
            }
            self.next_consumer_index = (index + 1) % self.consumers.len();
            delivered += 1;
        }
    }

    fn note_consumer_priorities(&mut self) {
        let first = self.consumers.first().map_or(0, |c| c.priority);
        self.consumer_priorities_differ = self.consumers.iter().any(|c| c.priority != first);
    }

    /// The consumer the next message goes to: with `x-single-active-consumer` only the first
    /// registered; otherwise round robin among those with room and the highest `x-priority`.
    fn next_consumer_with_capacity(&self, limits: &ChannelLimits) -> Option<usize> {
        let has_room = |consumer: &Consumer| {
            consumer.has_capacity()
                && (consumer.no_ack || limits.has_capacity(&consumer.key.channel_key()))
        };
        if self.settings.single_active_consumer {
            return self.consumers.first().filter(|c| has_room(c)).map(|_| 0);
        }
        let count = self.consumers.len();
        let mut in_turn = (0..count)
            .map(|offset| (self.next_consumer_index + offset) % count)
            .filter(|&index| has_room(&self.consumers[index]));
        if !self.consumer_priorities_differ {
            return in_turn.next();
        }
        // The first in turn among the highest priority with room.
        in_turn.fold(None, |best: Option<usize>, index| match best {
            Some(best) if self.consumers[best].priority >= self.consumers[index].priority => {
                Some(best)
            }
            _ => Some(index),
        })
    }

    /// The message as delivered: a returned one of a queue that counts returns carries
    /// `x-delivery-count` (RabbitMQ's quorum queues).
    fn as_delivered(&self, id: MessageId, message: Arc<Message>) -> Arc<Message> {
        match self.returns.get(&id) {
            Some(&count) if self.settings.counts_deliveries() => {
                Arc::new(message.with_delivery_count(count))
            }
            _ => message,
        }
    }

    /// basic.get: the head of the queue, recorded as unacked unless `no_ack` (then a stored
    /// message is settled at once and added to `gone`).
    pub fn get(&mut self, channel: ChannelKey, no_ack: bool, gone: &mut Vec<Gone>) -> GetOutcome {
        self.touch(expiry::now_ms());
        if self.ready.is_empty() {
            self.counters.get_empty += 1;
            return GetOutcome::Empty;
        }
        let Some((queued, message)) = self.pop_resident_head() else {
            return GetOutcome::NeedsFetch;
        };
        let message = self.as_delivered(queued.id, message);
        let (id, redelivered) = (queued.id, queued.redelivered);
        self.counters
            .delivered(counters::DeliveryKind::of_get(no_ack), redelivered);
        if !no_ack {
            self.unacked.insert(
                id,
                Unacked {
                    message: Self::unacked_entry(queued),
                    channel,
                    consumer_tag: None,
                    expired: false,
                },
            );
        } else {
            self.left_for_good(id);
            gone.extend(queued.gone());
        }
        GetOutcome::Got {
            id,
            redelivered,
            message,
        }
    }

    /// Settles deliveries of one channel. Ids unknown to the queue, or held by another
    /// channel (a stale tag after the message was requeued and redelivered elsewhere), are
    /// ignored: the channel already validated its tags, and a race must never settle someone
    /// else's delivery.
    pub fn settle(
        &mut self,
        channel: ChannelKey,
        ids: &[MessageId],
        action: SettleAction,
        gone: &mut Vec<Gone>,
    ) -> SettleOutcome {
        let mut outcome = SettleOutcome::default();
        // A multiple=true ack settles a run of deliveries of one consumer: look it up once.
        let mut last_consumer: Option<(ShortStr, Option<usize>)> = None;
        for id in ids {
            let Some(entry) = self.unacked.remove(id) else {
                continue;
            };
            if entry.channel != channel {
                // Another channel's delivery (a stale tag): never settle it.
                self.unacked.insert(*id, entry);
                continue;
            }
            outcome.total += 1;
            if let Some(tag) = &entry.consumer_tag {
                outcome.consumer_deliveries += 1;
                let index = match &last_consumer {
                    Some((last_tag, index)) if last_tag == tag => *index,
                    _ => {
                        let index = self
                            .consumers
                            .iter()
                            .position(|c| c.key.channel_key() == channel && c.key.tag == *tag);
                        last_consumer = Some((tag.clone(), index));
                        index
                    }
                };
                if let Some(consumer) = index.and_then(|i| self.consumers.get_mut(i)) {
                    consumer.unacked_count = consumer.unacked_count.saturating_sub(1);
                }
            }
            match action {
                SettleAction::Requeue => self.requeue(entry),
                SettleAction::Discard => self.drop_entry(entry.message, DeathReason::Rejected),
                SettleAction::Ack => {
                    self.counters.ack += 1;
                    self.left_for_good(*id);
                    gone.extend(entry.message.gone());
                }
            }
        }
        outcome
    }

    /// Requeues every unacked message of a channel (it closed). Those past their deadline
    /// expire instead (`take_leaving`).
    pub fn requeue_channel(&mut self, channel: ChannelKey) -> SettleOutcome {
        let ids: Vec<MessageId> = self
            .unacked
            .iter()
            .filter(|(_, entry)| entry.channel == channel)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        let outcome = self.settle(channel, &ids, SettleAction::Requeue, &mut gone);
        assert!(gone.is_empty(), "requeued messages stay or expire");
        outcome
    }

    /// Puts a message back at its original position, so order is kept across requeues; one
    /// whose deadline passed while it was out expires instead, as in RabbitMQ.
    fn requeue(&mut self, unacked: Unacked) {
        let mut message = unacked.message;
        if message.is_tombstone() {
            // Its record was lost with a failed log (`forget_lost`): nothing to deliver.
            self.left_for_good(message.id);
            return;
        }
        if unacked.expired || self.expiry.is_expired_by_queue_ttl(message.id) {
            self.drop_entry(message, DeathReason::Expired);
            return;
        }
        if self.settings.counts_deliveries() {
            let returns = self.returns.entry(message.id).or_insert(0);
            *returns += 1;
            if self
                .settings
                .delivery_limit
                .is_some_and(|limit| u64::from(*returns) > limit)
            {
                self.drop_entry(message, DeathReason::DeliveryLimit);
                return;
            }
        }
        message.redelivered = true;
        self.count_resident(&message, true);
        self.ready_bytes += message.body_bytes();
        self.ready.insert(message);
    }

    /// After the log was reopened following a failure: stored messages whose records never
    /// reached the disk (`is_lost`) cannot be delivered or recovered. Ready ones are dropped;
    /// unacked ones lose their log location and are dropped if requeued. Their locations are
    /// added to `lost`.
    pub fn forget_lost(
        &mut self,
        is_lost: impl Fn(RecordLocation) -> bool,
        lost: &mut Vec<RecordLocation>,
    ) {
        let mut dropped = Vec::new();
        self.ready.retain(|queued| match queued.location() {
            Some(location) if is_lost(location) => {
                lost.push(location);
                dropped.push(queued.id);
                false
            }
            _ => true,
        });
        for id in dropped {
            self.left_for_good(id);
        }
        self.resident = self.ready.iter().filter(|m| m.is_resident()).count();
        self.resident_bytes = self.ready.iter().map(QueuedMessage::resident_bytes).sum();
        self.ready_bytes = self.ready.iter().map(QueuedMessage::body_bytes).sum();
        for entry in self.unacked.values_mut() {
            if let Some(location) = entry.message.location().filter(|l| is_lost(*l)) {
                lost.push(location);
                entry.message.stored = None;
            }
        }
    }

    /// Drops ready messages whose records are damaged on disk: they can be neither delivered
    /// nor dead-lettered. Adds them to `gone` (their records are settled) and returns how many
    /// were still here.
    pub fn drop_damaged(&mut self, ids: &[MessageId], gone: &mut Vec<Gone>) -> usize {
        let mut dropped = 0;
        for &id in ids {
            let Some(entry) = self.ready.take(id) else {
                continue;
            };
            self.left_ready(&entry);
            self.left_for_good(id);
            gone.extend(entry.gone());
            dropped += 1;
        }
        dropped
    }

    /// Drops every ready message; unacked ones are untouched. Returns how many went, and
    /// adds the persistent ones to `gone`.
    pub fn purge(&mut self, gone: &mut Vec<Gone>) -> usize {
        let count = self.ready.len();
        self.resident = 0;
        self.resident_bytes = 0;
        self.ready_bytes = 0;
        let drained = self.ready.drain();
        for queued in &drained {
            self.left_for_good(queued.id);
        }
        gone.extend(drained.iter().filter_map(QueuedMessage::gone));
        count
    }

    /// Every message with a record that the queue holds, ready or unacked: what goes when the
    /// queue is deleted.
    pub fn all_persistent(&self) -> Vec<Gone> {
        self.ready
            .iter()
            .chain(self.unacked.values().map(|entry| &entry.message))
            .filter_map(QueuedMessage::gone)
            .collect()
    }

    /// The consumers, for cancel notifications when the queue is deleted.
    pub fn consumers(&self) -> impl Iterator<Item = &Consumer> {
        self.consumers.iter()
    }

    /// Test and debug check of the queue's invariants.
    pub fn check_invariants(&self) {
        self.ready.check_invariants();
        for consumer in &self.consumers {
            let unacked = self
                .unacked
                .values()
                .filter(|u| {
                    u.channel == consumer.key.channel_key()
                        && u.consumer_tag.as_ref() == Some(&consumer.key.tag)
                })
                .count();
            debug_assert_eq!(unacked, consumer.unacked_count as usize);
        }
        assert!(self.next_consumer_index <= self.consumers.len());
        debug_assert_eq!(
            self.resident,
            self.ready.iter().filter(|m| m.is_resident()).count()
        );
        debug_assert_eq!(
            self.resident_bytes,
            self.ready
                .iter()
                .map(QueuedMessage::resident_bytes)
                .sum::<usize>()
        );
        debug_assert_eq!(
            self.ready_bytes,
            self.ready
                .iter()
                .map(QueuedMessage::body_bytes)
                .sum::<u64>()
        );
    }
}

#[cfg(test)]
mod residency_tests;
#[cfg(test)]
mod tests;
