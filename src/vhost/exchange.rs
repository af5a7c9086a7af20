//! An exchange as every shard sees it: its definition and its binding table. Pure data; the
//! rules for changing it live in `rules.rs`, and only the metadata shard originates changes.

use crate::ids::{ExchangeId, QueueId};
use crate::protocol::{FieldTable, FieldValue, ShortStr};
use crate::routing::{BindingTable, ExchangeKind, HashProperty, HashSource};

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
    /// `x-delayed-message` (the delayed-message plugin's type): `kind` is its
    /// `x-delayed-type`, which its bindings route by; a message with a positive `x-delay`
    /// header waits in the shard's delay store first (`shard::delayed`).
    pub delayed: bool,
    pub arguments: FieldTable,
}

/// The exchange type a delayed exchange is declared with.
pub const DELAYED_TYPE: &str = "x-delayed-message";

impl ExchangeDefinition {
    /// The type as declared and reported.
    pub fn type_name(&self) -> &'static str {
        if self.delayed {
            DELAYED_TYPE
        } else {
            self.kind.as_str()
        }
    }

    /// The `alternate-exchange` argument, if it names an exchange.
    pub fn alternate_exchange(&self) -> Option<ShortStr> {
        match self.arguments.get("alternate-exchange") {
            Some(FieldValue::LongStr(name)) => ShortStr::try_from_bytes(name.clone()),
            _ => None,
        }
    }

    /// What a consistent-hash exchange hashes, from its `hash-header` or `hash-property`
    /// argument (the routing key for other kinds). Err is the text of the plugin's 406 refusal;
    /// a value that is not a string, which the plugin does not expect, is refused too.
    pub fn hash_source(&self) -> Result<HashSource, String> {
        if self.kind != ExchangeKind::ConsistentHash {
            return Ok(HashSource::RoutingKey);
        }
        let header = string_argument(&self.arguments, "hash-header")?;
        let property = string_argument(&self.arguments, "hash-property")?;
        match (header, property) {
            (None, None) => Ok(HashSource::RoutingKey),
            (Some(header), None) => Ok(HashSource::Header(header.into())),
            (None, Some(property)) => HashProperty::parse(property)
                .map(HashSource::Property)
                .ok_or_else(|| {
                    format!(
                        "Unsupported property: {}",
                        String::from_utf8_lossy(property)
                    )
                }),
            (Some(_), Some(_)) => {
                Err("hash-header and hash-property are mutually exclusive".to_string())
            }
        }
    }
}

/// The bytes of a longstr argument, None if absent.
fn string_argument<'a>(arguments: &'a FieldTable, name: &str) -> Result<Option<&'a [u8]>, String> {
    match arguments.get(name) {
        None => Ok(None),
        Some(FieldValue::LongStr(value)) => Ok(Some(value)),
        Some(_) => Err(format!("Invalid {name}: expected a string")),
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
        let bindings = match definition.kind {
            // Declare refuses invalid arguments and loading checks stored ones, so the
            // fallback to the routing key is never taken.
            ExchangeKind::ConsistentHash => {
                BindingTable::consistent_hash(definition.hash_source().unwrap_or_default())
            }
            kind => BindingTable::new(kind),
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn definition(kind: ExchangeKind, arguments: &[(&str, FieldValue)]) -> ExchangeDefinition {
        ExchangeDefinition {
            delayed: false,
            id: ExchangeId(1000),
            name: ShortStr::from_static("x"),
            kind,
            durable: true,
            auto_delete: false,
            internal: false,
            arguments: arguments
                .iter()
                .map(|(name, value)| {
                    let name = ShortStr::copy_from_str(name).expect("short");
                    (name, value.clone())
                })
                .collect(),
        }
    }

    fn text(value: &'static str) -> FieldValue {
        FieldValue::LongStr(Bytes::from_static(value.as_bytes()))
    }

    #[test]
    fn hash_source_follows_the_plugins_arguments() {
        let chash = ExchangeKind::ConsistentHash;
        let source = |arguments: &[(&str, FieldValue)]| definition(chash, arguments).hash_source();
        assert_eq!(source(&[]), Ok(HashSource::RoutingKey));
        assert_eq!(
            source(&[("hash-header", text("customer"))]),
            Ok(HashSource::Header(b"customer".as_slice().into()))
        );
        for (name, property) in [
            ("message_id", HashProperty::MessageId),
            ("correlation_id", HashProperty::CorrelationId),
            ("timestamp", HashProperty::Timestamp),
        ] {
            let value = FieldValue::LongStr(Bytes::copy_from_slice(name.as_bytes()));
            let expected = Ok(HashSource::Property(property));
            assert_eq!(source(&[("hash-property", value)]), expected);
        }
        assert_eq!(
            source(&[("hash-property", text("app_id"))]),
            Err("Unsupported property: app_id".to_string())
        );
        let both = [("hash-header", text("h")), ("hash-property", text("bogus"))];
        assert_eq!(
            source(&both),
            Err("hash-header and hash-property are mutually exclusive".to_string())
        );
        assert_eq!(
            source(&[("hash-header", FieldValue::I32(1))]),
            Err("Invalid hash-header: expected a string".to_string())
        );
        let direct = definition(ExchangeKind::Direct, &both);
        assert_eq!(direct.hash_source(), Ok(HashSource::RoutingKey), "ignored");
    }
}
