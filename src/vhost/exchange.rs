//! An exchange as every shard sees it: its definition and its binding table. Pure data; the
//! rules for changing it live in `rules.rs`, and only the metadata shard originates changes.

use std::cell::Cell;

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

/// The cache settings of a message-deduplication exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupSettings {
    /// `x-cache-size`: header values kept at most.
    pub cache_size: u64,
    /// `x-cache-ttl`: how long a value is kept, milliseconds; None: until evicted.
    pub cache_ttl_ms: Option<u64>,
}

/// The plugin's refusals (`RabbitMQMessageDeduplication.Exchange.validate`).
const CACHE_SIZE_REFUSED: &str =
    "Missing or invalid argument, 'x-cache-size' must be an integer greater than 0";
const CACHE_TTL_REFUSED: &str = "Invalid argument, 'x-cache-ttl' must be an integer greater than 0";
const CACHE_PERSISTENCE_REFUSED: &str =
    "Invalid argument, 'x-cache-persistence' must be either 'disk' or 'memory'";

impl ExchangeDefinition {
    /// Checks the arguments of the kinds that take some (consistent hash, deduplication); Err
    /// is the text of the 406 refusal.
    pub fn check_arguments(&self) -> Result<(), String> {
        self.hash_source()?;
        self.dedup_settings()?;
        Ok(())
    }

    /// A deduplication exchange's cache settings, as the plugin checks them: `x-cache-size`
    /// required, `x-cache-ttl` optional, both integers greater than 0 (or strings of one);
    /// `x-cache-persistence` `memory` or `disk` (both kept in memory here). None for other
    /// kinds.
    pub fn dedup_settings(&self) -> Result<Option<DedupSettings>, String> {
        if self.kind != ExchangeKind::MessageDeduplication {
            return Ok(None);
        }
        let cache_size = self
            .arguments
            .get("x-cache-size")
            .and_then(positive_integer)
            .ok_or_else(|| CACHE_SIZE_REFUSED.to_string())?;
        let cache_ttl_ms = match self.arguments.get("x-cache-ttl") {
            None => None,
            Some(value) => {
                Some(positive_integer(value).ok_or_else(|| CACHE_TTL_REFUSED.to_string())?)
            }
        };
        match self.arguments.get("x-cache-persistence") {
            None => {}
            Some(value) if matches!(value.as_bytes(), Some(b"memory" | b"disk")) => {}
            Some(_) => return Err(CACHE_PERSISTENCE_REFUSED.to_string()),
        }
        Ok(Some(DedupSettings {
            cache_size,
            cache_ttl_ms,
        }))
    }
}

/// An integer argument greater than 0, or a long string holding one.
fn positive_integer(value: &FieldValue) -> Option<u64> {
    let int = match value {
        FieldValue::LongStr(text) => std::str::from_utf8(text).ok()?.parse::<i64>().ok()?,
        other => other.as_i64()?,
    };
    u64::try_from(int).ok().filter(|int| *int > 0)
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
    /// Messages routed through this copy of the exchange (statistics, not metadata).
    pub counters: ExchangeCells,
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
            counters: ExchangeCells::default(),
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
    fn dedup_settings_follow_the_plugins_checks() {
        let dedup = ExchangeKind::MessageDeduplication;
        let settings =
            |arguments: &[(&str, FieldValue)]| definition(dedup, arguments).dedup_settings();
        assert_eq!(
            settings(&[("x-cache-size", FieldValue::I32(5))]),
            Ok(Some(DedupSettings {
                cache_size: 5,
                cache_ttl_ms: None
            }))
        );
        assert_eq!(
            settings(&[
                ("x-cache-size", text("100")),
                ("x-cache-ttl", FieldValue::I64(2000)),
                ("x-cache-persistence", text("disk")),
            ]),
            Ok(Some(DedupSettings {
                cache_size: 100,
                cache_ttl_ms: Some(2000)
            }))
        );
        for bad in [
            vec![],
            vec![("x-cache-size", FieldValue::I32(0))],
            vec![("x-cache-size", text("ten"))],
            vec![("x-cache-size", FieldValue::F64(3.0))],
        ] {
            assert_eq!(settings(&bad), Err(CACHE_SIZE_REFUSED.to_string()));
        }
        let size = ("x-cache-size", FieldValue::I32(5));
        assert_eq!(
            settings(&[size.clone(), ("x-cache-ttl", FieldValue::I32(-1))]),
            Err(CACHE_TTL_REFUSED.to_string())
        );
        assert_eq!(
            settings(&[size, ("x-cache-persistence", text("tape"))]),
            Err(CACHE_PERSISTENCE_REFUSED.to_string())
        );
        let fanout = definition(ExchangeKind::Fanout, &[]);
        assert_eq!(fanout.dedup_settings(), Ok(None));
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

/// Messages through an exchange: `publish_in` were published to it, `publish_out` of them
/// routed to at least one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExchangeCounters {
    pub publish_in: u64,
    pub publish_out: u64,
}

/// An exchange's counters on one shard's registry copy (`shard::stats` collects them): `Cell`s,
/// so routing, which borrows the registry shared, can count.
#[derive(Debug, Default)]
pub struct ExchangeCells {
    pub publish_in: Cell<u64>,
    pub publish_out: Cell<u64>,
}

impl ExchangeCells {
    /// One message published to the exchange; `routed` if it reached a queue.
    pub fn published(&self, routed: bool) {
        self.publish_in.set(self.publish_in.get() + 1);
        if routed {
            self.publish_out.set(self.publish_out.get() + 1);
        }
    }

    pub fn snapshot(&self) -> ExchangeCounters {
        ExchangeCounters {
            publish_in: self.publish_in.get(),
            publish_out: self.publish_out.get(),
        }
    }
}
