//! `/api/overview` (the cluster summary tools and exporters read first) and
//! `/api/cluster-name`.

use serde_json::{json, Value};

use crate::management::channels;
use crate::management::dto;
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::management::stats;
use crate::management::Context;

/// The RabbitMQ version whose API we follow (the one the AMQP handshake advertises).
pub const RABBITMQ_VERSION: &str = "3.13.7";
/// What `erlang_version` says: there is no Erlang here, but tools require the field.
pub const ERLANG_VERSION: &str = "none (Hare)";

/// The exchange types the broker has, as `exchange_types` lists them.
pub const EXCHANGE_TYPES: [(&str, &str); 6] = [
    (
        "direct",
        "AMQP direct exchange, as per the AMQP specification",
    ),
    (
        "fanout",
        "AMQP fanout exchange, as per the AMQP specification",
    ),
    (
        "topic",
        "AMQP topic exchange, as per the AMQP specification",
    ),
    (
        "headers",
        "AMQP headers exchange, as per the AMQP specification",
    ),
    ("x-consistent-hash", "Consistent Hashing Exchange"),
    ("x-delayed-message", "Delayed Message Exchange"),
];

/// `GET /api/overview`.
pub async fn overview(call: &Call<'_>) -> Response {
    let context = call.context;
    let snapshot = stats::gather(&context.shard).await;
    let rates = context.collector.rates();
    let (exchanges, queues) = {
        let registry = context.shard.registry.borrow();
        let visible = registry
            .vhosts()
            .filter(|host| call.caller.sees_vhost(&host.name.to_string_lossy()));
        visible.fold((0, 0), |(exchanges, queues), host| {
            (
                exchanges + host.exchanges().count(),
                queues + host.queues().count(),
            )
        })
    };
    let visible_connections: Vec<_> = snapshot
        .connections()
        .filter(|c| call.caller.sees_user(&c.user.to_string_lossy()))
        .collect();
    let channel_count: usize = visible_connections.iter().map(|c| c.channels.len()).sum();
    let consumer_count = snapshot
        .consumers()
        .filter(|c| call.caller.sees_vhost(&c.vhost.to_string_lossy()))
        .count();
    let (ready, unacked) = snapshot
        .queues()
        .filter(|q| call.caller.sees_vhost(&q.vhost.to_string_lossy()))
        .fold((0u64, 0u64), |(r, u), q| {
            (r + q.ready_count, u + q.unacked_count)
        });
    let totals = snapshot.channel_totals();
    let created: u64 = snapshot.shards.iter().map(|s| s.connections_created).sum();
    let churn = |read: fn(&crate::shard::stats::QueueChurn) -> u64| -> u64 {
        snapshot.shards.iter().map(|s| read(&s.queue_churn)).sum()
    };
    let closed: u64 = snapshot.shards.iter().map(|s| s.connections_closed).sum();
    let mut item = identity(context);
    let more = json!({
        "object_totals": {
            "connections": visible_connections.len(),
            "channels": channel_count,
            "exchanges": exchanges,
            "queues": queues,
            "consumers": consumer_count,
        },
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": dto::details(rates.rate(|s| {
                Some(s.queue_totals.ready + s.queue_totals.unacked)
            })),
            "messages_ready": ready,
            "messages_ready_details": dto::details(rates.rate(|s| Some(s.queue_totals.ready))),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details":
                dto::details(rates.rate(|s| Some(s.queue_totals.unacked))),
        },
        "message_stats": channels::message_stats(&totals, |read| {
            rates.rate(|sample| Some(read(&sample.channel_totals)))
        }),
        "churn_rates": {
            "connection_created": created,
            "connection_created_details":
                dto::details(rates.rate(|s| Some(s.connections_created))),
            "connection_closed": closed,
            "connection_closed_details":
                dto::details(rates.rate(|s| Some(s.connections_closed))),
            "queue_declared": churn(|c| c.declared),
            "queue_declared_details":
                dto::details(rates.rate(|s| Some(s.queue_churn.declared))),
            "queue_created": churn(|c| c.created),
            "queue_created_details":
                dto::details(rates.rate(|s| Some(s.queue_churn.created))),
            "queue_deleted": churn(|c| c.deleted),
            "queue_deleted_details":
                dto::details(rates.rate(|s| Some(s.queue_churn.deleted))),
        },
    });
    if let (Value::Object(item), Value::Object(more)) = (&mut item, more) {
        item.extend(more);
    }
    let dead_lettered: u64 = snapshot
        .queues()
        .map(|queue| queue.counters.dead_lettered)
        .sum();
    if dead_lettered > 0 {
        item["message_stats"]["dead_lettered"] = json!(dead_lettered);
        item["message_stats"]["dead_lettered_details"] =
            dto::details(rates.rate(|s| Some(s.dead_lettered)));
    }
    add_samples(call, &mut item);
    response::ok(&item)
}

