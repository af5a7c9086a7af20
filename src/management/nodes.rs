//! `/api/nodes` and `/api/nodes/{node}`: this one node, with real figures from the kernel
//! (resident memory from /proc/self/statm, free disk from statvfs of the data directory,
//! descriptors from /proc/self/fd and RLIMIT_NOFILE). These are procfs reads and one statvfs
//! per request: kernel memory, nothing that waits on a disk.

use serde_json::{json, Value};

use crate::management::auth;
use crate::management::overview::{exchange_types, ERLANG_VERSION, RABBITMQ_VERSION};
use crate::management::response::{self, Response};
use crate::management::router::{refused, Call};
use crate::management::Context;
use crate::shard::resource_alarms::Resource;

/// Erlang's default process limit, reported as `proc_total` (tools require the field).
const PROC_TOTAL: u64 = 1_048_576;

/// `GET /api/nodes`.
pub async fn list(call: &Call<'_>) -> Response {
    if let Err(refusal) = auth::require_monitoring(call.caller) {
        return refused(&refusal);
    }
    call.list(vec![node_json(call.context)])
}

/// `GET /api/nodes/{node}`.
pub async fn one(call: &Call<'_>, name: &str) -> Response {
    if let Err(refusal) = auth::require_monitoring(call.caller) {
        return refused(&refusal);
    }
    if name != call.context.node {
        return response::not_found();
    }
    call.one(node_json(call.context))
}

fn node_json(context: &Context) -> Value {
    let config = &context.shard.config;
    let (fd_used, fd_total) = (open_descriptors(), descriptor_limit());
    let mut contexts = Vec::new();
    if let Some(address) = context.management_addr {
        contexts.push(json!({
            "description": "RabbitMQ Management",
            "path": "/",
            "port": address.port().to_string(),
            "ssl": config.management_tls,
        }));
    }
    let sockets_used: usize = context.shard.connection_counts.borrow().iter().sum();
    let alarms = &context.shard.mesh.alarms;
    let storage_alarm = !context.shard.storage_alarms.borrow().is_empty();
    json!({
        "name": context.node,
        "type": "disc",
        "running": true,
        "uptime": u64::try_from(context.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "mem_used": resident_bytes(),
        "mem_limit": alarms.memory_limit(),
        "mem_alarm": alarms.raised(Resource::Memory),
        "mem_calculation_strategy": "rss",
        "disk_free": disk_free_bytes(&config.data_dir),
        "disk_free_limit": alarms.disk_free_limit(),
        // Free space under the limit, or a shard's log failed (ENOSPC included): either way
        // publishers are blocked for the disk. `storage_alarm` (Hare's own) tells them apart.
        "disk_free_alarm": alarms.raised(Resource::Disk) || storage_alarm,
        "storage_alarm": storage_alarm,
        "fd_used": fd_used,
        "fd_total": fd_total,
        "sockets_used": sockets_used,
        "sockets_total": fd_total,
        "proc_used": thread_count(),
        "proc_total": PROC_TOTAL,
        "run_queue": 0,
        "processors": std::thread::available_parallelism().map_or(1, usize::from),
        "os_pid": std::process::id().to_string(),
        "rates_mode": "basic",
        "enabled_plugins": ["rabbitmq_management"],
        "being_drained": false,
        "partitions": [],
        "cluster_links": [],
        "applications": [
            {"name": "rabbit", "description": "RabbitMQ", "version": RABBITMQ_VERSION},
            {"name": "rabbitmq_management", "description": "RabbitMQ Management Console",
             "version": RABBITMQ_VERSION},
        ],
        "rabbitmq_version": RABBITMQ_VERSION,
        "erlang_version": ERLANG_VERSION,
        "exchange_types": exchange_types(),
        "auth_mechanisms": [
            {"name": "PLAIN", "description": "SASL PLAIN authentication mechanism", "enabled": true},
            {"name": "AMQPLAIN", "description": "QPid AMQPLAIN mechanism", "enabled": true},
            {"name": "EXTERNAL", "description": "SASL EXTERNAL authentication mechanism",
             "enabled": config.tls.as_ref().is_some_and(|tls| tls.settings().verify_peer)},
        ],
        "contexts": contexts,
        "log_files": [],
        "config_files": [],
        "db_dir": config.data_dir.display().to_string(),
        "net_ticktime": 60,
        "shards": config.shards,
    })
}

/// The host's name, for the node name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub use crate::shard::resource_alarms::{memory_total_bytes, resident_bytes};

fn thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

pub use crate::shard::descriptors::{descriptor_limit, open_descriptors};

/// Bytes available to us on the data directory's filesystem (0 if statvfs fails).
pub fn disk_free_bytes(path: &std::path::Path) -> u64 {
    match crate::shard::resource_alarms::disk_free_bytes(path) {
        u64::MAX => 0,
        free => free,
    }
}
