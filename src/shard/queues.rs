//! The owner shard's side of queue operations: enqueue, consume, cancel, get, settle, purge,
//! delete, and the dispatcher that turns ready messages into deliveries for consumers on any
//! shard. Each queue is touched only here, on its owner.

use std::rc::Rc;
use std::sync::Arc;

use crate::exception::Exception;
use crate::ids::{MessageId, QueueId, ShardId};
use crate::protocol::{BasicProperties, ShortStr};
use crate::queue::consumer::{ChannelKey, Consumer, ConsumerKey, FLOW_CREDIT_INITIAL};
use crate::queue::expiry::now_ms;
use crate::queue::message::Message;
use crate::queue::record::RecordEntry;
use crate::queue::{
    Admission, ConsumeRefusal, Delivery, GetOutcome, Gone, Queue, SettleAction, SettleOutcome,
    StoredAt,
};
use crate::shard::dedup::DedupQuery;
use crate::shard::message::{
    Confirm, ConnectionEvent, ConsumeOk, ConsumeOptions, DeleteConditions, GetOk, MetaRequest,
    QueueOp, Reply, ShardMessage,
};
use crate::shard::pending::ReplyTo;
use crate::shard::persistence::Waiting;
use crate::shard::Shard;
use crate::shard::{dead_letter, fetcher, timers};
use crate::vhost::delta::MetaDelta;
use crate::vhost::policy::VHostPolicies;
use crate::vhost::queue_definition::QueueDefinition;
use crate::vhost::rules::no_queue;
use bytes::Bytes;

/// Deliveries one queue may make per dispatch round before others get a turn.
pub const DISPATCH_ROUND_MAX: usize = 256;

pub fn publish(shard: &Rc<Shard>, targets: &[QueueId], message: Message, confirm: Option<Confirm>) {
    let persistent = message.persistent;
    let message = Arc::new(message);
    let now = now_ms();
    let mut durable_entries = Vec::new();
    // Transient entries behind a backlog: written to the log rather than kept in RAM.
    let mut paged_entries = Vec::new();
    // Queues that need a look after the enqueue (TTL, limits), and whether one refused it.
    let mut special = Vec::new();
    let mut refused = false;
    // The message's deduplication header value, read only if a target queue deduplicates.
    let mut dedup_value: Option<Option<Bytes>> = None;
    {
        let mut queues = shard.queues.borrow_mut();
        for id in targets {
            // A queue deleted while the message was on its way simply does not get it, as in
            // RabbitMQ; the publisher still gets its confirm.
            let Some(queue) = queues.get_mut(id) else {
                continue;
            };
            match queue.admission() {
                Admission::Accept => {}
                Admission::Reject => {
                    refused = true;
                    continue;
                }
                Admission::RejectDeadLetter => {
                    refused = true;
                    special.push(*id);
                    queue.refuse_dead_letter(message.clone());
                    continue;
                }
            }
            if queue.deduplicates() {
                let value = dedup_value.get_or_insert_with(|| message_dedup_value(&message));
                if value.as_ref().is_some_and(|v| !queue.admits_dedup_value(v)) {
                    // A message with this value is in the queue: refused, a nack for a
                    // confirming publisher (docs/rabbitmq-compatibility.md §17).
                    refused = true;
                    continue;
                }
            }
            if queue.has_special_settings() || message.ttl.is_some() {
                special.push(*id);
            }
            if (persistent || queue.stores_every_message()) && queue.durable {
                durable_entries.push(RecordEntry {
                    queue: *id,
                    id: queue.reserve_id(),
                    deadline: queue.deadline_for(message.ttl, now),
                });
            } else if queue.keeps_next_transient() {
                let message_id = queue.enqueue(message.clone());
                remember_dedup_value(queue, message_id, &dedup_value);
                shard.mark_dirty(*id);
            } else {
                paged_entries.push(RecordEntry {
                    queue: *id,
                    id: queue.reserve_id(),
                    deadline: queue.deadline_for(message.ttl, now),
                });
            }
        }
    }
    if !paged_entries.is_empty() {
        page_out(shard, &paged_entries, &message, &dedup_value, now);
    }
    // A stored record: the confirm waits for the fdatasync that covers it.
    let stored = store(shard, &durable_entries, &message, &dedup_value, now);
    after_enqueue(shard, &special);
    if let Some(confirm) = confirm {
        let ok = stored != Some(false) && !refused;
        let waiting =
            ok && stored.is_some() && shard.persistence().after_durable(Waiting::Confirm(confirm));
        if !waiting {
            shard.confirm(confirm, ok);
        }
    }
}

