//! Permission checks of AMQP operations, where and as RabbitMQ 3.13 makes them
//! (docs/rabbitmq-compatibility.md §18): configure, write or read on a named queue or exchange,
//! and topic permissions on topic exchanges.
//!
//! Each connection keeps its user's compiled permission for its vhost (and the topic
//! permissions, with `{username}` and `{vhost}` already expanded and compiled) in its state,
//! reloaded only when the shard's access state changed (`Registry::access_generation`). A check
//! is then a generation compare and, for `.*`, no regex at all: a publish neither allocates
//! nor hashes to find its permission. The last exchange a publish was allowed to write to is
//! remembered too, so a regex permission runs once per exchange change, not per message.

use crate::connection::ConnectionShared;
use crate::exception::Exception;
use crate::protocol::ShortStr;
use crate::routing::ExchangeKind;
use crate::shard::Shard;
use crate::vhost::access::{AccessState, Pattern};
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::Registry;

/// The three resource permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// What a permission names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Queue,
    Exchange,
}

impl Resource {
    fn name(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

/// The default exchange as permissions see it (RabbitMQ checks `amq.default`).
const DEFAULT_EXCHANGE_ALIAS: &[u8] = b"amq.default";

/// A user's permission in one vhost, compiled.
#[derive(Debug, Clone)]
struct Granted {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

/// A topic permission for one exchange, variables expanded and compiled.
#[derive(Debug, Clone)]
struct TopicRule {
    exchange: Vec<u8>,
    write: Pattern,
    read: Pattern,
}

/// The connection's cached view of what its user may do in its vhost.
#[derive(Debug)]
pub struct ConnectionAccess {
    user: String,
    vhost: String,
    /// `Registry::access_generation` the cache was loaded at; None: not loaded yet.
    generation: Option<u64>,
    granted: Option<Granted>,
    topics: Vec<TopicRule>,
    /// The exchange the last publish was allowed to write to.
    last_written: Option<ShortStr>,
    /// The vhost traces (`connection::trace`), as of `generation`.
    tracing: bool,
}

impl ConnectionAccess {
    pub fn new(user: &ShortStr, vhost: &ShortStr) -> ConnectionAccess {
        ConnectionAccess {
            user: user.to_string_lossy(),
            vhost: vhost.to_string_lossy(),
            generation: None,
            granted: None,
            topics: Vec::new(),
            last_written: None,
            tracing: false,
        }
    }

    /// Whether the connection's vhost traces: a generation compare per publish and delivery,
    /// not a lookup.
    pub fn tracing(&mut self, registry: &Registry) -> bool {
        self.refresh(registry);
        self.tracing
    }

    /// Reloads the cache if the access state changed since it was loaded.
    fn refresh(&mut self, registry: &Registry) {
        let generation = registry.access_generation();
        if self.generation == Some(generation) {
            return;
        }
        self.load(registry.access());
        self.generation = Some(generation);
    }

    fn load(&mut self, access: &AccessState) {
        self.last_written = None;
        self.tracing = access
            .vhosts
            .get(&self.vhost)
            .is_some_and(|vhost| vhost.tracing);
        self.granted = access
            .permission(&self.user, &self.vhost)
            .map(|compiled| Granted {
                configure: compiled.configure.clone(),
                write: compiled.write.clone(),
                read: compiled.read.clone(),
            });
        self.topics = access
            .topic_permissions
            .iter()
            .filter(|((user, vhost, _), _)| *user == self.user && *vhost == self.vhost)
            .map(|((_, _, exchange), compiled)| TopicRule {
                exchange: exchange.as_bytes().to_vec(),
                write: expand_topic_pattern(&compiled.permission.write, &self.user, &self.vhost),
                read: expand_topic_pattern(&compiled.permission.read, &self.user, &self.vhost),
            })
            .collect();
    }

    /// Configure, write or read on a queue or exchange: RabbitMQ's
    /// `rabbit_access_control:check_resource_access`.
    pub fn check(
        &mut self,
        registry: &Registry,
        access: Access,
        resource: Resource,
        name: &[u8],
    ) -> Result<(), Exception> {
        self.refresh(registry);
        let name = match resource {
            Resource::Exchange if name.is_empty() => DEFAULT_EXCHANGE_ALIAS,
            _ => name,
        };
        let allowed = self.granted.as_ref().is_some_and(|granted| {
            let pattern = match access {
                Access::Configure => &granted.configure,
                Access::Write => &granted.write,
                Access::Read => &granted.read,
            };
            permits(pattern, name)
        });
        if allowed {
            return Ok(());
        }
        Err(Exception::access_refused(format!(
            "{} access to {} '{}' in vhost '{}' refused for user '{}'",
            access.name(),
            resource.name(),
            String::from_utf8_lossy(name),
            self.vhost,
            self.user
        )))
    }

    /// Write on the exchange a message is published to, remembering the last one allowed.
    pub fn check_publish(
        &mut self,
        registry: &Registry,
        exchange: &ShortStr,
    ) -> Result<(), Exception> {
        self.refresh(registry);
        if self.last_written.as_ref() == Some(exchange) {
            return Ok(());
        }
        self.check(
            registry,
            Access::Write,
            Resource::Exchange,
            exchange.as_bytes(),
        )?;
        self.last_written = Some(exchange.clone());
        Ok(())
    }

    /// A topic permission on a topic exchange (`is_topic`): write with the routing key on
    /// publish, read with the binding key on queue.bind, unbind and exchange.bind, unbind.
    /// Without a topic permission for the exchange everything is allowed, as in RabbitMQ.
    pub fn check_topic(
        &mut self,
        registry: &Registry,
        access: Access,
        exchange: &ShortStr,
        routing_key: &[u8],
    ) -> Result<(), Exception> {
        self.refresh(registry);
        if self.topics.is_empty() {
            return Ok(());
        }
        let Some(rule) = self
            .topics
            .iter()
            .find(|rule| rule.exchange == exchange.as_bytes())
        else {
            return Ok(());
        };
        let pattern = match access {
            Access::Read => &rule.read,
            Access::Write | Access::Configure => &rule.write,
        };
        if permits(pattern, routing_key) {
            return Ok(());
        }
        Err(Exception::access_refused(format!(
            "{} access to topic '{}' in exchange '{}' in vhost '{}' refused for user '{}'",
            access.name(),
            String::from_utf8_lossy(routing_key),
            exchange,
            self.vhost,
            self.user
        )))
    }
}

/// Checks a resource permission of the connection's user (see `ConnectionAccess::check`).
pub fn check(
    shard: &Shard,
    connection: &ConnectionShared,
    access: Access,
    resource: Resource,
    name: &[u8],
) -> Result<(), Exception> {
    let registry = shard.registry.borrow();
    let mut state = connection.state.borrow_mut();
    state.access.check(&registry, access, resource, name)
}

/// queue.bind, unbind, exchange.bind, unbind: RabbitMQ's `binding_action` checks write on the
/// destination, then (unless either end is the default exchange, refused by the rules) read on
/// the source and, if the source is a topic exchange, the topic read permission on the key.
pub fn check_binding(
    shard: &Shard,
    connection: &ConnectionShared,
    binding: &BindingDefinition,
) -> Result<(), Exception> {
    let (resource, destination) = match &binding.destination {
        DestinationName::Queue(name) => (Resource::Queue, name),
        DestinationName::Exchange(name) => (Resource::Exchange, name),
    };
    check(
        shard,
        connection,
        Access::Write,
        resource,
        destination.as_bytes(),
    )?;
    if binding.source.is_empty() || (resource == Resource::Exchange && destination.is_empty()) {
        return Ok(());
    }
    check(
        shard,
        connection,
        Access::Read,
        Resource::Exchange,
        binding.source.as_bytes(),
    )?;
    let registry = shard.registry.borrow();
    let mut guard = connection.state.borrow_mut();
    let state = &mut *guard;
    let is_topic = registry
        .vhost(&state.vhost)
        .and_then(|vhost| vhost.exchange(&binding.source))
        .is_some_and(|exchange| exchange.definition.kind == ExchangeKind::Topic);
    if !is_topic {
        return Ok(());
    }
    state.access.check_topic(
        &registry,
        Access::Read,
        &binding.source,
        binding.routing_key.as_bytes(),
    )
}

/// RabbitMQ runs an empty permission as `^$`: it matches the empty name (a routing key) only.
fn permits(pattern: &Pattern, name: &[u8]) -> bool {
    match pattern {
        Pattern::Nothing => name.is_empty(),
        other => other.matches(name),
    }
}

/// RabbitMQ expands `{username}` and `{vhost}` in a topic permission (the variables AMQP 0-9-1
/// connections have; `{client_id}` is MQTT's) before running it. A pattern that no longer
/// compiles matches nothing.
fn expand_topic_pattern(pattern: &str, user: &str, vhost: &str) -> Pattern {
    if !pattern.contains('{') {
        return Pattern::compile(pattern).unwrap_or(Pattern::Nothing);
    }
    let expanded = pattern
        .replace("{username}", user)
        .replace("{vhost}", vhost);
    match Pattern::compile(&expanded) {
        Ok(Pattern::Nothing) | Err(_) => Pattern::Regex(never_matches()),
        Ok(compiled) => compiled,
    }
}

fn never_matches() -> regex::Regex {
    regex::Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a valid regex"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vhost::access::{Permission, TopicPermission, User, VHostMetadata};
    use crate::vhost::access_delta::AccessDelta;
    use crate::vhost::password::{self, HashingAlgorithm};

    fn registry(
        configure: &str,
        write: &str,
        read: &str,
        topics: &[(&str, &str, &str)],
    ) -> Registry {
        let mut registry = Registry::new();
        let mut deltas = vec![
            AccessDelta::VHostPut {
                name: "v".into(),
                metadata: VHostMetadata::default(),
            },
            AccessDelta::UserPut(User {
                name: "u".into(),
                password_hash: password::hash_password(HashingAlgorithm::Sha256, b"pw"),
                hashing_algorithm: HashingAlgorithm::Sha256,
                tags: Vec::new(),
            }),
            AccessDelta::PermissionSet(Permission {
                user: "u".into(),
                vhost: "v".into(),
                configure: configure.into(),
                write: write.into(),
                read: read.into(),
            }),
        ];
        for (exchange, write, read) in topics {
            deltas.push(AccessDelta::TopicPermissionSet(TopicPermission {
                user: "u".into(),
                vhost: "v".into(),
                exchange: (*exchange).into(),
                write: (*write).into(),
                read: (*read).into(),
            }));
        }
        for delta in deltas {
            registry.access().check_delta(&delta).expect("fits");
            registry.apply_access(&delta);
        }
        registry
    }

    fn access() -> ConnectionAccess {
        ConnectionAccess::new(&ShortStr::from_static("u"), &ShortStr::from_static("v"))
    }

    fn text(result: Result<(), Exception>) -> String {
        result.expect_err("refused").reply_text()
    }

    #[test]
    fn resources_are_matched_by_the_right_pattern_with_rabbitmqs_text() {
        let registry = registry("^conf", "^wr", "", &[]);
        let mut access = access();
        assert!(access
            .check(&registry, Access::Configure, Resource::Queue, b"conf.q")
            .is_ok());
        assert_eq!(
            text(access.check(&registry, Access::Configure, Resource::Queue, b"q")),
            "ACCESS_REFUSED - configure access to queue 'q' in vhost 'v' refused for user 'u'"
        );
        assert!(access
            .check(&registry, Access::Write, Resource::Exchange, b"wr.x")
            .is_ok());
        assert_eq!(
            text(access.check(&registry, Access::Read, Resource::Exchange, b"wr.x")),
            "ACCESS_REFUSED - read access to exchange 'wr.x' in vhost 'v' refused for user 'u'"
        );
    }

    #[test]
    fn the_default_exchange_is_checked_as_amq_default() {
        let registry = registry("", "^amq\\.default$", "", &[]);
        let mut access = access();
        assert!(access
            .check_publish(&registry, &ShortStr::from_static(""))
            .is_ok());
        let registry = registry_without_write();
        let mut access = self::access();
        assert_eq!(
            text(access.check_publish(&registry, &ShortStr::from_static(""))),
            "ACCESS_REFUSED - write access to exchange 'amq.default' in vhost 'v' refused for user 'u'"
        );
    }

    fn registry_without_write() -> Registry {
        registry(".*", "^nothing$", ".*", &[])
    }

    #[test]
    fn a_changed_permission_applies_to_the_next_check() {
        let mut registry = registry(".*", ".*", ".*", &[]);
        let mut access = access();
        let exchange = ShortStr::from_static("x");
        assert!(access.check_publish(&registry, &exchange).is_ok());
        let delta = AccessDelta::PermissionSet(Permission {
            user: "u".into(),
            vhost: "v".into(),
            configure: ".*".into(),
            write: "^y$".into(),
            read: ".*".into(),
        });
        registry.apply_access(&delta);
        assert!(access.check_publish(&registry, &exchange).is_err());
        registry.apply_access(&AccessDelta::PermissionCleared {
            user: "u".into(),
            vhost: "v".into(),
        });
        assert!(access
            .check(&registry, Access::Read, Resource::Queue, b"q")
            .is_err());
    }

    #[test]
    fn topic_permissions_expand_variables_and_refuse_with_rabbitmqs_text() {
        let registry = registry(
            ".*",
            ".*",
            ".*",
            &[("t", "^{username}\\.", "^{vhost}-"), ("e", "", "")],
        );
        let mut access = access();
        let t = ShortStr::from_static("t");
        assert!(access
            .check_topic(&registry, Access::Write, &t, b"u.a")
            .is_ok());
        assert_eq!(
            text(access.check_topic(&registry, Access::Write, &t, b"x.a")),
            "ACCESS_REFUSED - write access to topic 'x.a' in exchange 't' in vhost 'v' refused for user 'u'"
        );
        assert!(access
            .check_topic(&registry, Access::Read, &t, b"v-1")
            .is_ok());
        assert!(access
            .check_topic(&registry, Access::Read, &t, b"u.a")
            .is_err());
        // "" is RabbitMQ's ^$: only the empty key.
        let e = ShortStr::from_static("e");
        assert!(access
            .check_topic(&registry, Access::Write, &e, b"")
            .is_ok());
        assert!(access
            .check_topic(&registry, Access::Write, &e, b"k")
            .is_err());
        // No topic permission for the exchange: allowed.
        let other = ShortStr::from_static("other");
        assert!(access
            .check_topic(&registry, Access::Write, &other, b"k")
            .is_ok());
    }
}
