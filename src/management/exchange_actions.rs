//! The writes on exchanges: `PUT /api/exchanges/{vhost}/{name}` (`type` required; `durable`,
//! `auto_delete`, `internal`, `arguments`; 201 created, 204 existed), `DELETE`
//! (`if-unused`), and `POST .../publish` (`{"routed": bool}`). The default exchange
//! (`amq.default`) and the `amq.*` names may not be declared or deleted: RabbitMQ refuses
//! them with ACCESS_REFUSED, which its API answers as 401 "Access refused.".

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use base64::Engine;
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{json, Map, Value};

use crate::management::auth::Access;
use crate::management::body::{authorise, either, names, put_answer, refused, Fields};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::protocol::{BasicProperties, ShortStr};
use crate::shard::admin;
use crate::shard::operator_messages::{self, OperatorPublish};
use crate::vhost::json_table::json_to_table;
use crate::vhost::rules::ExchangeDeclare;

/// The default exchange and `amq.*` ones are the broker's.
fn reserved(name: &str) -> Result<(), Response> {
    if name.is_empty() || name.starts_with("amq.") {
        Err(response::not_authorised("Access refused."))
    } else {
        Ok(())
    }
}

fn exists(call: &Call<'_>, vhost: &ShortStr, name: &ShortStr) -> bool {
    let registry = call.context.shard.registry.borrow();
    registry
        .vhost(vhost)
        .is_some_and(|found| found.exchange(name).is_some())
}

/// `PUT /api/exchanges/{vhost}/{name}`.
pub async fn declare(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(declare_inner(call, vhost, name).await)
}

async fn declare_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Configure, name)?;
    let fields = call.fields()?;
    fields.require(&["type"])?;
    reserved(name)?;
    let kind = fields.required_string("type")?;
    let arguments = table(&fields, "arguments")?;
    let (vhost, name) = names(vhost, name)?;
    let declare = ExchangeDeclare {
        name,
        kind: ShortStr::copy_from_str(&kind)
            .ok_or_else(|| response::bad_request("type is too long"))?,
        passive: false,
        durable: fields.bool("durable")?.unwrap_or(false),
        auto_delete: fields.bool("auto_delete")?.unwrap_or(false),
        internal: fields.bool("internal")?.unwrap_or(false),
        arguments,
    };
    let created = admin::declare_exchange(&call.context.shard, vhost, declare)
        .await
        .map_err(|error| refused(&error))?;
    Ok(put_answer(created))
}

/// `DELETE /api/exchanges/{vhost}/{name}[?if-unused=true]`.
pub async fn delete(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(delete_inner(call, vhost, name).await)
}

async fn delete_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Configure, name)?;
    let (vhost, short) = names(vhost, name)?;
    if !exists(call, &vhost, &short) {
        return Err(response::not_found());
    }
    reserved(name)?;
    let if_unused = call.query.get("if-unused") == Some("true");
    admin::delete_exchange(&call.context.shard, vhost, short, if_unused)
        .await
        .map_err(|error| refused(&error))?;
    Ok(response::no_content())
}

/// `POST /api/exchanges/{vhost}/{name}/publish`.
pub async fn publish(call: &Call<'_>, vhost: &str, name: &str) -> Response {
    either(publish_inner(call, vhost, name).await)
}

async fn publish_inner(call: &Call<'_>, vhost: &str, name: &str) -> Result<Response, Response> {
    authorise(call, vhost, Access::Write, name)?;
    let fields = call.fields()?;
    fields.require(&["properties", "routing_key", "payload", "payload_encoding"])?;
    let routing_key = fields.required_string("routing_key")?;
    let payload = fields.required_string("payload")?;
    let body = match fields.required_string("payload_encoding")?.as_str() {
        "string" => Bytes::from(payload.into_bytes()),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .map(Bytes::from)
            .map_err(|_| response::bad_request("payload is not valid base64"))?,
        other => {
            return Err(response::bad_request(&format!(
                "Invalid payload_encoding '{other}': use string or base64"
            )))
        }
    };
    let properties = match fields.object("properties")? {
        Some(map) => properties(map)?,
        None => BasicProperties::default(),
    };
    let (vhost, exchange) = names(vhost, name)?;
    if !exists(call, &vhost, &exchange) {
        return Err(response::error(
            StatusCode::NOT_FOUND,
            "not_found",
            "exchange_not_found",
        ));
    }
    let publish = OperatorPublish {
        vhost,
        exchange,
        routing_key: ShortStr::copy_from_str(&routing_key)
            .ok_or_else(|| response::bad_request("routing_key is too long"))?,
        properties,
        body,
    };
    let routed = operator_messages::publish(&call.context.shard, publish)
        .await
        .map_err(|error| refused(&error))?;
    Ok(response::ok(&json!({ "routed": routed })))
}

fn table(fields: &Fields, key: &str) -> Result<crate::protocol::FieldTable, Response> {
    match fields.object(key)? {
        Some(map) => json_to_table(&Value::Object(map.clone()))
            .map_err(|error| response::bad_request(&error.to_string())),
        None => Ok(Default::default()),
    }
}

/// Basic properties from RabbitMQ's underscore names (unknown keys are ignored).
pub fn properties(map: &Map<String, Value>) -> Result<BasicProperties, Response> {
    let fields = Fields(map.clone());
    let text = |key: &str| -> Result<Option<ShortStr>, Response> {
        match fields.string(key)? {
            None => Ok(None),
            Some(text) => ShortStr::copy_from_str(&text)
                .map(Some)
                .ok_or_else(|| response::bad_request(&format!("{key} is too long"))),
        }
    };
    let octet = |key: &str| -> Result<Option<u8>, Response> {
        match fields.integer(key)? {
            None => Ok(None),
            Some(value) => u8::try_from(value)
                .map(Some)
                .map_err(|_| response::bad_request(&format!("{key} must be 0 to 255"))),
        }
    };
    let headers = match fields.object("headers")? {
        Some(map) => Some(
            json_to_table(&Value::Object(map.clone()))
                .map_err(|error| response::bad_request(&error.to_string()))?,
        ),
        None => None,
    };
    let timestamp = match fields.integer("timestamp")? {
        None => None,
        Some(value) => Some(
            u64::try_from(value)
                .map_err(|_| response::bad_request("timestamp must not be negative"))?,
        ),
    };
    Ok(BasicProperties {
        content_type: text("content_type")?,
        content_encoding: text("content_encoding")?,
        headers,
        delivery_mode: octet("delivery_mode")?,
        priority: octet("priority")?,
        correlation_id: text("correlation_id")?,
        reply_to: text("reply_to")?,
        expiration: text("expiration")?,
        message_id: text("message_id")?,
        timestamp,
        kind: text("type")?,
        user_id: text("user_id")?,
        app_id: text("app_id")?,
        cluster_id: text("cluster_id")?,
    })
}