/// Appends one message record for the durable queues of this shard that take a persistent
/// message, and enqueues it there. None: no such queue; Some(false): the log could not take
/// it, so the message is queued in RAM only and its confirm must be a nack (never a false
/// ack). Dropping it instead would lose it silently for a publisher without confirms, and a
/// nack allows delivery anyway.
fn store(
    shard: &Rc<Shard>,
    entries: &[RecordEntry],
    message: &Arc<Message>,
    dedup_value: &Option<Option<Bytes>>,
    now: u64,
) -> Option<bool> {
    if entries.is_empty() {
        return None;
    }
    Some(enqueue_with_record(
        shard,
        entries,
        message,
        dedup_value,
        now,
        false,
    ))
}

/// Enqueues a message that need not be durable for queues with a backlog beyond their
/// resident limits, with its body written to the log (a paged record) instead of kept in RAM,
/// as RabbitMQ's classic queues page transient messages: a transient backlog then costs a
/// 32-byte entry per message, like a persistent one (docs/ARCHITECTURE.md, Backlogs on disk).
/// Nothing waits for the write. When the log cannot take it (failed, or its write buffer
/// full) the message stays in RAM, as before paging existed.
fn page_out(
    shard: &Rc<Shard>,
    entries: &[RecordEntry],
    message: &Arc<Message>,
    dedup_value: &Option<Option<Bytes>>,
    now: u64,
) {
    enqueue_with_record(shard, entries, message, dedup_value, now, true);
}

/// Appends one record (a message record, or a paged one) for `entries` and enqueues the
/// message in each of their queues under its reserved id, pointing at the record, or in RAM
/// only if the log could not take it. True if it was appended.
fn enqueue_with_record(
    shard: &Rc<Shard>,
    entries: &[RecordEntry],
    message: &Arc<Message>,
    dedup_value: &Option<Option<Bytes>>,
    now: u64,
    paged: bool,
) -> bool {
    let persistence = shard.persistence();
    let appended = if paged {
        persistence
            .append_paged(entries, message)
            .map(StoredAt::paged)
    } else {
        let appended = persistence.append_message(entries, message);
        if let Err(error) = &appended {
            tracing::warn!(%error, shard = %shard.id, "persistent message not stored; queued in memory only");
        }
        appended.map(|(_, location)| StoredAt::new(location))
    };
    shard.note_appended(&persistence);
    let mut queues = shard.queues.borrow_mut();
    for entry in entries {
        let queue = queues
            .get_mut(&entry.queue)
            .expect("looked up by the caller, same handler");
        match appended {
            Ok(stored) => queue.enqueue_stored(entry.id, message.clone(), stored, now),
            Err(_) => queue.enqueue_reserved(entry.id, message.clone(), now),
        }
        remember_dedup_value(queue, entry.id, dedup_value);
        shard.mark_dirty(entry.queue);
    }
    appended.is_ok()
}

/// The identity bytes of a message's `x-deduplication-header` value, if it has one.
fn message_dedup_value(message: &Message) -> Option<Bytes> {
    let properties = BasicProperties::decode(&message.properties_raw).ok()?;
    DedupQuery::of(properties.headers.as_ref()).map(|query| query.key)
}

/// Records the value (read for a deduplicating target) of the message enqueued as `id`.
fn remember_dedup_value(queue: &mut Queue, id: MessageId, value: &Option<Option<Bytes>>) {
    if let Some(Some(value)) = value {
        queue.remember_dedup_value(id, value.clone());
    }
}

/// After a publish, for queues with TTL or limits: a message with TTL 0 goes to a consumer
/// now or expires; what the limits pushed out is dead-lettered; the next deadline is timed.
fn after_enqueue(shard: &Rc<Shard>, ids: &[QueueId]) {
    for id in ids {
        let zero_ttl = shard
            .queues
            .borrow_mut()
            .get_mut(id)
            .is_some_and(Queue::take_zero_ttl_pending);
        if zero_ttl {
            let mut deliveries = Vec::new();
            dispatch_one(shard, *id, &mut deliveries, false);
            if let Some(queue) = shard.queues.borrow_mut().get_mut(id) {
                queue.expire(now_ms());
            }
        }
        finish_leaving(shard, *id);
        timers::reschedule(shard, *id);
    }
}

