//! The writes on bindings: `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`
//! (`routing_key`, `arguments`; 201 with a `Location` ending in the new binding's
//! `properties_key`, percent-encoded and relative to the request path as RabbitMQ writes
//! it), and
//! `GET`/`DELETE .../{properties_key}`. Binding needs write permission on the destination and
//! read permission on the source, as in AMQP.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::header::{HeaderValue, LOCATION};
use hyper::Method;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::management::auth::Access;
use crate::management::bindings::{properties_key, Destination};
use crate::management::body::{check, created, either, refused};
use crate::management::dto;
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::protocol::{FieldTable, FieldValue, ShortStr};
use crate::shard::admin;
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::exchange::Destination as Bound;
use crate::vhost::json_table::json_to_table;

/// Characters a `Location` segment keeps as they are.
const PATH_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A binding as the registry holds it: routing key and arguments.
type Found = (Vec<u8>, Vec<(Vec<u8>, FieldValue)>);

fn authorise(call: &Call<'_>, vhost: &str, source: &str, to: &Destination) -> Result<(), Response> {
    check(call.refuse_vhost_change(vhost))?;
    let destination = match to {
        Destination::Queue(name) | Destination::Exchange(name) => name,
    };
    check(call.require_permission(vhost, Access::Write, destination))?;
    check(call.require_permission(vhost, Access::Read, source))
}

/// The bindings from `source` to `to`; None if the vhost, the source or the destination does
/// not exist.
fn bindings_between(
    call: &Call<'_>,
    vhost: &str,
    source: &str,
    to: &Destination,
) -> Option<Vec<Found>> {
    let registry = call.context.shard.registry.borrow();
    let host = registry.vhost(&ShortStr::copy_from_str(vhost)?)?;
    let exchange = host.exchange(&ShortStr::copy_from_str(source)?)?;
    let (name, queue) = match to {
        Destination::Queue(name) => (name, true),
        Destination::Exchange(name) => (name, false),
    };
    let short = ShortStr::copy_from_str(name)?;
    if queue {
        host.queue(&short)?;
    } else {
        host.exchange(&short)?;
    }
    let found = exchange
        .bindings
        .iter_in_bind_order()
        .filter(|(_, _, bound)| match bound {
            Bound::Queue(id) => queue && host.queue_by_id(*id).is_some_and(|q| q.name == short),
            Bound::Exchange(id) => {
                !queue && host.exchange_by_id(*id).is_some_and(|x| *x.name() == short)
            }
        })
        .map(|(key, arguments, _)| (key.to_vec(), arguments.to_vec()))
        .collect();
    Some(found)
}

fn definition(
    source: &str,
    to: &Destination,
    key: &[u8],
    arguments: FieldTable,
) -> Option<BindingDefinition> {
    let destination = match to {
        Destination::Queue(name) => DestinationName::Queue(ShortStr::copy_from_str(name)?),
        Destination::Exchange(name) => DestinationName::Exchange(ShortStr::copy_from_str(name)?),
    };
    Some(BindingDefinition {
        source: ShortStr::copy_from_str(source)?,
        destination,
        routing_key: ShortStr::try_from_bytes(bytes::Bytes::copy_from_slice(key))?,
        arguments,
    })
}

/// The path's (decoded) key names the binding: RabbitMQ's `Location` encodes the
/// `properties_key` once more, but a client may also send the key as listed.
fn same_key(key: &str, wanted: &str) -> bool {
    key == wanted || percent_encoding::percent_decode_str(key).decode_utf8_lossy() == wanted
}

/// `POST /api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
pub async fn create(call: &Call<'_>, vhost: &str, source: &str, to: &Destination) -> Response {
    either(create_inner(call, vhost, source, to).await)
}

async fn create_inner(
    call: &Call<'_>,
    vhost: &str,
    source: &str,
    to: &Destination,
) -> Result<Response, Response> {
    authorise(call, vhost, source, to)?;
    let fields = call.fields()?;
    let routing_key = fields.string("routing_key")?.unwrap_or_default();
    let arguments = match fields.object("arguments")? {
        Some(map) => json_to_table(&Value::Object(map.clone()))
            .map_err(|error| response::bad_request(&error.to_string()))?,
        None => FieldTable::default(),
    };
    if bindings_between(call, vhost, source, to).is_none() {
        return Err(response::not_found());
    }
    let wanted = dto::field_table(&arguments);
    let binding = definition(source, to, routing_key.as_bytes(), arguments)
        .ok_or_else(|| response::bad_request("routing_key is too long"))?;
    let vhost_name = ShortStr::copy_from_str(vhost).ok_or_else(response::not_found)?;
    admin::change_binding(&call.context.shard, vhost_name, binding, true)
        .await
        .map_err(|error| refused(&error))?;
    let key = bindings_between(call, vhost, source, to)
        .unwrap_or_default()
        .into_iter()
        .find(|(key, arguments)| {
            *key == routing_key.as_bytes() && dto::argument_pairs(arguments) == wanted
        })
        .map_or_else(
            || "~".to_owned(),
            |(key, arguments)| properties_key(&key, &arguments),
        );
    let last = match to {
        Destination::Queue(name) | Destination::Exchange(name) => name,
    };
    let location = format!(
        "{}/{}",
        utf8_percent_encode(last, PATH_SAFE),
        utf8_percent_encode(&key, PATH_SAFE)
    );
    let mut answer = created();
    if let Ok(value) = HeaderValue::from_str(&location) {
        answer.headers_mut().insert(LOCATION, value);
    }
    Ok(answer)
}

/// `GET` or `DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{properties_key}`.
pub async fn one(
    call: &Call<'_>,
    vhost: &str,
    source: &str,
    to: &Destination,
    wanted: &str,
) -> Response {
    either(one_inner(call, vhost, source, to, wanted).await)
}

async fn one_inner(
    call: &Call<'_>,
    vhost: &str,
    source: &str,
    to: &Destination,
    wanted: &str,
) -> Result<Response, Response> {
    check(call.refuse_vhost(vhost))?;
    let found = bindings_between(call, vhost, source, to)
        .unwrap_or_default()
        .into_iter()
        .find(|(key, arguments)| same_key(&properties_key(key, arguments), wanted))
        .ok_or_else(response::not_found)?;
    let (key, arguments) = found;
    if call.method() != Method::DELETE {
        let (name, kind) = match to {
            Destination::Queue(name) => (name, "queue"),
            Destination::Exchange(name) => (name, "exchange"),
        };
        return Ok(call.one(serde_json::json!({
            "source": source,
            "vhost": vhost,
            "destination": name,
            "destination_type": kind,
            "routing_key": String::from_utf8_lossy(&key),
            "arguments": dto::argument_pairs(&arguments),
            "properties_key": wanted,
        })));
    }
    authorise(call, vhost, source, to)?;
    let entries = arguments
        .into_iter()
        .filter_map(|(name, value)| {
            ShortStr::try_from_bytes(bytes::Bytes::from(name)).map(|name| (name, value))
        })
        .collect();
    let binding =
        definition(source, to, &key, FieldTable { entries }).ok_or_else(response::not_found)?;
    let vhost_name = ShortStr::copy_from_str(vhost).ok_or_else(response::not_found)?;
    admin::change_binding(&call.context.shard, vhost_name, binding, false)
        .await
        .map_err(|error| refused(&error))?;
    Ok(response::no_content())
}
