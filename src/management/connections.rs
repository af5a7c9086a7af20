//! `/api/connections`, `/api/vhosts/{vhost}/connections`, `/api/connections/{name}`: the
//! AMQP connections of every shard. `DELETE /api/connections/{name}` closes one with 320
//! CONNECTION_FORCED, the `X-Reason` header as the reply text.

use serde_json::{json, Value};

use crate::ids::ConnectionId;
use crate::management::auth;
use crate::management::dto::{self, short};
use crate::management::response::{self, Response};
use crate::management::router::{refused, Call};
use crate::management::stats::{self, Rates};
use crate::management::Context;
use crate::shard::endpoint::ForcedClose;
use crate::shard::message::{Reply, ShardMessage};
use crate::shard::stats::ConnectionStats;

/// The reply text when the request gives no `X-Reason` (RabbitMQ's).
const CLOSE_REASON_DEFAULT: &str = "Closed via management plugin";

/// `GET /api/connections` and `GET /api/vhosts/{vhost}/connections`.
pub async fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let rates = call.context.collector.rates();
    let items = snapshot
        .connections()
        .filter(|c| call.lists(vhost, &c.vhost.to_string_lossy()))
        .filter(|c| call.caller.sees_user(&c.user.to_string_lossy()))
        .map(|c| connection_json(call.context, c, &rates, call.query.disable_stats()))
        .collect();
    call.list_offloaded(items).await
}

/// `GET /api/connections/{name}`.
pub async fn one(call: &Call<'_>, name: &str) -> Response {
    let snapshot = stats::gather(&call.context.shard).await;
    let rates = call.context.collector.rates();
    match find(call, snapshot.connections(), name) {
        Some(connection) => call.one(connection_json(
            call.context,
            connection,
            &rates,
            call.query.disable_stats(),
        )),
        None => response::not_found(),
    }
}

/// `DELETE /api/connections/{name}`: 204 once the connection's shard has started closing it.
/// Another user's connection needs `administrator`.
pub async fn close(call: &Call<'_>, name: &str) -> Response {
    let snapshot = stats::gather(&call.context.shard).await;
    let Some(connection) = find(call, snapshot.connections(), name) else {
        return response::not_found();
    };
    if let Some(refused) = refuse_close(call, &connection.user.to_string_lossy()) {
        return refused;
    }
    if close_one(call, connection.id, close_reason(call)).await {
        response::no_content()
    } else {
        response::not_found()
    }
}

/// The 401 if the caller may not close `user`'s connections (another user's take an
/// administrator); None if it may.
fn refuse_close(call: &Call<'_>, user: &str) -> Option<Response> {
    if user == call.caller.name {
        return None;
    }
    auth::require_administrator(call.caller)
        .err()
        .map(|refusal| refused(&refusal))
}

/// The `X-Reason` header, or RabbitMQ's default text.
fn close_reason(call: &Call<'_>) -> String {
    call.request
        .headers()
        .get("x-reason")
        .and_then(|value| value.to_str().ok())
        .unwrap_or(CLOSE_REASON_DEFAULT)
        .to_owned()
}

/// Closes one connection with 320 and `reason`; false if it was gone.
async fn close_one(call: &Call<'_>, id: ConnectionId, reason: String) -> bool {
    let reply = call
        .context
        .shard
        .request(id.shard(), |reply_to| ShardMessage::CloseConnection {
            reply_to,
            connection: id,
            reason: ForcedClose::Operator(reason),
        })
        .await;
    matches!(reply, Reply::ConnectionClosed(true))
}

/// The connection named `name` that the caller may see.
pub fn find<'a>(
    call: &Call<'_>,
    mut connections: impl Iterator<Item = &'a ConnectionStats>,
    name: &str,
) -> Option<&'a ConnectionStats> {
    connections.find(|c| {
        dto::connection_name(c.peer, c.local) == name
            && call.caller.sees_vhost(&c.vhost.to_string_lossy())
            && call.caller.sees_user(&c.user.to_string_lossy())
    })
}

/// One connection's JSON (docs/management-api.md, "Connections").
pub fn connection_json(
    context: &Context,
    connection: &ConnectionStats,
    rates: &Rates,
    disable_stats: bool,
) -> Value {
    let name = dto::connection_name(connection.peer, connection.local);
    let user_provided_name = connection
        .client_properties
        .get("connection_name")
        .map(dto::field_value);
    let mut item = json!({
        "name": name,
        "node": context.node,
        // Hare addition: the shard that serves the connection (docs/management-api.md).
        "hare_shard": connection.id.shard().0,
        "user": short(&connection.user),
        "vhost": short(&connection.vhost),
        "state": connection.state.as_str(),
        "protocol": "AMQP 0-9-1",
        "type": "network",
        "auth_mechanism": short(&connection.auth_mechanism),
        "connected_at": connection.connected_at_ms,
        "host": connection.local.ip().to_string(),
        "port": connection.local.port(),
        "peer_host": connection.peer.ip().to_string(),
        "peer_port": connection.peer.port(),
        "channels": connection.channels.len(),
        "channel_max": connection.channel_max,
        "frame_max": connection.frame_max,
        "timeout": connection.heartbeat_secs,
        "client_properties": dto::field_table(&connection.client_properties),
        "user_provided_name": user_provided_name,
        "ssl": connection.tls.is_some(),
        "ssl_protocol": connection.tls.map(|tls| tls.protocol),
        "ssl_key_exchange": connection.tls.map(|tls| tls.key_exchange),
        "ssl_cipher": connection.tls.map(|tls| tls.cipher),
        "ssl_hash": connection.tls.map(|tls| tls.hash),
        "peer_cert_subject": Value::Null,
        "peer_cert_issuer": Value::Null,
        "peer_cert_validity": Value::Null,
    });
    if disable_stats {
        return item;
    }
    let id = connection.id;
    let stats = json!({
        "recv_oct": connection.recv_oct,
        "recv_cnt": connection.recv_cnt,
        "send_oct": connection.send_oct,
        "send_cnt": connection.send_cnt,
        "send_pend": connection.send_pend,
        "recv_oct_details": dto::details(rates.rate(|s| s.connections.get(&id).map(|c| c.0))),
        "send_oct_details": dto::details(rates.rate(|s| s.connections.get(&id).map(|c| c.1))),
        "reductions": 0,
    });
    if let (Value::Object(item), Value::Object(stats)) = (&mut item, stats) {
        item.extend(stats);
    }
    item
}

/// `GET` or `DELETE /api/connections/username/{user}`: the user's connections; closing them
/// needs `administrator` unless they are the caller's own.
pub async fn of_user(call: &Call<'_>, user: &str) -> Response {
    if !call.caller.sees_user(user) {
        return refused(&auth::Refusal::MissingTag(
            "User not authorised to access object",
        ));
    }
    let snapshot = stats::gather(&call.context.shard).await;
    let theirs: Vec<&ConnectionStats> = snapshot
        .connections()
        .filter(|c| c.user.to_string_lossy() == user)
        .collect();
    if call.request.method() != hyper::Method::DELETE {
        let rates = call.context.collector.rates();
        let items = theirs
            .iter()
            .map(|c| connection_json(call.context, c, &rates, call.query.disable_stats()))
            .collect();
        return call.list(items);
    }
    if let Some(refused) = refuse_close(call, user) {
        return refused;
    }
    let reason = close_reason(call);
    for connection in theirs {
        close_one(call, connection.id, reason.clone()).await;
    }
    response::no_content()
}