/// Records what left a queue by expiry, limits or rejects, and dead-letters what should be.
pub fn finish_leaving(shard: &Rc<Shard>, id: QueueId) {
    let (leaving, target) = {
        let mut queues = shard.queues.borrow_mut();
        let Some(queue) = queues.get_mut(&id) else {
            return;
        };
        let leaving = queue.take_leaving();
        if leaving.is_empty() {
            return;
        }
        let target = dead_letter_target(queue);
        if target
            .as_ref()
            .is_some_and(|target| matches!(target.via, dead_letter::Via::DeadLetter { .. }))
        {
            queue.counters.dead_lettered += leaving.dead.len() as u64;
        }
        (leaving, target)
    };
    record_gone(shard, id, &leaving.gone);
    if let Some(target) = target.filter(|_| !leaving.dead.is_empty()) {
        dead_letter::send(shard, target, leaving.dead);
    }
}

fn dead_letter_target(queue: &Queue) -> Option<dead_letter::Target> {
    let via = if queue.is_delay_store() {
        dead_letter::Via::Release
    } else {
        dead_letter::Via::DeadLetter {
            exchange: queue.settings.dead_letter_exchange.clone()?,
            routing_key: queue.settings.dead_letter_routing_key.clone(),
        }
    };
    Some(dead_letter::Target {
        queue: queue.id,
        queue_name: queue.name.clone(),
        vhost: queue.vhost.clone(),
        via,
    })
}

/// Records in the log that persistent messages left `queue` for good.
pub fn record_gone(shard: &Rc<Shard>, queue: QueueId, gone: &[Gone]) {
    if gone.is_empty() {
        return;
    }
    let persistence = shard.persistence();
    let ids: Vec<MessageId> = gone
        .iter()
        .filter(|entry| !entry.paged)
        .map(|entry| entry.id)
        .collect();
    if ids.is_empty() {
        // Only paged records: recovery skips them, nothing to settle.
    } else if let Err(error) = persistence.append_settled(queue, &ids) {
        // The log has failed; these messages may come back after a restart (at least once),
        // which is the safe side.
        tracing::warn!(%error, shard = %shard.id, "cannot record settled messages");
    }
    for entry in gone {
        persistence.entry_dead(entry.location);
    }
}

/// Creates the runtime of every queue a metadata update declares on this shard, as the update
/// is applied: a publish that routed to the queue finds it however it raced the declare.
/// Its settings are its arguments under the vhost's policies; an update that changes
/// policies changes the settings of the queues already here (`policies`).
pub fn install_declared(shard: &Rc<Shard>, vhost: &ShortStr, deltas: &[MetaDelta]) {
    super::delayed::follow_vhosts(shard, deltas);
    install_queues(shard, vhost, deltas);
    super::policies::follow_policy_changes(shard, deltas);
}

fn install_queues(shard: &Rc<Shard>, vhost: &ShortStr, deltas: &[MetaDelta]) {
    let declares_here = deltas.iter().any(|delta| {
        matches!(delta, MetaDelta::QueueDeclared(definition) if definition.owner_shard == shard.id)
    });
    if !declares_here {
        return;
    }
    // Patterns are compiled once per update, and only when it declares a queue here.
    let registry = shard.registry.borrow();
    let policies = VHostPolicies::of(registry.access(), &vhost.to_string_lossy());
    let mut queues = shard.queues.borrow_mut();
    for delta in deltas {
        if let MetaDelta::QueueDeclared(definition) = delta {
            if definition.owner_shard == shard.id && !queues.contains_key(&definition.id) {
                // Arguments were checked when declared, and when read back from the log.
                let settings = super::policies::settings_for(&policies, definition);
                let mut queue = Queue::new(
                    definition.id,
                    definition.name.clone(),
                    definition.auto_delete,
                    definition.durable,
                )
                .with_settings(vhost.clone(), settings);
                timers::schedule(shard, &mut queue);
                queues.insert(definition.id, queue);
            }
        }
    }
}

