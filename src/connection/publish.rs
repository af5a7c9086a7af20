//! basic.publish: validate, route on this shard's metadata copy, and hand the message to the
//! owner shard of each target queue, one message per shard however many of its queues match.
//! Unroutable mandatory messages come back as basic.return before their confirm.

use std::borrow::Cow;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;

use crate::connection::content::Completed;
use crate::connection::io::OWN_ALLOCATION_FRAME_MIN;
use crate::connection::permissions::Access;
use crate::connection::trace;
use crate::connection::{direct_reply, ConnectionShared};
use crate::exception::Exception;
use crate::ids::{ChannelId, ExchangeId, QueueId};
use crate::protocol::{
    write_content, write_method_frame, BasicProperties, BasicPublish, BasicReturn, ContentHeader,
    FieldTable, FieldValue, HardError, Method, ShortStr,
};
use crate::queue::message::Message;
use crate::routing::ExchangeKind;
use crate::shard::dedup::{self, DedupQuery};
use crate::shard::message::{send_to_owners, Confirm, ConfirmRef, QueueTargets};
use crate::shard::{delayed, Shard};
use crate::vhost::exchange::Exchange;
use crate::vhost::route::{RouteScratch, RoutedMessage};
use crate::vhost::rules::no_exchange;
use crate::vhost::VHost;

/// basic.publish arrived: the content header and body follow.
pub fn start(
    connection: &ConnectionShared,
    channel: ChannelId,
    method: BasicPublish,
) -> Result<(), Exception> {
    if method.immediate {
        return Err(Exception::not_implemented("immediate=true"));
    }
    let mut state = connection.state.borrow_mut();
    let open = state
        .channels
        .get_mut(&channel.0)
        .expect("dispatch checked the channel is open");
    open.content = crate::connection::content::ContentState::AwaitingHeader(method);
    Ok(())
}

/// The message is complete: buffer it (transaction) or route it now.
pub async fn complete(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    completed: Completed,
) -> Result<(), Exception> {
    connection.published.set(true);
    if shard.mesh.alarms.any() {
        connection.held.set(true);
    }
    {
        let mut state = connection.state.borrow_mut();
        // Write on the exchange comes first, as in RabbitMQ (before the exchange must exist).
        state
            .access
            .check_publish(&shard.registry.borrow(), &completed.publish.exchange)?;
        let open = state
            .channels
            .get_mut(&channel.0)
            .expect("content arrives only on open channels");
        if let Some(transaction) = open.transaction.as_mut() {
            transaction.publishes.push(completed);
            return Ok(());
        }
    }
    route_and_send(shard, connection, channel, completed).await
}

/// Routes a complete message on this shard's metadata copy and sends it to the owner of each
/// target queue, or returns it (mandatory) and confirms it at once when nothing matches. A
/// route through a deduplication exchange first asks the exchange's cache shard whether the
/// message is a duplicate (`shard::dedup`); the connection's frame loop waits for the answer,
/// which keeps the channel's publishes in order.
pub async fn route_and_send(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    channel: ChannelId,
    completed: Completed,
) -> Result<(), Exception> {
    let Completed {
        publish,
        header,
        body,
    } = completed;
    let Outgoing {
        properties,
        properties_raw,
        extra_keys,
    } = outgoing_properties(connection, channel, &header)?;
    let mut message = Message {
        exchange: publish.exchange,
        routing_key: publish.routing_key,
        persistent: properties.is_persistent(),
        ttl: parse_expiration(properties.expiration.as_ref())?,
        priority: properties.priority.unwrap_or(0),
        properties_raw,
        body,
    };
    if message.body.len() >= OWN_ALLOCATION_FRAME_MIN {
        // The body has an allocation of its own (`FrameReader::fill_exact`, or joined from
        // several frames); the names and properties are slices of a shared read buffer that
        // they would keep alive for as long as the message is queued. A few dozen bytes are
        // copied per large message; small messages share their reads anyway.
        message.exchange = message.exchange.detached();
        message.routing_key = message.routing_key.detached();
        message.properties_raw = Bytes::copy_from_slice(&message.properties_raw);
    }
    if message.exchange.is_empty() {
        if let Some(token) = direct_reply::ReplyToken::decode(message.routing_key.as_bytes()) {
            // Counts as routed even if the requester is gone (docs/rabbitmq-compatibility.md §13).
            direct_reply::forward(shard, token, Arc::new(message));
            confirm_at_once(connection, channel);
            return Ok(());
        }
    }
    let dedup = DedupQuery::of(properties.headers.as_ref());
    connection.state.borrow_mut().route_scratch.begin_message();
    let route = ToRoute {
        message: &message,
        properties: &properties,
        extra_keys: &extra_keys,
    };
    let queues = loop {
        let undecided = match route_once(shard, connection, &route)? {
            RoutePass::Undecided(undecided) => undecided,
            RoutePass::Delayed(delay) => {
                hold_delayed(shard, connection, channel, message, delay);
                return Ok(());
            }
        };
        let Some(query) = dedup.as_ref().filter(|_| !undecided.is_empty()) else {
            break connection.state.borrow_mut().take_routed();
        };
        let vhost = connection.state.borrow().vhost.clone();
        for exchange in undecided {
            let fresh = dedup::is_new(shard, &vhost, exchange, query).await;
            connection
                .state
                .borrow_mut()
                .route_scratch
                .decide(exchange, fresh);
        }
    };
    if extra_keys.is_empty() {
        trace::published(
            shard,
            connection,
            channel,
            &message,
            std::slice::from_ref(&message.routing_key),
            &queues,
        );
    } else {
        let mut keys = vec![message.routing_key.clone()];
        keys.extend(extra_keys.iter().cloned());
        trace::published(shard, connection, channel, &message, &keys, &queues);
    }
    send_routed(
        shard,
        connection,
        channel,
        publish.mandatory,
        message,
        queues,
    );
    Ok(())
}

