//! `/api/vhosts` and `/api/vhosts/{name}`: vhosts with their metadata, tracing flag and message
//! totals; PUT creates (201) or updates (204) one, DELETE removes it with everything in it
//! (`admin::delete_vhost`). Creating, updating and deleting need `administrator`.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;

use hyper::Method;
use serde_json::{json, Value};

use crate::management::body::{check, either, put_answer};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::management::stats;
use crate::shard::admin;
use crate::vhost::access::{VHostAccess, VHostMetadata};
use crate::vhost::access_delta::AccessDelta;

/// Ready and unacknowledged messages per vhost.
type Totals = HashMap<String, (u64, u64)>;

/// `GET /api/vhosts`: the vhosts the caller may see.
pub async fn list(call: &Call<'_>) -> Response {
    let totals = totals(call).await;
    let registry = call.context.shard.registry.borrow();
    let items = registry
        .access()
        .vhosts
        .iter()
        .filter(|(name, _)| call.caller.sees_vhost(name))
        .map(|(name, vhost)| vhost_json(call, name, vhost, &totals))
        .collect();
    drop(registry);
    call.list(items)
}

/// `/api/vhosts/{name}`: GET, PUT, DELETE.
pub async fn one(call: &Call<'_>, name: &str) -> Response {
    if call.method() == Method::PUT {
        return either(put(call, name).await);
    }
    if call.method() == Method::DELETE {
        return either(delete(call, name).await);
    }
    if let Some(refused) = call.refuse_vhost(name) {
        return refused;
    }
    let totals = totals(call).await;
    let registry = call.context.shard.registry.borrow();
    let item = registry
        .access()
        .vhosts
        .get(name)
        .map(|vhost| vhost_json(call, name, vhost, &totals));
    drop(registry);
    item.map_or_else(response::vhost_not_found, |item| call.one(item))
}

async fn put(call: &Call<'_>, name: &str) -> Result<Response, Response> {
    check(call.admin_only())?;
    let fields = call.fields()?;
    let description = fields.string("description")?;
    let tags = fields.tags("tags")?;
    let default_queue_type = fields.string("default_queue_type")?;
    let tracing = fields.bool("tracing")?;
    let existing = call
        .context
        .shard
        .registry
        .borrow()
        .access()
        .vhosts
        .get(name)
        .map(|vhost| vhost.metadata.clone());
    let created = existing.is_none();
    let current = existing.unwrap_or_else(|| VHostMetadata {
        default_queue_type: "classic".to_owned(),
        ..VHostMetadata::default()
    });
    let metadata = VHostMetadata {
        description: description.unwrap_or(current.description),
        tags: tags.unwrap_or(current.tags),
        default_queue_type: default_queue_type.unwrap_or(current.default_queue_type),
    };
    call.change_access(AccessDelta::VHostPut {
        name: name.to_owned(),
        metadata,
    })
    .await?;
    if let Some(enabled) = tracing {
        call.change_access(AccessDelta::TracingSet {
            vhost: name.to_owned(),
            enabled,
        })
        .await?;
    }
    Ok(put_answer(created))
}

async fn delete(call: &Call<'_>, name: &str) -> Result<Response, Response> {
    check(call.admin_only())?;
    let exists = (call.context.shard.registry.borrow().access().vhosts).contains_key(name);
    if !exists {
        return Err(response::not_found());
    }
    admin::delete_vhost(&call.context.shard, name)
        .await
        .map_err(|error| crate::management::body::refused(&error))?;
    Ok(response::no_content())
}

async fn totals(call: &Call<'_>) -> Totals {
    let snapshot = stats::gather(&call.context.shard).await;
    let mut totals = Totals::new();
    for queue in snapshot.queues() {
        let entry = totals.entry(queue.vhost.to_string_lossy()).or_default();
        entry.0 += queue.ready_count;
        entry.1 += queue.unacked_count;
    }
    totals
}

fn vhost_json(call: &Call<'_>, name: &str, vhost: &VHostAccess, totals: &Totals) -> Value {
    let metadata = &vhost.metadata;
    let (ready, unacked) = totals.get(name).copied().unwrap_or_default();
    json!({
        "name": name,
        "description": metadata.description,
        "tags": metadata.tags,
        "default_queue_type": metadata.default_queue_type,
        "metadata": {
            "description": metadata.description,
            "tags": metadata.tags,
            "default_queue_type": metadata.default_queue_type,
        },
        "tracing": vhost.tracing,
        "cluster_state": {call.context.node.clone(): "running"},
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    })
}