/// Runs one operation on a queue this shard owns.
pub fn handle(shard: &Rc<Shard>, id: QueueId, op: QueueOp) {
    match op {
        QueueOp::Declared {
            reply_to,
            definition,
            version,
        } => declared(shard, id, reply_to, definition, version),
        QueueOp::Consume {
            reply_to,
            consumer,
            options,
            arguments,
            vhost,
        } => consume(shard, id, reply_to, consumer, options, arguments, &vhost),
        QueueOp::Cancel {
            reply_to,
            consumer,
            vhost,
        } => cancel(shard, id, reply_to, &consumer, vhost),
        QueueOp::Get {
            reply_to,
            channel,
            no_ack,
            vhost,
        } => get(shard, id, reply_to, channel, no_ack, vhost),
        QueueOp::Settle {
            channel,
            ids,
            action,
        } => settle(shard, id, channel, &ids, action),
        QueueOp::Purge { reply_to, vhost } => purge(shard, id, reply_to, &vhost),
        QueueOp::Delete {
            reply_to,
            conditions,
            vhost,
        } => delete(shard, id, reply_to, conditions, vhost),
        QueueOp::Credit { consumer, count } => {
            if let Some(queue) = shard.queues.borrow_mut().get_mut(&id) {
                queue.return_credit(&consumer, count);
                shard.mark_dirty(id);
            }
        }
        QueueOp::ChannelClosed { channel, vhost } => channel_closed(shard, id, channel, vhost),
        QueueOp::SetChannelPrefetch {
            channel,
            prefetch_count,
        } => set_channel_prefetch(shard, channel, prefetch_count),
    }
}

/// The metadata shard recorded a declare: answer with the queue's counts.
fn declared(
    shard: &Rc<Shard>,
    id: QueueId,
    reply_to: ReplyTo,
    definition: QueueDefinition,
    version: u64,
) {
    // The runtime was installed with the metadata update; it may have been deleted
    // since, in which case the counts are zero. A redeclare counts as a use (`x-expires`).
    let mut queues = shard.queues.borrow_mut();
    if let Some(queue) = queues.get_mut(&id) {
        queue.touch(now_ms());
    }
    let queue = queues.get(&id);
    let reply = Reply::QueueDeclared {
        version,
        name: definition.name,
        message_count: queue.map_or(0, |queue| count_u32(queue.ready_count())),
        consumer_count: queue.map_or(0, |queue| count_u32(queue.consumer_count())),
    };
    shard.reply(reply_to, reply);
}

/// basic.cancel: an auto-delete queue goes with its last consumer.
fn cancel(
    shard: &Rc<Shard>,
    id: QueueId,
    reply_to: Option<ReplyTo>,
    consumer: &ConsumerKey,
    vhost: ShortStr,
) {
    let auto_delete = match shard.queues.borrow_mut().get_mut(&id) {
        Some(queue) => {
            queue.remove_consumer(consumer);
            timers::schedule(shard, queue);
            queue.should_auto_delete()
        }
        None => false,
    };
    if let Some(reply_to) = reply_to {
        shard.reply(reply_to, Reply::Cancelled);
    }
    if auto_delete {
        delete(shard, id, None, DeleteConditions::NONE, vhost);
    }
}

fn get(
    shard: &Rc<Shard>,
    id: QueueId,
    reply_to: ReplyTo,
    channel: ChannelKey,
    no_ack: bool,
    vhost: ShortStr,
) {
    match try_get(shard, id, channel, no_ack, &vhost) {
        Some(reply) => shard.reply(reply_to, Reply::Got(reply)),
        // The head's body is on disk: read it back, then answer.
        None => {
            glommio::spawn_local(get_after_fetch(
                shard.clone(),
                id,
                channel,
                no_ack,
                reply_to,
                vhost,
            ))
            .detach();
        }
    }
}

/// basic.ack, nack or reject of deliveries from this queue.
fn settle(
    shard: &Rc<Shard>,
    id: QueueId,
    channel: ChannelKey,
    ids: &[MessageId],
    action: SettleAction,
) {
    let mut gone = Vec::new();
    let settled = match shard.queues.borrow_mut().get_mut(&id) {
        Some(queue) => queue.settle(channel, ids, action, &mut gone),
        None => SettleOutcome::default(),
    };
    record_gone(shard, id, &gone);
    finish_leaving(shard, id);
    room_opened(shard, id, channel, settled);
}

