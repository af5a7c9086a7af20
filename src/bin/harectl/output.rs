//! Everything `harectl` prints on stdout: banners, tables and JSON, in rabbitmqctl's shapes
//! (docs/harectl.md, "Output").
//!
//! Table mode writes a header row and one row per item, columns separated by one TAB. Values are
//! rendered as rabbitmqctl does: strings raw, booleans `true`/`false`, lists `[a, b]`, AMQP
//! tables (arguments) as an Erlang-ish list `[{"x-max-length",10}]`. JSON mode writes an array
//! of objects keyed by column name, in column order, with typed values and no banner.

use std::io::Write;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Formatter {
    Table,
    Json,
}

/// One value of a listing, with how it is rendered.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A plain value: strings raw, lists `[a, b]`.
    Plain(Value),
    /// An AMQP field table (`arguments`, `client_properties`): Erlang-ish in a table,
    /// `[["key","type",value], ...]` triples in JSON, as rabbitmqctl prints them.
    FieldTable(Value),
    /// A JSON document shown as its compact text in both modes (a policy's `definition`).
    JsonText(Value),
}

/// The rows of a listing.
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// rabbitmqctl prints one empty line instead of the header when some listings (permissions,
    /// policies) are empty, and nothing at all for the others.
    pub blank_line_when_empty: bool,
}

pub struct Output {
    pub formatter: Formatter,
    /// `-q`/`-s`: no banner.
    pub quiet: bool,
    /// `-s`/`--no-table-headers`: no header row.
    pub headers: bool,
}

impl Output {
    /// A banner line; not printed with `-q`, `-s` or a machine-readable formatter.
    pub fn banner(&self, text: &str) {
        if !self.quiet && self.formatter == Formatter::Table {
            println!("{text}");
        }
    }

    /// A line that belongs to the result in table mode (`Queue was successfully deleted ...`).
    pub fn result_line(&self, text: &str) {
        if self.formatter == Formatter::Table {
            println!("{text}");
        }
    }

    pub fn table(&self, table: &Table) {
        let text = match self.formatter {
            Formatter::Table => render_table(table, self.headers),
            Formatter::Json => render_json(table),
        };
        let mut stdout = std::io::stdout().lock();
        // A closed pipe (`harectl list_queues | head -1`) is not an error worth reporting.
        let _ = stdout.write_all(text.as_bytes());
        let _ = stdout.flush();
    }

    /// A JSON document printed as is (status, definitions).
    pub fn json_document(&self, value: &Value) {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(error) => eprintln!("Error:\ncannot render JSON: {error}"),
        }
    }
}

pub fn render_table(table: &Table, headers: bool) -> String {
    let mut text = String::new();
    if table.rows.is_empty() {
        if table.blank_line_when_empty {
            text.push('\n');
        }
        return text;
    }
    if headers {
        text.push_str(&table.columns.join("\t"));
        text.push('\n');
    }
    for row in &table.rows {
        let cells: Vec<String> = row.iter().map(render_cell).collect();
        text.push_str(&cells.join("\t"));
        text.push('\n');
    }
    text
}

/// rabbitmqctl's JSON layout: one object per line, the separating comma leading the next line.
pub fn render_json(table: &Table) -> String {
    let lines: Vec<String> = table
        .rows
        .iter()
        .map(|row| {
            let object = JsonRow {
                columns: &table.columns,
                cells: row,
            };
            serde_json::to_string(&object).unwrap_or_else(|error| format!("{error}"))
        })
        .collect();
    if lines.is_empty() {
        return "[\n]\n".to_string();
    }
    format!("[\n{}\n]\n", lines.join("\n,"))
}

pub fn render_cell(cell: &Cell) -> String {
    match cell {
        Cell::Plain(value) => render_plain(value),
        Cell::FieldTable(value) => render_field_value(value),
        Cell::JsonText(value) => sorted(value).to_string(),
    }
}

/// Strings raw, with control characters escaped so that a TAB or newline in a name cannot
/// break the row; lists `[a, b]`; objects `[{key, value}]`; null empty.
pub fn render_plain(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(text) => escape_control(text),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(render_plain).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{{{}, {}}}", escape_control(key), render_plain(value)))
                .collect();
            format!("[{}]", items.join(", "))
        }
    }
}

/// An AMQP field value the way rabbitmqctl prints it: strings quoted, tables
/// `[{"key",value},...]`, arrays `[a,b]`, no spaces.
pub fn render_field_value(value: &Value) -> String {
    match value {
        Value::Null => "undefined".to_string(),
        Value::String(text) => quoted(text),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(render_field_value).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(key, value)| format!("{{{},{}}}", quoted(key), render_field_value(value)))
                .collect();
            format!("[{}]", items.join(","))
        }
    }
}

/// A field table as rabbitmqctl's JSON formatter writes it: `[["key","type",value], ...]`
/// with the AMQP type each JSON value becomes.
pub fn field_table_triples(value: &Value) -> Value {
    let Value::Object(map) = value else {
        return Value::Array(Vec::new());
    };
    Value::Array(
        map.iter()
            .map(|(key, value)| {
                let (kind, value) = typed_field_value(value);
                Value::Array(vec![Value::String(key.clone()), Value::from(kind), value])
            })
            .collect(),
    )
}

