//! `list_exchanges` and `list_bindings` over `/api/exchanges/{vhost}` and `/api/bindings/{vhost}`.

use serde_json::Value;

use crate::context::{field, select_columns, tabulate, Context};
use crate::error::CtlError;
use crate::output::Cell;

const EXCHANGE_COLUMNS: &[&str] = &[
    "name",
    "type",
    "durable",
    "auto_delete",
    "internal",
    "arguments",
    "policy",
];

const BINDING_COLUMNS: &[&str] = &[
    "source_name",
    "source_kind",
    "destination_name",
    "destination_kind",
    "routing_key",
    "arguments",
];

pub fn list_exchanges(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let columns = select_columns(requested, &["name", "type"], EXCHANGE_COLUMNS)?;
    context.output.banner(&format!(
        "Listing exchanges for vhost {} ...",
        context.vhost
    ));
    let exchanges = context.list_in_vhost("exchanges")?;
    context.output.table(&tabulate(
        &exchanges,
        columns,
        |exchange, column| match column {
            "arguments" => field_table(exchange, column),
            "internal" => Cell::Plain(match field(exchange, column) {
                Value::Null => Value::Bool(false),
                internal => internal,
            }),
            column => Cell::Plain(field(exchange, column)),
        },
    ));
    Ok(())
}

pub fn list_bindings(context: &Context, requested: &[String]) -> Result<(), CtlError> {
    let columns = select_columns(requested, BINDING_COLUMNS, BINDING_COLUMNS)?;
    context
        .output
        .banner(&format!("Listing bindings for vhost {}...", context.vhost));
    let bindings = context.list_in_vhost("bindings")?;
    context
        .output
        .table(&tabulate(&bindings, columns, binding_cell));
    Ok(())
}

fn binding_cell(binding: &Value, column: &str) -> Cell {
    match column {
        "source_name" => Cell::Plain(field(binding, "source")),
        "source_kind" => Cell::Plain(Value::from("exchange")),
        "destination_name" => Cell::Plain(field(binding, "destination")),
        "destination_kind" => Cell::Plain(field(binding, "destination_type")),
        "arguments" => field_table(binding, column),
        column => Cell::Plain(field(binding, column)),
    }
}

pub fn field_table(item: &Value, key: &str) -> Cell {
    Cell::FieldTable(
        item.get(key)
            .cloned()
            .unwrap_or(Value::Object(Default::default())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::render_cell;
    use serde_json::json;

    #[test]
    fn a_binding_row_uses_rabbitmqctl_column_names() {
        let binding = json!({"source": "", "vhost": "/", "destination": "q1",
            "destination_type": "queue", "routing_key": "q1", "arguments": {}});
        let row: Vec<String> = BINDING_COLUMNS
            .iter()
            .map(|column| render_cell(&binding_cell(&binding, column)))
            .collect();
        assert_eq!(row.join("\t"), "\texchange\tq1\tqueue\tq1\t[]");
    }
}
