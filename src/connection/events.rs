//! What the shard runtime calls on a connection of its shard (`ConnectionEndpoint`): events
//! from other shards (deliveries, server-side consumer cancels, confirms, direct replies),
//! consume-ok (written here, in order with the deliveries that follow it on the same inbox
//! channel), the alarms that block and unblock publishers, and the forced close at shutdown.

use crate::connection::channel::ChannelConsumer;
use crate::connection::confirm::{ConfirmFrame, ConfirmTracker};
use crate::connection::io::CreditKey;
use crate::connection::trace;
use crate::connection::{direct_reply, ConnectionShared};
use crate::ids::{ChannelId, DeliveryTag};
use crate::protocol::{
    write_content, write_method_frame, BasicAck, BasicCancel, BasicConsumeOk, BasicDeliver,
    BasicNack, ConnectionBlocked, ConnectionUnblocked, HardError, Method, ShortStr,
};
use crate::queue::consumer::ConsumerKey;
use crate::queue::message::Content;
use crate::shard::endpoint::{ConnectionEndpoint, ForcedClose, Revoked};
use crate::shard::message::{AckDeadline, ConnectionEvent, ConsumeOk, UnackedDelivery};
use crate::shard::stats::ConnectionStats;

impl ConnectionEndpoint for ConnectionShared {
    fn handle_event(&self, event: ConnectionEvent) {
        handle(self, event);
    }

    fn consumed(&self, consume_ok: &ConsumeOk) {
        consumed(self, consume_ok);
    }

    /// Tells a client that supports it (`connection.blocked` capability) to stop publishing.
    /// Sent once per alarm; `unblock` ends it.
    fn block(&self, reason: &str) {
        let supported = self.state.borrow().capabilities.connection_blocked;
        if !supported || self.blocked.replace(true) {
            return;
        }
        self.write_method(
            0,
            &Method::ConnectionBlocked(ConnectionBlocked {
                reason: ShortStr::from_str_truncated(reason),
            }),
        );
    }

    /// connection.unblocked, if connection.blocked was sent.
    fn unblock(&self) {
        if !self.blocked.replace(false) {
            return;
        }
        self.write_method(0, &Method::ConnectionUnblocked(ConnectionUnblocked {}));
    }

    fn channels_of(&self, user: &str) -> Option<usize> {
        let state = self.state.borrow();
        (state.user.as_bytes() == user.as_bytes()).then(|| state.channels.len())
    }

    fn revoked(&self, revoked: &Revoked) {
        let theirs = {
            let state = self.state.borrow();
            match revoked {
                Revoked::User(name) => state.user.as_bytes() == name.as_bytes(),
                Revoked::VHost(name) => state.vhost.as_bytes() == name.as_bytes(),
            }
        };
        if theirs {
            self.begin_close(
                HardError::ConnectionForced.code(),
                format!(
                    "{} - {}",
                    HardError::ConnectionForced.name(),
                    revoked.text()
                ),
                0,
                0,
            );
        }
    }

    fn close_forced(&self, reason: ForcedClose) {
        self.begin_close(
            HardError::ConnectionForced.code(),
            format!("{} - {}", HardError::ConnectionForced.name(), reason.text()),
            0,
            0,
        );
    }

    fn stats(&self) -> ConnectionStats {
        crate::connection::stats::collect(self)
    }
}

fn handle(connection: &ConnectionShared, event: ConnectionEvent) {
    let id = connection.id;
    match event {
        ConnectionEvent::Deliver {
            channel,
            consumer_tag,
            no_ack,
            owner,
            queue,
            message_id,
            redelivered,
            content,
        } => {
            let mut state = connection.state.borrow_mut();
            let frame_max = state.frame_max;
            let Some(open) = state.channels.get_mut(&channel.0) else {
                return;
            };
            if !open.is_open() {
                return;
            }
            let Some(consumer) = open.consumers.get(&consumer_tag) else {
                return;
            };
            let ack_deadline = AckDeadline::starting_now(consumer.ack_timeout_ms);
            let tag = open.next_tag();
            if no_ack {
                open.counters.deliver_no_ack += 1;
            } else {
                open.counters.deliver += 1;
            }
            open.counters.redeliver += u64::from(redelivered);
            if !no_ack {
                open.unacked.insert(
                    tag.0,
                    UnackedDelivery {
                        tag,
                        owner,
                        queue,
                        message_id,
                        ack_deadline,
                    },
                );
            }
            drop(state);
            if !no_ack {
                connection.ack_timer.delivered(ack_deadline);
            }
            let fields = DeliveryFields {
                consumer_tag: consumer_tag.clone(),
                delivery_tag: tag,
                redelivered,
            };
            if let Some(shard) = connection.shard.upgrade() {
                trace::delivered(&shard, connection, channel, queue, redelivered, &content);
            }
            write_delivery(connection, channel, fields, content, frame_max);
            connection.output.owe_credit(CreditKey {
                owner,
                queue,
                consumer: ConsumerKey {
                    connection: id,
                    channel,
                    tag: consumer_tag,
                },
            });
        }
        ConnectionEvent::ConsumerCancelled {
            channel,
            consumer_tag,
            queue,
        } => {
            let mut state = connection.state.borrow_mut();
            if state.deleting_queue == Some(queue) {
                state.deferred_cancels.push((channel, consumer_tag));
                return;
            }
            drop(state);
            cancel_consumer(connection, channel, consumer_tag);
        }
        ConnectionEvent::Confirmed { channel, seq, ok } => {
            let mut state = connection.state.borrow_mut();
            let Some(open) = state.channels.get_mut(&channel.0) else {
                return;
            };
            if !open.is_open() {
                return;
            }
            let Some(tracker) = open.confirm.as_mut() else {
                return;
            };
            tracker.answered(seq, ok);
            confirms_due(connection, channel, tracker);
        }
        ConnectionEvent::DirectReply {
            channel,
            secret,
            content,
        } => direct_reply::deliver(connection, channel, secret, content),
    }
}

