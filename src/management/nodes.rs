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

/// RabbitMQ's default `disk_free_limit`: 50 MB.
pub const DISK_FREE_LIMIT_BYTES: u64 = 50_000_000;
/// RabbitMQ's default `vm_memory_high_watermark`, as a fraction of RAM.
pub const MEMORY_HIGH_WATERMARK: f64 = 0.4;
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
    json!({
        "name": context.node,
        "type": "disc",
        "running": true,
        "uptime": u64::try_from(context.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "mem_used": resident_bytes(),
        "mem_limit": (memory_total_bytes() as f64 * MEMORY_HIGH_WATERMARK) as u64,
        "mem_alarm": false,
        "mem_calculation_strategy": "rss",
        "disk_free": disk_free_bytes(&config.data_dir),
        "disk_free_limit": DISK_FREE_LIMIT_BYTES,
        // The storage alarm (a shard's log failed, ENOSPC included) is our disk alarm.
        "disk_free_alarm": !context.shard.storage_alarms.borrow().is_empty(),
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

fn page_size_bytes() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Resident set size: the second field of /proc/self/statm, in pages.
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * page_size_bytes()
}

/// MemTotal of /proc/meminfo.
pub fn memory_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

fn thread_count() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

pub use crate::shard::descriptors::{descriptor_limit, open_descriptors};

/// Bytes available to us on the data directory's filesystem.
pub fn disk_free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: statvfs is plain data, fully written by a successful statvfs call.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `stats` is a valid,
    // writable statvfs.
    let status = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if status != 0 {
        return 0;
    }
    stats.f_bavail.saturating_mul(stats.f_frsize)
}
