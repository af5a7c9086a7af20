//! What every command gets: the API client, the output settings and the vhost (`-p`), plus the
//! helpers listings share — fetching an item list and picking columns from it.

use serde_json::Value;

use crate::client::{api_path, ApiError, Client};
use crate::error::CtlError;
use crate::output::{Cell, Output, Table};

pub struct Context {
    pub client: Client,
    pub output: Output,
    pub vhost: String,
    /// The request timeout in seconds, for the `Timeout: 60.0 seconds ...` banner.
    pub timeout_seconds: f64,
}

impl Context {
    /// The items of a listing endpoint. Accepts both the bare array and the paginated object
    /// (`{"items": [...]}`) forms.
    pub fn list(&self, path: &str) -> Result<Vec<Value>, CtlError> {
        match self.client.get(path)? {
            Value::Array(items) => Ok(items),
            Value::Object(mut object) => match object.remove("items") {
                Some(Value::Array(items)) => Ok(items),
                _ => Err(invalid(path, "expected a JSON array")),
            },
            _ => Err(invalid(path, "expected a JSON array")),
        }
    }

    /// The items of a per-vhost listing; a vhost that does not exist lists nothing, as with
    /// rabbitmqctl.
    pub fn list_in_vhost(&self, collection: &str) -> Result<Vec<Value>, CtlError> {
        match self.list(&api_path(&[collection, &self.vhost])) {
            Err(error) if error.http_status() == Some(404) => Ok(Vec::new()),
            other => other,
        }
    }

    /// `/api/{collection}/{vhost}/{rest...}`.
    pub fn vhost_path(&self, collection: &str, rest: &[&str]) -> String {
        let mut segments = vec![collection, self.vhost.as_str()];
        segments.extend_from_slice(rest);
        api_path(&segments)
    }
}

fn invalid(path: &str, detail: &str) -> CtlError {
    CtlError::Api(ApiError::InvalidResponse {
        url: path.to_string(),
        detail: detail.to_string(),
    })
}

/// The columns to show: the requested ones (space- or comma-separated), all checked against
/// `allowed`, or `default` when none were requested.
pub fn select_columns(
    requested: &[String],
    default: &[&str],
    allowed: &[&str],
) -> Result<Vec<String>, CtlError> {
    let columns: Vec<String> = requested
        .iter()
        .flat_map(|column| column.split(','))
        .map(str::trim)
        .filter(|column| !column.is_empty())
        .map(str::to_string)
        .collect();
    if columns.is_empty() {
        return Ok(default.iter().map(|column| column.to_string()).collect());
    }
    let unknown: Vec<&str> = columns
        .iter()
        .map(String::as_str)
        .filter(|column| !allowed.contains(column))
        .collect();
    if !unknown.is_empty() {
        return Err(CtlError::usage(format!(
            "Info key(s) {} are not supported",
            unknown.join(",")
        )));
    }
    Ok(columns)
}

/// A table of `items`, each cell computed by `cell(item, column)`.
pub fn tabulate(
    items: &[Value],
    columns: Vec<String>,
    cell: impl Fn(&Value, &str) -> Cell,
) -> Table {
    let rows = items
        .iter()
        .map(|item| columns.iter().map(|column| cell(item, column)).collect())
        .collect();
    Table {
        columns,
        rows,
        blank_line_when_empty: false,
    }
}

/// `item[key]`, or null.
pub fn field(item: &Value, key: &str) -> Value {
    item.get(key).cloned().unwrap_or(Value::Null)
}

/// `item[outer][inner]`, or null.
pub fn nested(item: &Value, outer: &str, inner: &str) -> Value {
    item.get(outer)
        .and_then(|value| value.get(inner))
        .cloned()
        .unwrap_or(Value::Null)
}

/// Tags arrive as an array, or as a comma-separated string from older brokers; both render
/// as a list.
pub fn tags(item: &Value, key: &str) -> Value {
    match item.get(key) {
        Some(Value::String(text)) => Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|tag| !tag.is_empty())
                .map(Value::from)
                .collect(),
        ),
        Some(Value::Array(items)) => Value::Array(items.clone()),
        _ => Value::Array(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_default_and_are_checked() {
        let none: Vec<String> = Vec::new();
        assert_eq!(
            select_columns(&none, &["name", "messages"], &["name"]).unwrap(),
            ["name", "messages"]
        );
        let picked = vec!["name,durable".to_string(), "messages".to_string()];
        assert_eq!(
            select_columns(&picked, &["name"], &["name", "durable", "messages"]).unwrap(),
            ["name", "durable", "messages"]
        );
        let bad = vec!["name".to_string(), "colour".to_string()];
        let error = select_columns(&bad, &["name"], &["name"]).unwrap_err();
        assert_eq!(error.exit_code(), crate::error::ExitCode::Usage);
        assert_eq!(error.to_string(), "Info key(s) colour are not supported");
    }

    #[test]
    fn tags_as_string_or_array_become_a_list() {
        assert_eq!(tags(&json!({"tags": "a, b"}), "tags"), json!(["a", "b"]));
        assert_eq!(tags(&json!({"tags": ["x"]}), "tags"), json!(["x"]));
        assert_eq!(tags(&json!({"tags": ""}), "tags"), json!([]));
        assert_eq!(tags(&json!({}), "tags"), json!([]));
    }
}
