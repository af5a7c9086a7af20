//! A user's limits (RabbitMQ's `max-connections` and `max-channels`) and the JSON they are
//! written in, in the management API, the CLI and definitions files, with RabbitMQ 3.13's
//! validation texts. Enforced by `shard::user_limits`.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The limits a user can have, by their names in paths, bodies and definitions.
pub const NAMES: [&str; 2] = ["max-connections", "max-channels"];

/// Per-user limits (RabbitMQ's `max-connections` and `max-channels`, counted over all of the
/// user's connections on every shard); None is no limit, and so is a negative value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UserLimits {
    pub max_connections: Option<i64>,
    pub max_channels: Option<i64>,
}

impl UserLimits {
    pub fn is_empty(&self) -> bool {
        self.max_connections.is_none() && self.max_channels.is_none()
    }

    /// The connection limit in force: 0 admits nobody; None (unset or negative) everybody.
    pub fn connection_limit(&self) -> Option<i64> {
        self.max_connections.filter(|limit| *limit >= 0)
    }

    /// The channel limit in force, as `connection_limit`.
    pub fn channel_limit(&self) -> Option<i64> {
        self.max_channels.filter(|limit| *limit >= 0)
    }
}

/// `limits` with the limit `name` cleared (`all`: every limit).
pub fn clear(mut limits: UserLimits, name: &str) -> UserLimits {
    match name {
        "all" => limits = UserLimits::default(),
        "max-connections" => limits.max_connections = None,
        "max-channels" => limits.max_channels = None,
        _ => {}
    }
    limits
}

/// `limits` with the limits of a JSON object (`{"max-connections": 2}`) set, the others kept
/// (RabbitMQ's `set_user_limits` merges); Err is RabbitMQ's validation text for an unknown
/// name or a value that is not an integer.
pub fn merge(mut limits: UserLimits, term: &Map<String, Value>) -> Result<UserLimits, String> {
    let unknown: Vec<String> = (term.iter())
        .filter(|(name, _)| !NAMES.contains(&name.as_str()))
        .map(|(name, value)| format!("{{<<\"{name}\">>,{}}}", erlang_term(value)))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "Unrecognised terms [{}] in user-limits",
            unknown.join(",")
        ));
    }
    for (name, value) in term {
        let Some(value) = value.as_i64() else {
            return Err(format!(
                "{name} should be a number, actually was {}",
                erlang_term(value)
            ));
        };
        match name.as_str() {
            "max-connections" => limits.max_connections = Some(value),
            _ => limits.max_channels = Some(value),
        }
    }
    Ok(limits)
}

/// A JSON value as RabbitMQ's texts print the Erlang term it decodes to (`~tp`).
fn erlang_term(value: &Value) -> String {
    match value {
        Value::String(text) => format!("<<\"{text}\">>"),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// `{"max-connections": N, "max-channels": N}` with the limits that are set.
pub fn limits_json(limits: &UserLimits) -> Value {
    let mut map = Map::new();
    if let Some(value) = limits.max_connections {
        map.insert("max-connections".into(), json!(value));
    }
    if let Some(value) = limits.max_channels {
        map.insert("max-channels".into(), json!(value));
    }
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn a_limit_is_set_with_the_other_kept_and_cleared_by_name_or_all() {
        let start = UserLimits {
            max_connections: Some(3),
            max_channels: None,
        };
        let merged = merge(start, &term(json!({"max-channels": -1}))).expect("valid");
        assert_eq!(merged.max_connections, Some(3));
        assert_eq!(merged.max_channels, Some(-1));
        assert_eq!(clear(merged, "max-connections").max_connections, None);
        assert_eq!(clear(merged, "max-channels").max_connections, Some(3));
        assert_eq!(clear(merged, "unknown"), merged);
        assert!(clear(merged, "all").is_empty());
    }

    #[test]
    fn unknown_names_and_non_integers_get_rabbitmqs_texts() {
        let none = UserLimits::default();
        assert_eq!(
            merge(none, &term(json!({"max-queues": 1}))),
            Err("Unrecognised terms [{<<\"max-queues\">>,1}] in user-limits".to_owned())
        );
        assert_eq!(
            merge(none, &term(json!({"max-channels": "ten"}))),
            Err("max-channels should be a number, actually was <<\"ten\">>".to_owned())
        );
        assert_eq!(
            merge(none, &term(json!({"max-connections": 1.5}))),
            Err("max-connections should be a number, actually was 1.5".to_owned())
        );
    }
}
