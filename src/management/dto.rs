//! Shared pieces of the JSON the endpoints answer with: AMQP tables as JSON objects, rates as
//! `{"rate": …}`, `message_stats` objects, object names as RabbitMQ builds them, timestamps.

use std::net::SocketAddr;

use serde_json::{json, Map, Value};

use crate::protocol::{FieldTable, FieldValue, ShortStr};

/// A short string as JSON (lossy for invalid UTF-8, which names may hold).
pub fn short(text: &ShortStr) -> Value {
    Value::String(text.to_string_lossy())
}

/// An AMQP table as a JSON object (docs/management-api.md, "Conventions").
pub fn field_table(table: &FieldTable) -> Value {
    crate::vhost::json_table::table_to_json(table)
}

/// Binding arguments (already parsed into pairs) as a JSON object.
pub fn argument_pairs(pairs: &[(Vec<u8>, FieldValue)]) -> Value {
    let mut out = Map::new();
    for (key, value) in pairs {
        out.insert(
            String::from_utf8_lossy(key).into_owned(),
            field_value(value),
        );
    }
    Value::Object(out)
}

pub fn field_value(value: &FieldValue) -> Value {
    crate::vhost::json_table::value_to_json(value)
}

/// `{"rate": rate}`.
pub fn details(rate: f64) -> Value {
    json!({ "rate": rate })
}

/// A `message_stats` object: each counter that saw activity, with its `_details` rate.
pub fn message_stats(counters: &[(&str, u64, f64)]) -> Value {
    let mut out = Map::new();
    for (name, count, rate) in counters {
        if *count == 0 && *rate == 0.0 {
            continue;
        }
        out.insert((*name).to_owned(), json!(count));
        out.insert(format!("{name}_details"), details(*rate));
    }
    Value::Object(out)
}

/// A connection's name and URL key: `"<peer> -> <local>"` (IPv6 in brackets).
pub fn connection_name(peer: SocketAddr, local: SocketAddr) -> String {
    format!("{peer} -> {local}")
}

/// A channel's name: `"<connection name> (<number>)"`.
pub fn channel_name(connection_name: &str, number: u16) -> String {
    format!("{connection_name} ({number})")
}

/// Milliseconds since the epoch as RabbitMQ's `idle_since` text,
/// `2024-05-02T10:11:12.123+00:00`.
pub fn timestamp_text(epoch_ms: u64) -> String {
    let seconds = epoch_ms / 1000;
    let days = i64::try_from(seconds / 86_400).unwrap_or(0);
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        epoch_ms % 1000
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = u32::try_from(day_of_year - (153 * month_index + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    })
    .unwrap_or(1);
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_read_as_rabbitmq_writes_them() {
        assert_eq!(timestamp_text(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(
            timestamp_text(1_714_644_672_123),
            "2024-05-02T10:11:12.123+00:00"
        );
    }

    #[test]
    fn idle_counters_are_left_out_of_message_stats() {
        let stats = message_stats(&[("publish", 3, 0.5), ("ack", 0, 0.0)]);
        assert_eq!(
            stats,
            json!({"publish": 3, "publish_details": {"rate": 0.5}})
        );
    }
}
