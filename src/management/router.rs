//! Paths to handlers. A path is split on `/` and each segment percent-decoded on its own (so
//! `%2F` is a vhost named `/`, never a separator; `+` stays a plus); a segment that does not
//! decode to UTF-8, or a name longer than a short string, is 404. In exchange paths the
//! default exchange `""` is spelled `amq.default`.
//!
//! Each `Route` lists the methods it has: a known path with another method is 405, an unknown
//! path 404, both as JSON. `OPTIONS` needs no credentials (CORS preflight). The write
//! endpoints (PUT/DELETE of queues, exchanges, bindings, users, vhosts, permissions, policies;
//! definitions; publish and get) are added as `Route` variants whose `allowed` methods include
//! PUT/POST/DELETE, dispatched in `dispatch` like `DELETE /api/connections/{name}`.

use std::net::SocketAddr;
use std::rc::Rc;

use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request};

use crate::management::auth::{self, Caller, Refusal};
use crate::management::listing::Query;
use crate::management::response::{self, Response};
use crate::management::{
    bindings, channels, connections, consumers, exchanges, health, nodes, overview, queues, whoami,
    Context,
};

/// Longest name a path segment may carry (AMQP short strings).
const NAME_BYTES_MAX: usize = 255;

/// What a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Overview,
    ClusterName,
    Nodes,
    Node(String),
    Extensions,
    FeatureFlags,
    DeprecatedFeatures,
    Whoami,
    Connections(Option<String>),
    Connection(String),
    ConnectionChannels(String),
    Channels(Option<String>),
    Channel(String),
    Consumers(Option<String>),
    Exchanges(Option<String>),
    Exchange(String, String),
    ExchangeBindings(String, String, bindings::Side),
    Queues(Option<String>),
    Queue(String, String),
    QueueBindings(String, String),
    Bindings(Option<String>),
    /// `/api/bindings/{vhost}/e/{source}/{q|e}/{destination}`.
    BindingsBetween {
        vhost: String,
        source: String,
        destination: bindings::Destination,
    },
    Health(health::Check),
    Aliveness(String),
}

impl Route {
    /// The methods this path has (the `Allow` header of a 405).
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Connection(_) => "GET, DELETE, OPTIONS",
            _ => "GET, OPTIONS",
        }
    }

    fn allows(&self, method: &Method) -> bool {
        self.allowed()
            .split(", ")
            .any(|allowed| allowed == method.as_str())
    }
}

/// Answers one request.
pub async fn handle(
    context: &Rc<Context>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response {
    let Some(segments) = decode_segments(request.uri().path()) else {
        return response::not_found();
    };
    let Some(route) = route(&segments) else {
        return response::not_found();
    };
    if request.method() == Method::OPTIONS {
        return response::no_content();
    }
    if !route.allows(request.method()) {
        return response::method_not_allowed(route.allowed());
    }
    let caller =
        match auth::authenticate(&context.shard, peer, request.headers().get(AUTHORIZATION))
            .and_then(|caller| auth::require_management(&caller).map(|()| caller))
        {
            Ok(caller) => caller,
            Err(refusal) => return refused(&refusal),
        };
    let query = Query::parse(request.uri().query());
    let call = Call {
        context,
        caller: &caller,
        query: &query,
        request: &request,
    };
    dispatch(&call, route).await
}

/// Everything a handler may look at.
pub struct Call<'a> {
    pub context: &'a Context,
    pub caller: &'a Caller,
    pub query: &'a Query,
    pub request: &'a Request<Incoming>,
}

