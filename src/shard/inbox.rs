//! Handles the messages that reach a shard. Handlers run to completion without awaiting: what
//! they must send goes to the mesh outboxes, so two shards sending to each other can never
//! deadlock.

use std::rc::Rc;

use crate::ids::ShardId;
use crate::shard::message::{Reply, ShardMessage};
use crate::shard::{dedup, metadata, queues, startup, vhost_limits, Shard};
use crate::vhost::delta::MetaUpdate;

pub fn handle_batch(shard: &Rc<Shard>, batch: Vec<ShardMessage>) {
    for message in batch {
        handle(shard, message);
    }
}

fn handle(shard: &Rc<Shard>, message: ShardMessage) {
    match message {
        ShardMessage::Meta {
            reply_to,
            vhost,
            request,
        } => metadata::handle_request(shard, reply_to, vhost, request),
        ShardMessage::MetaUpdate(update) => apply_update(shard, &update),
        ShardMessage::MetaApplied {
            shard: from,
            version,
        } => {
            metadata::applied(shard, from, version);
        }
        ShardMessage::Barrier { reply_to } => {
            // A barrier behind persistent work also waits for its fdatasync.
            let waiting = crate::shard::persistence::Waiting::Barrier(reply_to);
            if !shard.persistence().after_durable(waiting) {
                shard.reply(reply_to, Reply::Barrier { durable: true });
            }
        }
        ShardMessage::Queue { queue, op } => queues::handle(shard, queue, op),
        ShardMessage::Publish {
            queues: targets,
            message,
            confirm,
        } => {
            shard
                .mesh
                .pressure
                .publish_handled(shard.id, message.body.len());
            queues::publish(shard, targets.as_slice(), message, confirm);
        }
        ShardMessage::DeadLettered { token, ok } => {
            crate::shard::dead_letter::confirmed(shard, token, ok);
        }
        ShardMessage::Connection { connection, event } => {
            // A connection that is gone drops its events. Its channels' unacked messages,
            // including deliveries still in flight, are requeued by the owners when they get
            // its ChannelClosed.
            if let Some(endpoint) = shard.connections.get(connection) {
                endpoint.handle_event(event);
            }
        }
        ShardMessage::Reply { request, reply } => {
            if let Reply::Consumed(Ok(consume_ok)) = &reply {
                if let Some(endpoint) = shard.connections.get(consume_ok.consumer.connection) {
                    endpoint.consumed(consume_ok);
                }
            }
            shard.pending.borrow_mut().complete(request, reply);
        }
        ShardMessage::Accepted(stream, listener) => {
            startup::serve_accepted(shard, stream, listener);
        }
        ShardMessage::Moved(moved) => startup::serve_moved(shard, moved),
        ShardMessage::ConnectionMoved { from, to, channels } => {
            startup::connection_moved(shard, from, to, channels);
        }
        ShardMessage::StorageAlarm(alarm) => {
            shard
                .storage_alarms
                .borrow_mut()
                .insert(alarm.shard, alarm.clone());
            shard.alarms_changed();
        }
        ShardMessage::StorageAlarmCleared { shard: cleared } => {
            shard.storage_alarms.borrow_mut().remove(&cleared);
            shard.alarms_changed();
        }
        ShardMessage::DedupCheck {
            reply_to,
            vhost,
            exchange,
            query,
        } => dedup::handle_check(shard, reply_to, &vhost, exchange, &query),
        ShardMessage::Stats { reply_to } => crate::shard::stats::handle_request(shard, reply_to),
        ShardMessage::CloseConnection {
            reply_to,
            connection,
            reason,
        } => {
            let endpoint = shard.connections.get(connection);
            if let Some(endpoint) = &endpoint {
                endpoint.close_forced(reason);
            }
            shard.reply(reply_to, Reply::ConnectionClosed(endpoint.is_some()));
        }
        ShardMessage::VHostConnection { connection, change } => {
            vhost_limits::handle(shard, connection, change);
        }
        ShardMessage::ConnectionEnded { shard: ended } => {
            let mut counts = shard.connection_counts.borrow_mut();
            counts[ended.index()] = counts[ended.index()].saturating_sub(1);
        }
    }
}

/// Applies a metadata update from the metadata shard and tells it so.
fn apply_update(shard: &Rc<Shard>, update: &MetaUpdate) {
    dedup::forget_deleted(shard, update);
    shard.registry.borrow_mut().apply(update);
    queues::install_declared(shard, &update.vhost, &update.deltas);
    shard.registry_changed.notify_all();
    vhost_limits::close_revoked(shard, &vhost_limits::revoked(&update.deltas));
    super::user_limits::limits_changed(shard, &update.deltas);
    shard.send(
        ShardId::METADATA,
        ShardMessage::MetaApplied {
            shard: shard.id,
            version: update.version,
        },
    );
}
