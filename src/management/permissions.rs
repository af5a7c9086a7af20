//! `/api/permissions[/{vhost}/{user}]`, `/api/topic-permissions[/{vhost}/{user}]`,
//! `/api/vhosts/{vhost}/[topic-]permissions`, `/api/users/{user}/[topic-]permissions`: who may
//! configure, write and read what (administrator only, as in RabbitMQ). PUT needs every key
//! (`configure`, `write`, `read`; `exchange`, `write`, `read` for topic permissions) and an
//! existing user and vhost (else 400 `vhost_or_user_not_found`).

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::Method;
use serde_json::{json, Value};

use crate::management::body::{check, either, put_answer};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::vhost::access::{AccessState, Permission, TopicPermission};
use crate::vhost::access_delta::AccessDelta;

/// `GET /api/permissions` or `/api/topic-permissions`.
pub fn list(call: &Call<'_>, topic: bool) -> Response {
    listed(call, topic, |_| true, None)
}

/// `GET /api/vhosts/{vhost}/[topic-]permissions`.
pub fn of_vhost(call: &Call<'_>, vhost: &str, topic: bool) -> Response {
    let exists = |access: &AccessState| access.vhosts.contains_key(vhost);
    listed(call, topic, |item| item["vhost"] == vhost, Some(&exists))
}

/// `GET /api/users/{user}/[topic-]permissions`.
pub fn of_user(call: &Call<'_>, user: &str, topic: bool) -> Response {
    let exists = |access: &AccessState| access.users.contains_key(user);
    listed(call, topic, |item| item["user"] == user, Some(&exists))
}

fn listed(
    call: &Call<'_>,
    topic: bool,
    wanted: impl Fn(&Value) -> bool,
    exists: Option<&dyn Fn(&AccessState) -> bool>,
) -> Response {
    if let Some(refused) = call.admin_only() {
        return refused;
    }
    let registry = call.context.shard.registry.borrow();
    let access = registry.access();
    if exists.is_some_and(|exists| !exists(access)) {
        return response::not_found();
    }
    let items: Vec<Value> = if topic {
        (access.topic_permissions.values())
            .map(|compiled| topic_json(&compiled.permission))
            .collect()
    } else {
        (access.permissions.values())
            .map(|compiled| permission_json(&compiled.permission))
            .collect()
    };
    drop(registry);
    call.list(items.into_iter().filter(|item| wanted(item)).collect())
}

/// `/api/[topic-]permissions/{vhost}/{user}`: GET, PUT, DELETE.
pub async fn one(call: &Call<'_>, vhost: &str, user: &str, topic: bool) -> Response {
    if let Some(refused) = call.admin_only() {
        return refused;
    }
    if call.method() == Method::PUT {
        return either(put(call, vhost, user, topic).await);
    }
    let found: Vec<Value> = {
        let registry = call.context.shard.registry.borrow();
        let access = registry.access();
        if topic {
            (access.topic_permissions.values())
                .filter(|c| c.permission.vhost == vhost && c.permission.user == user)
                .map(|c| topic_json(&c.permission))
                .collect()
        } else {
            (access.permission(user, vhost).into_iter())
                .map(|c| permission_json(&c.permission))
                .collect()
        }
    };
    if found.is_empty() {
        return response::not_found();
    }
    if call.method() == Method::DELETE {
        let (user, vhost) = (user.to_owned(), vhost.to_owned());
        let delta = if topic {
            AccessDelta::TopicPermissionCleared {
                user,
                vhost,
                exchange: None,
            }
        } else {
            AccessDelta::PermissionCleared { user, vhost }
        };
        return either(
            call.change_access(delta)
                .await
                .map(|()| response::no_content()),
        );
    }
    if topic {
        call.list(found)
    } else {
        found
            .into_iter()
            .next()
            .map_or_else(response::not_found, |item| call.one(item))
    }
}

async fn put(call: &Call<'_>, vhost: &str, user: &str, topic: bool) -> Result<Response, Response> {
    let fields = call.fields()?;
    let (created, known) = {
        let registry = call.context.shard.registry.borrow();
        let access = registry.access();
        let known = access.users.contains_key(user) && access.vhosts.contains_key(vhost);
        let created = if topic {
            let exchange = fields.string("exchange")?.unwrap_or_default();
            access.topic_permission(user, vhost, &exchange).is_none()
        } else {
            access.permission(user, vhost).is_none()
        };
        (created, known)
    };
    check((!known).then(|| response::bad_request("vhost_or_user_not_found")))?;
    let delta = if topic {
        fields.require(&["exchange", "write", "read"])?;
        AccessDelta::TopicPermissionSet(TopicPermission {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            exchange: fields.required_string("exchange")?,
            write: fields.required_string("write")?,
            read: fields.required_string("read")?,
        })
    } else {
        fields.require(&["configure", "write", "read"])?;
        AccessDelta::PermissionSet(Permission {
            user: user.to_owned(),
            vhost: vhost.to_owned(),
            configure: fields.required_string("configure")?,
            write: fields.required_string("write")?,
            read: fields.required_string("read")?,
        })
    };
    call.change_access(delta).await?;
    Ok(put_answer(created))
}

pub fn permission_json(permission: &Permission) -> Value {
    json!({
        "user": permission.user,
        "vhost": permission.vhost,
        "configure": permission.configure,
        "write": permission.write,
        "read": permission.read,
    })
}

pub fn topic_json(permission: &TopicPermission) -> Value {
    json!({
        "user": permission.user,
        "vhost": permission.vhost,
        "exchange": permission.exchange,
        "write": permission.write,
        "read": permission.read,
    })
}
