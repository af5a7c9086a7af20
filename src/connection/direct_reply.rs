//! Direct reply-to (docs/rabbitmq-compatibility.md §13): RPC replies that skip queues. The
//! requester consumes the pseudo-queue with no-ack on a channel; its requests published on that
//! channel get `reply-to: amq.rabbitmq.reply-to.<token>`, where the token names the connection
//! and channel plus a per-connection secret so a token cannot be forged. A responder publishing
//! to the default exchange with that routing key reaches the requester's channel directly, on
//! whatever shard it lives.

use std::rc::Rc;

use bytes::Bytes;

use crate::connection::{events, ConnectionShared};
use crate::exception::Exception;
use crate::ids::{ChannelId, ConnectionId};
use crate::protocol::{BasicConsumeOk, BasicProperties, Method, ShortStr};
use crate::queue::message::Content;
use crate::shard::message::{ConnectionEvent, ShardMessage};
use crate::shard::Shard;

/// The pseudo-queue a requester consumes from.
pub const REPLY_QUEUE: &str = "amq.rabbitmq.reply-to";
/// Prefix of the rewritten reply-to property and of the responder's routing key.
pub const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// A decoded reply token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyToken {
    pub connection: ConnectionId,
    pub channel: ChannelId,
    pub secret: u64,
}

impl ReplyToken {
    pub fn encode(self) -> ShortStr {
        let text = format!(
            "{REPLY_PREFIX}{:016x}{:04x}{:016x}",
            self.connection.as_u64(),
            self.channel.0,
            self.secret
        );
        ShortStr::copy_from_str(&text).expect("reply tokens are short")
    }

    pub fn decode(name: &[u8]) -> Option<ReplyToken> {
        let hex = name.strip_prefix(REPLY_PREFIX.as_bytes())?;
        if hex.len() != 36 {
            return None;
        }
        let text = std::str::from_utf8(hex).ok()?;
        Some(ReplyToken {
            connection: ConnectionId::from_u64(u64::from_str_radix(&text[..16], 16).ok()?),
            channel: ChannelId(u16::from_str_radix(&text[16..20], 16).ok()?),
            secret: u64::from_str_radix(&text[20..], 16).ok()?,
        })
    }
}

/// basic.consume on the pseudo-queue: registers the channel's reply consumer.
pub fn consume(
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    tag: ShortStr,
    no_ack: bool,
    nowait: bool,
) -> Result<(), Exception> {
    if !no_ack {
        return Err(Exception::precondition_failed(
            "reply consumer cannot acknowledge",
        ));
    }
    let mut state = connection.state.borrow_mut();
    let open = state
        .channels
        .get_mut(&channel.0)
        .expect("dispatch checked the channel is open");
    if open.direct_reply_consumer.is_some() {
        return Err(Exception::precondition_failed("reply consumer already set"));
    }
    open.direct_reply_consumer = Some(tag.clone());
    drop(state);
    if !nowait {
        connection.write_method(
            channel.0,
            &Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }),
        );
    }
    Ok(())
}

/// A request published with `reply-to: amq.rabbitmq.reply-to` gets the channel's token.
/// Returns the rewritten properties, or None if the message does not ask for direct reply.
pub fn rewrite_reply_to(
    connection: &ConnectionShared,
    channel: ChannelId,
    properties: &BasicProperties,
) -> Result<Option<(BasicProperties, Bytes)>, Exception> {
    if properties.reply_to.as_ref().map(ShortStr::as_bytes) != Some(REPLY_QUEUE.as_bytes()) {
        return Ok(None);
    }
    let state = connection.state.borrow();
    let has_consumer = state
        .channels
        .get(&channel.0)
        .is_some_and(|open| open.direct_reply_consumer.is_some());
    if !has_consumer {
        return Err(Exception::precondition_failed(
            "fast reply consumer does not exist",
        ));
    }
    let token = ReplyToken {
        connection: connection.id,
        channel,
        secret: connection.reply_secret,
    };
    let mut rewritten = properties.clone();
    rewritten.reply_to = Some(token.encode());
    let raw = rewritten.to_raw();
    Ok(Some((rewritten, raw)))
}

/// A responder published to a reply token: forward to the requester's shard. Unknown or
/// vanished requesters drop the reply silently, as RabbitMQ does.
pub fn forward(shard: &Rc<Shard>, token: ReplyToken, content: Content) {
    shard.send(
        token.connection.shard(),
        ShardMessage::Connection {
            connection: token.connection,
            event: ConnectionEvent::DirectReply {
                channel: token.channel,
                secret: token.secret,
                content,
            },
        },
    );
}

/// Delivers a reply on the requester's channel, if it still has its reply consumer.
pub fn deliver(connection: &ConnectionShared, channel: ChannelId, secret: u64, content: Content) {
    if secret != connection.reply_secret {
        return;
    }
    let mut state = connection.state.borrow_mut();
    let frame_max = state.frame_max;
    let Some(open) = state.channels.get_mut(&channel.0) else {
        return;
    };
    let Some(tag) = open
        .direct_reply_consumer
        .clone()
        .filter(|_| open.is_open())
    else {
        return;
    };
    let delivery_tag = open.next_tag();
    drop(state);
    let fields = events::DeliveryFields {
        consumer_tag: tag,
        delivery_tag,
        redelivered: false,
    };
    events::write_delivery(connection, channel, fields, content, frame_max);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ShardId;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let token = ReplyToken {
            connection: ConnectionId::new(ShardId(1), 42),
            channel: ChannelId(7),
            secret: 0xdead_beef_0123_4567,
        };
        let name = token.encode();
        assert!(name.as_bytes().starts_with(REPLY_PREFIX.as_bytes()));
        assert_eq!(ReplyToken::decode(name.as_bytes()), Some(token));
        assert_eq!(ReplyToken::decode(b"amq.rabbitmq.reply-to.xyz"), None);
        assert_eq!(ReplyToken::decode(b"other"), None);
    }
}