fn purge(shard: &Rc<Shard>, id: QueueId, reply_to: ReplyTo, vhost: &ShortStr) {
    let mut gone = Vec::new();
    let reply = match shard.queues.borrow_mut().get_mut(&id) {
        Some(queue) => Ok(count_u32(queue.purge(&mut gone))),
        None => Err(missing_queue(shard, id, vhost)),
    };
    record_gone(shard, id, &gone);
    shard.reply(reply_to, Reply::Purged(reply));
}

/// A channel that consumed from or got from this queue closed: its unacked messages are
/// requeued, its consumers dropped, and its channel-wide prefetch forgotten here once no
/// queue of this shard refers to it.
fn channel_closed(shard: &Rc<Shard>, id: QueueId, channel: ChannelKey, vhost: ShortStr) {
    let (settled, auto_delete) = match shard.queues.borrow_mut().get_mut(&id) {
        Some(queue) => {
            queue.remove_consumers_of(channel.connection, Some(channel.channel));
            timers::schedule(shard, queue);
            (queue.requeue_channel(channel), queue.should_auto_delete())
        }
        None => (SettleOutcome::default(), false),
    };
    finish_leaving(shard, id);
    room_opened(shard, id, channel, settled);
    let mut limits = shard.channel_limits.borrow_mut();
    let unused = {
        let limit = limits.entry(channel);
        limit.queues.retain(|queue| *queue != id);
        limit.queues.is_empty()
    };
    if unused {
        limits.remove(&channel);
    }
    drop(limits);
    if auto_delete {
        delete(shard, id, None, DeleteConditions::NONE, vhost);
    }
}

/// basic.qos global=true changed the channel's limit: its queues here may deliver more.
fn set_channel_prefetch(shard: &Rc<Shard>, channel: ChannelKey, prefetch_count: u16) {
    let queues = {
        let mut limits = shard.channel_limits.borrow_mut();
        let limit = limits.entry(channel);
        limit.prefetch_count = prefetch_count;
        limit.queues.clone()
    };
    for queue in queues {
        shard.mark_dirty(queue);
    }
}

/// basic.get, or None when the head's body must be read back first.
fn try_get(
    shard: &Rc<Shard>,
    id: QueueId,
    channel: ChannelKey,
    no_ack: bool,
    vhost: &ShortStr,
) -> Option<Result<Option<GetOk>, Exception>> {
    let mut queues = shard.queues.borrow_mut();
    let Some(queue) = queues.get_mut(&id) else {
        drop(queues);
        return Some(Err(missing_queue(shard, id, vhost)));
    };
    let mut gone = Vec::new();
    queue.expire(now_ms());
    let reply = match queue.get(channel, no_ack, &mut gone) {
        GetOutcome::Empty => Some(Ok(None)),
        GetOutcome::NeedsFetch => None,
        GetOutcome::Got {
            id: message_id,
            redelivered,
            message,
        } => Some(Ok(Some(GetOk {
            owner: shard.id,
            queue: id,
            message_id,
            redelivered,
            message_count: count_u32(queue.ready_count()),
            content: message,
            ack_timeout_ms: ack_timeout_ms(shard, queue),
        }))),
    };
    drop(queues);
    record_gone(shard, id, &gone);
    finish_leaving(shard, id);
    reply
}

/// basic.get on a queue whose head is on disk: fetches and retries until the head is
/// resident (a consumer may take a fetched head first, so this can take several rounds).
async fn get_after_fetch(
    shard: Rc<Shard>,
    id: QueueId,
    channel: ChannelKey,
    no_ack: bool,
    reply_to: ReplyTo,
    vhost: ShortStr,
) {
    let started = std::time::Instant::now();
    while started.elapsed() < fetcher::GET_FETCH_WAIT_MAX {
        // The queue may have changed before this task first ran (purged, deleted, fetched):
        // look first. A head still on disk means a fetch for this queue is now in flight
        // (asked for here, or already running), and a fetch ending fires `fetch_done`; no
        // await separates the look from the wait, so that cannot be missed.
        if let Some(reply) = try_get(&shard, id, channel, no_ack, &vhost) {
            shard.reply(reply_to, Reply::Got(reply));
            return;
        }
        fetcher::request(&shard, id, true);
        shard.fetch_done.wait().await;
    }
    let error = Exception::connection(
        crate::protocol::HardError::InternalError,
        "cannot read the message back from disk",
    );
    shard.reply(reply_to, Reply::Got(Err(error)));
}

