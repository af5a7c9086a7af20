//! The firehose (`rabbitmqctl trace_on`): while a vhost traces, every message published in it
//! is copied to its `amq.rabbitmq.trace` exchange with routing key `publish.<exchange>`, and
//! every delivery and basic.get-ok as `deliver.<queue>`, with RabbitMQ's headers
//! (docs/rabbitmq-compatibility.md §18). A copy is routed at most once, without confirms, and
//! is never traced itself. A vhost that does not trace costs a generation compare on the
//! connection's cached access per publish and per delivery.

use bytes::Bytes;

use crate::connection::ConnectionShared;
use crate::ids::{ChannelId, QueueId};
use crate::protocol::{BasicProperties, FieldTable, FieldValue, ShortStr};
use crate::queue::message::Message;
use crate::shard::message::{send_to_owners, QueueTargets};
use crate::shard::Shard;
use crate::vhost::json_table::properties_table;
use crate::vhost::route::{RouteScratch, RoutedMessage};
use crate::vhost::{Registry, VHost};

/// The exchange trace copies go to, in every vhost.
pub const TRACE_EXCHANGE: &str = "amq.rabbitmq.trace";

/// A published message: `publish.<exchange>` with the queues it was routed to.
pub fn published(
    shard: &Shard,
    connection: &ConnectionShared,
    channel: ChannelId,
    message: &Message,
    routing_keys: &[ShortStr],
    routed: &[QueueId],
) {
    let registry = shard.registry.borrow();
    let Some(vhost) = tracing_vhost(&registry, connection) else {
        return;
    };
    let state = connection.state.borrow();
    if message.exchange.as_bytes() == TRACE_EXCHANGE.as_bytes() {
        return;
    }
    let mut headers = message_headers(message, routing_keys);
    let routed_queues = routed
        .iter()
        .filter_map(|id| vhost.queue_by_id(*id))
        .map(|queue| long_str(queue.name.as_bytes()))
        .collect();
    headers.insert(key("vhost"), long_str(vhost.name.as_bytes()));
    headers.insert(key("connection"), long_str(connection.name().as_bytes()));
    headers.insert(key("channel"), FieldValue::I32(i32::from(channel.0)));
    headers.insert(key("user"), long_str(state.user.as_bytes()));
    headers.insert(key("routed_queues"), FieldValue::Array(routed_queues));
    let suffix = message.exchange.as_bytes();
    route_copy(
        shard,
        vhost,
        b"publish.",
        suffix,
        headers,
        message.body.clone(),
    );
}

/// A delivery or basic.get-ok from `queue`: `deliver.<queue>`.
pub fn delivered(
    shard: &Shard,
    connection: &ConnectionShared,
    channel: ChannelId,
    queue: QueueId,
    redelivered: bool,
    message: &Message,
) {
    let registry = shard.registry.borrow();
    let Some(vhost) = tracing_vhost(&registry, connection) else {
        return;
    };
    let state = connection.state.borrow();
    if message.exchange.as_bytes() == TRACE_EXCHANGE.as_bytes() {
        return;
    }
    let Some(queue) = vhost.queue_by_id(queue) else {
        return;
    };
    let mut headers = message_headers(message, std::slice::from_ref(&message.routing_key));
    headers.insert(key("redelivered"), FieldValue::I32(i32::from(redelivered)));
    headers.insert(key("vhost"), long_str(vhost.name.as_bytes()));
    headers.insert(key("connection"), long_str(connection.name().as_bytes()));
    headers.insert(key("channel"), FieldValue::I32(i32::from(channel.0)));
    headers.insert(key("user"), long_str(state.user.as_bytes()));
    let suffix = queue.name.as_bytes();
    route_copy(
        shard,
        vhost,
        b"deliver.",
        suffix,
        headers,
        message.body.clone(),
    );
}

/// The connection's vhost if it traces; the flag is the connection's cached one, so a vhost
/// that does not trace costs a generation compare.
fn tracing_vhost<'a>(registry: &'a Registry, connection: &ConnectionShared) -> Option<&'a VHost> {
    let mut state = connection.state.borrow_mut();
    if !state.access.tracing(registry) {
        return None;
    }
    registry.vhost(&state.vhost)
}

/// `exchange_name`, `routing_keys`, `properties` (the set ones, as a table) and `node`.
fn message_headers(message: &Message, routing_keys: &[ShortStr]) -> FieldTable {
    let mut headers = FieldTable::new();
    headers.insert(key("exchange_name"), long_str(message.exchange.as_bytes()));
    let keys = routing_keys
        .iter()
        .map(|routing_key| long_str(routing_key.as_bytes()))
        .collect();
    headers.insert(key("routing_keys"), FieldValue::Array(keys));
    let properties = BasicProperties::decode(&message.properties_raw).unwrap_or_default();
    headers.insert(
        key("properties"),
        FieldValue::Table(properties_table(&properties)),
    );
    headers.insert(key("node"), long_str(crate::config::node_name().as_bytes()));
    headers
}

/// Routes one trace copy through the vhost's trace exchange to the queues bound to it.
fn route_copy(
    shard: &Shard,
    vhost: &VHost,
    prefix: &[u8],
    suffix: &[u8],
    headers: FieldTable,
    body: Bytes,
) {
    let Some(exchange) = vhost.exchange(&ShortStr::from_static(TRACE_EXCHANGE)) else {
        return;
    };
    let mut routing_key = prefix.to_vec();
    routing_key.extend_from_slice(suffix);
    routing_key.truncate(255);
    let routing_key =
        ShortStr::try_from_bytes(Bytes::from(routing_key)).expect("truncated to a short string");
    let properties = BasicProperties {
        headers: Some(headers),
        ..BasicProperties::default()
    };
    let mut scratch = RouteScratch::default();
    scratch.begin_message();
    let mut queues = Vec::new();
    let routed = RoutedMessage::new(&routing_key, &properties);
    vhost.route(exchange, &routing_key, &routed, &mut scratch, &mut queues);
    if queues.is_empty() {
        return;
    }
    let copy = Message {
        exchange: ShortStr::from_static(TRACE_EXCHANGE),
        routing_key,
        persistent: false,
        ttl: None,
        priority: 0,
        properties_raw: properties.to_raw(),
        body,
    };
    let groups = QueueTargets::group_by_owner(vhost, &queues);
    send_to_owners(shard, groups, copy, None);
}

fn key(name: &'static str) -> ShortStr {
    ShortStr::from_static(name)
}

fn long_str(bytes: &[u8]) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(bytes))
}