/// What one routing pass reads of the message.
struct ToRoute<'a> {
    message: &'a Message,
    properties: &'a BasicProperties,
    extra_keys: &'a [ShortStr],
}

/// One routing pass into the connection's `route_queues`: checks the exchange and the
/// `user-id`, then routes the published key and the `CC` / `BCC` keys. Returns the
/// deduplication exchanges whose caches must answer before the route is complete, or that the
/// message is to be delayed.
fn route_once(
    shard: &Shard,
    connection: &ConnectionShared,
    route: &ToRoute<'_>,
) -> Result<RoutePass, Exception> {
    let message = route.message;
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let registry = shard.registry.borrow();
    let Some(vhost) = registry.vhost(&state.vhost) else {
        // Deleted while a publish waited (a deduplication answer): the connection is closing.
        return Err(Exception::connection(
            HardError::ConnectionForced,
            format!("vhost '{}' is deleted", state.vhost),
        ));
    };
    let Some(exchange) = vhost.exchange(&message.exchange) else {
        return Err(no_exchange(
            &message.exchange,
            &state.vhost.to_string_lossy(),
        ));
    };
    if exchange.definition.internal {
        return Err(Exception::access_refused(format!(
            "cannot publish to internal exchange '{}' in vhost '{}'",
            message.exchange,
            state.vhost.to_string_lossy()
        )));
    }
    if exchange.definition.kind == ExchangeKind::Topic {
        state.access.check_topic(
            &registry,
            Access::Write,
            &message.exchange,
            message.routing_key.as_bytes(),
        )?;
    }
    if let Some(user_id) = &route.properties.user_id {
        // RabbitMQ checks user-id so a consumer can trust it (docs/rabbitmq-compatibility.md §7).
        if *user_id != state.user {
            return Err(Exception::precondition_failed(format!(
                "user_id property set to '{user_id}' but authenticated user was '{}'",
                state.user
            )));
        }
    }
    if exchange.definition.delayed {
        if let Some(delay) = delayed::delay_of(route.properties.headers.as_ref()) {
            return Ok(RoutePass::Delayed(delay));
        }
    }
    let queues = &mut state.route_queues;
    let routed = RoutedMessage::new(&message.routing_key, route.properties);
    let scratch = &mut state.route_scratch;
    scratch.dedup_undecided.clear();
    vhost.route(exchange, &message.routing_key, &routed, scratch, queues);
    if !route.extra_keys.is_empty() {
        route_extra_keys(vhost, exchange, route.extra_keys, &routed, scratch, queues);
    }
    exchange.counters.published(!queues.is_empty());
    scratch.dedup_undecided.sort_unstable();
    scratch.dedup_undecided.dedup();
    Ok(RoutePass::Undecided(scratch.dedup_undecided.clone()))
}

