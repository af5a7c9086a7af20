//! `/api/users[/{name}]`, `/api/users/without-permissions`, `/api/users/bulk-delete`,
//! `/api/auth/hash_password/{password}`: the broker's users (administrator only, as in
//! RabbitMQ). PUT takes `password`, or `password_hash` with `hashing_algorithm`, or neither
//! (no password login), `tags` (required) as a comma-separated string or an array, and
//! `limits` (`{"max-connections": N, "max-channels": N}`, set over the user's limits).

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::Method;
use serde_json::{json, Value};

use crate::management::body::{check, either, put_answer};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::vhost::access::{User, UserLimits};
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::password::{hash_password, HashingAlgorithm};
use crate::vhost::user_limits;

/// `GET /api/users` (`without_permissions`: only users without any permission).
pub fn list(call: &Call<'_>, without_permissions: bool) -> Response {
    if let Some(refused) = call.admin_only() {
        return refused;
    }
    let registry = call.context.shard.registry.borrow();
    let access = registry.access();
    let items = access
        .users
        .values()
        .filter(|user| !without_permissions || access.user_vhosts(&user.name).next().is_none())
        .map(|user| user_json(user, access.limits_of(&user.name)))
        .collect();
    drop(registry);
    call.list(items)
}

/// `/api/users/{name}`: GET, PUT, DELETE.
pub async fn one(call: &Call<'_>, name: &str) -> Response {
    if let Some(refused) = call.admin_only() {
        return refused;
    }
    if call.method() == Method::PUT {
        return either(put(call, name).await);
    }
    let found = {
        let registry = call.context.shard.registry.borrow();
        let access = registry.access();
        (access.users.get(name)).map(|user| user_json(user, access.limits_of(name)))
    };
    let Some(user) = found else {
        return response::not_found();
    };
    if call.method() == Method::DELETE {
        let delta = AccessDelta::UserDeleted {
            name: name.to_owned(),
        };
        return match call.change_access(delta).await {
            Ok(()) => response::no_content(),
            Err(refused) => refused,
        };
    }
    call.one(user)
}

async fn put(call: &Call<'_>, name: &str) -> Result<Response, Response> {
    let fields = call.fields()?;
    fields.require(&["tags"])?;
    let tags = fields.tags("tags")?.unwrap_or_default();
    let password = fields.string("password")?;
    let password_hash = fields.string("password_hash")?;
    let algorithm = match fields.string("hashing_algorithm")? {
        None => HashingAlgorithm::Sha256,
        Some(algorithm) => HashingAlgorithm::from_name(&algorithm).ok_or_else(|| {
            response::bad_request(&format!("unknown hashing algorithm '{algorithm}'"))
        })?,
    };
    let (password_hash, hashing_algorithm) = match (password, password_hash) {
        (Some(password), _) => (
            hash_password(HashingAlgorithm::Sha256, password.as_bytes()),
            HashingAlgorithm::Sha256,
        ),
        (None, Some(hash)) => (hash, algorithm),
        (None, None) => (String::new(), HashingAlgorithm::Sha256),
    };
    let (created, limits) = {
        let registry = call.context.shard.registry.borrow();
        let access = registry.access();
        (!access.users.contains_key(name), access.limits_of(name))
    };
    // `limits`, as RabbitMQ's user PUT takes it: set over the user's limits, others kept.
    let limits = match fields.object("limits")? {
        Some(term) => {
            Some(user_limits::merge(limits, term).map_err(|r| response::bad_request(&r))?)
        }
        None => None,
    };
    let user = User {
        name: name.to_owned(),
        password_hash,
        hashing_algorithm,
        tags,
    };
    call.change_access(AccessDelta::UserPut(user)).await?;
    if let Some(limits) = limits {
        let user = name.to_owned();
        call.change_access(AccessDelta::UserLimitsSet { user, limits })
            .await?;
    }
    Ok(put_answer(created))
}

/// `POST /api/users/bulk-delete` `{"users": [...]}`: 204; names of no user are skipped.
pub async fn bulk_delete(call: &Call<'_>) -> Response {
    either(bulk_delete_inner(call).await)
}

async fn bulk_delete_inner(call: &Call<'_>) -> Result<Response, Response> {
    check(call.admin_only())?;
    let fields = call.fields()?;
    fields.require(&["users"])?;
    let Some(Value::Array(names)) = fields.get("users") else {
        return Err(response::bad_request("users must be an array of strings"));
    };
    let names: Vec<String> = names
        .iter()
        .map(|name| name.as_str().map(str::to_owned))
        .collect::<Option<_>>()
        .ok_or_else(|| response::bad_request("users must be an array of strings"))?;
    for name in names {
        let exists = (call.context.shard.registry.borrow().access().users).contains_key(&name);
        if exists {
            call.change_access(AccessDelta::UserDeleted { name })
                .await?;
        }
    }
    Ok(response::no_content())
}

/// `GET /api/auth/hash_password/{password}`: `{"ok": "<base64 salted SHA-256>"}`.
pub fn hash(password: &str) -> Response {
    let hash = hash_password(HashingAlgorithm::Sha256, password.as_bytes());
    response::ok(&json!({ "ok": hash }))
}

pub fn user_json(user: &User, limits: UserLimits) -> Value {
    json!({
        "name": user.name,
        "password_hash": user.password_hash,
        "hashing_algorithm": user.hashing_algorithm.name(),
        "tags": user.tags,
        "limits": user_limits::limits_json(&limits),
    })
}
