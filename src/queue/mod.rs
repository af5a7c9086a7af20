//! A queue's runtime state, owned by exactly one shard: the ready list, the unacked map and the
//! consumers, with RabbitMQ's dispatch rules (round robin among consumers with room; prefetch
//! per consumer and per channel; requeue at the original position with redelivered=true).
//! Pure state: it never sends anything itself, it returns what should be delivered.

pub mod channel_limits;
pub mod consumer;
pub mod entry;
pub mod message;
pub mod record;
pub mod residency;

use crate::fast_map::FastMap;
use std::collections::VecDeque;
use std::sync::Arc;

use hare_storage::RecordLocation;

use crate::ids::{ChannelId, ConnectionId, MessageId, QueueId};
use crate::protocol::ShortStr;
use channel_limits::ChannelLimits;
use consumer::{ChannelKey, Consumer, ConsumerKey};
pub use entry::{QueuedMessage, StoredAt};
use message::Message;
use residency::FetchPlan;

/// A message that left its queue for good (acked, rejected, purged, deleted with the queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    pub id: MessageId,
    pub location: RecordLocation,
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

/// What to do with settled (acked, rejected, nacked, recovered) deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettleAction {
    Ack,
    /// Back to the ready list at the original position, redelivered=true.
    Requeue,
    /// Rejected without requeue: dropped (dead lettering comes with its own change).
    Discard,
}

#[derive(Debug)]
struct Unacked {
    message: QueuedMessage,
    channel: ChannelKey,
    /// None for basic.get deliveries, which count against no consumer.
    consumer_tag: Option<ShortStr>,
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
    pub auto_delete: bool,
    ready: VecDeque<QueuedMessage>,
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
}

