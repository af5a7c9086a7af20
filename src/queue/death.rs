//! The headers a dead-lettered message carries, as RabbitMQ 3.13 writes them
//! (docs/rabbitmq-compatibility.md §16): an `x-death` array of tables, newest
//! first, one per (queue, reason) with a `count`; `x-first-death-*` set once; `x-last-death-*`
//! set every time. The `expiration` property is removed and kept in the entry as
//! `original-expiration`. Pure: no I/O, no routing.

use bytes::Bytes;

use crate::protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};
use crate::queue::DeathReason;

/// One death of a message.
#[derive(Debug, Clone)]
pub struct Death {
    pub reason: DeathReason,
    /// The queue it left.
    pub queue: ShortStr,
    /// The exchange it had been published to, and its routing keys (with `CC`).
    pub exchange: ShortStr,
    pub routing_keys: Vec<Bytes>,
    /// Seconds since the epoch.
    pub time: u64,
}

fn text(value: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(value))
}

fn key(name: &'static str) -> ShortStr {
    ShortStr::from_static(name)
}

/// The routing keys a message was published with: its key and its `CC` header.
pub fn routing_keys(routing_key: &ShortStr, headers: Option<&FieldTable>) -> Vec<Bytes> {
    let mut keys = vec![routing_key.bytes().clone()];
    if let Some(FieldValue::Array(cc)) = headers.and_then(|headers| headers.get("CC")) {
        keys.extend(
            cc.iter()
                .filter_map(FieldValue::as_bytes)
                .map(Bytes::copy_from_slice),
        );
    }
    keys
}

/// Records `death` in the properties of a message being dead-lettered.
pub fn record(properties: &mut BasicProperties, death: &Death) {
    let original_expiration = properties.expiration.take();
    let headers = properties.headers.get_or_insert_with(FieldTable::new);
    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(deaths)) => deaths,
        _ => Vec::new(),
    };
    let same = deaths.iter().position(|entry| match entry {
        FieldValue::Table(table) => {
            field_is(table, "queue", death.queue.as_bytes())
                && field_is(table, "reason", death.reason.as_str().as_bytes())
        }
        _ => false,
    });
    let entry = match same {
        // The same queue and reason again: one more count, the rest as first recorded.
        Some(index) => match deaths.remove(index) {
            FieldValue::Table(mut table) => {
                let count = table.get("count").and_then(FieldValue::as_i64).unwrap_or(0);
                table.insert(key("count"), FieldValue::I64(count + 1));
                table
            }
            _ => unreachable!("matched a table above"),
        },
        None => new_entry(death, original_expiration.as_ref()),
    };
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert(key("x-death"), FieldValue::Array(deaths));
    for (name, value) in [
        ("x-first-death-exchange", death.exchange.as_bytes()),
        ("x-first-death-queue", death.queue.as_bytes()),
        ("x-first-death-reason", death.reason.as_str().as_bytes()),
    ] {
        if !headers.contains_key(name) {
            headers.insert(key(name), text(value));
        }
    }
    headers.insert(
        key("x-last-death-exchange"),
        text(death.exchange.as_bytes()),
    );
    headers.insert(key("x-last-death-queue"), text(death.queue.as_bytes()));
    headers.insert(
        key("x-last-death-reason"),
        text(death.reason.as_str().as_bytes()),
    );
}

/// A new `x-death` entry, keys sorted as RabbitMQ sorts them.
fn new_entry(death: &Death, original_expiration: Option<&ShortStr>) -> FieldTable {
    let mut entry = FieldTable::new();
    entry.insert(key("count"), FieldValue::I64(1));
    entry.insert(key("exchange"), text(death.exchange.as_bytes()));
    if let Some(expiration) = original_expiration {
        entry.insert(key("original-expiration"), text(expiration.as_bytes()));
    }
    entry.insert(key("queue"), text(death.queue.as_bytes()));
    entry.insert(key("reason"), text(death.reason.as_str().as_bytes()));
    entry.insert(
        key("routing-keys"),
        FieldValue::Array(
            death
                .routing_keys
                .iter()
                .map(|k| FieldValue::LongStr(k.clone()))
                .collect(),
        ),
    );
    entry.insert(key("time"), FieldValue::Timestamp(death.time));
    entry
}

fn field_is(table: &FieldTable, name: &str, expected: &[u8]) -> bool {
    table.get(name).and_then(FieldValue::as_bytes) == Some(expected)
}

