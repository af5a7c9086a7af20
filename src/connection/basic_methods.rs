//! basic.qos, consume, cancel, get, ack/nack/reject, recover, and the tx and confirm modes.
//! Consumers and messages live on the queue's owner shard; the channel keeps the delivery tags
//! and settles them with the owners, grouped per queue.

use std::rc::Rc;

use crate::connection::channel::{ChannelConsumer, Transaction, CONSUMER_COUNT_MAX};
use crate::connection::confirm::ConfirmTracker;
use crate::connection::permissions::{self, Access, Resource};
use crate::connection::requests::{existing_queue, queue_name, unexpected_reply, ResolvedQueue};
use crate::connection::{direct_reply, publish, ConnectionShared};
use crate::exception::Exception;
use crate::ids::{ChannelId, QueueId, ShardId};
use crate::protocol::{
    write_content, write_method_frame, BasicCancel, BasicCancelOk, BasicConsume, BasicGet,
    BasicGetEmpty, BasicGetOk, BasicQos, BasicQosOk, BasicRecoverOk, ConfirmSelectOk, FieldTable,
    HardError, Method, ShortStr, TxCommitOk, TxRollbackOk, TxSelectOk,
};
use crate::queue::consumer::{ChannelKey, ConsumerKey};
use crate::queue::SettleAction;
use crate::shard::message::{
    AckDeadline, ConsumeOptions, QueueOp, Reply, ShardMessage, UnackedDelivery,
};
use crate::shard::Shard;
use crate::vhost::names;

pub fn qos(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: BasicQos,
) -> Result<(), Exception> {
    if method.prefetch_size != 0 {
        return Err(Exception::not_implemented(format!(
            "prefetch_size!=0 ({})",
            method.prefetch_size
        )));
    }
    let mut state = connection.state.borrow_mut();
    let open = open_channel(&mut state.channels, channel);
    if method.global {
        open.global_prefetch_count = method.prefetch_count;
        // Takes effect at once for existing consumers (Celery relies on it).
        let mut owners: Vec<(ShardId, QueueId)> = Vec::new();
        for consumer in open.consumers.values() {
            if !owners.iter().any(|(owner, _)| *owner == consumer.owner) {
                owners.push((consumer.owner, consumer.queue));
            }
        }
        let key = connection.channel_key(channel);
        for (owner, queue) in owners {
            shard.send(
                owner,
                ShardMessage::Queue {
                    queue,
                    op: QueueOp::SetChannelPrefetch {
                        channel: key,
                        prefetch_count: method.prefetch_count,
                    },
                },
            );
        }
    } else {
        // Applies to consumers created from now on (RabbitMQ semantics).
        open.prefetch_count = method.prefetch_count;
    }
    drop(state);
    connection.write_method(channel.0, &Method::BasicQosOk(BasicQosOk {}));
    Ok(())
}

pub async fn consume(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: BasicConsume,
) -> Result<(), Exception> {
    if method.queue.as_bytes() == direct_reply::REPLY_QUEUE.as_bytes() {
        let tag = if method.consumer_tag.is_empty() {
            names::generated_consumer_tag()
        } else {
            method.consumer_tag.clone()
        };
        return direct_reply::consume(connection, channel, tag, method.no_ack, method.nowait);
    }
    let (name, queue) = readable_queue(shard, connection, channel, &method.queue)?;
    let (tag, options, vhost) = {
        let mut state = connection.state.borrow_mut();
        let vhost = state.vhost.clone();
        let open = open_channel(&mut state.channels, channel);
        let tag = if method.consumer_tag.is_empty() {
            names::generated_consumer_tag()
        } else {
            method.consumer_tag.clone()
        };
        if open.consumers.contains_key(&tag) {
            return Err(Exception::connection(
                HardError::NotAllowed,
                format!("attempt to reuse consumer tag '{tag}'"),
            ));
        }
        if open.consumers.len() >= CONSUMER_COUNT_MAX {
            return Err(Exception::connection(
                HardError::NotAllowed,
                format!("consumer limit of {CONSUMER_COUNT_MAX} per channel reached"),
            ));
        }
        let options = ConsumeOptions {
            no_ack: method.no_ack,
            exclusive: method.exclusive,
            nowait: method.nowait,
            prefetch_count: open.prefetch_count,
            global_prefetch_count: open.global_prefetch_count,
            priority: consumer_priority(&method.arguments, &name, &vhost)?,
        };
        (tag, options, vhost)
    };
    let consumer = ConsumerKey {
        connection: connection.id,
        channel,
        tag,
    };
    let reply = shard
        .request(queue.owner, |reply_to| ShardMessage::Queue {
            queue: queue.id,
            op: QueueOp::Consume {
                reply_to,
                consumer,
                options,
                arguments: method.arguments,
                vhost,
            },
        })
        .await;
    match reply {
        // consume-ok was written by the inbox handler, before any delivery.
        Reply::Consumed(result) => result.map(|_| ()),
        _ => Err(unexpected_reply()),
    }
}