/// Notes that the channel's confirms may be ready. They are written just before the writer's
/// next write (`flush_confirms`), so every confirm that completes before the socket is written
/// goes out in one `multiple=true` ack: answers arrive one by one from the shards, and writing
/// each at once would cost a client one ack frame per message (docs/ARCHITECTURE.md,
/// Publisher confirms).
pub fn confirms_due(
    connection: &ConnectionShared,
    channel: ChannelId,
    tracker: &mut ConfirmTracker,
) {
    if tracker.mark_due() {
        connection.confirms_due.borrow_mut().push(channel);
        connection.output.wake();
    }
}

/// Writes the confirms of every channel noted by `confirms_due`. The writer calls it before
/// each write; a channel that closes writes its own first (`write_confirms`), so its acks
/// still precede the close.
pub fn flush_confirms(connection: &ConnectionShared) {
    let mut due = connection.confirms_due.borrow_mut();
    if due.is_empty() {
        return;
    }
    let mut state = connection.state.borrow_mut();
    for channel in due.drain(..) {
        let Some(open) = state.channels.get_mut(&channel.0) else {
            continue;
        };
        if !open.is_open() {
            continue;
        }
        if let Some(tracker) = open.confirm.as_mut() {
            write_confirms(connection, channel, tracker);
        }
    }
}

/// Writes the acks and nacks that became due, coalesced.
pub fn write_confirms(
    connection: &ConnectionShared,
    channel: ChannelId,
    tracker: &mut ConfirmTracker,
) {
    let mut frames: Vec<ConfirmFrame> = Vec::new();
    tracker.drain_completed(&mut frames);
    if frames.is_empty() {
        return;
    }
    connection.output.write(|out| {
        for frame in frames {
            let method = if frame.ack {
                Method::BasicAck(BasicAck {
                    delivery_tag: frame.delivery_tag,
                    multiple: frame.multiple,
                })
            } else {
                Method::BasicNack(BasicNack {
                    delivery_tag: frame.delivery_tag,
                    multiple: frame.multiple,
                    requeue: false,
                })
            };
            write_method_frame(out, channel.0, &method);
        }
    });
}

/// A consumer was registered on its queue's owner: record it on the channel and write
/// consume-ok before any of its deliveries.
fn consumed(connection: &ConnectionShared, ok: &ConsumeOk) {
    let mut state = connection.state.borrow_mut();
    let Some(open) = state.channels.get_mut(&ok.consumer.channel.0) else {
        return;
    };
    open.consumers.insert(
        ok.consumer.tag.clone(),
        ChannelConsumer {
            owner: ok.owner,
            queue: ok.queue,
            no_ack: ok.no_ack,
            ack_timeout_ms: ok.ack_timeout_ms,
        },
    );
    open.touched_queues.insert((ok.owner, ok.queue));
    drop(state);
    if !ok.nowait {
        connection.write_method(
            ok.consumer.channel.0,
            &Method::BasicConsumeOk(BasicConsumeOk {
                consumer_tag: ok.consumer.tag.clone(),
            }),
        );
    }
}

/// The queue of a consumer went away: forget the consumer and tell the client, if it asked to
/// be told (consumer_cancel_notify).
pub fn cancel_consumer(connection: &ConnectionShared, channel: ChannelId, consumer_tag: ShortStr) {
    let mut state = connection.state.borrow_mut();
    let notify = state.capabilities.consumer_cancel_notify;
    let Some(open) = state.channels.get_mut(&channel.0) else {
        return;
    };
    if open.consumers.remove(&consumer_tag).is_none() || !open.is_open() {
        return;
    }
    drop(state);
    if notify {
        connection.write_method(
            channel.0,
            &Method::BasicCancel(BasicCancel {
                consumer_tag,
                nowait: true,
            }),
        );
    }
}

/// The basic.deliver fields the channel decides; the others come from the message.
pub struct DeliveryFields {
    pub consumer_tag: ShortStr,
    pub delivery_tag: DeliveryTag,
    pub redelivered: bool,
}

/// Writes basic.deliver and its content.
pub fn write_delivery(
    connection: &ConnectionShared,
    channel: ChannelId,
    fields: DeliveryFields,
    content: Content,
    frame_max: u32,
) {
    connection.output.write(|out| {
        write_method_frame(
            out,
            channel.0,
            &Method::BasicDeliver(BasicDeliver {
                consumer_tag: fields.consumer_tag,
                delivery_tag: fields.delivery_tag.0,
                redelivered: fields.redelivered,
                exchange: content.exchange.clone(),
                routing_key: content.routing_key.clone(),
            }),
        );
        write_content(
            out,
            channel.0,
            60,
            &content.properties_raw,
            &content.body,
            frame_max,
        );
    });
}
