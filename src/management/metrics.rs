//! The Prometheus endpoint on the metrics port (RabbitMQ: 15692): `GET /metrics` (aggregated),
//! `/metrics/per-object` and `/metrics/detailed?family=…&vhost=…`, rendered by `prometheus`
//! from a fresh snapshot of every shard. No credentials, as RabbitMQ's endpoint by default.

use std::rc::Rc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};

use crate::management::exposition::CONTENT_TYPE as TEXT_FORMAT;
use crate::management::nodes;
use crate::management::prometheus::{self, Node, Scope};
use crate::management::response::Response;
use crate::management::{stats, Context};
use crate::shard::resource_alarms::Resource;

/// Answers one request to the metrics port.
pub async fn handle(context: &Rc<Context>, request: Request<Incoming>) -> Response {
    let Some(scope) = scope(request.uri().path(), request.uri().query()) else {
        return text(StatusCode::NOT_FOUND, "Unknown Registry".into());
    };
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, String::new());
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let snapshot = stats::gather(&context.shard).await;
    let body = prometheus::render(&snapshot, &node(context), &scope);
    let mut response = text(StatusCode::OK, body);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
    response
}

/// What a path and query ask for; None for a path that has no metrics.
pub fn scope(path: &str, query: Option<&str>) -> Option<Scope> {
    match path.trim_end_matches('/') {
        "/metrics" => Some(Scope::Aggregated),
        "/metrics/per-object" => Some(Scope::PerObject),
        "/metrics/detailed" => {
            let (mut families, mut vhosts) = (Vec::new(), Vec::new());
            for pair in query.unwrap_or("").split('&') {
                match pair.split_once('=') {
                    Some(("family", value)) => families.push(form_decode(value)),
                    Some(("vhost", value)) => vhosts.push(form_decode(value)),
                    _ => {}
                }
            }
            Some(Scope::Detailed { families, vhosts })
        }
        _ => None,
    }
}

fn form_decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map_or(spaced.clone(), |decoded| decoded.into_owned())
}

fn text(status: StatusCode, body: String) -> Response {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

/// The node's figures, read from the kernel as `/api/nodes` reads them.
fn node(context: &Context) -> Node {
    let shard = &context.shard;
    Node {
        name: context.node.clone(),
        resident_bytes: nodes::resident_bytes(),
        memory_limit_bytes: shard.mesh.alarms.memory_limit(),
        open_fds: nodes::open_descriptors(),
        max_fds: nodes::descriptor_limit(),
        open_sockets: shard.connection_counts.borrow().iter().sum::<usize>() as u64,
        disk_free_bytes: nodes::disk_free_bytes(&shard.config.data_dir),
        disk_free_limit_bytes: shard.mesh.alarms.disk_free_limit(),
        memory_alarm: shard.mesh.alarms.raised(Resource::Memory),
        disk_alarm: shard.mesh.alarms.raised(Resource::Disk)
            || !shard.storage_alarms.borrow().is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_the_three_endpoints() {
        assert_eq!(scope("/metrics", None), Some(Scope::Aggregated));
        assert_eq!(scope("/metrics/", None), Some(Scope::Aggregated));
        assert_eq!(scope("/metrics/per-object", None), Some(Scope::PerObject));
        assert_eq!(scope("/metrics/other", None), None);
        assert_eq!(scope("/", None), None);
        assert_eq!(
            scope(
                "/metrics/detailed",
                Some("family=queue_coarse_metrics&vhost=%2F&family=channel_metrics&x=1")
            ),
            Some(Scope::Detailed {
                families: vec!["queue_coarse_metrics".into(), "channel_metrics".into()],
                vhosts: vec!["/".into()],
            })
        );
    }
}