/// What one routing pass found.
enum RoutePass {
    /// Routed, but for the deduplication exchanges whose caches must answer first (none: done).
    Undecided(Vec<ExchangeId>),
    /// A delayed exchange with a positive `x-delay`: the message waits first (`hold_delayed`).
    Delayed(u32),
}

/// Sends a routed message to its queues' owners; one no queue took is returned (mandatory)
/// and confirmed at once. A channel that closed while the route waited drops it.
fn send_routed(
    shard: &Shard,
    connection: &ConnectionShared,
    channel: ChannelId,
    mandatory: bool,
    message: Message,
    queues: Vec<QueueId>,
) {
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let frame_max = state.frame_max;
    let Some(open) = state.channels.get_mut(&channel.0).filter(|c| c.is_open()) else {
        state.route_queues = queues;
        return;
    };
    open.counters.publish += 1;
    if queues.is_empty() {
        if mandatory {
            open.counters.return_unroutable += 1;
            return_unroutable(connection, channel, &message, frame_max);
        } else {
            open.counters.drop_unroutable += 1;
        }
        if let Some(tracker) = open.confirm.as_mut() {
            tracker.publish(0);
            crate::connection::events::confirms_due(connection, channel, tracker);
        }
        state.route_queues = queues;
        return;
    }
    let registry = shard.registry.borrow();
    let Some(vhost) = registry.vhost(&state.vhost) else {
        // The vhost was deleted: its queues are gone and the connection is closing.
        state.route_queues = queues;
        return;
    };
    let groups = QueueTargets::group_by_owner(vhost, &queues);
    let shard_count = u16::try_from(groups.len()).expect("shard count fits u16");
    let confirm = open.confirm.as_mut().map(|tracker| {
        Confirm::Publisher(ConfirmRef {
            connection: connection.id,
            channel,
            seq: tracker.publish(shard_count),
        })
    });
    send_to_owners(shard, groups, message, confirm);
    state.route_queues = queues;
}

/// A message for a delayed exchange with a positive `x-delay` waits in this shard's delay
/// store and is routed when its time comes; its confirm waits for it to be stored
/// (docs/rabbitmq-compatibility.md §10).
fn hold_delayed(
    shard: &Shard,
    connection: &ConnectionShared,
    channel: ChannelId,
    message: Message,
    delay: u32,
) {
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let store = delayed::store_id(&state.vhost);
    let Some(open) = state.channels.get_mut(&channel.0).filter(|c| c.is_open()) else {
        return;
    };
    let confirm = open.confirm.as_mut().map(|tracker| {
        Confirm::Publisher(ConfirmRef {
            connection: connection.id,
            channel,
            seq: tracker.publish(1),
        })
    });
    let waiting = Message {
        ttl: Some(delay),
        ..message
    };
    send_to_owners(
        shard,
        vec![(shard.id, QueueTargets::One(store))],
        waiting,
        confirm,
    );
}

/// The properties a published message travels with, and the extra routing keys its headers
/// name.
struct Outgoing<'a> {
    /// Borrowed from the content header unless something had to change.
    properties: Cow<'a, BasicProperties>,
    properties_raw: Bytes,
    /// Sender-selected routing keys (`CC` and `BCC` headers).
    extra_keys: Vec<ShortStr>,
}

/// Rewrites a direct reply-to and strips the BCC header, which routes but is not shown to
/// consumers. The properties are borrowed, not moved: a decoded BasicProperties is about 370
/// bytes and the common publish changes none of it.
fn outgoing_properties<'a>(
    connection: &ConnectionShared,
    channel: ChannelId,
    header: &'a ContentHeader,
) -> Result<Outgoing<'a>, Exception> {
    let (mut properties, mut properties_raw) =
        match direct_reply::rewrite_reply_to(connection, channel, &header.properties)? {
            Some((properties, raw)) => (Cow::Owned(properties), raw),
            None => (
                Cow::Borrowed(&header.properties),
                header.properties_raw.clone(),
            ),
        };
    let extra_keys = sender_selected_keys(properties.headers.as_ref());
    if let Some((stripped, stripped_raw)) = without_bcc(&properties) {
        properties = Cow::Owned(stripped);
        properties_raw = stripped_raw;
    }
    Ok(Outgoing {
        properties,
        properties_raw,
        extra_keys,
    })
}

