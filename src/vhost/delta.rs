//! Metadata deltas: the only way metadata changes. The metadata shard validates a request,
//! turns it into deltas, applies them to its own copy and broadcasts them; every other shard
//! applies the same deltas in the same order, so all copies stay equal version by version.

use crate::protocol::{FieldTable, ShortStr};
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::exchange::ExchangeDefinition;
use crate::vhost::queue_definition::QueueDefinition;

/// A binding named by its ends, as declared.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingDefinition {
    pub source: ShortStr,
    pub destination: DestinationName,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DestinationName {
    Queue(ShortStr),
    Exchange(ShortStr),
}

#[derive(Debug, Clone, PartialEq)]
pub enum MetaDelta {
    ExchangeDeclared(ExchangeDefinition),
    /// Also removes every binding from or to the exchange.
    ExchangeDeleted {
        name: ShortStr,
    },
    QueueDeclared(QueueDefinition),
    /// Also removes every binding to the queue.
    QueueDeleted {
        name: ShortStr,
    },
    Bound(BindingDefinition),
    Unbound(BindingDefinition),
    /// Vhosts, users, permissions, policies, limits (`access`): applied to the registry as a
    /// whole, not to the update's vhost.
    Access(AccessDelta),
}

/// One atomic metadata change of one vhost.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaUpdate {
    pub version: u64,
    pub vhost: ShortStr,
    pub deltas: Vec<MetaDelta>,
}
