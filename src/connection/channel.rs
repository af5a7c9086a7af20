//! One AMQP channel's state on its connection's shard: delivery tags and the deliveries not yet
//! settled, its consumers, prefetch settings, confirm or transaction mode, the content being
//! received, and the last queue it declared.

use crate::fast_map::{FastMap, FastSet};
use std::collections::BTreeMap;

use crate::connection::confirm::ConfirmTracker;
use crate::connection::content::ContentState;
use crate::ids::{ChannelId, DeliveryTag, QueueId, ShardId};
use crate::protocol::ShortStr;
use crate::queue::SettleAction;
use crate::shard::message::{AckDeadline, UnackedDelivery};
use crate::shard::stats::ChannelCounters;

/// Consumers per channel at most (RabbitMQ's consumer_max_per_channel is unlimited by default;
/// ours is a named bound).
pub const CONSUMER_COUNT_MAX: usize = 65_535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and wait for close-ok; everything else is dropped.
    Closing,
}

#[derive(Debug, Clone)]
pub struct ChannelConsumer {
    pub owner: ShardId,
    pub queue: QueueId,
    pub no_ack: bool,
    /// The consumer timeout of its deliveries, milliseconds (`ConsumeOk::ack_timeout_ms`).
    pub ack_timeout_ms: Option<u64>,
}

/// A transaction's buffered work (tx.select mode).
#[derive(Debug, Default)]
pub struct Transaction {
    /// Settlements to apply at commit; rollback puts the deliveries back to unacked.
    pub settlements: Vec<(UnackedDelivery, SettleAction)>,
    /// Publishes to route at commit.
    pub publishes: Vec<crate::connection::content::Completed>,
}

pub struct Channel {
    pub id: ChannelId,
    pub state: ChannelState,
    next_delivery_tag: u64,
    /// Ack-mode deliveries not yet settled, by tag.
    pub unacked: BTreeMap<u64, UnackedDelivery>,
    pub consumers: FastMap<ShortStr, ChannelConsumer>,
    /// Queues (with their owners) that may hold consumers or unacked messages of this
    /// channel, to notify when it closes.
    pub touched_queues: FastSet<(ShardId, QueueId)>,
    /// basic.qos global=false: the limit for consumers created from now on.
    pub prefetch_count: u16,
    /// basic.qos global=true: one limit for all the channel's consumers.
    pub global_prefetch_count: u16,
    pub confirm: Option<ConfirmTracker>,
    pub transaction: Option<Transaction>,
    pub content: ContentState,
    pub last_declared_queue: Option<ShortStr>,
    /// The consumer tag of this channel's direct reply-to consumer.
    pub direct_reply_consumer: Option<ShortStr>,
    /// Messages through the channel, for the management API (`shard::stats`).
    pub counters: ChannelCounters,
}

impl Channel {
    pub fn new(id: ChannelId) -> Channel {
        Channel {
            id,
            state: ChannelState::Open,
            next_delivery_tag: 1,
            unacked: BTreeMap::new(),
            consumers: FastMap::default(),
            touched_queues: FastSet::default(),
            prefetch_count: 0,
            global_prefetch_count: 0,
            confirm: None,
            transaction: None,
            content: ContentState::Idle,
            last_declared_queue: None,
            direct_reply_consumer: None,
            counters: ChannelCounters::default(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.state == ChannelState::Open
    }

    /// The next delivery tag; tags are per channel and never reset.
    pub fn next_tag(&mut self) -> DeliveryTag {
        let tag = DeliveryTag(self.next_delivery_tag);
        self.next_delivery_tag += 1;
        tag
    }

    /// The deadline of the oldest unacknowledged delivery, the one RabbitMQ's consumer timeout
    /// looks at: tags grow with delivery time, so it is the first.
    pub fn oldest_ack_deadline(&self) -> Option<AckDeadline> {
        self.unacked
            .values()
            .next()
            .and_then(|delivery| delivery.ack_deadline)
    }

    /// Removes and returns the deliveries an ack/nack/reject names, RabbitMQ rules: tag 0
    /// with multiple means all; multiple means every tag up to N, and N itself must be
    /// outstanding; otherwise exactly N. None if the tag is unknown (406).
    pub fn take_settled(&mut self, tag: u64, multiple: bool) -> Option<Vec<UnackedDelivery>> {
        if multiple && tag == 0 {
            return Some(std::mem::take(&mut self.unacked).into_values().collect());
        }
        if !self.unacked.contains_key(&tag) {
            return None;
        }
        if multiple {
            let rest = self.unacked.split_off(&(tag + 1));
            let settled = std::mem::replace(&mut self.unacked, rest);
            Some(settled.into_values().collect())
        } else {
            self.unacked.remove(&tag).map(|delivery| vec![delivery])
        }
    }
}
