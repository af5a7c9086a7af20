//! Messages published and fetched by an operator (the management API's `publish` and `get`,
//! meant for development and tests, as in RabbitMQ). A publish is routed on this shard's
//! metadata copy like a client's and waits until every owner shard took it (for a persistent
//! message, until it is on disk), as RabbitMQ's management plugin publishes with confirms. A
//! get takes messages from the owner shard on a channel of the operator's connection id and
//! settles them as the ack mode says.

use std::cell::Cell;

use bytes::Bytes;

use crate::exception::Exception;
use crate::ids::{ChannelId, ConnectionId};
use crate::protocol::{BasicProperties, ShortStr};
use crate::queue::consumer::ChannelKey;
use crate::queue::message::{Content, Message};
use crate::queue::SettleAction;
use crate::shard::admin::find_queue;
use crate::shard::message::{Confirm, QueueOp, QueueTargets, Reply, ShardMessage};
use crate::shard::Shard;
use crate::vhost::route::{RouteScratch, RoutedMessage};

thread_local! {
    /// Channel numbers of the operator's gets on this shard: each get settles only its own.
    static NEXT_GET_CHANNEL: Cell<u16> = const { Cell::new(1) };
}

/// An operator's publish.
pub struct OperatorPublish {
    pub vhost: ShortStr,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: BasicProperties,
    pub body: Bytes,
}

/// Routes and enqueues the message; Ok(false) if no queue took it (RabbitMQ's
/// `{"routed": false}`), Err 406 if a queue refused it (a length limit with reject-publish).
/// Delayed and deduplication exchanges route at once here, without their delay or cache.
pub async fn publish(shard: &Shard, publish: OperatorPublish) -> Result<bool, Exception> {
    let ttl = match &publish.properties.expiration {
        None => None,
        Some(text) => Some(
            text.to_string_lossy()
                .parse::<u32>()
                .map_err(|_| Exception::precondition_failed("invalid expiration"))?,
        ),
    };
    let groups = {
        let registry = shard.registry.borrow();
        let vhost_name = publish.vhost.to_string_lossy();
        let vhost = registry
            .vhost(&publish.vhost)
            .ok_or_else(|| Exception::not_found(format!("no vhost '{vhost_name}'")))?;
        let exchange = vhost.exchange(&publish.exchange).ok_or_else(|| {
            Exception::not_found(format!(
                "no exchange '{}' in vhost '{vhost_name}'",
                publish.exchange
            ))
        })?;
        let mut scratch = RouteScratch::default();
        scratch.begin_message();
        let routed = RoutedMessage::new(&publish.routing_key, &publish.properties);
        let mut queues = Vec::new();
        vhost.route(
            exchange,
            &publish.routing_key,
            &routed,
            &mut scratch,
            &mut queues,
        );
        QueueTargets::group_by_owner(vhost, &queues)
    };
    if groups.is_empty() {
        return Ok(false);
    }
    let message = Message {
        exchange: publish.exchange,
        routing_key: publish.routing_key,
        persistent: publish.properties.is_persistent(),
        ttl,
        priority: publish.properties.priority.unwrap_or(0),
        properties_raw: publish.properties.to_raw(),
        body: publish.body,
    };
    let mut waits = Vec::with_capacity(groups.len());
    for (owner, queues) in groups {
        let pending = shard.pending.borrow_mut().register(shard.id);
        shard.send(
            owner,
            ShardMessage::Publish {
                queues,
                message: message.clone(),
                confirm: Some(Confirm::Reply(pending.reply_to)),
            },
        );
        waits.push(pending);
    }
    let mut refused = false;
    for pending in waits {
        if let Reply::Confirmed { ok } = pending.wait().await {
            refused |= !ok;
        }
    }
    if refused {
        return Err(Exception::precondition_failed(
            "Unable to publish message. Check queue limits.",
        ));
    }
    Ok(true)
}

/// What the management API's get may do with the messages it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetAckMode {
    /// Take and put back (`ack_requeue_true`, and `reject_requeue_true`).
    Requeue,
    /// Take for good (`ack_requeue_false`).
    Ack,
    /// Reject without requeue: dead-lettered if the queue says so (`reject_requeue_false`).
    Reject,
}

/// A message the get took, and how many were left behind it.
pub struct GotMessage {
    pub content: Content,
    pub redelivered: bool,
    pub message_count: u32,
}

/// Takes up to `count` messages from the head of a queue. Requeued messages go back to their
/// places only after the last one is taken, so one get never sees the same message twice.
pub async fn get(
    shard: &Shard,
    vhost: ShortStr,
    queue: &ShortStr,
    count: u32,
    mode: GetAckMode,
) -> Result<Vec<GotMessage>, Exception> {
    let (id, owner) = find_queue(shard, &vhost, queue)?;
    let channel = ChannelKey {
        connection: ConnectionId::operator(shard.id),
        channel: ChannelId(NEXT_GET_CHANNEL.with(|next| {
            let number = next.get();
            next.set(number.checked_add(1).unwrap_or(1));
            number
        })),
    };
    let mut got = Vec::new();
    let mut taken = Vec::new();
    while got.len() < usize::try_from(count).unwrap_or(usize::MAX) {
        let reply = shard
            .request(owner, |reply_to| ShardMessage::Queue {
                queue: id,
                op: QueueOp::Get {
                    reply_to,
                    channel,
                    no_ack: mode == GetAckMode::Ack,
                    vhost: vhost.clone(),
                },
            })
            .await;
        let Reply::Got(result) = reply else {
            return Err(unexpected_reply());
        };
        let Some(message) = result? else {
            break;
        };
        taken.push(message.message_id);
        got.push(GotMessage {
            content: message.content,
            redelivered: message.redelivered,
            message_count: message.message_count,
        });
    }
    let action = match mode {
        GetAckMode::Ack => None,
        GetAckMode::Requeue => Some(SettleAction::Requeue),
        GetAckMode::Reject => Some(SettleAction::Discard),
    };
    if let Some(action) = action.filter(|_| !taken.is_empty()) {
        shard.send(
            owner,
            ShardMessage::Queue {
                queue: id,
                op: QueueOp::Settle {
                    channel,
                    ids: taken,
                    action,
                },
            },
        );
    }
    Ok(got)
}

fn unexpected_reply() -> Exception {
    Exception::connection(
        crate::protocol::HardError::InternalError,
        "unexpected reply between shards",
    )
}
