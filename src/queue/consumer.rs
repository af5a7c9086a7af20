//! A consumer as its queue's owner shard sees it: who it is, and how many more deliveries it
//! may receive (prefetch, RabbitMQ semantics, and flow credit from the consumer's connection).

use crate::ids::{ChannelId, ConnectionId};
use crate::protocol::{FieldTable, ShortStr};

/// Deliveries a consumer may have in flight towards its connection's socket before the
/// connection returns credit. Bounds the memory a slow consumer socket can pin, including
/// for no-ack consumers, which prefetch does not limit.
pub const FLOW_CREDIT_INITIAL: u32 = 2000;

/// Identifies a consumer across shards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConsumerKey {
    pub connection: ConnectionId,
    pub channel: ChannelId,
    pub tag: ShortStr,
}

/// Identifies a channel across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    pub connection: ConnectionId,
    pub channel: ChannelId,
}

impl ConsumerKey {
    pub fn channel_key(&self) -> ChannelKey {
        ChannelKey {
            connection: self.connection,
            channel: self.channel,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Consumer {
    pub key: ConsumerKey,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch (basic.qos global=false at consume time); 0 = unlimited.
    pub prefetch_count: u16,
    /// Deliveries not yet acked, rejected or requeued.
    pub unacked_count: u32,
    pub flow_credit: u32,
    /// `x-priority` of basic.consume: higher first, lower only when the higher have no room.
    pub priority: i32,
    /// basic.consume's arguments, as given (the management API shows them).
    pub arguments: FieldTable,
}

impl Consumer {
    /// True if the consumer's own limits allow one more delivery.
    pub fn has_capacity(&self) -> bool {
        if self.flow_credit == 0 {
            return false;
        }
        self.no_ack
            || self.prefetch_count == 0
            || self.unacked_count < u32::from(self.prefetch_count)
    }
}
