//! `/api/channels`, `/api/vhosts/{vhost}/channels`, `/api/connections/{name}/channels`,
//! `/api/channels/{name}`: the channels of every open connection, with the connection
//! layer's counters.

use serde_json::{json, Value};

use crate::management::connections;
use crate::management::consumers::consumer_json;
use crate::management::dto::{self, short};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::management::stats::{self, Rates};
use crate::shard::stats::{ChannelCounters, ChannelStats, ConnectionStats};

/// `GET /api/channels` and `GET /api/vhosts/{vhost}/channels`.
pub async fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let rates = call.context.collector.rates();
    let mut items = Vec::new();
    for connection in snapshot.connections() {
        if !call.lists(vhost, &connection.vhost.to_string_lossy())
            || !call.caller.sees_user(&connection.user.to_string_lossy())
        {
            continue;
        }
        for channel in &connection.channels {
            items.push(channel_json(call, connection, channel, &rates));
        }
    }
    call.list_offloaded(items).await
}

/// `GET /api/connections/{name}/channels`.
pub async fn of_connection(call: &Call<'_>, name: &str) -> Response {
    let snapshot = stats::gather(&call.context.shard).await;
    let rates = call.context.collector.rates();
    let Some(connection) = connections::find(call, snapshot.connections(), name) else {
        return response::not_found();
    };
    let items = connection
        .channels
        .iter()
        .map(|channel| channel_json(call, connection, channel, &rates))
        .collect();
    call.list(items)
}

/// `GET /api/channels/{name}`: adds `consumer_details`, `publishes` and `deliveries`.
pub async fn one(call: &Call<'_>, name: &str) -> Response {
    let Some((connection_name, number)) = split_channel_name(name) else {
        return response::not_found();
    };
    let snapshot = stats::gather(&call.context.shard).await;
    let rates = call.context.collector.rates();
    let Some(connection) = connections::find(call, snapshot.connections(), connection_name) else {
        return response::not_found();
    };
    let Some(channel) = connection.channels.iter().find(|c| c.number == number) else {
        return response::not_found();
    };
    let mut item = channel_json(call, connection, channel, &rates);
    let by_id = snapshot.connections_by_id();
    let details: Vec<Value> = snapshot
        .consumers()
        .filter(|c| c.connection == connection.id && c.channel == number)
        .map(|c| consumer_json(call.context, c, &by_id))
        .collect();
    if let Value::Object(fields) = &mut item {
        fields.insert("consumer_details".into(), Value::Array(details));
        // Per-exchange and per-queue breakdowns are not collected.
        fields.insert("publishes".into(), json!([]));
        fields.insert("deliveries".into(), json!([]));
    }
    call.one(item)
}

/// `"<connection name> (<number>)"` split into its parts.
fn split_channel_name(name: &str) -> Option<(&str, u16)> {
    let (connection, rest) = name.rsplit_once(" (")?;
    let number = rest.strip_suffix(')')?.parse().ok()?;
    Some((connection, number))
}

fn channel_json(
    call: &Call<'_>,
    connection: &ConnectionStats,
    channel: &ChannelStats,
    rates: &Rates,
) -> Value {
    let connection_name = dto::connection_name(connection.peer, connection.local);
    let mut item = json!({
        "name": dto::channel_name(&connection_name, channel.number),
        "number": channel.number,
        "connection_details": {
            "name": connection_name,
            "peer_host": connection.peer.ip().to_string(),
            "peer_port": connection.peer.port(),
        },
        "vhost": short(&connection.vhost),
        "user": short(&connection.user),
        "node": call.context.node,
        "state": channel.state.as_str(),
        "consumer_count": channel.consumer_count,
        "confirm": channel.confirm,
        "transactional": channel.transactional,
        "prefetch_count": channel.prefetch_count,
        "global_prefetch_count": channel.global_prefetch_count,
        "messages_unacknowledged": channel.unacked_count,
        "messages_unconfirmed": channel.unconfirmed_count,
        "messages_uncommitted": 0,
        "acks_uncommitted": 0,
        "pending_raft_commands": 0,
    });
    if !call.query.disable_stats() {
        let key = (connection.id, channel.number);
        let stats = message_stats(&channel.counters, |read| {
            rates.rate(|sample| sample.channels.get(&key).map(read))
        });
        if let Value::Object(fields) = &mut item {
            fields.insert("message_stats".into(), stats);
        }
    }
    item
}

/// A channel's (or the overview's) `message_stats`; `rate` gives the rate of one counter.
pub fn message_stats(
    counters: &ChannelCounters,
    rate: impl Fn(fn(&ChannelCounters) -> u64) -> f64,
) -> Value {
    dto::message_stats(&[
        ("publish", counters.publish, rate(|c| c.publish)),
        ("confirm", counters.confirm, rate(|c| c.confirm)),
        ("deliver", counters.deliver, rate(|c| c.deliver)),
        (
            "deliver_no_ack",
            counters.deliver_no_ack,
            rate(|c| c.deliver_no_ack),
        ),
        ("get", counters.get, rate(|c| c.get)),
        ("get_no_ack", counters.get_no_ack, rate(|c| c.get_no_ack)),
        ("get_empty", counters.get_empty, rate(|c| c.get_empty)),
        (
            "deliver_get",
            counters.deliver + counters.deliver_no_ack + counters.get + counters.get_no_ack,
            rate(|c| c.deliver + c.deliver_no_ack + c.get + c.get_no_ack),
        ),
        ("redeliver", counters.redeliver, rate(|c| c.redeliver)),
        ("ack", counters.ack, rate(|c| c.ack)),
        (
            "return_unroutable",
            counters.return_unroutable,
            rate(|c| c.return_unroutable),
        ),
        (
            "drop_unroutable",
            counters.drop_unroutable,
            rate(|c| c.drop_unroutable),
        ),
    ])
}
