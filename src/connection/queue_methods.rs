//! queue.declare, bind, unbind, purge and delete. Declares and bindings are decided by the
//! metadata shard; purge and delete go to the queue's owner, which holds its messages.

use std::rc::Rc;

use crate::connection::permissions::{self, Access, Resource};
use crate::connection::requests::{
    change_binding, existing_queue, meta_change, queue_name, resolve_queue, unexpected_reply,
    BindingChange,
};
use crate::connection::{direct_reply, events, ConnectionShared};
use crate::exception::Exception;
use crate::ids::{ChannelId, ShardId};
use crate::protocol::{
    FieldTable, FieldValue, Method, QueueBind, QueueBindOk, QueueDeclare, QueueDeclareOk,
    QueueDelete, QueueDeleteOk, QueuePurge, QueuePurgeOk, QueueUnbind, QueueUnbindOk, ShortStr,
};
use crate::shard::message::{
    DeleteConditions, MetaRequest, QueueDeleted, QueueOp, Reply, ShardMessage,
};
use crate::shard::Shard;
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::{names, rules};

pub async fn declare(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: QueueDeclare,
) -> Result<(), Exception> {
    let server_named = method.queue.is_empty() && !method.passive;
    let name = if server_named {
        names::generated_queue_name()
    } else {
        queue_name(connection, channel, &method.queue)?
    };
    if name
        .as_bytes()
        .starts_with(direct_reply::REPLY_PREFIX.as_bytes())
    {
        // A well-formed reply-to token "exists" as a queue (docs/rabbitmq-compatibility.md §13).
        if direct_reply::ReplyToken::decode(name.as_bytes()).is_none() {
            let vhost = connection.state.borrow().vhost.to_string_lossy();
            return Err(rules::no_queue(&name, &vhost));
        }
        if !method.nowait {
            connection.write_method(
                channel.0,
                &Method::QueueDeclareOk(QueueDeclareOk {
                    queue: name,
                    message_count: 0,
                    consumer_count: 1,
                }),
            );
        }
        return Ok(());
    }
    if !method.passive {
        check_declare(shard, connection, &name, server_named, &method.arguments)?;
    }
    let vhost = connection.state.borrow().vhost.clone();
    let request = MetaRequest::QueueDeclare(rules::QueueDeclare {
        name,
        passive: method.passive,
        durable: method.durable,
        exclusive: method.exclusive,
        auto_delete: method.auto_delete,
        arguments: method.arguments,
        connection: connection.id,
        preferred_shard: shard.place_queue(method.exclusive),
        server_named,
    });
    let reply = shard
        .request(ShardId::METADATA, |reply_to| ShardMessage::Meta {
            reply_to: Some(reply_to),
            vhost,
            request,
        })
        .await;
    let (version, name, message_count, consumer_count) = match reply {
        Reply::QueueDeclared {
            version,
            name,
            message_count,
            consumer_count,
        } => (version, name, message_count, consumer_count),
        Reply::Meta(Err(error)) => return Err(error),
        _ => return Err(unexpected_reply()),
    };
    shard.wait_for_version(version).await;
    let exclusive_here = {
        let resolved = resolve_queue(shard, connection, &name)?;
        let registry = shard.registry.borrow();
        let state = connection.state.borrow();
        resolved.filter(|queue| {
            registry
                .vhost(&state.vhost)
                .and_then(|vhost| vhost.queue(&queue.name))
                .is_some_and(|definition| definition.exclusive_owner == Some(connection.id))
        })
    };
    let mut state = connection.state.borrow_mut();
    if let Some(queue) = exclusive_here {
        let entry = (queue.owner, queue.id);
        if !state.exclusive_queues.contains(&entry) {
            state.exclusive_queues.push(entry);
        }
    }
    if let Some(open) = state.channels.get_mut(&channel.0) {
        open.last_declared_queue = Some(name.clone());
    }
    drop(state);
    if !method.nowait {
        connection.write_method(
            channel.0,
            &Method::QueueDeclareOk(QueueDeclareOk {
                queue: name,
                message_count,
                consumer_count,
            }),
        );
    }
    Ok(())
}

pub async fn bind(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: QueueBind,
) -> Result<(), Exception> {
    let names = BindingNames {
        queue: method.queue,
        exchange: method.exchange,
        routing_key: method.routing_key,
    };
    let binding = queue_binding(connection, channel, names, method.arguments)?;
    permissions::check_binding(shard, connection, &binding)?;
    change_binding(shard, connection, BindingChange::Bind, binding).await?;
    if !method.nowait {
        connection.write_method(channel.0, &Method::QueueBindOk(QueueBindOk {}));
    }
    Ok(())
}

pub async fn unbind(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: QueueUnbind,
) -> Result<(), Exception> {
    let names = BindingNames {
        queue: method.queue,
        exchange: method.exchange,
        routing_key: method.routing_key,
    };
    let binding = queue_binding(connection, channel, names, method.arguments)?;
    permissions::check_binding(shard, connection, &binding)?;
    change_binding(shard, connection, BindingChange::Unbind, binding).await?;
    connection.write_method(channel.0, &Method::QueueUnbindOk(QueueUnbindOk {}));
    Ok(())
}

/// The names queue.bind and queue.unbind carry, as the client sent them.
struct BindingNames {
    queue: ShortStr,
    exchange: ShortStr,
    routing_key: ShortStr,
}

