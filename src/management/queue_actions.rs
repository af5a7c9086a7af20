//! The writes on queues: `PUT /api/queues/{vhost}/{name}` (declare: `durable`, `auto_delete`,
//! `arguments`; `node` is ignored; 201 created, 204 existed; an inequivalent redeclare is a
//! 400 with the AMQP text), `DELETE` (`if-empty`, `if-unused`: 400 when refused),
//! `DELETE .../contents` (purge) and `POST .../get` (RabbitMQ's message peek). Each checks the
//! caller's vhost access and AMQP permission as the management plugin does: configure to
//! declare and delete, read to purge and get.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use base64::Engine;
use hyper::Method;
use serde_json::{json, Value};

use crate::management::auth::Access;
use crate::management::body::{authorise, either, names, put_answer, refused};
use crate::management::dto;
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::protocol::BasicProperties;
use crate::shard::admin::{self, OperatorQueue};
use crate::shard::message::DeleteConditions;
use crate::shard::operator_messages::{self, GetAckMode};
use crate::vhost::json_table::{json_to_table, properties_table, table_to_json};

/// The ack modes of `get`, as RabbitMQ names them.
pub const ACK_MODES: [&str; 4] = [
    "ack_requeue_true",
    "ack_requeue_false",
    "reject_requeue_true",
    "reject_requeue_false",
];

/// `PUT /api/queues/{vhost}/{name}`.
pub async fn declare(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(declare_inner(call, vhost, name).await)
}

async fn declare_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Configure, name)?;
    let fields = call.fields()?;
    let arguments = match fields.object("arguments")? {
        Some(map) => json_to_table(&Value::Object(map.clone()))
            .map_err(|error| response::bad_request(&error.to_string()))?,
        None => Default::default(),
    };
    let (vhost, name) = names(vhost, name)?;
    let queue = OperatorQueue {
        vhost,
        name,
        durable: fields.bool("durable")?.unwrap_or(false),
        auto_delete: fields.bool("auto_delete")?.unwrap_or(false),
        arguments,
    };
    let declared = admin::declare_queue(&call.context.shard, queue)
        .await
        .map_err(|error| refused(&error))?;
    Ok(put_answer(declared.created))
}

/// `DELETE /api/queues/{vhost}/{name}[?if-empty=true&if-unused=true]`.
pub async fn delete(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(delete_inner(call, vhost, name).await)
}

async fn delete_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Configure, name)?;
    let (vhost, name) = names(vhost, name)?;
    admin::find_queue(&call.context.shard, &vhost, &name).map_err(|_| response::not_found())?;
    let conditions = DeleteConditions {
        if_unused: call.query.get("if-unused") == Some("true"),
        if_empty: call.query.get("if-empty") == Some("true"),
    };
    admin::delete_queue(&call.context.shard, vhost, &name, conditions)
        .await
        .map_err(|error| refused(&error))?;
    Ok(response::no_content())
}

/// `DELETE /api/queues/{vhost}/{name}/contents`.
pub async fn purge(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(purge_inner(call, vhost, name).await)
}

async fn purge_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Read, name)?;
    let (vhost, name) = names(vhost, name)?;
    admin::find_queue(&call.context.shard, &vhost, &name).map_err(|_| response::not_found())?;
    admin::purge_queue(&call.context.shard, vhost, &name)
        .await
        .map_err(|error| refused(&error))?;
    Ok(response::no_content())
}

/// `POST /api/queues/{vhost}/{name}/get` `{"count", "ackmode", "encoding", "truncate"?}`.
pub async fn get(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(get_inner(call, vhost, name).await)
}

async fn get_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    debug_assert_eq!(call.method(), Method::POST);
    authorise(call, vhost, Access::Read, name)?;
    let fields = call.fields()?;
    fields.require(&["ackmode", "count", "encoding"])?;
    let mode = match fields.required_string("ackmode")?.as_str() {
        "ack_requeue_true" | "reject_requeue_true" => GetAckMode::Requeue,
        "ack_requeue_false" => GetAckMode::Ack,
        "reject_requeue_false" => GetAckMode::Reject,
        other => {
            return Err(response::bad_request(&format!(
                "Invalid ackmode '{other}': use one of {}",
                ACK_MODES.join(", ")
            )))
        }
    };
    let base64_only = match fields.required_string("encoding")?.as_str() {
        "auto" => false,
        "base64" => true,
        _ => {
            return Err(response::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let count = fields.integer("count")?.unwrap_or_default();
    let count = u32::try_from(count)
        .map_err(|_| response::bad_request("count must be a non-negative integer"))?;
    let truncate = match fields.integer("truncate")? {
        None => None,
        Some(limit) => Some(
            usize::try_from(limit)
                .map_err(|_| response::bad_request("truncate must be a non-negative integer"))?,
        ),
    };
    let (vhost, name) = names(vhost, name)?;
    admin::find_queue(&call.context.shard, &vhost, &name).map_err(|_| response::not_found())?;
    let got = operator_messages::get(&call.context.shard, vhost, &name, count, mode)
        .await
        .map_err(|error| refused(&error))?;
    let items: Vec<Value> = got
        .iter()
        .map(|message| {
            let content = &message.content;
            let properties = BasicProperties::decode(&content.properties_raw).unwrap_or_default();
            let body = &content.body
                [..truncate.map_or(content.body.len(), |limit| limit.min(content.body.len()))];
            let (payload, encoding) = match std::str::from_utf8(body) {
                Ok(text) if !base64_only => (text.to_owned(), "string"),
                _ => (
                    base64::engine::general_purpose::STANDARD.encode(body),
                    "base64",
                ),
            };
            json!({
                "payload_bytes": content.body.len(),
                "redelivered": message.redelivered,
                "exchange": dto::short(&content.exchange),
                "routing_key": dto::short(&content.routing_key),
                "message_count": message.message_count,
                "properties": properties_json(&properties),
                "payload": payload,
                "payload_encoding": encoding,
            })
        })
        .collect();
    Ok(response::ok(&Value::Array(items)))
}

/// Basic properties with RabbitMQ's underscore names; unset ones are left out.
pub fn properties_json(properties: &BasicProperties) -> Value {
    table_to_json(&properties_table(properties))
}
