//! `/api/bindings[/{vhost}]`, `/api/bindings/{vhost}/e/{x}/{q|e}/{y}`,
//! `/api/exchanges/{vhost}/{x}/bindings/{source|destination}`,
//! `/api/queues/{vhost}/{q}/bindings`: bindings from shard 0's registry copy, including each
//! queue's implicit binding from the default exchange (source `""`, routing key = queue name).
//!
//! `properties_key` identifies a binding in a URL: `~` when the key and arguments are empty,
//! else the percent-encoded routing key, plus `~` and a base64url hash of the arguments when
//! there are some (RabbitMQ's layout; the hash is ours, stable for the same arguments).

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use crate::management::dto::{self, short};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::protocol::{FieldValue, ShortStr};
use crate::vhost::exchange::Destination as Bound;
use crate::vhost::VHost;

/// Characters left as they are in a `properties_key` routing key.
const KEY_SAFE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_');

/// Which end of its bindings an exchange path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Bindings from the exchange.
    Source,
    /// Bindings to the exchange (exchange-to-exchange).
    Destination,
}

impl Side {
    pub fn parse(segment: &str) -> Option<Side> {
        match segment {
            "source" => Some(Side::Source),
            "destination" => Some(Side::Destination),
            _ => None,
        }
    }
}

/// The destination half of a binding path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Queue(String),
    Exchange(String),
}

impl Destination {
    pub fn parse(kind: &str, name: &str) -> Option<Destination> {
        match kind {
            "q" => Some(Destination::Queue(name.to_owned())),
            "e" if name == "amq.default" => Some(Destination::Exchange(String::new())),
            "e" => Some(Destination::Exchange(name.to_owned())),
            _ => None,
        }
    }
}

/// `GET /api/bindings` and `GET /api/bindings/{vhost}`.
pub fn list(call: &Call<'_>, vhost: Option<&str>) -> Response {
    if let Some(vhost) = vhost {
        if let Some(refused) = call.refuse_vhost(vhost) {
            return refused;
        }
    }
    let registry = call.context.shard.registry.borrow();
    let mut items = Vec::new();
    for host in registry.vhosts() {
        if call.lists(vhost, &host.name.to_string_lossy()) {
            items.extend(all_bindings(host));
        }
    }
    drop(registry);
    call.list(items)
}

/// `GET /api/exchanges/{vhost}/{name}/bindings/{source|destination}`.
pub fn of_exchange(call: &Call<'_>, vhost: &str, name: &str, side: Side) -> Response {
    with_vhost(call, vhost, |host| {
        host.exchange(&ShortStr::from_str_truncated(name))?;
        let field = match side {
            Side::Source => "source",
            Side::Destination => "destination",
        };
        Some(
            all_bindings(host)
                .into_iter()
                .filter(|b| b[field] == name)
                .filter(|b| side == Side::Source || b["destination_type"] == "exchange")
                .collect(),
        )
    })
}

/// `GET /api/queues/{vhost}/{name}/bindings`.
pub fn of_queue(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    with_vhost(call, vhost, |host| {
        host.queue(&ShortStr::from_str_truncated(name))?;
        Some(
            all_bindings(host)
                .into_iter()
                .filter(|b| b["destination"] == name && b["destination_type"] == "queue")
                .collect(),
        )
    })
}

/// `GET /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
pub fn between(call: &Call<'_>, vhost: &str, source: &str, destination: &Destination) -> Response {
    with_vhost(call, vhost, |host| {
        host.exchange(&ShortStr::from_str_truncated(source))?;
        let (name, kind) = match destination {
            Destination::Queue(name) => {
                host.queue(&ShortStr::from_str_truncated(name))?;
                (name, "queue")
            }
            Destination::Exchange(name) => {
                host.exchange(&ShortStr::from_str_truncated(name))?;
                (name, "exchange")
            }
        };
        Some(
            all_bindings(host)
                .into_iter()
                .filter(|b| {
                    b["source"] == source
                        && b["destination"] == *name
                        && b["destination_type"] == kind
                })
                .collect(),
        )
    })
}

/// Lists what `select` finds in the vhost; 404 when it finds no such object.
fn with_vhost(
    call: &Call<'_>,
    vhost: &str,
    select: impl FnOnce(&VHost) -> Option<Vec<Value>>,
) -> Response {
    if let Some(refused) = call.refuse_vhost(vhost) {
        return refused;
    }
    let registry = call.context.shard.registry.borrow();
    let found = registry
        .vhost(&ShortStr::from_str_truncated(vhost))
        .and_then(select);
    drop(registry);
    match found {
        Some(items) => call.list(items),
        None => response::not_found(),
    }
}

/// Every binding of `host`: the implicit default-exchange ones first, then the declared ones.
fn all_bindings(host: &VHost) -> Vec<Value> {
    let mut queues: Vec<&ShortStr> = host.queues().map(|queue| &queue.name).collect();
    queues.sort();
    let mut items: Vec<Value> = queues
        .into_iter()
        .map(|queue| {
            binding_json(
                host,
                &ShortStr::default(),
                queue,
                "queue",
                queue.as_bytes(),
                &[],
            )
        })
        .collect();
    let mut exchanges: Vec<_> = host.exchanges().collect();
    exchanges.sort_by(|a, b| a.name().cmp(b.name()));
    for exchange in exchanges {
        for (routing_key, arguments, destination) in exchange.bindings.iter_in_bind_order() {
            let (name, kind) = match destination {
                Bound::Queue(id) => match host.queue_by_id(id) {
                    Some(queue) => (&queue.name, "queue"),
                    None => continue,
                },
                Bound::Exchange(id) => match host.exchange_by_id(id) {
                    Some(target) => (target.name(), "exchange"),
                    None => continue,
                },
            };
            items.push(binding_json(
                host,
                exchange.name(),
                name,
                kind,
                routing_key,
                arguments,
            ));
        }
    }
    items
}

fn binding_json(
    host: &VHost,
    source: &ShortStr,
    destination: &ShortStr,
    kind: &str,
    routing_key: &[u8],
    arguments: &[(Vec<u8>, FieldValue)],
) -> Value {
    json!({
        "source": short(source),
        "vhost": short(&host.name),
        "destination": short(destination),
        "destination_type": kind,
        "routing_key": String::from_utf8_lossy(routing_key),
        "arguments": dto::argument_pairs(arguments),
        "properties_key": properties_key(routing_key, arguments),
    })
}

/// A binding's URL id (see the module comment).
pub fn properties_key(routing_key: &[u8], arguments: &[(Vec<u8>, FieldValue)]) -> String {
    if routing_key.is_empty() && arguments.is_empty() {
        return "~".into();
    }
    let key = String::from_utf8_lossy(routing_key);
    let mut text = utf8_percent_encode(&key, KEY_SAFE).to_string();
    if !arguments.is_empty() {
        let encoded = serde_json::to_vec(&dto::argument_pairs(arguments)).unwrap_or_default();
        let hash = crc32fast::hash(&encoded);
        text.push('~');
        text.push_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.to_be_bytes()));
    }
    text
}
