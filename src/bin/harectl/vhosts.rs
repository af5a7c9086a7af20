//! Virtual host commands over `/api/vhosts/{name}` and `/api/vhost-limits/{name}[/{limit}]`:
//! `list_vhosts`, `add_vhost`, `delete_vhost`, `set_vhost_limits`, `clear_vhost_limits` and
//! `list_vhost_limits`.

use serde_json::{Map, Value};

use crate::client::{api_path, ApiError};
use crate::context::{field, nested, select_columns, tabulate, tags, Context};
use crate::error::CtlError;
use crate::output::{render_cell, Cell, Formatter};
use crate::users::bad_request_is_data;

const COLUMNS: &[&str] = &[
    "name",
    "description",
    "tags",
    "default_queue_type",
    "protected_from_deletion",
    "tracing",
    "cluster_state",
    "metadata",
];

pub fn list(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let columns = select_columns(requested, &["name"], COLUMNS)?;
    context.output.banner("Listing vhosts ...");
    let vhosts = context.list(&api_path(&["vhosts"]))?;
    context.output.table(&tabulate(&vhosts, columns, cell));
    Ok(())
}

/// Newer brokers keep description, tags and default queue type under `metadata` as well;
/// either place is read.
fn cell(vhost: &Value, column: &str) -> Cell {
    let value = match column {
        "tags" => match vhost.get("tags") {
            Some(_) => tags(vhost, "tags"),
            None => tags(vhost.get("metadata").unwrap_or(&Value::Null), "tags"),
        },
        "description" | "default_queue_type" => match field(vhost, column) {
            Value::Null => nested(vhost, "metadata", column),
            value => value,
        },
        "tracing" | "protected_from_deletion" => match field(vhost, column) {
            Value::Null => Value::Bool(false),
            value => value,
        },
        column => field(vhost, column),
    };
    match (column, value) {
        ("default_queue_type", Value::Null) => Cell::Plain(Value::from("undefined")),
        (_, value) => Cell::Plain(value),
    }
}

pub fn add(
    context: &Context,
    name: &str,
    description: Option<&str>,
    tags: Option<&str>,
    default_queue_type: Option<&str>,
) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Adding vhost \"{name}\" ..."));
    let path = api_path(&["vhosts", name]);
    // The API replaces an existing vhost's metadata on PUT; what is not given is kept.
    let mut body = match context.client.get_optional(&path)? {
        Some(existing) => kept_metadata(&existing),
        None => Map::new(),
    };
    if let Some(description) = description {
        body.insert("description".into(), Value::from(description));
    }
    if let Some(tags) = tags {
        body.insert("tags".into(), Value::from(tags));
    }
    if let Some(kind) = default_queue_type {
        body.insert("default_queue_type".into(), Value::from(kind));
    }
    context
        .client
        .put(&path, &Value::Object(body))
        .map_err(bad_request_is_data)?;
    Ok(())
}

/// An existing vhost's description, tags, default queue type and tracing flag as a PUT body,
/// so that a PUT changing one of them keeps the others.
pub fn kept_metadata(existing: &Value) -> Map<String, Value> {
    let tag_list: Vec<String> = match cell(existing, "tags") {
        Cell::Plain(Value::Array(items)) => items
            .iter()
            .filter_map(|tag| tag.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let mut body = Map::new();
    body.insert("tags".into(), Value::from(tag_list.join(",")));
    if let Cell::Plain(description @ Value::String(_)) = cell(existing, "description") {
        body.insert("description".into(), description);
    }
    match cell(existing, "default_queue_type") {
        Cell::Plain(Value::String(kind)) if kind != "undefined" => {
            body.insert("default_queue_type".into(), Value::from(kind));
        }
        _ => {}
    }
    if let Some(tracing) = existing.get("tracing").filter(|value| value.is_boolean()) {
        body.insert("tracing".into(), tracing.clone());
    }
    body
}

pub fn delete(context: &Context, name: &str) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Deleting vhost \"{name}\" ..."));
    match context.client.delete(&api_path(&["vhosts", name]), None) {
        Err(ApiError::Status { status: 404, .. }) => Err(CtlError::data(format!(
            "Virtual host '{name}' does not exist"
        ))),
        other => Ok(other?),
    }
}