/// The binding a queue.bind or queue.unbind names. An empty queue name means the channel's
/// last declared queue, and an empty key then means that name (docs/rabbitmq-compatibility.md §9).
fn queue_binding(
    connection: &ConnectionShared,
    channel: ChannelId,
    names: BindingNames,
    arguments: FieldTable,
) -> Result<BindingDefinition, Exception> {
    let name = queue_name(connection, channel, &names.queue)?;
    let routing_key = if names.queue.is_empty() && names.routing_key.is_empty() {
        name.clone()
    } else {
        names.routing_key
    };
    Ok(BindingDefinition {
        source: names.exchange,
        destination: DestinationName::Queue(name),
        routing_key,
        arguments,
    })
}

pub async fn purge(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: QueuePurge,
) -> Result<(), Exception> {
    let name = queue_name(connection, channel, &method.queue)?;
    permissions::check(
        shard,
        connection,
        Access::Read,
        Resource::Queue,
        name.as_bytes(),
    )?;
    let queue = existing_queue(shard, connection, &name)?;
    let vhost = connection.state.borrow().vhost.clone();
    let reply = shard
        .request(queue.owner, |reply_to| ShardMessage::Queue {
            queue: queue.id,
            op: QueueOp::Purge { reply_to, vhost },
        })
        .await;
    let Reply::Purged(result) = reply else {
        return Err(unexpected_reply());
    };
    let message_count = result?;
    if !method.nowait {
        connection.write_method(
            channel.0,
            &Method::QueuePurgeOk(QueuePurgeOk { message_count }),
        );
    }
    Ok(())
}

pub async fn delete(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    method: QueueDelete,
) -> Result<(), Exception> {
    let name = queue_name(connection, channel, &method.queue)?;
    permissions::check(
        shard,
        connection,
        Access::Configure,
        Resource::Queue,
        name.as_bytes(),
    )?;
    let message_count = match resolve_queue(shard, connection, &name)? {
        // Deleting a missing queue is not an error (clients rely on it being idempotent). It
        // may be missing because of a deletion not yet on disk (an auto-delete, another
        // connection's delete): delete-ok waits until that is durable.
        None => {
            meta_change(shard, connection, MetaRequest::Sync).await?;
            0
        }
        Some(queue) => {
            let vhost = {
                let mut state = connection.state.borrow_mut();
                state.deleting_queue = Some(queue.id);
                state.vhost.clone()
            };
            let reply = shard
                .request(queue.owner, |reply_to| ShardMessage::Queue {
                    queue: queue.id,
                    op: QueueOp::Delete {
                        reply_to: Some(reply_to),
                        conditions: DeleteConditions {
                            if_unused: method.if_unused,
                            if_empty: method.if_empty,
                        },
                        vhost,
                    },
                })
                .await;
            let result = match reply {
                Reply::Deleted(result) => result,
                _ => Err(unexpected_reply()),
            };
            let deferred = {
                let mut state = connection.state.borrow_mut();
                state.deleting_queue = None;
                std::mem::take(&mut state.deferred_cancels)
            };
            let outcome = match result {
                Ok(QueueDeleted {
                    message_count,
                    version,
                }) => {
                    shard.wait_for_version(version).await;
                    connection
                        .state
                        .borrow_mut()
                        .exclusive_queues
                        .retain(|(_, id)| *id != queue.id);
                    if !method.nowait {
                        connection.write_method(
                            channel.0,
                            &Method::QueueDeleteOk(QueueDeleteOk { message_count }),
                        );
                    }
                    Ok(())
                }
                Err(error) => Err(error),
            };
            for (consumer_channel, tag) in deferred {
                events::cancel_consumer(connection, consumer_channel, tag);
            }
            return outcome;
        }
    };
    if !method.nowait {
        connection.write_method(
            channel.0,
            &Method::QueueDeleteOk(QueueDeleteOk { message_count }),
        );
    }
    Ok(())
}

/// queue.declare (not passive): configure on the queue (a server-named one too, by its
/// `amq.gen-…` name); for a new queue with `x-dead-letter-exchange`, read on the queue and
/// write on the dead-letter exchange, as RabbitMQ checks. A client-chosen `amq.*` name is
/// refused by the rules first.
fn check_declare(
    shard: &Shard,
    connection: &ConnectionShared,
    name: &ShortStr,
    server_named: bool,
    arguments: &FieldTable,
) -> Result<(), Exception> {
    if !server_named && name.as_bytes().starts_with(b"amq.") {
        return Ok(());
    }
    let bytes = name.as_bytes();
    permissions::check(shard, connection, Access::Configure, Resource::Queue, bytes)?;
    let exists = {
        let registry = shard.registry.borrow();
        let state = connection.state.borrow();
        registry
            .vhost(&state.vhost)
            .is_some_and(|vhost| vhost.queue(name).is_some())
    };
    if exists {
        return Ok(());
    }
    let Some(FieldValue::LongStr(dead_letter_exchange)) = arguments.get("x-dead-letter-exchange")
    else {
        return Ok(());
    };
    permissions::check(shard, connection, Access::Read, Resource::Queue, bytes)?;
    permissions::check(
        shard,
        connection,
        Access::Write,
        Resource::Exchange,
        dead_letter_exchange,
    )
}
