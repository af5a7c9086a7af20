//! `status`, `ping` and `await_startup`, from `/api/overview` and `/api/nodes/{node}`.
//!
//! `status` prints rabbitmqctl's sections (Runtime, Plugins, Data directory, Config files,
//! Log file(s), Alarms, Memory, File Descriptors, Free Disk Space, Totals, Listeners) with what
//! the API reports; scripts mostly read only its exit code.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::client::{api_path, ApiError};
use crate::context::Context;
use crate::error::{CtlError, ExitCode};
use crate::output::{render_plain, Formatter};

/// How long `await_startup` waits between attempts.
const AWAIT_RETRY_INTERVAL_MS: u64 = 500;

const BYTES_PER_GB: f64 = 1_000_000_000.0;

pub fn status(context: &Context) -> Result<(), CtlError> {
    let overview = context.client.get(&api_path(&["overview"]))?;
    let node_name = text(&overview, "node");
    context
        .output
        .banner(&format!("Status of node {node_name} ..."));
    let mut node = context
        .client
        .get_optional(&api_path(&["nodes", &node_name]))?
        .unwrap_or(Value::Null);
    // The overview's object totals do not count vhosts; keep the count with the node's data.
    let vhost_count = context.list(&api_path(&["vhosts"]))?.len();
    if let Value::Object(fields) = &mut node {
        fields.insert("vhost_count".into(), Value::from(vhost_count));
    }
    match context.output.formatter {
        Formatter::Json => context.output.json_document(&status_json(&overview, &node)),
        Formatter::Table => {
            for (title, lines) in sections(&overview, &node) {
                println!("{title}\n");
                for line in lines {
                    println!("{line}");
                }
                println!();
            }
        }
    }
    Ok(())
}

pub fn ping(context: &Context) -> Result<(), CtlError> {
    context.output.banner(&format!(
        "Will ping the node at {}. This only checks that its management API answers. Timeout: {} ms.",
        context.client.base_url(),
        (context.timeout_seconds * 1000.0).round()
    ));
    context.client.get(&api_path(&["overview"]))?;
    context.output.result_line("Ping succeeded");
    Ok(())
}

