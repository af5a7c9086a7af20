//! `/api/policies[/{vhost}[/{name}]]` and `/api/operator-policies[/...]`. Policies are listed
//! to whoever sees the vhost; reading one and changing it needs `administrator`, or
//! `policymaker` with a permission in the vhost (RabbitMQ's `is_authorized_policies`); operator
//! policies are the administrator's alone. PUT needs `pattern` and `definition`; `priority`
//! defaults to 0 and `apply-to` to `all`. What a policy may hold is decided by
//! `AccessState::check_delta`, whose refusal is the 400's reason.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::Method;
use serde_json::{json, Value};

use crate::management::auth::OBJECT_REFUSED;
use crate::management::body::{check, either, put_answer};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::vhost::access::{Policy, PolicyKind};
use crate::vhost::access_delta::AccessDelta;

/// `GET /api/[operator-]policies[/{vhost}]`.
pub fn list(call: &Call<'_>, kind: PolicyKind, vhost: Option<&str>) -> Response {
    if kind == PolicyKind::Operator {
        if let Some(refused) = call.admin_only() {
            return refused;
        }
    }
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let registry = call.context.shard.registry.borrow();
    let items = (registry.access().policies.values())
        .filter(|policy| policy.kind == kind && call.lists(vhost, &policy.vhost))
        .map(policy_json)
        .collect();
    drop(registry);
    call.list(items)
}

/// `/api/[operator-]policies/{vhost}/{name}`: GET, PUT, DELETE.
pub async fn one(call: &Call<'_>, kind: PolicyKind, vhost: &str, name: &str) -> Response {
    let allowed = match kind {
        PolicyKind::Operator => call.caller.is_administrator(),
        PolicyKind::Policy => {
            call.caller.is_administrator()
                || (call.caller.is_policymaker() && call.caller.vhosts.contains(vhost))
        }
    };
    if !allowed {
        return match kind {
            PolicyKind::Operator => call.admin_only().unwrap_or_else(response::not_found),
            PolicyKind::Policy => response::not_authorised(OBJECT_REFUSED),
        };
    }
    if let Some(refused) = call.refuse_vhost(vhost) {
        return refused;
    }
    if call.method() == Method::PUT {
        return either(put(call, kind, vhost, name).await);
    }
    let found = (call.context.shard.registry.borrow().access().policies)
        .get(&(kind, vhost.to_owned(), name.to_owned()))
        .map(policy_json);
    let Some(item) = found else {
        return response::not_found();
    };
    if call.method() == Method::DELETE {
        let delta = AccessDelta::PolicyCleared {
            kind,
            vhost: vhost.to_owned(),
            name: name.to_owned(),
        };
        return either(
            call.change_access(delta)
                .await
                .map(|()| response::no_content()),
        );
    }
    call.one(item)
}

async fn put(
    call: &Call<'_>,
    kind: PolicyKind,
    vhost: &str,
    name: &str,
) -> Result<Response, Response> {
    let fields = call.fields()?;
    fields.require(&["pattern", "definition"])?;
    let definition = fields.object("definition")?.cloned().unwrap_or_default();
    let policy = Policy {
        kind,
        vhost: vhost.to_owned(),
        name: name.to_owned(),
        pattern: fields.required_string("pattern")?,
        apply_to: fields
            .string("apply-to")?
            .unwrap_or_else(|| "all".to_owned()),
        definition,
        priority: fields.integer("priority")?.unwrap_or(0),
    };
    check(
        policy
            .definition
            .is_empty()
            .then(|| response::bad_request("definition must not be empty")),
    )?;
    let created = !(call.context.shard.registry.borrow().access().policies).contains_key(&(
        kind,
        vhost.to_owned(),
        name.to_owned(),
    ));
    call.change_access(AccessDelta::PolicySet(policy)).await?;
    Ok(put_answer(created))
}

pub fn policy_json(policy: &Policy) -> Value {
    json!({
        "vhost": policy.vhost,
        "name": policy.name,
        "pattern": policy.pattern,
        "apply-to": policy.apply_to,
        "definition": policy.definition,
        "priority": policy.priority,
    })
}
