//! Permission commands over `/api/permissions/{vhost}/{user}` and
//! `/api/topic-permissions/{vhost}/{user}`, and their listings per vhost and per user.

use serde_json::{json, Value};

use crate::client::{api_path, ApiError};
use crate::context::{field, tabulate, Context};
use crate::error::{CtlError, ExitCode};
use crate::output::Cell;
use crate::users::bad_request_is_data;

pub fn list(context: &Context) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Listing permissions for vhost \"{}\" ...",
        context.vhost
    ));
    let items = list_or_missing_vhost(context, "permissions")?;
    print(context, &items, &["user", "configure", "write", "read"]);
    Ok(())
}

pub fn list_for_user(context: &Context, user: &str) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Listing permissions for user \"{user}\" ..."));
    let items = list_or_missing_user(context, user, "permissions")?;
    print(context, &items, &["vhost", "configure", "write", "read"]);
    Ok(())
}

pub fn list_topic(context: &Context) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Listing topic permissions for vhost \"{}\" ...",
        context.vhost
    ));
    let items = list_or_missing_vhost(context, "topic-permissions")?;
    print(context, &items, &["user", "exchange", "write", "read"]);
    Ok(())
}

pub fn list_topic_for_user(context: &Context, user: &str) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Listing topic permissions for user \"{user}\" ..."
    ));
    let items = list_or_missing_user(context, user, "topic-permissions")?;
    print(context, &items, &["vhost", "exchange", "write", "read"]);
    Ok(())
}

pub fn set(
    context: &Context,
    user: &str,
    configure: &str,
    write: &str,
    read: &str,
) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Setting permissions for user \"{user}\" in vhost \"{}\" ...",
        context.vhost
    ));
    let body = json!({"configure": configure, "write": write, "read": read});
    let path = context.vhost_path("permissions", &[user]);
    match context.client.put(&path, &body) {
        Err(ApiError::Status {
            status: 400 | 404,
            ref reason,
            ..
        }) if reason.contains("not_found") || reason.contains("Not Found") => {
            Err(missing_user_or_vhost(context, user))
        }
        other => other.map_err(bad_request_is_data),
    }
}

/// Clearing permissions that are not set is not an error; a missing user or vhost is.
pub fn clear(context: &Context, user: &str) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Clearing permissions for user \"{user}\" in vhost \"{}\" ...",
        context.vhost
    ));
    delete_or_check(context, user, &context.vhost_path("permissions", &[user]))
}

pub fn set_topic(
    context: &Context,
    user: &str,
    exchange: &str,
    write: &str,
    read: &str,
) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Setting topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{}\" ...",
        context.vhost
    ));
    let body = json!({"exchange": exchange, "write": write, "read": read});
    let path = context.vhost_path("topic-permissions", &[user]);
    match context.client.put(&path, &body) {
        Err(ApiError::Status {
            status: 400 | 404,
            ref reason,
            ..
        }) if reason.contains("not_found") || reason.contains("Not Found") => {
            Err(missing_user_or_vhost(context, user))
        }
        other => other.map_err(bad_request_is_data),
    }
}

/// Without an exchange every topic permission of the user in the vhost goes; with one, the
/// others are put back (the API deletes per user and vhost only).
pub fn clear_topic(context: &Context, user: &str, exchange: Option<&str>) -> Result<(), CtlError> {
    let path = context.vhost_path("topic-permissions", &[user]);
    let Some(exchange) = exchange else {
        context.output.banner(&format!(
            "Clearing topic permissions for user \"{user}\" in vhost \"{}\" ...",
            context.vhost
        ));
        return delete_or_check(context, user, &path);
    };
    context.output.banner(&format!(
        "Clearing topic permissions on \"{exchange}\" for user \"{user}\" in vhost \"{}\" ...",
        context.vhost
    ));
    let kept: Vec<Value> = match context.client.get_optional(&path)? {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter(|item| item.get("exchange").and_then(Value::as_str) != Some(exchange))
            .collect(),
        _ => Vec::new(),
    };
    delete_or_check(context, user, &path)?;
    for item in kept {
        let body = json!({
            "exchange": field(&item, "exchange"),
            "write": field(&item, "write"),
            "read": field(&item, "read"),
        });
        context.client.put(&path, &body)?;
    }
    Ok(())
}

fn delete_or_check(context: &Context, user: &str, path: &str) -> Result<(), CtlError> {
    match context.client.delete(path, None) {
        Err(ApiError::Status { status: 404, .. }) => {
            let user_exists = context
                .client
                .get_optional(&api_path(&["users", user]))?
                .is_some();
            let vhost_exists = context
                .client
                .get_optional(&api_path(&["vhosts", &context.vhost]))?
                .is_some();
            if user_exists && vhost_exists {
                Ok(())
            } else {
                Err(missing_user_or_vhost(context, user))
            }
        }
        other => Ok(other?),
    }
}

/// rabbitmqctl's wording: `User u does not exist` (exit 67) before
/// `Virtual host vh does not exist` (exit 69).
fn missing_user_or_vhost(context: &Context, user: &str) -> CtlError {
    match context.client.get_optional(&api_path(&["users", user])) {
        Ok(None) => CtlError::refused(ExitCode::NoUser, format!("User {user} does not exist")),
        Ok(Some(_)) => CtlError::refused(
            ExitCode::Unavailable,
            format!("Virtual host {} does not exist", context.vhost),
        ),
        Err(error) => error.into(),
    }
}

fn list_or_missing_vhost(context: &Context, kind: &str) -> Result<Vec<Value>, CtlError> {
    match context.list(&api_path(&["vhosts", &context.vhost, kind])) {
        Err(error) if error.http_status() == Some(404) => Err(CtlError::refused(
            ExitCode::Unavailable,
            format!("Virtual host {} does not exist", context.vhost),
        )),
        other => other,
    }
}

fn list_or_missing_user(context: &Context, user: &str, kind: &str) -> Result<Vec<Value>, CtlError> {
    match context.list(&api_path(&["users", user, kind])) {
        Err(error) if error.http_status() == Some(404) => Err(CtlError::no_such_user(user)),
        other => other,
    }
}

fn print(context: &Context, items: &[Value], columns: &[&str]) {
    let columns = columns.iter().map(|column| column.to_string()).collect();
    let mut table = tabulate(items, columns, |item, column| {
        Cell::Plain(field(item, column))
    });
    table.blank_line_when_empty = true;
    context.output.table(&table);
}
