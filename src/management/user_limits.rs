//! `/api/user-limits[/{user}]` (GET) and `/api/user-limits/{user}/{max-connections|
//! max-channels}` (PUT `{"value": N}`, DELETE; administrator only), as RabbitMQ 3.13 answers
//! them: a user without limits is not listed, a negative value means no limit, a PUT sets one
//! limit and keeps the other.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::{Method, StatusCode};
use serde_json::{json, Map};

use crate::management::body::{check, either};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::user_limits::{clear, limits_json, merge};

/// `GET /api/user-limits[/{user}]`: any user of the management API may read them (RabbitMQ's
/// `is_authorized_vhost_visible`); 404 for a user that does not exist.
pub fn list(call: &Call<'_>, user: Option<&str>) -> Response {
    let registry = call.context.shard.registry.borrow();
    let access = registry.access();
    if user.is_some_and(|user| !access.users.contains_key(user)) {
        return response::not_found();
    }
    let items = (access.user_limits.iter())
        .filter(|(name, limits)| !limits.is_empty() && user.is_none_or(|user| user == *name))
        .map(|(name, limits)| json!({"user": name, "value": limits_json(limits)}))
        .collect();
    drop(registry);
    call.list(items)
}

/// `PUT` or `DELETE /api/user-limits/{user}/{name}`.
pub async fn change(call: &Call<'_>, user: &str, name: &str) -> Response {
    either(change_inner(call, user, name).await)
}

async fn change_inner(call: &Call<'_>, user: &str, name: &str) -> Result<Response, Response> {
    check(call.admin_only())?;
    let current = {
        let registry = call.context.shard.registry.borrow();
        let access = registry.access();
        access
            .users
            .contains_key(user)
            .then(|| access.limits_of(user))
    };
    let Some(limits) = current else {
        return Err(response::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "user_not_found",
        ));
    };
    let limits = if call.method() == Method::DELETE {
        // RabbitMQ clears a limit of any name, `all` every one.
        clear(limits, name)
    } else {
        let fields = call.fields()?;
        fields.require(&["value"])?;
        let mut term = Map::new();
        term.insert(name.to_owned(), fields.0["value"].clone());
        merge(limits, &term).map_err(|reason| response::bad_request(&reason))?
    };
    let delta = AccessDelta::UserLimitsSet {
        user: user.to_owned(),
        limits,
    };
    call.change_access(delta).await?;
    Ok(response::no_content())
}