impl Call<'_> {
    /// The 404 for a vhost a path names that does not exist or that the caller may not see
    /// (as RabbitMQ answers for a vhost the user has no permission in); None if visible.
    pub fn refuse_vhost(&self, vhost: &str) -> Option<Response> {
        let exists = self
            .context
            .shard
            .registry
            .borrow()
            .vhost(&crate::protocol::ShortStr::from_str_truncated(vhost))
            .is_some();
        if exists && self.caller.sees_vhost(vhost) {
            None
        } else {
            Some(response::vhost_not_found())
        }
    }

    /// Objects of `vhost` are listed: the caller may see it, and it is the one asked for.
    pub fn lists(&self, wanted: Option<&str>, vhost: &str) -> bool {
        wanted.is_none_or(|wanted| wanted == vhost) && self.caller.sees_vhost(vhost)
    }

    /// A list answered with the query's filter, sort, page and columns (400 if invalid).
    pub fn list(&self, items: Vec<serde_json::Value>) -> Response {
        match crate::management::listing::apply(items, self.query) {
            Ok(value) => response::ok(&value),
            Err(error) => response::bad_request(&error.0),
        }
    }

    /// One object, with only the query's columns if it names some.
    pub fn one(&self, item: serde_json::Value) -> Response {
        match self.query.get("columns") {
            Some(columns) if !columns.is_empty() => {
                match crate::management::listing::apply(vec![item], self.query) {
                    Ok(serde_json::Value::Array(mut items)) if items.len() == 1 => {
                        response::ok(&items.remove(0))
                    }
                    _ => response::not_found(),
                }
            }
            _ => response::ok(&item),
        }
    }
}

/// The 401 for a refusal.
pub fn refused(refusal: &Refusal) -> Response {
    match refusal {
        Refusal::NoCredentials => response::challenge(),
        _ => response::not_authorised(refusal.reason()),
    }
}

async fn dispatch(call: &Call<'_>, route: Route) -> Response {
    let delete = call.request.method() == Method::DELETE;
    match route {
        Route::Overview => overview::overview(call).await,
        Route::ClusterName => overview::cluster_name(call),
        Route::Extensions | Route::FeatureFlags | Route::DeprecatedFeatures => {
            response::ok(&serde_json::json!([]))
        }
        Route::Nodes => nodes::list(call).await,
        Route::Node(name) => nodes::one(call, &name).await,
        Route::Whoami => whoami::whoami(call),
        Route::Connections(vhost) => connections::list(call, vhost.as_deref()).await,
        Route::Connection(name) if delete => connections::close(call, &name).await,
        Route::Connection(name) => connections::one(call, &name).await,
        Route::ConnectionChannels(name) => channels::of_connection(call, &name).await,
        Route::Channels(vhost) => channels::list(call, vhost.as_deref()).await,
        Route::Channel(name) => channels::one(call, &name).await,
        Route::Consumers(vhost) => consumers::list(call, vhost.as_deref()).await,
        Route::Exchanges(vhost) => exchanges::list(call, vhost.as_deref()).await,
        Route::Exchange(vhost, name) => exchanges::one(call, &vhost, &name).await,
        Route::ExchangeBindings(vhost, name, side) => {
            bindings::of_exchange(call, &vhost, &name, side)
        }
        Route::Queues(vhost) => queues::list(call, vhost.as_deref()).await,
        Route::Queue(vhost, name) => queues::one(call, &vhost, &name).await,
        Route::QueueBindings(vhost, name) => bindings::of_queue(call, &vhost, &name),
        Route::Bindings(vhost) => bindings::list(call, vhost.as_deref()),
        Route::BindingsBetween {
            vhost,
            source,
            destination,
        } => bindings::between(call, &vhost, &source, &destination),
        Route::Health(check) => health::check(call, check),
        Route::Aliveness(vhost) => health::aliveness(call, &vhost),
    }
}

/// The path's segments, percent-decoded; None if one does not decode or is too long. A
/// trailing `/` is ignored.
pub fn decode_segments(path: &str) -> Option<Vec<String>> {
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    path.split('/')
        .map(|segment| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(segment).collect();
            if bytes.len() > NAME_BYTES_MAX || !well_formed_escapes(segment) {
                return None;
            }
            String::from_utf8(bytes).ok()
        })
        .collect()
}

/// Every `%` starts two hex digits (the decoder would pass a stray `%` through as is).
fn well_formed_escapes(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let digits = bytes.get(index + 1..index + 3);
            if !digits.is_some_and(|digits| digits.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            index += 3;
        } else {
            index += 1;
        }
    }
    true
}