/// `x-priority` of basic.consume: any integer type (RabbitMQ's `check_consume_arguments`).
fn consumer_priority(
    arguments: &FieldTable,
    queue: &ShortStr,
    vhost: &ShortStr,
) -> Result<i32, Exception> {
    let Some(value) = arguments.get("x-priority") else {
        return Ok(0);
    };
    value
        .as_i64()
        .map(|priority| priority.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32)
        .ok_or_else(|| {
            Exception::precondition_failed(format!(
                "invalid arg 'x-priority' for queue '{queue}' in vhost '{}': {{unacceptable_type,{}}}",
                vhost.to_string_lossy(),
                value.type_name()
            ))
        })
}

pub async fn cancel(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: BasicCancel,
) -> Result<(), Exception> {
    let (consumer, vhost) = {
        let mut state = connection.state.borrow_mut();
        let vhost = state.vhost.clone();
        let open = open_channel(&mut state.channels, channel);
        if open.direct_reply_consumer.as_ref() == Some(&method.consumer_tag) {
            open.direct_reply_consumer = None;
        }
        (open.consumers.get(&method.consumer_tag).cloned(), vhost)
    };
    if let Some(ChannelConsumer { owner, queue, .. }) = consumer {
        let key = ConsumerKey {
            connection: connection.id,
            channel,
            tag: method.consumer_tag.clone(),
        };
        let reply = shard
            .request(owner, |reply_to| ShardMessage::Queue {
                queue,
                op: QueueOp::Cancel {
                    reply_to: Some(reply_to),
                    consumer: key,
                    vhost,
                },
            })
            .await;
        if !matches!(reply, Reply::Cancelled) {
            return Err(unexpected_reply());
        }
        // Deliveries sent before the cancel arrived ahead of its answer and were written;
        // their tags stay ackable on the channel.
        let mut state = connection.state.borrow_mut();
        if let Some(open) = state.channels.get_mut(&channel.0) {
            open.consumers.remove(&method.consumer_tag);
        }
    }
    // Cancelling an unknown tag is not an error (docs/rabbitmq-compatibility.md §5).
    if !method.nowait {
        connection.write_method(
            channel.0,
            &Method::BasicCancelOk(BasicCancelOk {
                consumer_tag: method.consumer_tag,
            }),
        );
    }
    Ok(())
}

pub async fn get(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: BasicGet,
) -> Result<(), Exception> {
    let (_, queue) = readable_queue(shard, connection, channel, &method.queue)?;
    let key = connection.channel_key(channel);
    let vhost = connection.state.borrow().vhost.clone();
    let reply = shard
        .request(queue.owner, |reply_to| ShardMessage::Queue {
            queue: queue.id,
            op: QueueOp::Get {
                reply_to,
                channel: key,
                no_ack: method.no_ack,
                vhost,
            },
        })
        .await;
    let Reply::Got(result) = reply else {
        return Err(unexpected_reply());
    };
    let Some(got) = result? else {
        if let Some(open) = connection.state.borrow_mut().channels.get_mut(&channel.0) {
            open.counters.get_empty += 1;
        }
        connection.write_method(
            channel.0,
            &Method::BasicGetEmpty(BasicGetEmpty {
                cluster_id: ShortStr::default(),
            }),
        );
        return Ok(());
    };
    let mut state = connection.state.borrow_mut();
    let frame_max = state.frame_max;
    let Some(open) = state.channels.get_mut(&channel.0).filter(|c| c.is_open()) else {
        // The channel closed meanwhile: give the message back.
        drop(state);
        send_settlements(
            shard,
            key,
            vec![(got.owner, got.queue, got.message_id)],
            SettleAction::Requeue,
        );
        return Ok(());
    };
    let tag = open.next_tag();
    if method.no_ack {
        open.counters.get_no_ack += 1;
    } else {
        open.counters.get += 1;
    }
    open.counters.redeliver += u64::from(got.redelivered);
    let ack_deadline = AckDeadline::starting_now(got.ack_timeout_ms);
    if !method.no_ack {
        open.unacked.insert(
            tag.0,
            UnackedDelivery {
                tag,
                owner: got.owner,
                queue: got.queue,
                message_id: got.message_id,
                ack_deadline,
            },
        );
        open.touched_queues.insert((got.owner, got.queue));
    }
    drop(state);
    if !method.no_ack {
        connection.ack_timer.delivered(ack_deadline);
    }
    crate::connection::trace::delivered(
        shard,
        connection,
        channel,
        got.queue,
        got.redelivered,
        &got.content,
    );
    connection.output.write(|out| {
        write_method_frame(
            out,
            channel.0,
            &Method::BasicGetOk(BasicGetOk {
                delivery_tag: tag.0,
                redelivered: got.redelivered,
                exchange: got.content.exchange.clone(),
                routing_key: got.content.routing_key.clone(),
                message_count: got.message_count,
            }),
        );
        write_content(
            out,
            channel.0,
            60,
            &got.content.properties_raw,
            &got.content.body,
            frame_max,
        );
    });
    Ok(())
}

