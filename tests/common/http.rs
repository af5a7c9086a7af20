//! HTTP for the black-box tests of the management API and the metrics endpoint: a client we
//! did not write (ureq) sends the request; tests get the status, the headers they look at and
//! the body.

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use super::Broker;

/// An answer as it came: status, headers by lower-case name, body text.
pub struct Exchange {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Exchange {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }

    /// The body as JSON; Null if empty. Panics on a body that is not JSON.
    pub fn json(&self) -> Value {
        if self.text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&self.text)
                .unwrap_or_else(|_| panic!("JSON body: {:?}", self.text))
        }
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Sends `method path` to `address` with `headers` and `body`, blocking this test thread only.
pub fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Exchange {
    tokio::task::block_in_place(|| {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        let mut builder = ureq::http::Request::builder()
            .method(method)
            .uri(format!("http://{address}{path}"));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(body.to_vec()).expect("request");
        let mut response = agent.run(request).expect("HTTP request");
        let headers = response
            .headers()
            .iter()
            .filter_map(|(name, value)| {
                Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
            })
            .collect();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .expect("body");
        Exchange {
            status: response.status().as_u16(),
            headers,
            text,
        }
    })
}

/// An answer of the management API: status, `Location`, the body parsed as JSON (Null if
/// empty).
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

/// Sends `method path` to the management API with `body` (of `content_type`) as `who`.
pub fn send(
    broker: &Broker,
    who: Option<(&str, &str)>,
    method: &str,
    path: &str,
    body: &[u8],
    content_type: &str,
) -> Answer {
    let authorization = who.map(|(user, password)| basic(user, password));
    let mut headers = vec![("content-type", content_type)];
    if let Some(authorization) = &authorization {
        headers.push(("authorization", authorization));
    }
    let answer = exchange(broker.management, method, path, &headers, body);
    Answer {
        status: answer.status,
        location: answer.header("location"),
        body: answer.json(),
    }
}

/// `GET /api/nodes` as guest: the (only) node's entry.
pub fn node(management: SocketAddr) -> serde_json::Value {
    let authorization = basic("guest", "guest");
    let answer = exchange(
        management,
        "GET",
        "/api/nodes",
        &[("authorization", &authorization)],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer.json()[0].clone()
}
