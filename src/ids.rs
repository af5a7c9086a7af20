//! Identifier newtypes shared by every layer. They are constructed on purpose (no `From<int>`,
//! no `Deref`), so a queue id can never be passed where a connection id is expected.

use std::fmt;

/// Index of a shard (one glommio executor per core), 0-based and dense. Never glommio's
/// process-global executor id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

impl ShardId {
    /// The shard that owns metadata (vhosts, exchanges, queues, bindings).
    pub const METADATA: ShardId = ShardId(0);

    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard-{}", self.0)
    }
}

/// A connection, unique for the life of the process. The owning shard is encoded in the top
/// 16 bits so any shard can tell where to send a delivery without a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnectionId(u64);

impl ConnectionId {
    const SHARD_SHIFT: u32 = 48;

    pub fn new(shard: ShardId, sequence: u64) -> ConnectionId {
        assert!(sequence < (1 << Self::SHARD_SHIFT));
        ConnectionId((u64::from(shard.0) << Self::SHARD_SHIFT) | sequence)
    }

    /// The operator's requests made on `shard` (management API, definitions import): sequence
    /// 0, which no socket gets (they count from 1). It owns no exclusive queue and no consumer.
    pub fn operator(shard: ShardId) -> ConnectionId {
        ConnectionId::new(shard, 0)
    }

    pub fn shard(self) -> ShardId {
        let shard = self.0 >> Self::SHARD_SHIFT;
        ShardId(u16::try_from(shard).expect("the shard index was a u16 when encoded"))
    }

    pub fn as_u64(self) -> u64 {
        self.0
    }

    pub fn from_u64(raw: u64) -> ConnectionId {
        ConnectionId(raw)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            self.shard().0,
            self.0 & ((1 << Self::SHARD_SHIFT) - 1)
        )
    }
}

/// A queue, assigned by the metadata shard, never reused within a process. Monotonic, so an
/// owner shard can tell a queue that is not installed yet from one already deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u64);

/// An exchange, assigned by the metadata shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExchangeId(pub u64);

/// An AMQP channel number on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(pub u16);

/// A delivery tag: per channel, from 1, shared by basic.deliver and basic.get-ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeliveryTag(pub u64);

/// A message's position in its queue: assigned at enqueue, increasing, used to requeue a
/// message at its original place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MessageId(pub u64);

/// Publish sequence number of a channel in confirm mode, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishSeq(pub u64);