/// basic.ack (requeue None), basic.nack and basic.reject (requeue Some).
pub fn settle(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    delivery_tag: u64,
    multiple: bool,
    requeue: Option<bool>,
) -> Result<(), Exception> {
    let action = match requeue {
        None => SettleAction::Ack,
        Some(true) => SettleAction::Requeue,
        Some(false) => SettleAction::Discard,
    };
    let mut state = connection.state.borrow_mut();
    let open = open_channel(&mut state.channels, channel);
    let Some(deliveries) = open.take_settled(delivery_tag, multiple) else {
        return Err(Exception::precondition_failed(format!(
            "unknown delivery tag {delivery_tag}"
        )));
    };
    if action == SettleAction::Ack {
        open.counters.ack += deliveries.len() as u64;
    }
    if let Some(transaction) = open.transaction.as_mut() {
        transaction
            .settlements
            .extend(deliveries.into_iter().map(|delivery| (delivery, action)));
        return Ok(());
    }
    drop(state);
    let key = connection.channel_key(channel);
    send_settlements(
        shard,
        key,
        deliveries
            .into_iter()
            .map(|d| (d.owner, d.queue, d.message_id))
            .collect(),
        action,
    );
    Ok(())
}

/// basic.recover / recover-async: requeue everything unacked on the channel.
pub fn recover(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    requeue: bool,
    reply: bool,
) -> Result<(), Exception> {
    if !requeue {
        return Err(Exception::not_implemented("requeue=false"));
    }
    let deliveries = {
        let mut state = connection.state.borrow_mut();
        let open = open_channel(&mut state.channels, channel);
        std::mem::take(&mut open.unacked)
    };
    let key = connection.channel_key(channel);
    send_settlements(
        shard,
        key,
        deliveries
            .into_values()
            .map(|d| (d.owner, d.queue, d.message_id))
            .collect(),
        SettleAction::Requeue,
    );
    if reply {
        connection.write_method(channel.0, &Method::BasicRecoverOk(BasicRecoverOk {}));
    }
    Ok(())
}

/// Sends settlements to the owners, one message per queue.
pub fn send_settlements(
    shard: &Rc<Shard>,
    channel: ChannelKey,
    mut deliveries: Vec<(ShardId, QueueId, crate::ids::MessageId)>,
    action: SettleAction,
) {
    deliveries.sort_unstable_by_key(|(owner, queue, id)| (*owner, *queue, *id));
    let mut start = 0;
    while start < deliveries.len() {
        let (owner, queue, _) = deliveries[start];
        let end = start
            + deliveries[start..]
                .iter()
                .take_while(|(o, q, _)| *o == owner && *q == queue)
                .count();
        let ids = deliveries[start..end]
            .iter()
            .map(|(_, _, id)| *id)
            .collect();
        shard.send(
            owner,
            ShardMessage::Queue {
                queue,
                op: QueueOp::Settle {
                    channel,
                    ids,
                    action,
                },
            },
        );
        start = end;
    }
}

pub fn tx_select(connection: &Rc<ConnectionShared>, channel: ChannelId) -> Result<(), Exception> {
    let mut state = connection.state.borrow_mut();
    let open = open_channel(&mut state.channels, channel);
    if open.confirm.is_some() {
        return Err(Exception::precondition_failed(
            "cannot switch from confirm to tx mode",
        ));
    }
    if open.transaction.is_none() {
        open.transaction = Some(Transaction::default());
    }
    drop(state);
    connection.write_method(channel.0, &Method::TxSelectOk(TxSelectOk {}));
    Ok(())
}