fn consume(
    shard: &Rc<Shard>,
    id: QueueId,
    reply_to: ReplyTo,
    key: ConsumerKey,
    options: ConsumeOptions,
    arguments: crate::protocol::FieldTable,
    vhost: &ShortStr,
) {
    let result = match shard.queues.borrow_mut().get_mut(&id) {
        None => Err(missing_queue(shard, id, vhost)),
        Some(queue) => {
            let ack_timeout_ms = ack_timeout_ms(shard, queue);
            let consumer = Consumer {
                key: key.clone(),
                no_ack: options.no_ack,
                exclusive: options.exclusive,
                prefetch_count: options.prefetch_count,
                unacked_count: 0,
                flow_credit: FLOW_CREDIT_INITIAL,
                priority: options.priority,
                arguments,
            };
            match queue.add_consumer(consumer) {
                Ok(()) => Ok(ack_timeout_ms),
                Err(ConsumeRefusal::ExclusiveInUse) => Err(Exception::access_refused(format!(
                    "queue '{}' in vhost '{vhost}' in exclusive use",
                    queue.name
                ))),
            }
        }
    };
    let reply = match result {
        Ok(ack_timeout_ms) => {
            let mut limits = shard.channel_limits.borrow_mut();
            let limit = limits.entry(key.channel_key());
            limit.prefetch_count = options.global_prefetch_count;
            if !limit.queues.contains(&id) {
                limit.queues.push(id);
            }
            shard.mark_dirty(id);
            Ok(ConsumeOk {
                consumer: key,
                owner: shard.id,
                queue: id,
                no_ack: options.no_ack,
                nowait: options.nowait,
                ack_timeout_ms,
            })
        }
        Err(error) => Err(error),
    };
    shard.reply(reply_to, Reply::Consumed(reply));
}

/// The consumer timeout of deliveries from `queue`: its `x-consumer-timeout`, else the
/// broker's.
fn ack_timeout_ms(shard: &Shard, queue: &Queue) -> Option<u64> {
    let default = shard
        .config
        .consumer_timeout
        .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    queue.settings.ack_timeout_ms(default)
}

/// Settled deliveries free room for the queue's consumers and, with a channel-wide prefetch,
/// for the channel's consumers on other queues of this shard; requeued messages need
/// dispatching.
fn room_opened(shard: &Rc<Shard>, id: QueueId, channel: ChannelKey, settled: SettleOutcome) {
    if settled.total == 0 {
        return;
    }
    shard.mark_dirty(id);
    if settled.consumer_deliveries == 0 {
        return;
    }
    let mut limits = shard.channel_limits.borrow_mut();
    limits.settled(&channel, settled.consumer_deliveries);
    let others = limits
        .get(&channel)
        .map(|limit| limit.queues.clone())
        .unwrap_or_default();
    drop(limits);
    shard.mark_dirty(id);
    for queue in others {
        shard.mark_dirty(queue);
    }
}

