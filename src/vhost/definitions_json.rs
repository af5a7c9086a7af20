//! RabbitMQ's definitions format (`GET /api/definitions`, `rabbitmqctl export_definitions`):
//! the JSON shapes, read leniently as RabbitMQ reads them (tags as a string or an array, a
//! missing hashing algorithm is SHA-256, `rabbit_version` or `rabbitmq_version`, vhost metadata
//! at the top level or under `metadata`), written as RabbitMQ 3.13 writes them.
//! docs/operations.md, Definitions, lists what is imported and exported.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// A whole definitions file. Every list may be missing on input; all are written on output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DefinitionsJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbit_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rabbitmq_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_version: Option<String>,
    #[serde(default)]
    pub users: Vec<UserJson>,
    #[serde(default)]
    pub vhosts: Vec<VHostJson>,
    #[serde(default)]
    pub permissions: Vec<PermissionJson>,
    #[serde(default)]
    pub topic_permissions: Vec<TopicPermissionJson>,
    #[serde(default)]
    pub parameters: Vec<Value>,
    #[serde(default)]
    pub global_parameters: Vec<Value>,
    #[serde(default)]
    pub policies: Vec<PolicyJson>,
    /// Not in RabbitMQ's export (its operator policies are parameters); Hare writes and reads
    /// them here so that an export round trip keeps them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operator_policies: Vec<PolicyJson>,
    #[serde(default)]
    pub queues: Vec<QueueJson>,
    #[serde(default)]
    pub exchanges: Vec<ExchangeJson>,
    #[serde(default)]
    pub bindings: Vec<BindingJson>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserJson {
    pub name: String,
    /// Plain password (accepted on import, as RabbitMQ's HTTP API accepts it); never written.
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_hash: String,
    #[serde(default = "default_hashing_algorithm")]
    pub hashing_algorithm: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    /// An object (some versions write `[]` when empty).
    #[serde(default)]
    pub limits: Value,
}

fn default_hashing_algorithm() -> String {
    "rabbit_password_hashing_sha256".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VHostJson {
    pub name: String,
    /// `{"max-connections": N, "max-queues": N}`; some versions write `[]` when empty.
    #[serde(default)]
    pub limits: Value,
    #[serde(default)]
    pub metadata: VHostMetadataJson,
    /// Older exports keep these at the top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(
        default,
        deserialize_with = "optional_tags",
        skip_serializing_if = "Option::is_none"
    )]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct VHostMetadataJson {
    #[serde(default)]
    pub description: String,
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_queue_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionJson {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicPermissionJson {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyJson {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(rename = "apply-to", default = "default_apply_to")]
    pub apply_to: String,
    pub definition: Map<String, Value>,
    #[serde(default)]
    pub priority: i64,
}

fn default_apply_to() -> String {
    "all".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueJson {
    pub name: String,
    /// Empty in (and missing from) a one-vhost file.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vhost: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExchangeJson {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vhost: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default = "yes")]
    pub durable: bool,
    #[serde(default)]
    pub auto_delete: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub arguments: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BindingJson {
    pub source: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vhost: String,
    pub destination: String,
    pub destination_type: String,
    #[serde(default)]
    pub routing_key: String,
    #[serde(default)]
    pub arguments: Value,
}

fn yes() -> bool {
    true
}

/// Tags as RabbitMQ accepts them: `"a,b"` or `["a","b"]` (or null).
pub fn tags<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Ok(optional_tags(deserializer)?.unwrap_or_default())
}

fn optional_tags<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Text(String),
        List(Vec<String>),
    }
    Ok(
        Option::<Tags>::deserialize(deserializer)?.map(|tags| match tags {
            Tags::Text(text) => split_tags(&text),
            Tags::List(list) => list,
        }),
    )
}

/// `"a, b,,c"` → `["a", "b", "c"]`.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rabbitmq_export_parses() {
        let json = r#"{
          "rabbit_version": "3.13.7", "rabbitmq_version": "3.13.7",
          "product_name": "RabbitMQ", "product_version": "3.13.7",
          "users": [
            {"name": "guest", "password_hash": "xpPOStYmwX6ubdVww2O7PMMkZyzexxSxU6M8/m2HktI7XkwJ",
             "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"],
             "limits": {}},
            {"name": "old", "password_hash": "", "tags": "monitoring,management"}
          ],
          "vhosts": [{"name": "/", "limits": [], "metadata": {"description": "Default",
                      "tags": [], "default_queue_type": "classic"}},
                     {"name": "legacy", "description": "old style", "tags": "a,b"}],
          "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*",
                           "read": ".*"}],
          "topic_permissions": [],
          "parameters": [], "global_parameters": [{"name": "cluster_name", "value": "x"}],
          "policies": [{"vhost": "/", "name": "ttl", "pattern": "^t\\.", "apply-to": "queues",
                        "definition": {"message-ttl": 1000}, "priority": 1}],
          "queues": [{"name": "q", "vhost": "/", "durable": true, "auto_delete": false,
                      "arguments": {"x-queue-type": "classic"}}],
          "exchanges": [{"name": "x", "vhost": "/", "type": "topic", "durable": true,
                         "auto_delete": false, "internal": false, "arguments": {}}],
          "bindings": [{"source": "x", "vhost": "/", "destination": "q",
                        "destination_type": "queue", "routing_key": "a.#", "arguments": {}}]
        }"#;
        let parsed: DefinitionsJson = serde_json::from_str(json).expect("parses");
        assert_eq!(parsed.users[1].tags, vec!["monitoring", "management"]);
        assert_eq!(
            parsed.users[1].hashing_algorithm,
            "rabbit_password_hashing_sha256"
        );
        assert_eq!(parsed.vhosts[1].tags, Some(vec!["a".into(), "b".into()]));
        assert_eq!(parsed.policies[0].apply_to, "queues");
        assert_eq!(parsed.exchanges[0].kind, "topic");
    }
}