/// Applies the transaction's acks and publishes, then answers commit-ok once every shard has
/// handled them (a barrier behind them on each shard), so a consumer on any connection sees
/// the committed messages as soon as the publisher has commit-ok.
pub async fn tx_commit(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
) -> Result<(), Exception> {
    let transaction = {
        let mut state = connection.state.borrow_mut();
        let open = open_channel(&mut state.channels, channel);
        match open.transaction.as_mut() {
            None => {
                return Err(Exception::precondition_failed(
                    "channel is not transactional",
                ))
            }
            Some(transaction) => std::mem::take(transaction),
        }
    };
    let key = connection.channel_key(channel);
    for action in [
        SettleAction::Ack,
        SettleAction::Requeue,
        SettleAction::Discard,
    ] {
        let deliveries = transaction
            .settlements
            .iter()
            .filter(|(_, a)| *a == action)
            .map(|(d, _)| (d.owner, d.queue, d.message_id))
            .collect::<Vec<_>>();
        if !deliveries.is_empty() {
            send_settlements(shard, key, deliveries, action);
        }
    }
    for completed in transaction.publishes {
        publish::route_and_send(shard, connection, channel, completed).await?;
    }
    let barriers: Vec<_> = (0..shard.shard_count())
        .map(|index| {
            let target = ShardId(u16::try_from(index).expect("shard count fits u16"));
            let pending = shard.pending.borrow_mut().register(shard.id);
            shard.send(
                target,
                ShardMessage::Barrier {
                    reply_to: pending.reply_to,
                },
            );
            pending
        })
        .collect();
    let mut durable = true;
    for barrier in barriers {
        match barrier.wait().await {
            Reply::Barrier {
                durable: shard_durable,
            } => durable &= shard_durable,
            _ => return Err(unexpected_reply()),
        }
    }
    if !durable {
        // A shard's log failed: the transaction's persistent messages may not be on disk,
        // so commit-ok would be a false promise.
        return Err(Exception::connection(
            HardError::InternalError,
            "the transaction could not be made durable (disk fault)",
        ));
    }
    connection.write_method(channel.0, &Method::TxCommitOk(TxCommitOk {}));
    Ok(())
}

pub fn tx_rollback(connection: &Rc<ConnectionShared>, channel: ChannelId) -> Result<(), Exception> {
    let mut state = connection.state.borrow_mut();
    let open = open_channel(&mut state.channels, channel);
    let Some(transaction) = open.transaction.as_mut() else {
        return Err(Exception::precondition_failed(
            "channel is not transactional",
        ));
    };
    let transaction = std::mem::take(transaction);
    // Acks buffered in the transaction become unacked again.
    for (delivery, _) in transaction.settlements {
        open.unacked.insert(delivery.tag.0, delivery);
    }
    drop(state);
    connection.ack_timer.recheck();
    connection.write_method(channel.0, &Method::TxRollbackOk(TxRollbackOk {}));
    Ok(())
}

pub fn confirm_select(
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    nowait: bool,
) -> Result<(), Exception> {
    let mut state = connection.state.borrow_mut();
    let open = open_channel(&mut state.channels, channel);
    if open.transaction.is_some() {
        return Err(Exception::precondition_failed(
            "cannot switch from tx to confirm mode",
        ));
    }
    if open.confirm.is_none() {
        open.confirm = Some(ConfirmTracker::new());
    }
    drop(state);
    if !nowait {
        connection.write_method(channel.0, &Method::ConfirmSelectOk(ConfirmSelectOk {}));
    }
    Ok(())
}

fn open_channel(
    channels: &mut crate::fast_map::FastMap<u16, crate::connection::channel::Channel>,
    channel: ChannelId,
) -> &mut crate::connection::channel::Channel {
    channels
        .get_mut(&channel.0)
        .expect("dispatch checked the channel is open")
}

/// The queue basic.consume or basic.get names, if the user may read it (checked before the
/// queue must exist, as RabbitMQ does).
fn readable_queue(
    shard: &Shard,
    connection: &ConnectionShared,
    channel: ChannelId,
    queue: &ShortStr,
) -> Result<(ShortStr, ResolvedQueue), Exception> {
    let name = queue_name(connection, channel, queue)?;
    permissions::check(
        shard,
        connection,
        Access::Read,
        Resource::Queue,
        name.as_bytes(),
    )?;
    let queue = existing_queue(shard, connection, &name)?;
    Ok((name, queue))
}
