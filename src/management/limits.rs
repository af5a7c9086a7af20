//! `/api/vhost-limits[/{vhost}]` (GET) and `/api/vhost-limits/{vhost}/{max-connections|
//! max-queues}` (PUT `{"value": N}`, DELETE; administrator only). A vhost without limits is
//! not listed, as in RabbitMQ; -1 means no limit.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::Method;
use serde_json::{json, Map, Value};

use crate::management::body::{check, either};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::vhost::access::VHostLimits;
use crate::vhost::access_delta::AccessDelta;

/// A limit a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MaxConnections,
    MaxQueues,
}

impl Limit {
    pub fn parse(segment: &str) -> Option<Limit> {
        match segment {
            "max-connections" => Some(Limit::MaxConnections),
            "max-queues" => Some(Limit::MaxQueues),
            _ => None,
        }
    }
}

/// `GET /api/vhost-limits[/{vhost}]`.
pub fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let registry = call.context.shard.registry.borrow();
    let items = (registry.access().vhosts.iter())
        .filter(|(name, entry)| !entry.limits.is_empty() && call.lists(vhost, name))
        .map(|(name, entry)| json!({"vhost": name, "value": limits_json(&entry.limits)}))
        .collect();
    drop(registry);
    call.list(items)
}

/// `PUT` or `DELETE /api/vhost-limits/{vhost}/{limit}`.
pub async fn change(call: &Call<'_>, vhost: &str, limit: Limit) -> Response {
    either(change_inner(call, vhost, limit).await)
}

async fn change_inner(call: &Call<'_>, vhost: &str, limit: Limit) -> Result<Response, Response> {
    check(call.admin_only())?;
    let current = (call.context.shard.registry.borrow().access().vhosts)
        .get(vhost)
        .map(|entry| entry.limits);
    let Some(mut limits) = current else {
        return Err(response::vhost_not_found());
    };
    let value = if call.method() == Method::DELETE {
        None
    } else {
        let fields = call.fields()?;
        fields.require(&["value"])?;
        Some(fields.integer("value")?.unwrap_or_default())
    };
    match limit {
        Limit::MaxConnections => limits.max_connections = value,
        Limit::MaxQueues => limits.max_queues = value,
    }
    let delta = AccessDelta::VHostLimitsSet {
        vhost: vhost.to_owned(),
        limits,
    };
    call.change_access(delta).await?;
    Ok(response::no_content())
}

pub fn limits_json(limits: &VHostLimits) -> Value {
    let mut map = Map::new();
    if let Some(value) = limits.max_connections {
        map.insert("max-connections".into(), json!(value));
    }
    if let Some(value) = limits.max_queues {
        map.insert("max-queues".into(), json!(value));
    }
    Value::Object(map)
}