impl Queue {
    pub fn new(id: QueueId, name: ShortStr, auto_delete: bool, durable: bool) -> Queue {
        Queue {
            id,
            name,
            auto_delete,
            ready: VecDeque::new(),
            unacked: FastMap::default(),
            consumers: Vec::new(),
            next_consumer_index: 0,
            next_message_id: 1,
            had_consumer: false,
            resident: 0,
            resident_bytes: 0,
            fetching: false,
            durable,
        }
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

    /// Ready messages whose body is in RAM.
    pub fn resident_count(&self) -> usize {
        self.resident
    }

    /// About what the queue holds in RAM: entries, resident messages with their bodies, and
    /// unacked deliveries (publisher flow control, `shard::pressure`).
    pub fn ram_bytes(&self) -> usize {
        const RESIDENT_MESSAGE_BYTES: usize = 192;
        const UNACKED_BYTES: usize = 128;
        self.ready.len() * entry::QUEUED_MESSAGE_BYTES_MAX
            + self.resident * RESIDENT_MESSAGE_BYTES
            + self.resident_bytes
            + self.unacked.len() * UNACKED_BYTES
    }

    /// Enqueues a transient message (or any message of a non-durable queue): always resident.
    pub fn enqueue(&mut self, message: Arc<Message>) -> MessageId {
        let id = self.reserve_id();
        self.push_ready(QueuedMessage {
            id,
            message: Some(message),
            stored: None,
            redelivered: false,
        });
        id
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

    /// Enqueues a message whose record is in the log, under an id from `reserve_id`. Its body
    /// stays in RAM only while the queue has no backlog beyond the resident limits.
    pub fn enqueue_stored(&mut self, id: MessageId, message: Arc<Message>, stored: StoredAt) {
        let keep = self.resident == self.ready.len()
            && self.resident < residency::RESIDENT_MESSAGES_MAX
            && self.resident_bytes < residency::RESIDENT_BYTES_MAX;
        self.push_ready(QueuedMessage {
            id,
            message: keep.then_some(message),
            stored: Some(stored),
            redelivered: false,
        });
    }

    /// Refills an empty queue with recovered messages (bodies on disk), sorted by id.
    pub fn restore(&mut self, mut messages: Vec<QueuedMessage>) {
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
        // From a Vec, a VecDeque reuses the allocation: no second copy of a large index.
        self.ready = VecDeque::from(messages);
    }

    fn push_ready(&mut self, queued: QueuedMessage) {
        assert!(
            self.ready.back().is_none_or(|last| last.id < queued.id),
            "enqueued ids increase"
        );
        self.next_message_id = self.next_message_id.max(queued.id.0 + 1);
        self.count_resident(&queued, true);
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
        self.count_resident(&queued, false);
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
            let position = self.ready.partition_point(|queued| queued.id < id);
            let Some(queued) = self.ready.get_mut(position).filter(|q| q.id == id) else {
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
        self.had_consumer = true;
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
                    },
                );
            } else {
                gone.extend(queued.gone());
            }
            out.push(Delivery {
                consumer: consumer.key.clone(),
                no_ack: consumer.no_ack,
                id: queued.id,
                redelivered: queued.redelivered,
                message,
            });
            self.next_consumer_index = (index + 1) % self.consumers.len();
            delivered += 1;
        }
    }

    fn next_consumer_with_capacity(&self, limits: &ChannelLimits) -> Option<usize> {
        let count = self.consumers.len();
        (0..count)
            .map(|offset| (self.next_consumer_index + offset) % count)
            .find(|&index| {
                let consumer = &self.consumers[index];
                consumer.has_capacity()
                    && (consumer.no_ack || limits.has_capacity(&consumer.key.channel_key()))
            })
    }

    /// basic.get: the head of the queue, recorded as unacked unless `no_ack` (then a stored
    /// message is settled at once and added to `gone`).
    pub fn get(&mut self, channel: ChannelKey, no_ack: bool, gone: &mut Vec<Gone>) -> GetOutcome {
        if self.ready.is_empty() {
            return GetOutcome::Empty;
        }
        let Some((queued, message)) = self.pop_resident_head() else {
            return GetOutcome::NeedsFetch;
        };
        let (id, redelivered) = (queued.id, queued.redelivered);
        if !no_ack {
            self.unacked.insert(
                id,
                Unacked {
                    message: Self::unacked_entry(queued),
                    channel,
                    consumer_tag: None,
                },
            );
        } else {
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
            if action == SettleAction::Requeue {
                self.requeue(entry.message);
            } else {
                gone.extend(entry.message.gone());
            }
        }
        outcome
    }

    /// Requeues every unacked message of a channel (it closed).
    pub fn requeue_channel(&mut self, channel: ChannelKey) -> SettleOutcome {
        let ids: Vec<MessageId> = self
            .unacked
            .iter()
            .filter(|(_, entry)| entry.channel == channel)
            .map(|(id, _)| *id)
            .collect();
        let mut gone = Vec::new();
        let outcome = self.settle(channel, &ids, SettleAction::Requeue, &mut gone);
        assert!(gone.is_empty(), "requeued messages stay");
        outcome
    }

    /// Puts a message back at its original position, so order is kept across requeues.
    fn requeue(&mut self, mut message: QueuedMessage) {
        if !message.is_resident() && message.stored.is_none() {
            // Its record was lost with a failed log (`forget_lost`): nothing to deliver.
            return;
        }
        message.redelivered = true;
        let position = self.ready.partition_point(|queued| queued.id < message.id);
        self.count_resident(&message, true);
        self.ready.insert(position, message);
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
        self.ready.retain(|queued| match queued.location() {
            Some(location) if is_lost(location) => {
                lost.push(location);
                false
            }
            _ => true,
        });
        self.resident = self.ready.iter().filter(|m| m.is_resident()).count();
        self.resident_bytes = self.ready.iter().map(QueuedMessage::resident_bytes).sum();
        for entry in self.unacked.values_mut() {
            if let Some(location) = entry.message.location().filter(|l| is_lost(*l)) {
                lost.push(location);
                entry.message.stored = None;
            }
        }
    }

    /// Drops every ready message; unacked ones are untouched. Returns how many went, and
    /// adds the persistent ones to `gone`.
    pub fn purge(&mut self, gone: &mut Vec<Gone>) -> usize {
        let count = self.ready.len();
        self.resident = 0;
        self.resident_bytes = 0;
        gone.extend(self.ready.drain(..).filter_map(|queued| queued.gone()));
        count
    }

    /// Every persistent message the queue holds, ready or unacked: what goes when the queue
    /// is deleted.
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
        let ids: Vec<u64> = self.ready.iter().map(|m| m.id.0).collect();
        debug_assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ready list is in id order"
        );
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
    }
}

#[cfg(test)]
mod residency_tests;
#[cfg(test)]
mod tests;
