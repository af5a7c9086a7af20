//! HTTP for the black-box tests of the management API: a request as a client we did not
//! write (ureq) sends it, the answer's status, `Location` and JSON body.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::Broker;

/// An HTTP answer: status, `Location`, the body parsed as JSON (Null if empty).
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

/// Sends `method path` with `body` (JSON unless `content_type` says otherwise) as `who`.
pub fn send(
    broker: &Broker,
    who: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: &str,
) -> Answer {
    tokio::task::block_in_place(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let url = format!("http://{}{path}", broker.management);
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type);
        if let Some((user, password)) = who {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            builder = builder.header("Authorization", format!("Basic {encoded}"));
        }
        let request = builder.body(body.to_vec()).expect("request");
        let mut response = agent.run(request).expect("HTTP request");
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text:?}"))
        };
        Answer {
            status,
            location,
            body,
        }
    })
}
