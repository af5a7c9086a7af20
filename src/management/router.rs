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

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use hyper::{Method, Request};

use crate::management::auth::{self, Caller, Refusal};
use crate::management::listing::Query;
use crate::management::response::{self, Response};
use crate::management::{
    binding_actions, bindings, body, channels, connections, consumers, definitions,
    exchange_actions, exchanges, health, limits, nodes, overview, permissions, policies,
    queue_actions, queues, ui, user_limits, users, vhosts, whoami, Context,
};
use crate::vhost::access::PolicyKind;

/// From this many items a listing is finished off the shard (`Call::list_offloaded`); below
/// it the hand-off costs more than the work.
const OFFLOAD_ITEMS_MIN: usize = 1000;

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
    /// `/api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{properties_key}`.
    Binding {
        vhost: String,
        source: String,
        destination: bindings::Destination,
        properties_key: String,
    },
    QueueContents(String, String),
    QueueGet(String, String),
    ExchangePublish(String, String),
    ConnectionsOfUser(String),
    VHosts,
    VHost(String),
    VHostPermissions(String),
    VHostTopicPermissions(String),
    Users,
    UsersWithoutPermissions,
    UsersBulkDelete,
    User(String),
    UserPermissions(String),
    UserTopicPermissions(String),
    HashPassword(String),
    Permissions,
    Permission(String, String),
    TopicPermissions,
    TopicPermission(String, String),
    Policies(PolicyKind, Option<String>),
    Policy(PolicyKind, String, String),
    VHostLimits(Option<String>),
    VHostLimit(String, limits::Limit),
    UserLimits(Option<String>),
    /// The user and the limit's name (checked by the handler, as RabbitMQ does).
    UserLimit(String, String),
    Definitions(Option<String>),
}