/// An exchange name in a path: `amq.default` is the default exchange.
fn exchange_name(segment: &str) -> String {
    if segment == "amq.default" {
        String::new()
    } else {
        segment.to_owned()
    }
}

/// The route a decoded path names, if any.
pub fn route(segments: &[String]) -> Option<Route> {
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let ["api", rest @ ..] = segments.as_slice() else {
        return None;
    };
    let owned = |text: &str| text.to_owned();
    Some(match rest {
        ["overview"] => Route::Overview,
        ["cluster-name"] => Route::ClusterName,
        ["nodes"] => Route::Nodes,
        ["nodes", node] => Route::Node(owned(node)),
        ["extensions"] => Route::Extensions,
        ["feature-flags"] => Route::FeatureFlags,
        ["deprecated-features"] | ["deprecated-features", "used"] => Route::DeprecatedFeatures,
        ["whoami"] => Route::Whoami,
        ["connections"] => Route::Connections(None),
        ["connections", name] => Route::Connection(owned(name)),
        ["connections", name, "channels"] => Route::ConnectionChannels(owned(name)),
        ["vhosts", vhost, "connections"] => Route::Connections(Some(owned(vhost))),
        ["channels"] => Route::Channels(None),
        ["channels", name] => Route::Channel(owned(name)),
        ["vhosts", vhost, "channels"] => Route::Channels(Some(owned(vhost))),
        ["consumers"] => Route::Consumers(None),
        ["consumers", vhost] => Route::Consumers(Some(owned(vhost))),
        ["exchanges"] => Route::Exchanges(None),
        ["exchanges", vhost] => Route::Exchanges(Some(owned(vhost))),
        ["exchanges", vhost, name] => Route::Exchange(owned(vhost), exchange_name(name)),
        ["exchanges", vhost, name, "bindings", side] => Route::ExchangeBindings(
            owned(vhost),
            exchange_name(name),
            bindings::Side::parse(side)?,
        ),
        ["queues"] => Route::Queues(None),
        ["queues", vhost] => Route::Queues(Some(owned(vhost))),
        ["queues", vhost, name] => Route::Queue(owned(vhost), owned(name)),
        ["queues", vhost, name, "bindings"] => Route::QueueBindings(owned(vhost), owned(name)),
        ["bindings"] => Route::Bindings(None),
        ["bindings", vhost] => Route::Bindings(Some(owned(vhost))),
        ["bindings", vhost, "e", source, kind, destination] => Route::BindingsBetween {
            vhost: owned(vhost),
            source: exchange_name(source),
            destination: bindings::Destination::parse(kind, destination)?,
        },
        ["health", "checks", check @ ..] => Route::Health(health::Check::parse(check)?),
        ["aliveness-test", vhost] => Route::Aliveness(owned(vhost)),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_of(path: &str) -> Option<Route> {
        decode_segments(path).and_then(|segments| route(&segments))
    }

    #[test]
    fn the_default_vhost_is_one_encoded_segment() {
        assert_eq!(
            route_of("/api/queues/%2F/a%2Fb"),
            Some(Route::Queue("/".into(), "a/b".into()))
        );
    }

    #[test]
    fn the_default_exchange_is_spelled_amq_default() {
        assert_eq!(
            route_of("/api/exchanges/%2F/amq.default"),
            Some(Route::Exchange("/".into(), String::new()))
        );
    }

    #[test]
    fn malformed_escapes_and_unknown_paths_route_nowhere() {
        assert_eq!(route_of("/api/queues/%2"), None);
        assert_eq!(route_of("/api/queues/%zz/q"), None);
        assert_eq!(route_of("/api/queues/%FF%FE/q"), None);
        assert_eq!(route_of("/api/nothing"), None);
        assert_eq!(route_of("/other"), None);
    }

    #[test]
    fn traversal_names_are_only_names() {
        assert_eq!(
            route_of("/api/queues/%2F/..%2F..%2Fetc"),
            Some(Route::Queue("/".into(), "../../etc".into()))
        );
    }
}
