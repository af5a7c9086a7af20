//! The HTTP client for the RabbitMQ-compatible management API (docs/management-api.md): one
//! blocking request per call, HTTP Basic auth, JSON bodies, and every path segment
//! percent-encoded (the default vhost `/` is `%2F`).
//!
//! It knows nothing of commands: it turns transport failures and HTTP error statuses into
//! `ApiError`s that name the URL, and leaves the meaning of a 404 or a 400 to the caller.

use std::time::Duration;

use base64::Engine;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;

use crate::error::ExitCode;

/// What stays unescaped in a path segment: RFC 3986's unreserved characters.
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A response body larger than this is refused; a definitions export of a large broker stays
/// well below it.
const RESPONSE_SIZE_BYTES_MAX: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unable to perform an operation on node at {url}: the management API cannot be reached.\nCause: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("the management API at {url} did not answer within {seconds} seconds")]
    TimedOut { url: String, seconds: f64 },
    #[error("the management API at {url} refused the credentials of user \"{username}\" (HTTP 401: {reason})")]
    CredentialsRefused {
        url: String,
        username: String,
        reason: String,
    },
    #[error("{method} {url} failed with HTTP {status}: {reason}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        reason: String,
    },
    #[error("the management API at {url} sent a response that is not JSON: {detail}")]
    InvalidResponse { url: String, detail: String },
}

impl ApiError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            ApiError::Unreachable { .. } => ExitCode::Unavailable,
            ApiError::TimedOut { .. } => ExitCode::TemporaryFailure,
            ApiError::CredentialsRefused { .. } => ExitCode::NoPermission,
            ApiError::Status { status: 400, .. } => ExitCode::DataError,
            ApiError::Status { status: 404, .. } => ExitCode::Unavailable,
            ApiError::Status { .. } | ApiError::InvalidResponse { .. } => ExitCode::Software,
        }
    }
}

/// `/api/` followed by the segments, each percent-encoded.
pub fn api_path(segments: &[&str]) -> String {
    let mut path = String::from("/api");
    for segment in segments {
        path.push('/');
        path.extend(utf8_percent_encode(segment, PATH_SEGMENT));
    }
    path
}

pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port` without a trailing slash.
    base_url: String,
    username: String,
    authorization: String,
    timeout_seconds: f64,
}

impl Client {
    pub fn new(base_url: &str, username: &str, password: &str, timeout: Duration) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .user_agent(concat!("harectl/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{username}:{password}").as_bytes());
        Client {
            agent,
            base_url: base_url.trim_end_matches('/').to_string(),
            username: username.to_string(),
            authorization: format!("Basic {credentials}"),
            timeout_seconds: timeout.as_secs_f64(),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// GET a JSON document.
    pub fn get(&self, path: &str) -> Result<Value, ApiError> {
        let url = self.url(path);
        let response = self
            .agent
            .get(&url)
            .header("authorization", &self.authorization)
            .call();
        let body = self.finish("GET", &url, response)?;
        parse_json(&url, &body)
    }

    /// GET a JSON document that may not exist: 404 is `None`.
    pub fn get_optional(&self, path: &str) -> Result<Option<Value>, ApiError> {
        match self.get(path) {
            Ok(value) => Ok(Some(value)),
            Err(ApiError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// PUT a JSON body; the API answers 201 or 204 without a body.
    pub fn put(&self, path: &str, body: &Value) -> Result<(), ApiError> {
        let url = self.url(path);
        let response = self
            .agent
            .put(&url)
            .header("authorization", &self.authorization)
            .content_type("application/json")
            .send(body.to_string());
        self.finish("PUT", &url, response).map(drop)
    }

    /// POST a JSON body; returns the response body as JSON when there is one.
    pub fn post(&self, path: &str, body: &str) -> Result<Option<Value>, ApiError> {
        let url = self.url(path);
        let response = self
            .agent
            .post(&url)
            .header("authorization", &self.authorization)
            .content_type("application/json")
            .send(body);
        let text = self.finish("POST", &url, response)?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        parse_json(&url, &text).map(Some)
    }

    /// DELETE, with an optional `X-Reason` header (closing connections).
    pub fn delete(&self, path: &str, reason: Option<&str>) -> Result<(), ApiError> {
        let url = self.url(path);
        let mut request = self
            .agent
            .delete(&url)
            .header("authorization", &self.authorization);
        if let Some(reason) = reason {
            request = request.header("x-reason", reason);
        }
        self.finish("DELETE", &url, request.call()).map(drop)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The body of a 2xx response; every other outcome as an `ApiError`.
    fn finish(
        &self,
        method: &'static str,
        url: &str,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<String, ApiError> {
        let mut response = response.map_err(|error| self.transport_error(url, error))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(RESPONSE_SIZE_BYTES_MAX)
            .read_to_string()
            .map_err(|error| self.transport_error(url, error))?;
        match status {
            200..=299 => Ok(body),
            401 => Err(ApiError::CredentialsRefused {
                url: self.base_url.clone(),
                username: self.username.clone(),
                reason: error_reason(&body).unwrap_or_else(|| "unauthorised".to_string()),
            }),
            _ => Err(ApiError::Status {
                method,
                url: url.to_string(),
                status,
                reason: error_reason(&body).unwrap_or_else(|| format!("HTTP {status}")),
            }),
        }
    }

    fn transport_error(&self, url: &str, error: ureq::Error) -> ApiError {
        match error {
            ureq::Error::Timeout(_) => ApiError::TimedOut {
                url: url.to_string(),
                seconds: self.timeout_seconds,
            },
            ureq::Error::Io(ref io) if io.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::TimedOut {
                    url: url.to_string(),
                    seconds: self.timeout_seconds,
                }
            }
            other => ApiError::Unreachable {
                url: self.base_url.clone(),
                cause: other.to_string(),
            },
        }
    }
}

fn parse_json(url: &str, body: &str) -> Result<Value, ApiError> {
    serde_json::from_str(body).map_err(|error| ApiError::InvalidResponse {
        url: url.to_string(),
        detail: error.to_string(),
    })
}

/// The `reason` of an API error body `{"error": "...", "reason": "..."}`. RabbitMQ HTML-escapes
/// it, so the common entities are decoded for the terminal.
fn error_reason(body: &str) -> Option<String> {
    let value: Value = serde_json::from_str(body).ok()?;
    let reason = match value.get("reason") {
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => value.get("error")?.as_str()?.to_string(),
    };
    Some(
        reason
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&")
            .trim_end()
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_segment_is_percent_encoded() {
        assert_eq!(api_path(&["queues", "/", "a b"]), "/api/queues/%2F/a%20b");
        assert_eq!(api_path(&["users", "é/x"]), "/api/users/%C3%A9%2Fx");
        assert_eq!(api_path(&["vhosts", "v-1.x_y~z"]), "/api/vhosts/v-1.x_y~z");
    }

    #[test]
    fn error_reasons_are_read_and_unescaped() {
        let body = r#"{"error":"bad_request","reason":"[{&lt;&lt;\"bogus\"&gt;&gt;,1}] are not recognised\n"}"#;
        assert_eq!(
            error_reason(body).as_deref(),
            Some(r#"[{<<"bogus">>,1}] are not recognised"#)
        );
        assert_eq!(error_reason("not json"), None);
    }
}
