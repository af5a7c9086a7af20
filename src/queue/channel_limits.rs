//! Channel-wide prefetch (basic.qos global=true), RabbitMQ 3.x semantics: one limit shared by
//! every consumer of the channel. Kept per shard: the limit is exact for the consumers of a
//! channel whose queues live on one shard, and applies per shard otherwise.

use crate::fast_map::FastMap;

use crate::ids::QueueId;
use crate::queue::consumer::ChannelKey;

#[derive(Debug, Default)]
pub struct ChannelLimit {
    /// 0 = unlimited.
    pub prefetch_count: u16,
    pub unacked_count: u32,
    /// Queues on this shard with a consumer of this channel, to re-dispatch when room opens.
    pub queues: Vec<QueueId>,
}

impl ChannelLimit {
    pub fn has_capacity(&self) -> bool {
        self.prefetch_count == 0 || self.unacked_count < u32::from(self.prefetch_count)
    }
}

#[derive(Debug, Default)]
pub struct ChannelLimits {
    limits: FastMap<ChannelKey, ChannelLimit>,
}

impl ChannelLimits {
    pub fn get(&self, key: &ChannelKey) -> Option<&ChannelLimit> {
        self.limits.get(key)
    }

    pub fn entry(&mut self, key: ChannelKey) -> &mut ChannelLimit {
        self.limits.entry(key).or_default()
    }

    pub fn has_capacity(&self, key: &ChannelKey) -> bool {
        self.limits.get(key).is_none_or(ChannelLimit::has_capacity)
    }

    pub fn delivered(&mut self, key: ChannelKey) {
        if let Some(limit) = self.limits.get_mut(&key) {
            limit.unacked_count += 1;
        }
    }

    pub fn settled(&mut self, key: &ChannelKey, count: u32) {
        if let Some(limit) = self.limits.get_mut(key) {
            limit.unacked_count = limit.unacked_count.saturating_sub(count);
        }
    }

    pub fn remove(&mut self, key: &ChannelKey) -> Option<ChannelLimit> {
        self.limits.remove(key)
    }
}