/// Retries until the API answers, the credentials are refused, or the timeout passes (75).
pub fn await_startup(context: &Context) -> Result<(), CtlError> {
    let deadline = Instant::now() + Duration::from_secs_f64(context.timeout_seconds);
    loop {
        let error = match context.client.get(&api_path(&["overview"])) {
            Ok(_) => return Ok(()),
            Err(error @ ApiError::CredentialsRefused { .. }) => return Err(error.into()),
            Err(error) => error,
        };
        if Instant::now() >= deadline {
            return Err(CtlError::refused(
                ExitCode::TemporaryFailure,
                format!(
                    "the node at {} did not start within {} seconds; last error: {error}",
                    context.client.base_url(),
                    context.timeout_seconds
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(AWAIT_RETRY_INTERVAL_MS));
    }
}

fn status_json(overview: &Value, node: &Value) -> Value {
    json!({
        "node": overview.get("node"),
        "pid": node.get("os_pid"),
        "rabbitmq_version": overview.get("rabbitmq_version"),
        "erlang_version": overview.get("erlang_version"),
        "uptime": node.get("uptime").and_then(Value::as_u64).map(|ms| ms / 1000),
        "is_under_maintenance": node.get("being_drained"),
        "enabled_plugins": node.get("enabled_plugins"),
        "data_directory": node.get("db_dir"),
        "config_files": node.get("config_files"),
        "log_files": node.get("log_files"),
        "alarms": alarms(node),
        "memory": {
            "total": node.get("mem_used"),
            "limit": node.get("mem_limit"),
            "strategy": node.get("mem_calculation_strategy"),
        },
        "file_descriptors": {"used": node.get("fd_used"), "total": node.get("fd_total")},
        "disk_free": node.get("disk_free"),
        "disk_free_limit": node.get("disk_free_limit"),
        "totals": totals(overview, node),
        "listeners": overview.get("listeners"),
    })
}

type Section = (&'static str, Vec<String>);

fn sections(overview: &Value, node: &Value) -> Vec<Section> {
    let mut sections = vec![runtime(overview, node), plugins(node)];
    sections.push((
        "Data directory",
        vec![format!("Node data directory: {}", text(node, "db_dir"))],
    ));
    sections.push(("Config files", bullets(node.get("config_files"))));
    sections.push(("Log file(s)", bullets(node.get("log_files"))));
    let alarm_lines: Vec<String> = alarms(node)
        .iter()
        .map(|alarm| format!("{alarm} alarm"))
        .collect();
    sections.push((
        "Alarms",
        if alarm_lines.is_empty() {
            vec!["(none)".to_string()]
        } else {
            alarm_lines
        },
    ));
    sections.push(memory(node));
    sections.push((
        "File Descriptors",
        vec![format!(
            "Total: {}, limit: {}",
            text(node, "fd_used"),
            text(node, "fd_total")
        )],
    ));
    sections.push((
        "Free Disk Space",
        vec![
            format!(
                "Low free disk space watermark: {} gb",
                gigabytes(node, "disk_free_limit")
            ),
            format!("Free disk space: {} gb", gigabytes(node, "disk_free")),
        ],
    ));
    let totals = totals(overview, node);
    sections.push((
        "Totals",
        vec![
            format!(
                "Connection count: {}",
                render_plain(&totals["connection_count"])
            ),
            format!("Queue count: {}", render_plain(&totals["queue_count"])),
            format!(
                "Virtual host count: {}",
                render_plain(&totals["virtual_host_count"])
            ),
        ],
    ));
    sections.push(("Listeners", listeners(overview)));
    sections
}

fn runtime(overview: &Value, node: &Value) -> Section {
    let uptime_seconds = node.get("uptime").and_then(Value::as_u64).unwrap_or(0) / 1000;
    (
        "Runtime",
        vec![
            format!("OS PID: {}", text(node, "os_pid")),
            format!("Uptime (seconds): {uptime_seconds}"),
            format!(
                "Is under maintenance?: {}",
                node.get("being_drained")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            ),
            format!("RabbitMQ version: {}", text(overview, "rabbitmq_version")),
            format!("Node name: {}", text(overview, "node")),
            format!(
                "Erlang configuration: {}",
                text(overview, "erlang_full_version")
            ),
            format!(
                "Erlang processes: {} used, {} limit",
                text(node, "proc_used"),
                text(node, "proc_total")
            ),
            format!("Scheduler run queue: {}", text(node, "run_queue")),
            format!(
                "Cluster heartbeat timeout (net_ticktime): {}",
                text(node, "net_ticktime")
            ),
        ],
    )
}

fn plugins(node: &Value) -> Section {
    let mut lines = vec!["Enabled plugins:".to_string(), String::new()];
    lines.extend(bullets(node.get("enabled_plugins")));
    ("Plugins", lines)
}

fn memory(node: &Value) -> Section {
    (
        "Memory",
        vec![
            format!("Total memory used: {} gb", gigabytes(node, "mem_used")),
            format!(
                "Calculation strategy: {}",
                text(node, "mem_calculation_strategy")
            ),
            format!(
                "Memory high watermark setting: computed to: {} gb",
                gigabytes(node, "mem_limit")
            ),
        ],
    )
}

fn listeners(overview: &Value) -> Vec<String> {
    let Some(Value::Array(items)) = overview.get("listeners") else {
        return Vec::new();
    };
    items
        .iter()
        .map(|listener| {
            let protocol = text(listener, "protocol");
            let purpose = match protocol.as_str() {
                "amqp" => "AMQP 0-9-1 and AMQP 1.0",
                "amqp/ssl" => "AMQP 0-9-1 and AMQP 1.0 over TLS",
                "http" => "HTTP API",
                "clustering" => "inter-node and CLI tool communication",
                _ => "",
            };
            format!(
                "Interface: {}, port: {}, protocol: {protocol}, purpose: {purpose}",
                text(listener, "ip_address"),
                text(listener, "port")
            )
        })
        .collect()
}

fn alarms(node: &Value) -> Vec<&'static str> {
    let mut alarms = Vec::new();
    if node.get("mem_alarm").and_then(Value::as_bool) == Some(true) {
        alarms.push("memory");
    }
    if node.get("disk_free_alarm").and_then(Value::as_bool) == Some(true) {
        alarms.push("disk");
    }
    alarms
}

fn totals(overview: &Value, node: &Value) -> Value {
    let object_totals = overview.get("object_totals").unwrap_or(&Value::Null);
    json!({
        "connection_count": object_totals.get("connections").cloned().unwrap_or(json!(0)),
        "queue_count": object_totals.get("queues").cloned().unwrap_or(json!(0)),
        "virtual_host_count": node.get("vhost_count").cloned().unwrap_or(Value::Null),
    })
}

fn bullets(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| format!(" * {}", render_plain(item)))
            .collect(),
        _ => Vec::new(),
    }
}

fn text(item: &Value, key: &str) -> String {
    item.get(key).map(render_plain).unwrap_or_default()
}

fn gigabytes(item: &Value, key: &str) -> String {
    match item.get(key).and_then(Value::as_f64) {
        Some(bytes) => format!("{:.4}", bytes / BYTES_PER_GB),
        None => "unknown".to_string(),
    }
}