/// Adds the queues the sender-selected keys route to; each queue is kept once.
fn route_extra_keys(
    vhost: &VHost,
    exchange: &Exchange,
    extra_keys: &[ShortStr],
    routed: &RoutedMessage<'_>,
    scratch: &mut RouteScratch,
    queues: &mut Vec<QueueId>,
) {
    let mut more = Vec::new();
    for key in extra_keys {
        vhost.route(exchange, key, routed, scratch, &mut more);
        queues.extend_from_slice(&more);
    }
    queues.sort_unstable();
    queues.dedup();
}

/// basic.return with the message, for a mandatory publish no queue took.
fn return_unroutable(
    connection: &ConnectionShared,
    channel: ChannelId,
    message: &Message,
    frame_max: u32,
) {
    connection.output.write(|out| {
        write_method_frame(
            out,
            channel.0,
            &Method::BasicReturn(BasicReturn {
                reply_code: 312,
                reply_text: ShortStr::from_static("NO_ROUTE"),
                exchange: message.exchange.clone(),
                routing_key: message.routing_key.clone(),
            }),
        );
        write_content(
            out,
            channel.0,
            60,
            &message.properties_raw,
            &message.body,
            frame_max,
        );
    });
}

/// The `expiration` property as RabbitMQ reads it (`rabbit_basic:parse_expiration`): a
/// string of a non-negative integer of milliseconds, at most 2^32 - 1; anything else closes
/// the channel with 406 and RabbitMQ's text.
fn parse_expiration(expiration: Option<&ShortStr>) -> Result<Option<u32>, Exception> {
    let Some(expiration) = expiration else {
        return Ok(None);
    };
    let text = expiration.to_string_lossy();
    let error = match leading_integer(&text) {
        None => "no_integer".to_string(),
        Some((_, rest)) if !rest.is_empty() => format!("{{leftover_string,\"{rest}\"}}"),
        Some((value, _)) => match crate::queue::settings::check_expiry(value) {
            Ok(ms) => return Ok(Some(ms)),
            Err(error) => error,
        },
    };
    Err(Exception::precondition_failed(format!(
        "invalid expiration '{text}': {error}"
    )))
}

/// Erlang's `string:to_integer`: an optional sign and digits at the start, and the rest.
fn leading_integer(text: &str) -> Option<(i64, &str)> {
    let digits_start = usize::from(text.starts_with(['+', '-']));
    let digits = text[digits_start..]
        .bytes()
        .take_while(u8::is_ascii_digit)
        .count();
    if digits == 0 {
        return None;
    }
    let end = digits_start + digits;
    // Beyond i64 the value is too large for any TTL anyway.
    let value = text[..end].parse::<i64>().unwrap_or(i64::MAX);
    Some((value, &text[end..]))
}

/// Confirms a publish that needs no queue's answer.
fn confirm_at_once(connection: &ConnectionShared, channel: ChannelId) {
    let mut state = connection.state.borrow_mut();
    let Some(open) = state.channels.get_mut(&channel.0) else {
        return;
    };
    if let Some(tracker) = open.confirm.as_mut() {
        tracker.publish(0);
        crate::connection::events::confirms_due(connection, channel, tracker);
    }
}

/// The `CC` and `BCC` headers (arrays of strings) add routing keys: sender-selected
/// distribution, as RabbitMQ does it.
fn sender_selected_keys(headers: Option<&FieldTable>) -> Vec<ShortStr> {
    let Some(headers) = headers else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for name in ["CC", "BCC"] {
        if let Some(FieldValue::Array(values)) = headers.get(name) {
            keys.extend(
                values
                    .iter()
                    .filter_map(FieldValue::as_bytes)
                    .filter_map(|key| ShortStr::try_from_bytes(Bytes::copy_from_slice(key))),
            );
        }
    }
    keys
}

/// The properties without their BCC header (and their new raw form), if they have one.
fn without_bcc(properties: &BasicProperties) -> Option<(BasicProperties, Bytes)> {
    let has_bcc = properties
        .headers
        .as_ref()
        .is_some_and(|headers| headers.contains_key("BCC"));
    if !has_bcc {
        return None;
    }
    let mut stripped = properties.clone();
    if let Some(headers) = stripped.headers.as_mut() {
        while headers.remove("BCC").is_some() {}
    }
    let raw = stripped.to_raw();
    Some((stripped, raw))
}
