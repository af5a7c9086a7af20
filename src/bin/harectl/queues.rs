//! `list_queues`, `purge_queue` and `delete_queue` over `/api/queues/{vhost}[/{name}]`.

use serde_json::Value;

use crate::client::ApiError;
use crate::context::{field, nested, select_columns, tabulate, Context};
use crate::error::{CtlError, ExitCode};
use crate::output::Cell;

const DEFAULT_COLUMNS: &[&str] = &["name", "messages"];

pub const COLUMNS: &[&str] = &[
    "name",
    "durable",
    "auto_delete",
    "arguments",
    "policy",
    "operator_policy",
    "effective_policy_definition",
    "pid",
    "owner_pid",
    "exclusive",
    "exclusive_consumer_pid",
    "exclusive_consumer_tag",
    "messages_ready",
    "messages_unacknowledged",
    "messages",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_ram",
    "messages_persistent",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_persistent",
    "head_message_timestamp",
    "disk_reads",
    "disk_writes",
    "consumers",
    "consumer_utilisation",
    "consumer_capacity",
    "memory",
    "state",
    "type",
    "leader",
    "members",
    "online",
];

/// Counters the API may leave out before a queue's first statistics sample; rabbitmqctl shows 0.
const COUNTERS: &[&str] = &[
    "messages_ready",
    "messages_unacknowledged",
    "messages",
    "messages_ready_ram",
    "messages_unacknowledged_ram",
    "messages_ram",
    "messages_persistent",
    "message_bytes",
    "message_bytes_ready",
    "message_bytes_unacknowledged",
    "message_bytes_ram",
    "message_bytes_persistent",
    "disk_reads",
    "disk_writes",
    "consumers",
    "memory",
];

pub fn list(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let columns = select_columns(requested, DEFAULT_COLUMNS, COLUMNS)?;
    context.output.banner(&format!(
        "Timeout: {:.1} seconds ...",
        context.timeout_seconds
    ));
    context
        .output
        .banner(&format!("Listing queues for vhost {} ...", context.vhost));
    let queues = context.list_in_vhost("queues")?;
    context.output.table(&tabulate(&queues, columns, cell));
    Ok(())
}

fn cell(queue: &Value, column: &str) -> Cell {
    match column {
        "arguments" | "effective_policy_definition" => Cell::FieldTable(
            queue
                .get(column)
                .cloned()
                .unwrap_or(Value::Object(Default::default())),
        ),
        "pid" => Cell::Plain(Value::from(format!(
            "<{}.{}>",
            queue.get("node").and_then(Value::as_str).unwrap_or("hare"),
            queue
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ))),
        "owner_pid" => Cell::Plain(match nested(queue, "owner_pid_details", "name") {
            Value::String(name) => Value::from(format!("<{name}>")),
            _ => Value::Null,
        }),
        "type" => Cell::Plain(match field(queue, "type") {
            Value::Null => Value::from("classic"),
            kind => kind,
        }),
        column if COUNTERS.contains(&column) => Cell::Plain(match field(queue, column) {
            Value::Null => Value::from(0),
            count => count,
        }),
        column => Cell::Plain(field(queue, column)),
    }
}

pub fn purge(context: &Context, queue: &str) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Purging queue '{queue}' in vhost '{}' ...",
        context.vhost
    ));
    match context
        .client
        .delete(&context.vhost_path("queues", &[queue, "contents"]), None)
    {
        Err(ApiError::Status { status: 404, .. }) => Err(CtlError::refused(
            ExitCode::Unavailable,
            format!("Queue '{queue}' in vhost '{}' was not found", context.vhost),
        )),
        other => Ok(other?),
    }
}

pub fn delete(
    context: &Context,
    queue: &str,
    if_empty: bool,
    if_unused: bool,
) -> Result<(), CtlError> {
    let conditions = match (if_empty, if_unused) {
        (true, true) => "if queue is empty and if queue is unused ",
        (true, false) => "if queue is empty ",
        (false, true) => "if queue is unused ",
        (false, false) => "",
    };
    context.output.banner(&format!(
        "Deleting queue '{queue}' on vhost '{}' {conditions}...",
        context.vhost
    ));
    let path = context.vhost_path("queues", &[queue]);
    let Some(before) = context.client.get_optional(&path)? else {
        return Err(queue_not_found());
    };
    let mut query = Vec::new();
    if if_empty {
        query.push("if-empty=true");
    }
    if if_unused {
        query.push("if-unused=true");
    }
    let target = if query.is_empty() {
        path
    } else {
        format!("{path}?{}", query.join("&"))
    };
    match context.client.delete(&target, None) {
        Ok(()) => {}
        Err(ApiError::Status { status: 404, .. }) => return Err(queue_not_found()),
        Err(ApiError::Status {
            status: 400,
            reason,
            ..
        }) => return Err(refused_delete(&reason, if_empty)),
        Err(error) => return Err(error.into()),
    }
    let ready = before
        .get("messages_ready")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    context.output.result_line(&format!(
        "Queue was successfully deleted with {ready} ready messages"
    ));
    Ok(())
}

fn queue_not_found() -> CtlError {
    CtlError::usage("No such queue was found")
}

/// RabbitMQ's 400 reasons are "... not empty" and "... in use".
fn refused_delete(reason: &str, if_empty: bool) -> CtlError {
    if reason.contains("not empty") || (if_empty && !reason.contains("in use")) {
        CtlError::usage("The queue is not empty")
    } else {
        CtlError::usage("The queue is in use")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render_cell;
    use serde_json::json;

    #[test]
    fn missing_counters_show_zero_and_missing_text_shows_nothing() {
        let queue = json!({"name": "q", "node": "rabbit@h", "arguments": {"x-max-length": 10}});
        assert_eq!(render_cell(&cell(&queue, "messages")), "0");
        assert_eq!(render_cell(&cell(&queue, "policy")), "");
        assert_eq!(render_cell(&cell(&queue, "type")), "classic");
        assert_eq!(
            render_cell(&cell(&queue, "arguments")),
            r#"[{"x-max-length",10}]"#
        );
        assert_eq!(render_cell(&cell(&queue, "owner_pid")), "");
    }

    #[test]
    fn delete_refusals_name_the_condition() {
        let empty = refused_delete("queue 'q' in vhost '/' not empty", true);
        assert_eq!(empty.to_string(), "The queue is not empty");
        assert_eq!(empty.exit_code(), ExitCode::Usage);
        let used = refused_delete("queue 'q' in vhost '/' in use", false);
        assert_eq!(used.to_string(), "The queue is in use");
    }
}