/// The overview's series as RabbitMQ adds them when asked with `msg_rates_age` (message
/// counters) or `lengths_age` (queued messages) and their `_incr`, in seconds as RabbitMQ
/// takes them. Each `*_details` gets `samples`, newest first.
fn add_samples(call: &Call<'_>, item: &mut Value) {
    let seconds = |key: &str| {
        call.query
            .get(key)
            .and_then(|text| text.parse::<u64>().ok())
            .map(|value| value.saturating_mul(1000))
    };
    let collector = &call.context.collector;
    if let Some(age) = seconds("msg_rates_age") {
        let points = collector.history(age, seconds("msg_rates_incr").unwrap_or(5000));
        let series: [Series; 9] = [
            ("publish", |p| p.channel_totals.publish),
            ("confirm", |p| p.channel_totals.confirm),
            ("deliver_get", |p| {
                let c = &p.channel_totals;
                c.deliver + c.deliver_no_ack + c.get + c.get_no_ack
            }),
            ("ack", |p| p.channel_totals.ack),
            ("redeliver", |p| p.channel_totals.redeliver),
            ("return_unroutable", |p| p.channel_totals.return_unroutable),
            ("drop_unroutable", |p| p.channel_totals.drop_unroutable),
            ("dead_lettered", |p| p.dead_lettered),
            ("get_empty", |p| p.channel_totals.get_empty),
        ];
        for (name, read) in series {
            let details = &mut item["message_stats"][format!("{name}_details")];
            if details.is_null() {
                *details = dto::details(0.0);
            }
            details["samples"] = samples(&points, read);
        }
    }
    if let Some(age) = seconds("lengths_age") {
        let points = collector.history(age, seconds("lengths_incr").unwrap_or(5000));
        let series: [Series; 3] = [
            ("messages", |p| p.ready + p.unacked),
            ("messages_ready", |p| p.ready),
            ("messages_unacknowledged", |p| p.unacked),
        ];
        for (name, read) in series {
            item["queue_totals"][format!("{name}_details")]["samples"] = samples(&points, read);
        }
    }
}

/// A series' name in the JSON and how to read it from a point.
type Series = (&'static str, fn(&stats::Point) -> u64);

fn samples(points: &[stats::Point], read: fn(&stats::Point) -> u64) -> Value {
    Value::Array(
        points
            .iter()
            .map(|point| json!({"timestamp": point.timestamp, "sample": read(point)}))
            .collect(),
    )
}

/// The fields that do not depend on statistics.
fn identity(context: &Context) -> Value {
    let config = &context.shard.config;
    let mut listeners = vec![json!({
        "node": context.node,
        "protocol": "amqp",
        "ip_address": config.listen.ip().to_string(),
        "port": config.listen.port(),
        "socket_opts": {},
        "tls": false,
    })];
    if let Some(address) = config.tls_listen {
        listeners.push(json!({
            "node": context.node,
            "protocol": "amqp/ssl",
            "ip_address": address.ip().to_string(),
            "port": address.port(),
            "socket_opts": {},
            "tls": true,
        }));
    }
    let mut contexts = Vec::new();
    if let Some(address) = context.management_addr {
        listeners.push(json!({
            "node": context.node,
            "protocol": if config.management_tls { "https" } else { "http" },
            "ip_address": address.ip().to_string(),
            "port": address.port(),
            "socket_opts": {},
            "tls": config.management_tls,
        }));
        contexts.push(json!({
            "node": context.node,
            "description": "RabbitMQ Management",
            "path": "/",
            "port": address.port().to_string(),
            "ssl": config.management_tls,
        }));
    }
    json!({
        "cluster_name": context.node,
        "node": context.node,
        "rabbitmq_version": RABBITMQ_VERSION,
        "erlang_version": ERLANG_VERSION,
        "erlang_full_version": ERLANG_VERSION,
        "product_name": "RabbitMQ",
        "product_version": RABBITMQ_VERSION,
        "management_version": RABBITMQ_VERSION,
        "rates_mode": "basic",
        "exchange_types": exchange_types(),
        "listeners": listeners,
        "contexts": contexts,
        "statistics_db_event_queue": 0,
        "statistics_db_node": context.node,
        "sample_retention_policies": {"global": [], "basic": [], "detailed": []},
        "disable_stats": false,
        "enable_queue_totals": false,
        "default_queue_type": "classic",
        "cluster_tags": {},
        "node_tags": {},
    })
}

pub fn exchange_types() -> Value {
    Value::Array(
        EXCHANGE_TYPES
            .iter()
            .map(|(name, description)| {
                json!({"name": name, "description": description, "enabled": true})
            })
            .collect(),
    )
}

/// `GET /api/cluster-name`: a single node's cluster is named after the node.
pub fn cluster_name(call: &Call<'_>) -> Response {
    response::ok(&json!({ "name": call.context.node }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_api_reports_the_version_the_handshake_advertises() {
        assert_eq!(
            super::RABBITMQ_VERSION,
            crate::connection::server_properties::COMPATIBLE_VERSION
        );
    }
}