/// RabbitMQ's cycle rule, on a message whose latest death is already recorded: routing it to
/// `queue` is a cycle if `queue` is in its death history and no death since then (that one
/// included) was a reject. Rejected messages never cycle: a client chose each step.
pub fn is_cycle(properties: &BasicProperties, reason: DeathReason, queue: &[u8]) -> bool {
    if reason == DeathReason::Rejected {
        return false;
    }
    let Some(FieldValue::Array(deaths)) = properties
        .headers
        .as_ref()
        .and_then(|headers| headers.get("x-death"))
    else {
        return false;
    };
    for entry in deaths {
        let FieldValue::Table(table) = entry else {
            continue;
        };
        if field_is(table, "reason", b"rejected") {
            return false;
        }
        if field_is(table, "queue", queue) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn death(reason: DeathReason, queue: &'static str) -> Death {
        Death {
            reason,
            queue: ShortStr::from_static(queue),
            exchange: ShortStr::from_static("ex"),
            routing_keys: vec![Bytes::from_static(b"rk")],
            time: 1_700_000_000,
        }
    }

    fn deaths(properties: &BasicProperties) -> Vec<FieldTable> {
        match properties.headers.as_ref().and_then(|h| h.get("x-death")) {
            Some(FieldValue::Array(values)) => values
                .iter()
                .map(|v| match v {
                    FieldValue::Table(t) => t.clone(),
                    other => panic!("not a table: {other:?}"),
                })
                .collect(),
            other => panic!("no x-death: {other:?}"),
        }
    }

    #[test]
    fn first_death_records_everything_and_moves_expiration() {
        let mut properties = BasicProperties {
            expiration: Some(ShortStr::from_static("500")),
            ..Default::default()
        };
        record(&mut properties, &death(DeathReason::Expired, "q1"));
        assert_eq!(properties.expiration, None);
        let entries = deaths(&properties);
        assert_eq!(entries.len(), 1);
        let keys: Vec<&str> = entries[0]
            .iter()
            .map(|(k, _)| std::str::from_utf8(k.as_bytes()).unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "count",
                "exchange",
                "original-expiration",
                "queue",
                "reason",
                "routing-keys",
                "time"
            ]
        );
        assert_eq!(entries[0].get("count"), Some(&FieldValue::I64(1)));
        let headers = properties.headers.as_ref().unwrap();
        assert_eq!(
            headers
                .get("x-first-death-queue")
                .and_then(FieldValue::as_bytes),
            Some(&b"q1"[..])
        );
        assert_eq!(
            headers
                .get("x-last-death-reason")
                .and_then(FieldValue::as_bytes),
            Some(&b"expired"[..])
        );
    }

    #[test]
    fn same_queue_and_reason_merge_and_move_to_the_front() {
        let mut properties = BasicProperties::default();
        record(&mut properties, &death(DeathReason::Rejected, "q1"));
        record(&mut properties, &death(DeathReason::Expired, "q2"));
        record(&mut properties, &death(DeathReason::Rejected, "q1"));
        let entries = deaths(&properties);
        assert_eq!(entries.len(), 2);
        assert!(field_is(&entries[0], "queue", b"q1"));
        assert_eq!(entries[0].get("count"), Some(&FieldValue::I64(2)));
        assert!(field_is(&entries[1], "queue", b"q2"));
        let headers = properties.headers.as_ref().unwrap();
        assert_eq!(
            headers
                .get("x-first-death-reason")
                .and_then(FieldValue::as_bytes),
            Some(&b"rejected"[..])
        );
        assert_eq!(
            headers
                .get("x-last-death-queue")
                .and_then(FieldValue::as_bytes),
            Some(&b"q1"[..])
        );
    }

    #[test]
    fn automatic_cycles_are_detected_and_rejects_break_them() {
        let mut properties = BasicProperties::default();
        record(&mut properties, &death(DeathReason::Expired, "a"));
        assert!(is_cycle(&properties, DeathReason::Expired, b"a"));
        assert!(!is_cycle(&properties, DeathReason::Expired, b"b"));
        record(&mut properties, &death(DeathReason::Expired, "b"));
        assert!(is_cycle(&properties, DeathReason::Expired, b"a"));
        record(&mut properties, &death(DeathReason::Rejected, "c"));
        assert!(!is_cycle(&properties, DeathReason::Rejected, b"a"));
        record(&mut properties, &death(DeathReason::Expired, "d"));
        // Between d and a there is a reject (c): not a cycle.
        assert!(!is_cycle(&properties, DeathReason::Expired, b"a"));
    }
}