/// Sets exactly the limits given, as rabbitmqctl does: limits not named are cleared.
pub fn set_limits(context: &Context, definition: &str) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Setting vhost limits to \"{definition}\" for vhost \"{}\" ...",
        context.vhost
    ));
    let limits = match serde_json::from_str::<Value>(definition) {
        Ok(Value::Object(limits)) => limits,
        Ok(_) => return Err(CtlError::data("the limits must be a JSON object")),
        Err(error) => return Err(CtlError::data(format!("invalid JSON: {error}"))),
    };
    for (limit, _) in current_limits(context)? {
        if !limits.contains_key(&limit) {
            context
                .client
                .delete(&context.vhost_path("vhost-limits", &[&limit]), None)?;
        }
    }
    for (limit, value) in &limits {
        let body = serde_json::json!({ "value": value });
        context
            .client
            .put(&context.vhost_path("vhost-limits", &[limit]), &body)
            .map_err(bad_request_is_data)?;
    }
    Ok(())
}

pub fn clear_limits(context: &Context) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Clearing vhost \"{}\" limits ...", context.vhost));
    for (limit, _) in current_limits(context)? {
        context
            .client
            .delete(&context.vhost_path("vhost-limits", &[&limit]), None)?;
    }
    Ok(())
}

pub fn list_limits(context: &Context, global: bool) -> Result<(), CtlError> {
    if global {
        context.output.banner("Listing limits for all vhosts ...");
        let items = context.list(&api_path(&["vhost-limits"]))?;
        let columns = vec!["vhost".to_string(), "limits".to_string()];
        context
            .output
            .table(&tabulate(&items, columns, |item, column| match column {
                "vhost" => Cell::Plain(field(item, "vhost")),
                _ => Cell::JsonText(field(item, "value")),
            }));
        return Ok(());
    }
    context.output.banner(&format!(
        "Listing limits for vhost \"{}\" ...",
        context.vhost
    ));
    let limits = Value::Object(current_limits(context)?);
    match context.output.formatter {
        Formatter::Json => context.output.json_document(&limits),
        Formatter::Table if limits.as_object().is_some_and(Map::is_empty) => println!(),
        Formatter::Table => println!("{}", render_cell(&Cell::JsonText(limits))),
    }
    Ok(())
}

/// The vhost's limits as `{"max-connections": 10, ...}`.
fn current_limits(context: &Context) -> Result<Map<String, Value>, CtlError> {
    let items = match context.list(&api_path(&["vhost-limits", &context.vhost])) {
        Err(error) if error.http_status() == Some(404) => Vec::new(),
        other => other?,
    };
    let mut limits = Map::new();
    for item in items {
        if let Some(Value::Object(value)) = item.get("value") {
            limits.extend(value.clone());
        }
    }
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_existing_vhost_keeps_its_metadata_on_put() {
        let existing = json!({"name": "v", "description": "d", "tags": ["a", "b"],
            "default_queue_type": "undefined", "tracing": true});
        assert_eq!(
            Value::Object(kept_metadata(&existing)),
            json!({"description": "d", "tags": "a,b", "tracing": true})
        );
    }

    #[test]
    fn vhost_columns_read_metadata_and_default_as_rabbitmqctl() {
        let vhost = json!({"name": "v", "metadata": {"description": "d", "tags": ["a", "b"]},
            "cluster_state": {"rabbit@h": "running"}});
        assert_eq!(render_cell(&cell(&vhost, "description")), "d");
        assert_eq!(render_cell(&cell(&vhost, "tags")), "[a, b]");
        assert_eq!(
            render_cell(&cell(&vhost, "default_queue_type")),
            "undefined"
        );
        assert_eq!(render_cell(&cell(&vhost, "tracing")), "false");
        assert_eq!(
            render_cell(&cell(&vhost, "cluster_state")),
            "[{rabbit@h, running}]"
        );
    }
}