fn typed_field_value(value: &Value) -> (&'static str, Value) {
    match value {
        Value::Null => ("void", Value::Null),
        Value::Bool(_) => ("bool", value.clone()),
        Value::Number(number) if number.is_f64() => ("double", value.clone()),
        Value::Number(_) => ("long", value.clone()),
        Value::String(_) => ("longstr", value.clone()),
        Value::Array(items) => (
            "array",
            Value::Array(items.iter().map(|item| typed_field_value(item).1).collect()),
        ),
        Value::Object(_) => ("table", field_table_triples(value)),
    }
}

fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ => out.push_str(&escape_control(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('"');
    out
}

fn escape_control(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// A copy with every object's keys sorted, as RabbitMQ prints policy definitions.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Map::new();
            for (key, value) in entries {
                out.insert(key.clone(), sorted(value));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// One row as a JSON object whose keys keep the column order.
struct JsonRow<'a> {
    columns: &'a [String],
    cells: &'a [Cell],
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.columns.len()))?;
        for (column, cell) in self.columns.iter().zip(self.cells) {
            map.serialize_entry(column, &JsonCell(cell))?;
        }
        map.end()
    }
}

struct JsonCell<'a>(&'a Cell);

impl Serialize for JsonCell<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Cell::Plain(value) => value.serialize(serializer),
            Cell::FieldTable(value) => {
                let triples = field_table_triples(value);
                let items = triples.as_array().map(Vec::as_slice).unwrap_or_default();
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Cell::JsonText(value) => serializer.serialize_str(&sorted(value).to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn table(columns: &[&str], rows: Vec<Vec<Cell>>) -> Table {
        Table {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows,
            blank_line_when_empty: false,
        }
    }

    #[test]
    fn a_table_is_tab_separated_with_a_header_row() {
        let t = table(
            &["name", "messages"],
            vec![
                vec![Cell::Plain(json!("task_queue")), Cell::Plain(json!(3))],
                vec![Cell::Plain(json!("")), Cell::Plain(json!(0))],
            ],
        );
        assert_eq!(
            render_table(&t, true),
            "name\tmessages\ntask_queue\t3\n\t0\n"
        );
        assert_eq!(render_table(&t, false), "task_queue\t3\n\t0\n");
    }

    #[test]
    fn an_empty_listing_prints_nothing_or_one_blank_line() {
        let mut t = table(&["user", "configure"], Vec::new());
        assert_eq!(render_table(&t, true), "");
        t.blank_line_when_empty = true;
        assert_eq!(render_table(&t, true), "\n");
        assert_eq!(render_json(&t), "[\n]\n");
    }

    #[test]
    fn values_render_as_rabbitmqctl_prints_them() {
        assert_eq!(render_plain(&json!(true)), "true");
        assert_eq!(render_plain(&json!(["administrator"])), "[administrator]");
        assert_eq!(render_plain(&json!(["a", "b"])), "[a, b]");
        assert_eq!(render_plain(&json!([])), "[]");
        assert_eq!(render_plain(&Value::Null), "");
        assert_eq!(render_plain(&json!("café")), "café");
        assert_eq!(render_plain(&json!("a\tb")), "a\\tb");
        assert_eq!(
            render_plain(&json!({"rabbit@localhost": "running"})),
            "[{rabbit@localhost, running}]"
        );
    }

    #[test]
    fn arguments_render_as_an_erlang_ish_list() {
        let arguments = json!({"x-queue-type": "classic", "x-max-length": 10});
        assert_eq!(
            render_cell(&Cell::FieldTable(arguments)),
            r#"[{"x-max-length",10},{"x-queue-type","classic"}]"#
        );
        assert_eq!(render_cell(&Cell::FieldTable(json!({}))), "[]");
        let nested = json!({"x-n": {"a": 1}, "x-l": [1, "s"], "x-b": true});
        assert_eq!(
            render_cell(&Cell::FieldTable(nested)),
            r#"[{"x-b",true},{"x-l",[1,"s"]},{"x-n",[{"a",1}]}]"#
        );
    }

    #[test]
    fn json_rows_keep_column_order_and_type_their_values() {
        let t = table(
            &["name", "messages", "arguments", "definition"],
            vec![vec![
                Cell::Plain(json!("q")),
                Cell::Plain(json!(0)),
                Cell::FieldTable(json!({"x-max-length": 10, "x-dead-letter-exchange": "dlx"})),
                Cell::JsonText(json!({"max-length": 5})),
            ]],
        );
        assert_eq!(
            render_json(&t),
            "[\n{\"name\":\"q\",\"messages\":0,\"arguments\":[[\"x-dead-letter-exchange\",\"longstr\",\"dlx\"],[\"x-max-length\",\"long\",10]],\"definition\":\"{\\\"max-length\\\":5}\"}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&render_json(&t)).unwrap();
        assert_eq!(parsed[0]["messages"], json!(0));
    }
}