/// Deletes a queue owned here: cancels its consumers, then asks the metadata shard to remove
/// it (which answers `reply_to`).
pub fn delete(
    shard: &Rc<Shard>,
    id: QueueId,
    reply_to: Option<ReplyTo>,
    conditions: DeleteConditions,
    vhost: ShortStr,
) {
    let mut queues = shard.queues.borrow_mut();
    let Some(queue) = queues.get(&id) else {
        drop(queues);
        if let Some(reply_to) = reply_to {
            // Already gone: deleting a missing queue is not an error. The metadata shard
            // answers once the deletion that removed it is durable.
            shard.send(
                ShardId::METADATA,
                ShardMessage::Meta {
                    reply_to: Some(reply_to),
                    vhost,
                    request: MetaRequest::QueueAlreadyDeleted,
                },
            );
        }
        return;
    };
    let refusal = if conditions.if_unused && queue.consumer_count() > 0 {
        Some(format!("queue '{}' in vhost '{vhost}' in use", queue.name))
    } else if conditions.if_empty && queue.ready_count() > 0 {
        Some(format!(
            "queue '{}' in vhost '{vhost}' not empty",
            queue.name
        ))
    } else {
        None
    };
    if let Some(text) = refusal {
        drop(queues);
        if let Some(reply_to) = reply_to {
            shard.reply(
                reply_to,
                Reply::Deleted(Err(Exception::precondition_failed(text))),
            );
        }
        return;
    }
    let queue = queues.remove(&id).expect("checked above");
    drop(queues);
    let gone = queue.all_persistent();
    let persistence = shard.persistence();
    if queue.durable {
        if let Err(error) = persistence.append_queue_deleted(id) {
            tracing::warn!(%error, shard = %shard.id, "cannot record a queue deletion");
        }
    }
    // Paged records of any queue pin their segments as stored ones do.
    for entry in &gone {
        persistence.entry_dead(entry.location);
    }
    for consumer in queue.consumers() {
        shard.send(
            consumer.key.connection.shard(),
            ShardMessage::Connection {
                connection: consumer.key.connection,
                event: ConnectionEvent::ConsumerCancelled {
                    channel: consumer.key.channel,
                    consumer_tag: consumer.key.tag.clone(),
                    queue: id,
                },
            },
        );
    }
    shard.send(
        ShardId::METADATA,
        ShardMessage::Meta {
            reply_to,
            vhost,
            request: MetaRequest::QueueDeleted {
                name: queue.name.clone(),
                id,
                message_count: count_u32(queue.ready_count()),
            },
        },
    );
}

/// Runs dispatch for queues with new messages or new room, forever. Separate from the inbox
/// handlers so a long dispatch yields to other tasks between rounds.
pub async fn run_dispatcher(shard: Rc<Shard>) {
    let mut deliveries = Vec::new();
    loop {
        shard.dispatch_needed.wait().await;
        loop {
            let dirty = std::mem::take(&mut *shard.dirty_queues.borrow_mut());
            if dirty.is_empty() {
                break;
            }
            for id in dirty {
                dispatch_one(&shard, id, &mut deliveries, true);
            }
            glommio::yield_if_needed().await;
        }
    }
}

/// One dispatch round for a queue. Expired messages go first (`expire_first`), so none is
/// delivered late; a publish with TTL 0 dispatches without that step, then expires.
fn dispatch_one(
    shard: &Rc<Shard>,
    id: QueueId,
    deliveries: &mut Vec<Delivery>,
    expire_first: bool,
) {
    deliveries.clear();
    let mut gone = Vec::new();
    let more = {
        let mut queues = shard.queues.borrow_mut();
        let Some(queue) = queues.get_mut(&id) else {
            return;
        };
        if expire_first {
            queue.expire(now_ms());
            timers::schedule(shard, queue);
        }
        let mut limits = shard.channel_limits.borrow_mut();
        queue.dispatch(&mut limits, DISPATCH_ROUND_MAX, deliveries, &mut gone);
        deliveries.len() == DISPATCH_ROUND_MAX
    };
    // Stored messages delivered to no-ack consumers are settled for good.
    record_gone(shard, id, &gone);
    finish_leaving(shard, id);
    // Reads the next bodies back before the resident head runs out.
    fetcher::request(shard, id, false);
    for delivery in deliveries.drain(..) {
        let connection = delivery.consumer.connection;
        shard.send(
            connection.shard(),
            ShardMessage::Connection {
                connection,
                event: ConnectionEvent::Deliver {
                    channel: delivery.consumer.channel,
                    consumer_tag: delivery.consumer.tag,
                    no_ack: delivery.no_ack,
                    owner: shard.id,
                    queue: id,
                    message_id: delivery.id,
                    redelivered: delivery.redelivered,
                    content: delivery.message.clone(),
                },
            },
        );
    }
    if more {
        shard.mark_dirty(id);
    }
}

/// 404 for a queue this shard no longer holds, named as `vhost` in this shard's metadata copy
/// still knows it.
fn missing_queue(shard: &Shard, id: QueueId, vhost: &ShortStr) -> Exception {
    let registry = shard.registry.borrow();
    let name = registry
        .vhost(vhost)
        .and_then(|metadata| metadata.queue_by_id(id))
        .map(|queue| queue.name.clone())
        .unwrap_or_default();
    no_queue(&name, &vhost.to_string_lossy())
}

fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}
