//! Connections, channels and consumers: `list_connections`, `list_channels`,
//! `list_consumers`, `close_connection` and `close_all_connections`.
//!
//! rabbitmqctl names connections and channels by Erlang process id; the API names them by
//! `"peer -> local"` strings, so `pid` columns show that name in angle brackets and
//! `close_connection` takes the name (`list_connections name` prints it).

use serde_json::Value;

use crate::client::{api_path, ApiError};
use crate::context::{field, nested, select_columns, tabulate, Context};
use crate::error::{CtlError, ExitCode};
use crate::exchanges::field_table;
use crate::output::Cell;

const CONNECTION_COLUMNS: &[&str] = &[
    "pid",
    "name",
    "port",
    "host",
    "peer_port",
    "peer_host",
    "ssl",
    "ssl_protocol",
    "ssl_key_exchange",
    "ssl_cipher",
    "ssl_hash",
    "peer_cert_subject",
    "peer_cert_issuer",
    "peer_cert_serial_number",
    "peer_cert_validity",
    "state",
    "channels",
    "protocol",
    "auth_mechanism",
    "user",
    "vhost",
    "container_id",
    "timeout",
    "frame_max",
    "channel_max",
    "client_properties",
    "recv_oct",
    "recv_cnt",
    "send_oct",
    "send_cnt",
    "send_pend",
    "connected_at",
];

const CHANNEL_COLUMNS: &[&str] = &[
    "pid",
    "connection",
    "name",
    "number",
    "user",
    "vhost",
    "transactional",
    "confirm",
    "consumer_count",
    "messages_unacknowledged",
    "messages_uncommitted",
    "acks_uncommitted",
    "messages_unconfirmed",
    "prefetch_count",
];

const CONSUMER_COLUMNS: &[&str] = &[
    "queue_name",
    "channel_pid",
    "consumer_tag",
    "ack_required",
    "prefetch_count",
    "active",
    "arguments",
    "activity_status",
];

pub fn list_connections(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let default = ["user", "peer_host", "peer_port", "state"];
    let columns = select_columns(requested, &default, CONNECTION_COLUMNS)?;
    context.output.banner("Listing connections ...");
    let connections = context.list(&api_path(&["connections"]))?;
    context
        .output
        .table(&tabulate(&connections, columns, connection_cell));
    Ok(())
}

fn connection_cell(connection: &Value, column: &str) -> Cell {
    match column {
        "pid" => Cell::Plain(process_id(&field(connection, "name"))),
        "protocol" => Cell::Plain(protocol_version(&field(connection, "protocol"))),
        "client_properties" => field_table(connection, column),
        column => Cell::Plain(field(connection, column)),
    }
}

pub fn list_channels(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let default = ["pid", "user", "consumer_count", "messages_unacknowledged"];
    let columns = select_columns(requested, &default, CHANNEL_COLUMNS)?;
    context.output.banner("Listing channels ...");
    let channels = context.list(&api_path(&["channels"]))?;
    context
        .output
        .table(&tabulate(&channels, columns, |channel, column| {
            Cell::Plain(match column {
                "pid" => process_id(&field(channel, "name")),
                "connection" => process_id(&nested(channel, "connection_details", "name")),
                column => field(channel, column),
            })
        }));
    Ok(())
}

pub fn list_consumers(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let columns = select_columns(requested, &CONSUMER_COLUMNS[..7], CONSUMER_COLUMNS)?;
    context
        .output
        .banner(&format!("Listing consumers in vhost {} ...", context.vhost));
    let consumers = context.list_in_vhost("consumers")?;
    context.output.table(&tabulate(
        &consumers,
        columns,
        |consumer, column| match column {
            "queue_name" => Cell::Plain(nested(consumer, "queue", "name")),
            "channel_pid" => Cell::Plain(process_id(&nested(consumer, "channel_details", "name"))),
            "arguments" => field_table(consumer, column),
            column => Cell::Plain(field(consumer, column)),
        },
    ));
    Ok(())
}

pub fn close(context: &Context, name: &str, reason: &str) -> Result<(), CtlError> {
    context
        .output
        .banner(&format!("Closing connection {name}, reason: {reason}..."));
    match context
        .client
        .delete(&api_path(&["connections", name]), Some(reason))
    {
        Err(ApiError::Status { status: 404, .. }) => Err(CtlError::refused(
            ExitCode::Unavailable,
            format!("Connection '{name}' was not found"),
        )),
        other => Ok(other?),
    }
}

pub fn close_all(
    context: &Context,
    reason: &str,
    global: bool,
    limit: Option<usize>,
) -> Result<(), CtlError> {
    let connections = if global {
        context
            .output
            .banner("Closing all connections on the node ...");
        context.list(&api_path(&["connections"]))?
    } else {
        context.output.banner(&format!(
            "Closing all connections in vhost {} ...",
            context.vhost
        ));
        context.list(&context.vhost_path("vhosts", &["connections"]))?
    };
    let names = connections
        .iter()
        .filter_map(|connection| connection.get("name").and_then(Value::as_str));
    for name in names.take(limit.unwrap_or(usize::MAX)) {
        match context
            .client
            .delete(&api_path(&["connections", name]), Some(reason))
        {
            // Closed meanwhile by its client: the goal is reached.
            Err(ApiError::Status { status: 404, .. }) | Ok(()) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// An opaque process-id-like token: the object's name in angle brackets.
fn process_id(name: &Value) -> Value {
    match name {
        Value::String(name) => Value::from(format!("<{name}>")),
        _ => Value::Null,
    }
}

/// `"AMQP 0-9-1"` as rabbitmqctl prints it: `{0,9,1}`.
fn protocol_version(protocol: &Value) -> Value {
    let Some(text) = protocol.as_str() else {
        return Value::Null;
    };
    match text.rsplit_once(' ') {
        Some((_, version)) if version.split('-').all(|part| part.parse::<u8>().is_ok()) => {
            Value::from(format!("{{{}}}", version.replace('-', ",")))
        }
        _ => Value::from(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_protocol_renders_as_an_erlang_tuple() {
        assert_eq!(protocol_version(&json!("AMQP 0-9-1")), json!("{0,9,1}"));
        assert_eq!(protocol_version(&json!("MQTT")), json!("MQTT"));
        assert_eq!(protocol_version(&Value::Null), Value::Null);
    }
}
