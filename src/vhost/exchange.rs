//! An exchange as every shard sees it: its definition and its binding table. Pure data; the
//! rules for changing it live in `rules.rs`, and only the metadata shard originates changes.

use crate::ids::{ExchangeId, QueueId};
use crate::protocol::{FieldTable, FieldValue, ShortStr};
use crate::routing::{BindingTable, ExchangeKind};

/// Where a binding leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    Queue(QueueId),
    Exchange(ExchangeId),
}

/// The declared properties of an exchange, as carried by metadata deltas.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeDefinition {
    pub id: ExchangeId,
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

impl ExchangeDefinition {
    /// The `alternate-exchange` argument, if it names an exchange.
    pub fn alternate_exchange(&self) -> Option<ShortStr> {
        match self.arguments.get("alternate-exchange") {
            Some(FieldValue::LongStr(name)) => ShortStr::try_from_bytes(name.clone()),
            _ => None,
        }
    }
}

/// An exchange with its bindings (as source).
#[derive(Debug)]
pub struct Exchange {
    pub definition: ExchangeDefinition,
    pub alternate_exchange: Option<ShortStr>,
    pub bindings: BindingTable<Destination, FieldValue>,
}

impl Exchange {
    pub fn new(definition: ExchangeDefinition) -> Exchange {
        let alternate_exchange = definition.alternate_exchange();
        let bindings = BindingTable::new(definition.kind);
        Exchange {
            definition,
            alternate_exchange,
            bindings,
        }
    }

    pub fn id(&self) -> ExchangeId {
        self.definition.id
    }

    pub fn name(&self) -> &ShortStr {
        &self.definition.name
    }
}
