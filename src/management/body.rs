//! Request bodies of the write endpoints, read and checked as RabbitMQ's management plugin
//! does (`rabbit_mgmt_util:with_decode`): at most `MAX_BODY_BYTES` (its
//! `max_http_body_size` default, 20 000 000 bytes; more is a 400 "Exceeded HTTP request body
//! size limit"), any content type but for definitions uploads, an empty body or `null` taken
//! as `{}`, a body that is not a JSON object a 400 `not_json`, and missing keys a 400 whose
//! reason lists them as RabbitMQ prints them (`[{key_missing,tags}]`).

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{Map, Value};

use crate::exception::Exception;
use crate::management::auth::Access;
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::protocol::ShortStr;

/// RabbitMQ's `MANAGEMENT_DEFAULT_HTTP_MAX_BODY_SIZE`.
pub const MAX_BODY_BYTES: usize = 20_000_000;

/// The reason RabbitMQ gives for a body over the limit.
pub const TOO_LARGE: &str = "Exceeded HTTP request body size limit";

/// The whole body, or the 400 for one over the limit (or cut short).
pub async fn read(body: Incoming) -> Result<Bytes, Response> {
    match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(response::bad_request(TOO_LARGE))
        }
        Err(_) => Err(response::bad_request("request body could not be read")),
    }
}

/// The body as a JSON object (`{}` when empty or `null`).
pub fn object(body: &[u8]) -> Result<Map<String, Value>, Response> {
    let text = body.trim_ascii();
    if text.is_empty() || text == b"null" || text == b"undefined" {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::String(_)) => Err(response::bad_request(
            "invalid payload: the request body JSON-decoded to a string. Is the input \
             doubly-JSON-encoded?",
        )),
        _ => Err(response::bad_request("not_json")),
    }
}

/// Typed access to a body's fields; each getter answers the 400 for a wrong type.
pub struct Fields(pub Map<String, Value>);

impl Fields {
    pub fn parse(body: &[u8]) -> Result<Fields, Response> {
        object(body).map(Fields)
    }

    /// The value of `key`, absent when missing or `null`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|value| !value.is_null())
    }

    /// 400 `[{key_missing,a},{key_missing,b}]` for the keys that are missing.
    pub fn require(&self, keys: &[&str]) -> Result<(), Response> {
        let missing: Vec<String> = keys
            .iter()
            .filter(|key| self.get(key).is_none())
            .map(|key| format!("{{key_missing,{key}}}"))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(response::bad_request(&format!("[{}]", missing.join(","))))
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, Response> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(wrong_type(key, "a string")),
        }
    }

    pub fn required_string(&self, key: &str) -> Result<String, Response> {
        self.require(&[key])?;
        self.string(key).map(Option::unwrap_or_default)
    }

    /// A boolean; RabbitMQ also takes the strings `"true"` and `"false"`.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, Response> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(value)) => Ok(Some(*value)),
            Some(Value::String(text)) if text == "true" => Ok(Some(true)),
            Some(Value::String(text)) if text == "false" => Ok(Some(false)),
            Some(_) => Err(wrong_type(key, "a boolean")),
        }
    }

    /// An integer; RabbitMQ also takes one written as a string.
    pub fn integer(&self, key: &str) -> Result<Option<i64>, Response> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(number)) => number
                .as_i64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "an integer")),
            Some(Value::String(text)) => text
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| wrong_type(key, "an integer")),
            Some(_) => Err(wrong_type(key, "an integer")),
        }
    }

    /// An object (`arguments`, `definition`, `headers`); absent is None.
    pub fn object(&self, key: &str) -> Result<Option<&Map<String, Value>>, Response> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            // RabbitMQ's own exports write an empty table as `[]`.
            Some(Value::Array(items)) if items.is_empty() => Ok(None),
            Some(_) => Err(wrong_type(key, "an object")),
        }
    }

    /// Tags as RabbitMQ takes them: `"a,b"` or `["a","b"]`.
    pub fn tags(&self, key: &str) -> Result<Option<Vec<String>>, Response> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(crate::vhost::definitions_json::split_tags(text))),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(tag) => Ok(tag.trim().to_owned()),
                    _ => Err(wrong_type(key, "a string or an array of strings")),
                })
                .filter(|tag| tag.as_ref().map_or(true, |tag| !tag.is_empty()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(key, "a string or an array of strings")),
        }
    }
}

/// A refusal (`Some`) as the error of a handler's `Result`.
/// The vhost and object names of a path as short strings (404 if one cannot be).
pub fn names(vhost: &str, name: &str) -> Result<(ShortStr, ShortStr), Response> {
    match (
        ShortStr::copy_from_str(vhost),
        ShortStr::copy_from_str(name),
    ) {
        (Some(vhost), Some(name)) => Ok((vhost, name)),
        _ => Err(response::not_found()),
    }
}

/// Vhost access for a change, then the AMQP permission on the object.
pub fn authorise(call: &Call<'_>, vhost: &str, access: Access, name: &str) -> Result<(), Response> {
    check(call.refuse_vhost_change(vhost))?;
    check(call.require_permission(vhost, access, name))
}

pub fn check(refusal: Option<Response>) -> Result<(), Response> {
    refusal.map_or(Ok(()), Err)
}

/// A handler's answer, whichever way it went.
pub fn either(result: Result<Response, Response>) -> Response {
    result.unwrap_or_else(|refused| refused)
}

/// 201 with no body: a PUT that created its object.
pub fn created() -> Response {
    let mut answer = response::no_content();
    *answer.status_mut() = StatusCode::CREATED;
    answer
}

/// 201 for a PUT that created, 204 for one that updated.
pub fn put_answer(created_now: bool) -> Response {
    if created_now {
        created()
    } else {
        response::no_content()
    }
}

fn wrong_type(key: &str, what: &str) -> Response {
    response::bad_request(&format!("{key} must be {what}"))
}

/// An operator request's refusal as the management plugin answers it: 404 for a missing
/// object, 401 "Access refused." for ACCESS_REFUSED (and NOT_ALLOWED), else 400 with the
/// AMQP explanation.
pub fn refused(error: &Exception) -> Response {
    match error.reply_code() {
        404 => response::error(StatusCode::NOT_FOUND, "not_found", &error.explanation),
        403 | 530 => response::not_authorised("Access refused."),
        _ => response::bad_request(&error.explanation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_null_bodies_are_empty_objects() {
        assert!(object(b"").is_ok_and(|map| map.is_empty()));
        assert!(object(b" null ").is_ok_and(|map| map.is_empty()));
        assert!(object(b"[1]").is_err());
        assert!(object(b"{").is_err());
        assert!(object(b"\"{}\"").is_err());
    }

    #[test]
    fn tags_come_as_text_or_list() {
        let fields = Fields::parse(br#"{"a":"x, y","b":["x",""],"c":3}"#).expect("object");
        assert!(matches!(fields.tags("a"), Ok(Some(tags)) if tags == ["x", "y"]));
        assert!(matches!(fields.tags("b"), Ok(Some(tags)) if tags == ["x"]));
        assert!(fields.tags("c").is_err());
        assert!(matches!(fields.tags("d"), Ok(None)));
    }
}
