//! User limit commands over `/api/user-limits[/{user}[/{limit}]]`: `set_user_limits`,
//! `clear_user_limits` and `list_user_limits`, with rabbitmqctl's banners and outputs.

use serde_json::{Map, Value};

use crate::client::{api_path, ApiError};
use crate::context::{field, tabulate, Context};
use crate::error::CtlError;
use crate::output::{render_cell, Cell, Formatter};
use crate::users::bad_request_is_data;

/// The user `list_user_limits` shows without `--user` or `--global`, as rabbitmqctl.
const DEFAULT_USER: &str = "guest";

/// Sets the limits given and keeps the others, as rabbitmqctl does (unlike vhost limits).
pub fn set(context: &Context, user: &str, definition: &str) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Setting user limits to \"{definition}\" for user \"{user}\" ..."
    ));
    let limits = match serde_json::from_str::<Value>(definition) {
        Ok(Value::Object(limits)) => limits,
        Ok(_) => return Err(CtlError::data("the limits must be a JSON object")),
        Err(error) => {
            return Err(CtlError::data(format!(
                "Could not parse JSON document: {error}"
            )))
        }
    };
    for (limit, value) in &limits {
        let body = serde_json::json!({ "value": value });
        context
            .client
            .put(&api_path(&["user-limits", user, limit]), &body)
            .map_err(|error| refused(error, user))?;
    }
    Ok(())
}

/// Clears one limit, or every one with `all`.
pub fn clear(context: &Context, user: &str, limit: &str) -> Result<(), CtlError> {
    let banner = if limit == "all" {
        format!("Clearing all limits for user \"{user}\" ...")
    } else {
        format!("Clearing \"{limit}\" limit for user \"{user}\" ...")
    };
    context.output.banner(&banner);
    context
        .client
        .delete(&api_path(&["user-limits", user, limit]), None)
        .map_err(|error| refused(error, user))
}

/// One user's limits as a JSON document, or every user's as a table with `global`.
pub fn list(context: &Context, user: Option<&str>, global: bool) -> Result<(), CtlError> {
    if global {
        context.output.banner("Listing limits for all users ...");
        let items = context.list(&api_path(&["user-limits"]))?;
        let columns = vec!["user".to_string(), "limits".to_string()];
        context
            .output
            .table(&tabulate(&items, columns, |item, column| match column {
                "user" => Cell::Plain(field(item, "user")),
                _ => Cell::JsonText(field(item, "value")),
            }));
        return Ok(());
    }
    let user = user.unwrap_or(DEFAULT_USER);
    context
        .output
        .banner(&format!("Listing limits for user \"{user}\" ..."));
    let items = match context.list(&api_path(&["user-limits", user])) {
        Err(CtlError::Api(ApiError::Status { status: 404, .. })) => {
            return Err(CtlError::no_such_user(user))
        }
        other => other?,
    };
    let mut limits = Map::new();
    for item in items {
        if let Some(Value::Object(value)) = item.get("value") {
            limits.extend(value.clone());
        }
    }
    let limits = Value::Object(limits);
    match context.output.formatter {
        Formatter::Json => context.output.json_document(&limits),
        Formatter::Table => println!("{}", render_cell(&Cell::JsonText(limits))),
    }
    Ok(())
}

/// A 404 from these paths is a user that does not exist (RabbitMQ answers a PUT for one with
/// 400 `["no_such_user", user]`); another 400 names bad limits.
fn refused(error: ApiError, user: &str) -> CtlError {
    match error {
        ApiError::Status { status: 404, .. } => CtlError::no_such_user(user),
        ApiError::Status {
            status: 400,
            ref reason,
            ..
        } if reason.contains("no_such_user") => CtlError::no_such_user(user),
        other => bad_request_is_data(other),
    }
}
