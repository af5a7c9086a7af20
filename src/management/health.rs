//! `/api/health/checks/*` and `/api/aliveness-test/{vhost}`: 200 `{"status":"ok"}` or 503
//! with RabbitMQ's failure body.

use serde_json::{json, Value};

use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::shard::resource_alarms::Resource;

/// The checks under `/api/health/checks/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    Alarms,
    LocalAlarms,
    VirtualHosts,
    /// The segment as given: non-numeric is 400.
    PortListener(String),
    ProtocolListener(String),
    NodeIsQuorumCritical,
}

impl Check {
    pub fn parse(segments: &[&str]) -> Option<Check> {
        Some(match segments {
            ["alarms"] => Check::Alarms,
            ["local-alarms"] => Check::LocalAlarms,
            ["virtual-hosts"] => Check::VirtualHosts,
            ["port-listener", port] => Check::PortListener((*port).to_owned()),
            ["protocol-listener", protocols] => Check::ProtocolListener((*protocols).to_owned()),
            ["node-is-quorum-critical"] => Check::NodeIsQuorumCritical,
            _ => return None,
        })
    }
}

fn ok() -> Response {
    response::ok(&json!({"status": "ok"}))
}

pub fn check(call: &Call<'_>, check: Check) -> Response {
    match check {
        Check::Alarms | Check::LocalAlarms => alarms(call),
        // Every vhost runs on every shard for as long as it exists.
        Check::VirtualHosts | Check::NodeIsQuorumCritical => ok(),
        Check::PortListener(port) => port_listener(call, &port),
        Check::ProtocolListener(protocols) => protocol_listener(call, &protocols),
    }
}

/// RabbitMQ's `rabbit_health_check` answer: one entry per resource alarm in effect. A storage
/// alarm (a shard's log failed) counts as the disk alarm.
fn alarms(call: &Call<'_>) -> Response {
    let shard = &call.context.shard;
    let mut resources: Vec<&str> = shard
        .mesh
        .alarms
        .in_effect()
        .into_iter()
        .map(Resource::name)
        .collect();
    if !shard.storage_alarms.borrow().is_empty() && !resources.contains(&"disk") {
        resources.push("disk");
    }
    if resources.is_empty() {
        return ok();
    }
    let listed: Vec<Value> = resources
        .into_iter()
        .map(|resource| json!({"node": call.context.node, "resource": resource}))
        .collect();
    response::unavailable(&json!({
        "status": "failed",
        "reason": "There are alarms in effect in the cluster",
        "alarms": listed,
    }))
}

/// The ports this node listens on, with their protocols.
fn listeners(call: &Call<'_>) -> Vec<(u16, &'static str)> {
    let config = &call.context.shard.config;
    let mut ports = vec![(config.listen.port(), "amqp")];
    if let Some(address) = config.tls_listen {
        ports.push((address.port(), "amqp/ssl"));
    }
    if let Some(address) = call.context.management_addr {
        let protocol = if config.management_tls {
            "https"
        } else {
            "http"
        };
        ports.push((address.port(), protocol));
    }
    if let Some(address) = call.context.metrics_addr {
        let protocol = if config.metrics_tls {
            "https/prometheus"
        } else {
            "http/prometheus"
        };
        ports.push((address.port(), protocol));
    }
    ports
}

fn port_listener(call: &Call<'_>, port: &str) -> Response {
    let Ok(port) = port.parse::<u16>() else {
        return response::bad_request(&format!("{port} is not a valid port"));
    };
    let ports = listeners(call);
    if ports.iter().any(|(own, _)| *own == port) {
        return response::ok(&json!({"status": "ok", "port": port}));
    }
    let listed: Vec<u16> = ports.iter().map(|(own, _)| *own).collect();
    response::unavailable(&json!({
        "status": "failed",
        "reason": "No active listener",
        "missing": port,
        "ports": listed,
    }))
}

fn protocol_listener(call: &Call<'_>, protocols: &str) -> Response {
    let ours = listeners(call);
    let has = |wanted: &str| match wanted {
        "amqp" | "amqp091" | "amqp0-9-1" => ours.iter().any(|(_, p)| *p == "amqp"),
        "http" | "management" => ours.iter().any(|(_, p)| *p == "http"),
        "http/prometheus" | "prometheus" => ours.iter().any(|(_, p)| *p == "http/prometheus"),
        "amqp/ssl" | "amqps" => ours.iter().any(|(_, p)| *p == "amqp/ssl"),
        "https" => ours.iter().any(|(_, p)| *p == "https"),
        "https/prometheus" => ours.iter().any(|(_, p)| *p == "https/prometheus"),
        _ => false,
    };
    let wanted: Vec<&str> = protocols.split(',').map(str::trim).collect();
    let missing: Vec<&str> = wanted.iter().copied().filter(|p| !has(p)).collect();
    if missing.is_empty() {
        return response::ok(&json!({"status": "ok", "protocols": wanted}));
    }
    let listed: Vec<&str> = ours.iter().map(|(_, p)| *p).collect();
    response::unavailable(&json!({
        "status": "failed",
        "reason": "No active listener",
        "missing": missing,
        "protocols": listed,
    }))
}

/// `GET /api/aliveness-test/{vhost}`: ok if the vhost exists (RabbitMQ 4's behaviour).
pub fn aliveness(call: &Call<'_>, vhost: &str) -> Response {
    call.refuse_vhost(vhost).unwrap_or_else(ok)
}
