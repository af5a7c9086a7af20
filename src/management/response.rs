//! Responses of the management API, in RabbitMQ's shapes (docs/management-api.md): JSON bodies,
//! the status codes tools check, and the error objects `{"error": …, "reason": …}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::StatusCode;
use serde_json::{json, Value};

pub type Response = hyper::Response<Full<Bytes>>;

/// The challenge RabbitMQ sends with a 401 to a request without credentials.
pub const BASIC_REALM: &str = "Basic realm=\"RabbitMQ Management\"";

/// 200 with `value` as the body.
pub fn ok(value: &Value) -> Response {
    json(StatusCode::OK, value)
}

/// A JSON body serialised already, with 200.
pub fn ok_bytes(body: Vec<u8>) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `value` as a JSON body with `status`.
pub fn json(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `{"error": error, "reason": reason}` with `status`.
pub fn error(status: StatusCode, error: &str, reason: &str) -> Response {
    json(status, &json!({"error": error, "reason": reason}))
}

/// 204 with no body.
pub fn no_content() -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// Unknown path or object.
pub fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Object Not Found", "Not Found")
}

/// A path naming a vhost that does not exist, where RabbitMQ says so.
pub fn vhost_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "vhost_not_found")
}

pub fn bad_request(reason: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", reason)
}

/// The path exists but not with this method; `allowed` lists the methods that it has.
pub fn method_not_allowed(allowed: &'static str) -> Response {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method Not Allowed",
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allowed));
    response
}

/// No credentials: ask for them.
pub fn challenge() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "not_authorised", "Not_Authorized");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static(BASIC_REALM));
    response
}

/// Wrong credentials, or a user without the tag or permission the request needs.
pub fn not_authorised(reason: &str) -> Response {
    error(StatusCode::UNAUTHORIZED, "not_authorised", reason)
}

/// A failing health check: 503 with its body.
pub fn unavailable(value: &Value) -> Response {
    json(StatusCode::SERVICE_UNAVAILABLE, value)
}