impl Route {
    /// The methods this path has (the `Allow` header of a 405).
    pub fn allowed(&self) -> &'static str {
        match self {
            Route::Connection(_) | Route::ConnectionsOfUser(_) | Route::Binding { .. } => {
                "GET, DELETE, OPTIONS"
            }
            Route::VHost(_)
            | Route::User(_)
            | Route::Permission(..)
            | Route::TopicPermission(..)
            | Route::Policy(..)
            | Route::Queue(..)
            | Route::Exchange(..) => "GET, PUT, DELETE, OPTIONS",
            Route::VHostLimit(..) | Route::UserLimit(..) => "PUT, DELETE, OPTIONS",
            Route::UsersBulkDelete | Route::QueueGet(..) | Route::ExchangePublish(..) => {
                "POST, OPTIONS"
            }
            Route::QueueContents(..) => "DELETE, OPTIONS",
            Route::BindingsBetween { .. } | Route::Definitions(_) => "GET, POST, OPTIONS",
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
    if ui::owns(&segments) {
        return ui::serve(request.method(), request.headers(), &segments);
    }
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
    let (parts, incoming) = request.into_parts();
    let body = if parts.method == Method::PUT || parts.method == Method::POST {
        match body::read(incoming).await {
            Ok(bytes) => bytes,
            Err(refused) => return refused,
        }
    } else {
        Bytes::new()
    };
    let request = Request::from_parts(parts, ());
    let query = Query::parse(request.uri().query());
    let call = Call {
        context,
        caller: &caller,
        query: &query,
        request: &request,
        body: &body,
    };
    dispatch(&call, route).await
}

/// Everything a handler may look at.
pub struct Call<'a> {
    pub context: &'a Context,
    pub caller: &'a Caller,
    pub query: &'a Query,
    /// The request without its body (read into `body` for PUT and POST).
    pub request: &'a Request<()>,
    pub body: &'a Bytes,
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
        if !exists {
            Some(response::vhost_not_found())
        } else if self.caller.sees_vhost(vhost) {
            None
        } else {
            Some(response::not_authorised(auth::VHOST_REFUSED))
        }
    }

    /// For a change in `vhost`: 401 unless the caller is an administrator or has a permission
    /// there (RabbitMQ's `is_authorized_vhost`, which monitoring does not pass), then 404 if
    /// the vhost does not exist.
    pub fn refuse_vhost_change(&self, vhost: &str) -> Option<Response> {
        if !self.caller.is_administrator() && !self.caller.vhosts.contains(vhost) {
            let exists = self
                .context
                .shard
                .registry
                .borrow()
                .access()
                .vhosts
                .contains_key(vhost);
            if exists {
                return Some(response::not_authorised(auth::VHOST_REFUSED));
            }
        }
        self.refuse_vhost(vhost)
    }

    pub fn method(&self) -> &Method {
        self.request.method()
    }

    /// 401 "Not administrator user" unless the caller is one.
    pub fn admin_only(&self) -> Option<Response> {
        auth::require_administrator(self.caller)
            .err()
            .map(|refusal| refused(&refusal))
    }

    /// The caller's AMQP permission on an object (401 "Access refused." without it).
    pub fn require_permission(
        &self,
        vhost: &str,
        access: auth::Access,
        name: &str,
    ) -> Option<Response> {
        auth::require_permission(&self.context.shard, self.caller, vhost, access, name)
            .err()
            .map(|refusal| refused(&refusal))
    }

    /// Applies an access change through the metadata shard; a refusal is answered as the
    /// management plugin does (400 with the reason, 404 for a missing object).
    #[allow(clippy::result_large_err)] // the refusal is the response itself
    pub async fn change_access(
        &self,
        delta: crate::vhost::access_delta::AccessDelta,
    ) -> Result<(), Response> {
        crate::shard::admin::change_access(&self.context.shard, delta)
            .await
            .map(|_| ())
            .map_err(|error| body::refused(&error))
    }

    /// The body's fields (400 if it is not a JSON object).
    #[allow(clippy::result_large_err)] // the refusal is the response itself
    pub fn fields(&self) -> Result<body::Fields, Response> {
        body::Fields::parse(self.body)
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

    /// `list` for lists that can be long (queues, exchanges, connections, channels,
    /// consumers): from `OFFLOAD_ITEMS_MIN` items on, the filter, sort, page and serialisation
    /// run on the executor's blocking thread, so shard 0's deliveries do not wait for them.
    pub async fn list_offloaded(&self, items: Vec<serde_json::Value>) -> Response {
        if items.len() < OFFLOAD_ITEMS_MIN {
            return self.list(items);
        }
        let query = self.query.clone();
        let done = glommio::executor()
            .spawn_blocking(move || {
                crate::management::listing::apply(items, &query)
                    .map(|value| serde_json::to_vec(&value).unwrap_or_default())
            })
            .await;
        match done {
            Ok(body) => response::ok_bytes(body),
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
    let put = call.request.method() == Method::PUT;
    match route {
        Route::Queue(vhost, name) if put => queue_actions::declare(call, &vhost, &name).await,
        Route::Queue(vhost, name) if delete => queue_actions::delete(call, &vhost, &name).await,
        Route::Exchange(vhost, name) if put => exchange_actions::declare(call, &vhost, &name).await,
        Route::Exchange(vhost, name) if delete => {
            exchange_actions::delete(call, &vhost, &name).await
        }
        Route::BindingsBetween {
            vhost,
            source,
            destination,
        } if call.request.method() == Method::POST => {
            binding_actions::create(call, &vhost, &source, &destination).await
        }
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
        other => dispatch_more(call, other).await,
    }
}

/// The routes of the write side and of the access resources.
async fn dispatch_more(call: &Call<'_>, route: Route) -> Response {
    match route {
        Route::Binding {
            vhost,
            source,
            destination,
            properties_key,
        } => binding_actions::one(call, &vhost, &source, &destination, &properties_key).await,
        Route::QueueContents(vhost, name) => queue_actions::purge(call, &vhost, &name).await,
        Route::QueueGet(vhost, name) => queue_actions::get(call, &vhost, &name).await,
        Route::ExchangePublish(vhost, name) => exchange_actions::publish(call, &vhost, &name).await,
        Route::ConnectionsOfUser(user) => connections::of_user(call, &user).await,
        Route::VHosts => vhosts::list(call).await,
        Route::VHost(name) => vhosts::one(call, &name).await,
        Route::VHostPermissions(vhost) => permissions::of_vhost(call, &vhost, false),
        Route::VHostTopicPermissions(vhost) => permissions::of_vhost(call, &vhost, true),
        Route::Users => users::list(call, false),
        Route::UsersWithoutPermissions => users::list(call, true),
        Route::UsersBulkDelete => users::bulk_delete(call).await,
        Route::User(name) => users::one(call, &name).await,
        Route::UserPermissions(user) => permissions::of_user(call, &user, false),
        Route::UserTopicPermissions(user) => permissions::of_user(call, &user, true),
        Route::HashPassword(password) => users::hash(&password),
        Route::Permissions => permissions::list(call, false),
        Route::TopicPermissions => permissions::list(call, true),
        Route::Permission(vhost, user) => permissions::one(call, &vhost, &user, false).await,
        Route::TopicPermission(vhost, user) => permissions::one(call, &vhost, &user, true).await,
        Route::Policies(kind, vhost) => policies::list(call, kind, vhost.as_deref()),
        Route::Policy(kind, vhost, name) => policies::one(call, kind, &vhost, &name).await,
        Route::VHostLimits(vhost) => limits::list(call, vhost.as_deref()),
        Route::VHostLimit(vhost, limit) => limits::change(call, &vhost, limit).await,
        Route::UserLimits(user) => user_limits::list(call, user.as_deref()),
        Route::UserLimit(user, name) => user_limits::change(call, &user, &name).await,
        Route::Definitions(vhost) => definitions::transfer(call, vhost.as_deref()).await,
        _ => response::not_found(),
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
    if let Some(found) = access_route(rest) {
        return Some(found);
    }
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
        ["bindings", vhost, "e", source, kind, destination, key] => Route::Binding {
            vhost: owned(vhost),
            source: exchange_name(source),
            destination: bindings::Destination::parse(kind, destination)?,
            properties_key: owned(key),
        },
        ["queues", vhost, name, "contents"] => Route::QueueContents(owned(vhost), owned(name)),
        ["queues", vhost, name, "get"] => Route::QueueGet(owned(vhost), owned(name)),
        ["exchanges", vhost, name, "publish"] => {
            Route::ExchangePublish(owned(vhost), exchange_name(name))
        }
        ["connections", "username", user] => Route::ConnectionsOfUser(owned(user)),
        ["health", "checks", check @ ..] => Route::Health(health::Check::parse(check)?),
        ["aliveness-test", vhost] => Route::Aliveness(owned(vhost)),
        _ => return None,
    })
}

/// Users, vhosts, permissions, policies, limits and definitions.
fn access_route(rest: &[&str]) -> Option<Route> {
    let owned = |text: &str| text.to_owned();
    let kind = |segment: &str| match segment {
        "policies" => Some(PolicyKind::Policy),
        "operator-policies" => Some(PolicyKind::Operator),
        _ => None,
    };
    Some(match rest {
        ["vhosts"] => Route::VHosts,
        ["vhosts", name] => Route::VHost(owned(name)),
        ["vhosts", vhost, "permissions"] => Route::VHostPermissions(owned(vhost)),
        ["vhosts", vhost, "topic-permissions"] => Route::VHostTopicPermissions(owned(vhost)),
        ["users"] => Route::Users,
        ["users", "without-permissions"] => Route::UsersWithoutPermissions,
        ["users", "bulk-delete"] => Route::UsersBulkDelete,
        ["users", name] => Route::User(owned(name)),
        ["users", name, "permissions"] => Route::UserPermissions(owned(name)),
        ["users", name, "topic-permissions"] => Route::UserTopicPermissions(owned(name)),
        ["auth", "hash_password", password] => Route::HashPassword(owned(password)),
        ["permissions"] => Route::Permissions,
        ["permissions", vhost, user] => Route::Permission(owned(vhost), owned(user)),
        ["topic-permissions"] => Route::TopicPermissions,
        ["topic-permissions", vhost, user] => Route::TopicPermission(owned(vhost), owned(user)),
        ["vhost-limits"] => Route::VHostLimits(None),
        ["vhost-limits", vhost] => Route::VHostLimits(Some(owned(vhost))),
        ["vhost-limits", vhost, limit] => {
            Route::VHostLimit(owned(vhost), limits::Limit::parse(limit)?)
        }
        ["user-limits"] => Route::UserLimits(None),
        ["user-limits", user] => Route::UserLimits(Some(owned(user))),
        ["user-limits", user, name] => Route::UserLimit(owned(user), owned(name)),
        ["definitions"] | ["all-configuration"] => Route::Definitions(None),
        ["definitions", vhost] => Route::Definitions(Some(owned(vhost))),
        [which] => Route::Policies(kind(which)?, None),
        [which, vhost] => Route::Policies(kind(which)?, Some(owned(vhost))),
        [which, vhost, name] => Route::Policy(kind(which)?, owned(vhost), owned(name)),
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
