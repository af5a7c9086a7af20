//! `/api/consumers[/{vhost}]`: every consumer as its queue's owner shard sees it, with the
//! channel it belongs to.

use serde_json::{json, Value};

use crate::fast_map::FastMap;
use crate::ids::ConnectionId;
use crate::management::dto::{self, short};
use crate::management::response::Response;
use crate::management::router::Call;
use crate::management::{stats, Context};
use crate::shard::stats::{ConnectionStats, ConsumerStats};

/// `GET /api/consumers` and `GET /api/consumers/{vhost}`.
pub async fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let connections = snapshot.connections_by_id();
    let items = snapshot
        .consumers()
        .filter(|consumer| call.lists(vhost, &consumer.vhost.to_string_lossy()))
        .map(|consumer| consumer_json(call.context, consumer, &connections))
        .collect();
    call.list_offloaded(items).await
}

/// One consumer's JSON (also the items of a queue's or channel's `consumer_details`).
pub fn consumer_json(
    context: &Context,
    consumer: &ConsumerStats,
    connections: &FastMap<ConnectionId, &ConnectionStats>,
) -> Value {
    let connection = connections.get(&consumer.connection);
    let connection_name = connection
        .map(|c| dto::connection_name(c.peer, c.local))
        .unwrap_or_default();
    let activity_status = if consumer.active { "up" } else { "waiting" };
    json!({
        "consumer_tag": short(&consumer.tag),
        "queue": {"name": short(&consumer.queue_name), "vhost": short(&consumer.vhost)},
        "channel_details": {
            "name": dto::channel_name(&connection_name, consumer.channel),
            "number": consumer.channel,
            "connection_name": connection_name,
            "peer_host": connection.map(|c| c.peer.ip().to_string()),
            "peer_port": connection.map(|c| c.peer.port()),
            "node": context.node,
            "user": connection.map(|c| short(&c.user)),
        },
        "ack_required": consumer.ack_required,
        "exclusive": consumer.exclusive,
        "prefetch_count": consumer.prefetch_count,
        "active": consumer.active,
        "activity_status": activity_status,
        "arguments": dto::field_table(&consumer.arguments),
        "consumer_timeout": consumer.consumer_timeout_ms,
    })
}
