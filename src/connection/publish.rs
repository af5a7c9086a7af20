//! basic.publish: validate, route on this shard's metadata copy, and hand the message to the
//! owner shard of each target queue, one message per shard however many of its queues match.
//! Unroutable mandatory messages come back as basic.return before their confirm.

use std::rc::Rc;

use crate::connection::content::Completed;
use crate::connection::ConnectionShared;
use crate::exception::Exception;
use crate::ids::{ChannelId, QueueId, ShardId};
use crate::protocol::{
    write_content, write_method_frame, BasicPublish, BasicReturn, Method, ShortStr,
};
use crate::queue::message::Message;
use crate::shard::message::{ConfirmRef, ShardMessage};
use crate::shard::Shard;
use crate::vhost::rules::no_exchange;

/// basic.publish arrived: the content header and body follow.
pub fn start(
    connection: &ConnectionShared,
    channel: ChannelId,
    method: BasicPublish,
) -> Result<(), Exception> {
    if method.immediate {
        return Err(Exception::not_implemented("immediate=true"));
    }
    let mut state = connection.state.borrow_mut();
    let open = state
        .channels
        .get_mut(&channel.0)
        .expect("dispatch checked the channel is open");
    open.content = crate::connection::content::ContentState::AwaitingHeader(method);
    Ok(())
}

/// The message is complete: buffer it (transaction) or route it now.
pub fn complete(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    completed: Completed,
) -> Result<(), Exception> {
    {
        let mut state = connection.state.borrow_mut();
        let open = state
            .channels
            .get_mut(&channel.0)
            .expect("content arrives only on open channels");
        if let Some(transaction) = open.transaction.as_mut() {
            transaction.publishes.push(completed);
            return Ok(());
        }
    }
    route_and_send(shard, connection, channel, completed)
}

pub fn route_and_send(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    completed: Completed,
) -> Result<(), Exception> {
    let Completed {
        publish,
        header,
        body,
    } = completed;
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let registry = shard.registry.borrow();
    let vhost = registry
        .vhost(&state.vhost)
        .expect("the connection's vhost exists while it is open");
    let vhost_name = state.vhost.to_string_lossy();
    let Some(exchange) = vhost.exchange(&publish.exchange) else {
        return Err(no_exchange(&publish.exchange, &vhost_name));
    };
    if exchange.definition.internal {
        return Err(Exception::access_refused(format!(
            "cannot publish to internal exchange '{}' in vhost '{vhost_name}'",
            publish.exchange
        )));
    }
    let mut queues = std::mem::take(&mut state.route_queues);
    vhost.route(
        exchange,
        &publish.routing_key,
        header.properties.headers.as_ref(),
        &mut state.route_scratch,
        &mut queues,
    );
    let frame_max = state.frame_max;
    let open = state
        .channels
        .get_mut(&channel.0)
        .expect("content arrives only on open channels");

    if queues.is_empty() {
        if publish.mandatory {
            connection.output.write(|out| {
                write_method_frame(
                    out,
                    channel.0,
                    &Method::BasicReturn(BasicReturn {
                        reply_code: 312,
                        reply_text: ShortStr::from_static("NO_ROUTE"),
                        exchange: publish.exchange.clone(),
                        routing_key: publish.routing_key.clone(),
                    }),
                );
                write_content(out, channel.0, 60, &header.properties_raw, &body, frame_max);
            });
        }
        if let Some(tracker) = open.confirm.as_mut() {
            tracker.publish(0);
            crate::connection::events::write_confirms(connection, channel, tracker);
        }
        state.route_queues = queues;
        return Ok(());
    }

    // Group the target queues by owner shard: one message per shard.
    let mut groups: Vec<(ShardId, Vec<QueueId>)> = Vec::new();
    for id in &queues {
        let owner = vhost
            .queue_by_id(*id)
            .expect("routing returns existing queues")
            .owner_shard;
        match groups.iter_mut().find(|(shard, _)| *shard == owner) {
            Some((_, ids)) => ids.push(*id),
            None => groups.push((owner, vec![*id])),
        }
    }
    let seq = open
        .confirm
        .as_mut()
        .map(|tracker| tracker.publish(u16::try_from(groups.len()).expect("shard count fits u16")));
    let message = Message {
        exchange: publish.exchange,
        routing_key: publish.routing_key,
        properties: header.properties,
        properties_raw: header.properties_raw,
        body,
    };
    let confirm = seq.map(|seq| ConfirmRef {
        connection: connection.id,
        channel,
        seq,
    });
    let last = groups.len() - 1;
    let mut message = Some(message);
    for (index, (owner, ids)) in groups.into_iter().enumerate() {
        let message = if index == last {
            message.take().expect("moved only for the last group")
        } else {
            message
                .as_ref()
                .expect("present until the last group")
                .clone()
        };
        shard.send(
            owner,
            ShardMessage::Publish {
                queues: ids,
                message,
                confirm,
            },
        );
    }
    state.route_queues = queues;
    Ok(())
}
