//! AMQP field tables as JSON and back, as RabbitMQ's management API and definitions files
//! show them: tables are objects, arrays arrays, strings strings (byte arrays base64),
//! integers and floats numbers, booleans booleans, void null. From JSON an integer becomes a `long` (i64), a fraction a
//! double, a string a long string (RabbitMQ's `rabbit_mgmt_util:args`).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use serde_json::{Map, Number, Value};

use crate::protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};

/// A table as a JSON object (keys in table order).
pub fn table_to_json(table: &FieldTable) -> Value {
    let mut object = Map::new();
    for (key, value) in table.iter() {
        object.insert(key.to_string_lossy(), value_to_json(value));
    }
    Value::Object(object)
}

pub fn value_to_json(value: &FieldValue) -> Value {
    match value {
        FieldValue::Bool(v) => Value::Bool(*v),
        FieldValue::F32(v) => float(f64::from(*v)),
        FieldValue::F64(v) => float(*v),
        FieldValue::Decimal { scale, value } => {
            float(f64::from(*value) / 10f64.powi(i32::from(*scale)))
        }
        FieldValue::LongStr(bytes) => Value::String(String::from_utf8_lossy(bytes).into_owned()),
        FieldValue::ByteArray(bytes) => Value::String(BASE64.encode(bytes)),
        FieldValue::Array(values) => Value::Array(values.iter().map(value_to_json).collect()),
        FieldValue::Timestamp(seconds) => Value::Number(Number::from(*seconds)),
        FieldValue::Table(table) => table_to_json(table),
        FieldValue::Void => Value::Null,
        integer => integer
            .as_i64()
            .map_or(Value::Null, |v| Value::Number(Number::from(v))),
    }
}

fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// The basic properties that are set, as a table named by RabbitMQ's `P_basic` fields with
/// integers as `signedint`: the firehose's `properties` header, and (as JSON) the management
/// API's `properties` of a message.
pub fn properties_table(properties: &BasicProperties) -> FieldTable {
    let mut table = FieldTable::new();
    let mut text = |name: &'static str, value: &Option<ShortStr>| {
        if let Some(value) = value {
            table.insert(
                ShortStr::from_static(name),
                FieldValue::LongStr(Bytes::copy_from_slice(value.as_bytes())),
            );
        }
    };
    text("content_type", &properties.content_type);
    text("content_encoding", &properties.content_encoding);
    text("correlation_id", &properties.correlation_id);
    text("reply_to", &properties.reply_to);
    text("expiration", &properties.expiration);
    text("message_id", &properties.message_id);
    text("type", &properties.kind);
    text("user_id", &properties.user_id);
    text("app_id", &properties.app_id);
    text("cluster_id", &properties.cluster_id);
    if let Some(headers) = &properties.headers {
        table.insert(
            ShortStr::from_static("headers"),
            FieldValue::Table(headers.clone()),
        );
    }
    if let Some(mode) = properties.delivery_mode {
        table.insert(
            ShortStr::from_static("delivery_mode"),
            FieldValue::I32(i32::from(mode)),
        );
    }
    if let Some(priority) = properties.priority {
        table.insert(
            ShortStr::from_static("priority"),
            FieldValue::I32(i32::from(priority)),
        );
    }
    if let Some(timestamp) = properties.timestamp {
        let seconds = i64::try_from(timestamp).unwrap_or(i64::MAX);
        table.insert(ShortStr::from_static("timestamp"), FieldValue::I64(seconds));
    }
    table
}

/// Why a JSON value cannot be an AMQP table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonTableError {
    #[error("arguments must be a JSON object")]
    NotAnObject,
    #[error("key longer than 255 bytes: {0}")]
    KeyTooLong(String),
    #[error("number out of range: {0}")]
    Number(String),
}

/// A JSON object as a table; `null` is an empty table.
pub fn json_to_table(value: &Value) -> Result<FieldTable, JsonTableError> {
    let object = match value {
        Value::Null => return Ok(FieldTable::new()),
        Value::Object(object) => object,
        _ => return Err(JsonTableError::NotAnObject),
    };
    let mut table = FieldTable::new();
    for (key, value) in object {
        let name =
            ShortStr::copy_from_str(key).ok_or_else(|| JsonTableError::KeyTooLong(key.clone()))?;
        table.insert(name, json_to_value(value)?);
    }
    Ok(table)
}

pub fn json_to_value(value: &Value) -> Result<FieldValue, JsonTableError> {
    Ok(match value {
        Value::Null => FieldValue::Void,
        Value::Bool(v) => FieldValue::Bool(*v),
        Value::Number(number) => {
            if let Some(v) = number.as_i64() {
                FieldValue::I64(v)
            } else if let Some(v) = number.as_f64().filter(|_| !number.is_u64()) {
                FieldValue::F64(v)
            } else {
                return Err(JsonTableError::Number(number.to_string()));
            }
        }
        Value::String(text) => FieldValue::LongStr(Bytes::copy_from_slice(text.as_bytes())),
        Value::Array(values) => {
            FieldValue::Array(values.iter().map(json_to_value).collect::<Result<_, _>>()?)
        }
        Value::Object(_) => FieldValue::Table(json_to_table(value)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_tables() {
        let json = serde_json::json!({
            "x-max-length": 10,
            "x-dead-letter-exchange": "dlx",
            "flag": true,
            "ratio": 0.5,
            "list": [1, "two", null],
            "nested": {"deep": -7}
        });
        let table = json_to_table(&json).expect("converts");
        assert_eq!(table.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(table_to_json(&table), json);
    }

    #[test]
    fn non_objects_and_huge_numbers_are_refused() {
        assert_eq!(
            json_to_table(&serde_json::json!([1])),
            Err(JsonTableError::NotAnObject)
        );
        assert!(json_to_table(&serde_json::json!({"n": u64::MAX})).is_err());
        assert_eq!(json_to_table(&Value::Null), Ok(FieldTable::new()));
    }
}
