//! A queue's metadata as every shard sees it: name, owner shard and declared properties. The
//! queue's messages and consumers live only on the owner shard (`crate::queue`).

use crate::ids::{ConnectionId, QueueId, ShardId};
use crate::protocol::{FieldTable, ShortStr};

#[derive(Debug, Clone, PartialEq)]
pub struct QueueDefinition {
    pub id: QueueId,
    pub name: ShortStr,
    /// The shard that holds the queue's messages and consumers, fixed at declare time.
    pub owner_shard: ShardId,
    pub durable: bool,
    /// The declaring connection, for exclusive queues.
    pub exclusive_owner: Option<ConnectionId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}
