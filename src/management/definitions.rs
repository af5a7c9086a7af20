//! `/api/definitions[/{vhost}]` (and the old alias `/api/all-configuration`): GET exports in
//! RabbitMQ's JSON shapes, POST merges a file in (204), both for administrators. The upload
//! is the JSON body (`application/json`, or no content type) or the `file` field of a
//! `multipart/form-data` form, as the management UI sends it; other content types are 415.

// A refusal is the HTTP response itself, built once per request: boxing it buys nothing.
#![allow(clippy::result_large_err)]

use hyper::header::CONTENT_TYPE;
use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::management::body::{check, either};
use crate::management::response::{self, Response};
use crate::management::router::Call;
use crate::shard::definitions_transfer::{export, import};
use crate::vhost::definitions_json::DefinitionsJson;

/// Keys a one-vhost export leaves out.
const SERVER_WIDE_KEYS: [&str; 5] = [
    "users",
    "vhosts",
    "permissions",
    "topic_permissions",
    "global_parameters",
];

/// `GET` or `POST /api/definitions[/{vhost}]`.
pub async fn transfer(call: &Call<'_>, vhost: Option<&str>) -> Response {
    either(transfer_inner(call, vhost).await)
}

async fn transfer_inner(call: &Call<'_>, vhost: Option<&str>) -> Result<Response, Response> {
    check(call.admin_only())?;
    if let Some(vhost) = vhost {
        check(call.refuse_vhost(vhost))?;
    }
    if call.method() == Method::POST {
        let file = upload(call)?;
        let definitions: DefinitionsJson = serde_json::from_slice(file)
            .map_err(|error| response::bad_request(&format!("not_json: {error}")))?;
        import(&call.context.shard, definitions, vhost)
            .await
            .map_err(|error| response::bad_request(&error.0))?;
        return Ok(response::no_content());
    }
    let definitions = export(&call.context.shard.registry.borrow(), vhost);
    let mut value = serde_json::to_value(&definitions).unwrap_or(Value::Null);
    if let (Some(_), Value::Object(map)) = (vhost, &mut value) {
        for key in SERVER_WIDE_KEYS {
            map.remove(key);
        }
        for items in map.values_mut() {
            if let Value::Array(items) = items {
                for item in items.iter_mut().filter_map(Value::as_object_mut) {
                    item.remove("vhost");
                }
            }
        }
    }
    Ok(response::ok(&value))
}

/// The uploaded definitions: the body, or a form's `file` field.
fn upload<'a>(call: &Call<'a>) -> Result<&'a [u8], Response> {
    let content_type = call
        .request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(call.body),
        "multipart/form-data" => {
            let boundary = content_type
                .split(';')
                .filter_map(|part| part.trim().strip_prefix("boundary="))
                .map(|boundary| boundary.trim_matches('"'))
                .next()
                .ok_or_else(|| response::bad_request("multipart body without a boundary"))?;
            form_field(call.body, boundary, "file")
                .ok_or_else(|| response::bad_request("no file field in the form"))
        }
        _ => Err(response::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported Media Type",
        )),
    }
}

/// The content of the form field `name` in a `multipart/form-data` body.
pub fn form_field<'a>(body: &'a [u8], boundary: &str, name: &str) -> Option<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let wanted = format!("name=\"{name}\"");
    let mut rest = body;
    while let Some(start) = find(rest, delimiter.as_bytes()) {
        rest = &rest[start + delimiter.len()..];
        let end = find(rest, delimiter.as_bytes()).unwrap_or(rest.len());
        let part = &rest[..end];
        let Some(split) = find(part, b"\r\n\r\n") else {
            continue;
        };
        let headers = String::from_utf8_lossy(&part[..split]);
        if headers.contains(&wanted) {
            let content = &part[split + 4..];
            return Some(content.strip_suffix(b"\r\n").unwrap_or(content));
        }
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_field_comes_out_of_a_form() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\n/\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\n\
            Content-Type: application/json\r\n\r\n{\"users\":[]}\r\n--XyZ--\r\n";
        assert_eq!(
            form_field(body, "XyZ", "file"),
            Some(&b"{\"users\":[]}"[..])
        );
        assert_eq!(form_field(body, "XyZ", "other"), None);
    }
}
