//! Definitions in RabbitMQ's JSON format, out and in: `export` collects what a RabbitMQ export
//! holds from this shard's metadata copy; `import` merges a file into the broker through the
//! operator requests of `admin`, in RabbitMQ's order (vhosts, users, permissions, topic
//! permissions, policies, queues, exchanges, bindings). As in RabbitMQ, an import merges:
//! users, permissions, policies and vhost metadata are overwritten, an existing queue or
//! exchange with other properties is kept as it is, and an error stops the import with what
//! came before it applied (docs/operations.md, Definitions).

use crate::exception::Exception;
use crate::protocol::ShortStr;
use crate::shard::admin::{self, OperatorQueue};
use crate::shard::Shard;
use crate::vhost::access::{
    Permission, Policy, PolicyKind, TopicPermission, User, UserLimits, VHostLimits, VHostMetadata,
};
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::definitions::Definitions;
use crate::vhost::definitions_json::{
    BindingJson, DefinitionsJson, ExchangeJson, PermissionJson, PolicyJson, QueueJson,
    TopicPermissionJson, UserJson, VHostJson, VHostMetadataJson,
};
use crate::vhost::delta::{BindingDefinition, DestinationName};
use crate::vhost::exchange::Destination;
use crate::vhost::json_table::{json_to_table, table_to_json};
use crate::vhost::password::{hash_password, HashingAlgorithm};
use crate::vhost::rules::ExchangeDeclare;
use crate::vhost::user_limits;
use crate::vhost::{Registry, VHost};

/// The RabbitMQ version Hare answers as (`connection.start`, definitions, the API).
pub const RABBITMQ_VERSION: &str = "3.13.7";

/// Why an import stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ImportError(pub String);

impl From<Exception> for ImportError {
    fn from(error: Exception) -> ImportError {
        ImportError(error.explanation)
    }
}

/// Everything (`vhost` None) or one vhost's part (no users, vhosts or permissions, and no
/// `vhost` fields), as RabbitMQ exports it.
pub fn export(registry: &Registry, vhost: Option<&str>) -> DefinitionsJson {
    let access = registry.access();
    let in_scope = |name: &str| vhost.is_none_or(|only| only == name);
    let mut definitions = DefinitionsJson {
        rabbit_version: Some(RABBITMQ_VERSION.to_owned()),
        rabbitmq_version: Some(RABBITMQ_VERSION.to_owned()),
        product_name: Some("Hare".to_owned()),
        product_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        ..DefinitionsJson::default()
    };
    if vhost.is_none() {
        definitions.users = (access.users.values())
            .map(|user| user_json(user, access.limits_of(&user.name)))
            .collect();
        definitions.vhosts = access
            .vhosts
            .iter()
            .map(|(name, entry)| vhost_json(name, &entry.metadata, entry.limits))
            .collect();
        definitions.permissions = access
            .permissions
            .values()
            .map(|compiled| permission_json(&compiled.permission))
            .collect();
        definitions.topic_permissions = access
            .topic_permissions
            .values()
            .map(|compiled| topic_permission_json(&compiled.permission))
            .collect();
    }
    for policy in access.policies.values().filter(|p| in_scope(&p.vhost)) {
        let json = policy_json(policy);
        match policy.kind {
            PolicyKind::Policy => definitions.policies.push(json),
            PolicyKind::Operator => definitions.operator_policies.push(json),
        }
    }
    let mut vhosts: Vec<_> = registry
        .vhosts()
        .filter(|found| in_scope(&found.name.to_string_lossy()))
        .collect();
    vhosts.sort_by(|a, b| a.name.cmp(&b.name));
    for found in vhosts {
        push_objects(&mut definitions, &exportable(found));
    }
    if vhost.is_some() {
        clear_vhost_fields(&mut definitions);
    }
    definitions
}

/// What RabbitMQ exports of a vhost: every queue but exclusive ones, every exchange but the
/// standard ones, and every binding between those (or from a standard exchange), durable or
/// not; the implicit bindings of the default exchange are left out.
fn exportable(vhost: &VHost) -> Definitions {
    let standard = |name: &ShortStr| name.is_empty() || name.as_bytes().starts_with(b"amq.");
    let mut queues: Vec<_> = vhost
        .queues()
        .filter(|queue| queue.exclusive_owner.is_none())
        .cloned()
        .collect();
    queues.sort_by_key(|queue| queue.id);
    let mut sources: Vec<_> = vhost.exchanges().collect();
    sources.sort_by_key(|exchange| exchange.id());
    let exchanges = sources
        .iter()
        .filter(|exchange| !standard(exchange.name()))
        .map(|exchange| exchange.definition.clone())
        .collect();
    let mut bindings = Vec::new();
    for source in sources
        .iter()
        .filter(|exchange| !exchange.name().is_empty())
    {
        for (routing_key, arguments, destination) in source.bindings.iter_in_bind_order() {
            let destination = match destination {
                Destination::Queue(id) => vhost
                    .queue_by_id(id)
                    .filter(|queue| queue.exclusive_owner.is_none())
                    .map(|queue| DestinationName::Queue(queue.name.clone())),
                Destination::Exchange(id) => vhost
                    .exchange_by_id(id)
                    .map(|exchange| DestinationName::Exchange(exchange.name().clone())),
            };
            let Some(destination) = destination else {
                continue;
            };
            bindings.push(BindingDefinition {
                source: source.name().clone(),
                destination,
                routing_key: short_lossy(routing_key),
                arguments: arguments
                    .iter()
                    .map(|(key, value)| (short_lossy(key), value.clone()))
                    .collect(),
            });
        }
    }
    Definitions {
        next_id: 0,
        shard_count: 1,
        vhost: vhost.name.clone(),
        exchanges,
        queues,
        bindings,
    }
}

/// Binding keys and argument names were short strings when bound.
fn short_lossy(bytes: &[u8]) -> ShortStr {
    ShortStr::try_from_bytes(bytes::Bytes::copy_from_slice(bytes)).unwrap_or_default()
}

fn push_objects(definitions: &mut DefinitionsJson, stored: &Definitions) {
    let vhost = stored.vhost.to_string_lossy();
    definitions
        .queues
        .extend(stored.queues.iter().map(|queue| QueueJson {
            name: queue.name.to_string_lossy(),
            vhost: vhost.clone(),
            durable: queue.durable,
            auto_delete: queue.auto_delete,
            arguments: table_to_json(&queue.arguments),
        }));
    definitions
        .exchanges
        .extend(stored.exchanges.iter().map(|exchange| ExchangeJson {
            name: exchange.name.to_string_lossy(),
            vhost: vhost.clone(),
            kind: exchange.type_name().to_owned(),
            durable: exchange.durable,
            auto_delete: exchange.auto_delete,
            internal: exchange.internal,
            arguments: table_to_json(&exchange.arguments),
        }));
    definitions
        .bindings
        .extend(stored.bindings.iter().map(|binding| {
            let (destination, destination_type) = match &binding.destination {
                DestinationName::Queue(name) => (name, "queue"),
                DestinationName::Exchange(name) => (name, "exchange"),
            };
            BindingJson {
                source: binding.source.to_string_lossy(),
                vhost: vhost.clone(),
                destination: destination.to_string_lossy(),
                destination_type: destination_type.to_owned(),
                routing_key: binding.routing_key.to_string_lossy(),
                arguments: table_to_json(&binding.arguments),
            }
        }));
}

/// A one-vhost export has no `vhost` fields: emptied here, an empty one is not written.
fn clear_vhost_fields(definitions: &mut DefinitionsJson) {
    for queue in &mut definitions.queues {
        queue.vhost.clear();
    }
    for exchange in &mut definitions.exchanges {
        exchange.vhost.clear();
    }
    for binding in &mut definitions.bindings {
        binding.vhost.clear();
    }
    for policy in definitions
        .policies
        .iter_mut()
        .chain(definitions.operator_policies.iter_mut())
    {
        policy.vhost.clear();
    }
}

fn user_json(user: &User, limits: UserLimits) -> UserJson {
    UserJson {
        name: user.name.clone(),
        password: None,
        password_hash: user.password_hash.clone(),
        hashing_algorithm: user.hashing_algorithm.name().to_owned(),
        tags: user.tags.clone(),
        limits: user_limits::limits_json(&limits),
    }
}

fn vhost_json(name: &str, metadata: &VHostMetadata, limits: VHostLimits) -> VHostJson {
    let mut limit_json = serde_json::Map::new();
    if let Some(max) = limits.max_connections {
        limit_json.insert("max-connections".into(), max.into());
    }
    if let Some(max) = limits.max_queues {
        limit_json.insert("max-queues".into(), max.into());
    }
    let queue_type =
        (!metadata.default_queue_type.is_empty()).then(|| metadata.default_queue_type.clone());
    VHostJson {
        name: name.to_owned(),
        limits: serde_json::Value::Object(limit_json),
        metadata: VHostMetadataJson {
            description: metadata.description.clone(),
            tags: metadata.tags.clone(),
            default_queue_type: queue_type.clone(),
        },
        description: Some(metadata.description.clone()),
        tags: Some(metadata.tags.clone()),
        default_queue_type: queue_type,
    }
}

fn permission_json(permission: &Permission) -> PermissionJson {
    PermissionJson {
        user: permission.user.clone(),
        vhost: permission.vhost.clone(),
        configure: permission.configure.clone(),
        write: permission.write.clone(),
        read: permission.read.clone(),
    }
}

fn topic_permission_json(permission: &TopicPermission) -> TopicPermissionJson {
    TopicPermissionJson {
        user: permission.user.clone(),
        vhost: permission.vhost.clone(),
        exchange: permission.exchange.clone(),
        write: permission.write.clone(),
        read: permission.read.clone(),
    }
}

fn policy_json(policy: &Policy) -> PolicyJson {
    PolicyJson {
        vhost: policy.vhost.clone(),
        name: policy.name.clone(),
        pattern: policy.pattern.clone(),
        apply_to: policy.apply_to.clone(),
        definition: policy.definition.clone(),
        priority: policy.priority,
    }
}

/// Merges `definitions` into the broker. `vhost` Some imports a one-vhost file into that
/// vhost (its objects' own `vhost` fields are ignored, and users, vhosts and permissions are
/// not read).
pub async fn import(
    shard: &Shard,
    definitions: DefinitionsJson,
    vhost: Option<&str>,
) -> Result<(), ImportError> {
    let place = |own: &str| vhost.unwrap_or(own).to_owned();
    if vhost.is_none() {
        for entry in &definitions.vhosts {
            import_vhost(shard, entry).await?;
        }
        for user in &definitions.users {
            // Limits are checked before the user is created, as RabbitMQ does.
            let limits = user_limits_from_json(shard, user)?;
            admin::change_access(shard, AccessDelta::UserPut(user_from_json(user)?)).await?;
            if let Some(limits) = limits {
                let user = user.name.clone();
                admin::change_access(shard, AccessDelta::UserLimitsSet { user, limits }).await?;
            }
        }
        for permission in &definitions.permissions {
            let delta = AccessDelta::PermissionSet(Permission {
                user: permission.user.clone(),
                vhost: permission.vhost.clone(),
                configure: permission.configure.clone(),
                write: permission.write.clone(),
                read: permission.read.clone(),
            });
            admin::change_access(shard, delta).await?;
        }
        for permission in &definitions.topic_permissions {
            let delta = AccessDelta::TopicPermissionSet(TopicPermission {
                user: permission.user.clone(),
                vhost: permission.vhost.clone(),
                exchange: permission.exchange.clone(),
                write: permission.write.clone(),
                read: permission.read.clone(),
            });
            admin::change_access(shard, delta).await?;
        }
    }
    let policies = (definitions.policies.iter().map(|p| (PolicyKind::Policy, p)))
        .chain((definitions.operator_policies.iter()).map(|p| (PolicyKind::Operator, p)));
    for (kind, policy) in policies {
        let delta = AccessDelta::PolicySet(Policy {
            kind,
            vhost: place(&policy.vhost),
            name: policy.name.clone(),
            pattern: policy.pattern.clone(),
            apply_to: policy.apply_to.clone(),
            definition: policy.definition.clone(),
            priority: policy.priority,
        });
        admin::change_access(shard, delta).await?;
    }
    for queue in &definitions.queues {
        import_queue(shard, queue, &place(&queue.vhost)).await?;
    }
    for exchange in &definitions.exchanges {
        import_exchange(shard, exchange, &place(&exchange.vhost)).await?;
    }
    for binding in &definitions.bindings {
        import_binding(shard, binding, &place(&binding.vhost)).await?;
    }
    Ok(())
}

async fn import_vhost(shard: &Shard, entry: &VHostJson) -> Result<(), ImportError> {
    let metadata = VHostMetadata {
        description: entry
            .description
            .clone()
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| entry.metadata.description.clone()),
        tags: entry
            .tags
            .clone()
            .filter(|tags| !tags.is_empty())
            .unwrap_or_else(|| entry.metadata.tags.clone()),
        default_queue_type: entry
            .default_queue_type
            .clone()
            .or_else(|| entry.metadata.default_queue_type.clone())
            .unwrap_or_else(|| "classic".to_owned()),
    };
    let name = entry.name.clone();
    admin::change_access(shard, AccessDelta::VHostPut { name, metadata }).await?;
    if let Some(limits) = entry.limits.as_object().filter(|l| !l.is_empty()) {
        let limit = |key: &str| -> Result<Option<i64>, ImportError> {
            match limits.get(key) {
                None => Ok(None),
                Some(value) => value
                    .as_i64()
                    .map(Some)
                    .ok_or_else(|| ImportError(format!("{key} must be an integer"))),
            }
        };
        let limits = VHostLimits {
            max_connections: limit("max-connections")?,
            max_queues: limit("max-queues")?,
        };
        let delta = AccessDelta::VHostLimitsSet {
            vhost: entry.name.clone(),
            limits,
        };
        admin::change_access(shard, delta).await?;
    }
    Ok(())
}

/// A user's `limits` (an object, or `[]` for none) set over the limits the user has, as
/// RabbitMQ's import merges them; None when the file names none (the user keeps its own).
fn user_limits_from_json(
    shard: &Shard,
    user: &UserJson,
) -> Result<Option<UserLimits>, ImportError> {
    let Some(term) = user.limits.as_object().filter(|term| !term.is_empty()) else {
        return Ok(None);
    };
    let current = shard.registry.borrow().access().limits_of(&user.name);
    user_limits::merge(current, term)
        .map(Some)
        .map_err(ImportError)
}

/// A user from a definitions file or an HTTP PUT body: a plain password is hashed here; a hash
/// is taken as it is (with its algorithm).
pub fn user_from_json(user: &UserJson) -> Result<User, ImportError> {
    let unknown = || {
        ImportError(format!(
            "unknown hashing algorithm '{}'",
            user.hashing_algorithm
        ))
    };
    let (password_hash, hashing_algorithm) = match &user.password {
        Some(password) => (
            hash_password(HashingAlgorithm::Sha256, password.as_bytes()),
            HashingAlgorithm::Sha256,
        ),
        None => (
            user.password_hash.clone(),
            HashingAlgorithm::from_name(&user.hashing_algorithm).ok_or_else(unknown)?,
        ),
    };
    Ok(User {
        name: user.name.clone(),
        password_hash,
        hashing_algorithm,
        tags: user.tags.clone(),
    })
}

fn short(text: &str, what: &str) -> Result<ShortStr, ImportError> {
    ShortStr::copy_from_str(text)
        .ok_or_else(|| ImportError(format!("{what} name longer than 255 bytes: {text}")))
}

/// An existing queue with other properties is kept (RabbitMQ's import does not fail on it).
fn kept_if_inequivalent(result: Result<(), Exception>) -> Result<(), ImportError> {
    match result {
        Err(error) if error.explanation.starts_with("inequivalent arg") => Ok(()),
        other => other.map_err(ImportError::from),
    }
}

async fn import_queue(shard: &Shard, queue: &QueueJson, vhost: &str) -> Result<(), ImportError> {
    let arguments = json_to_table(&queue.arguments).map_err(|e| ImportError(e.to_string()))?;
    let declared = admin::declare_queue(
        shard,
        OperatorQueue {
            vhost: short(vhost, "vhost")?,
            name: short(&queue.name, "queue")?,
            durable: queue.durable,
            auto_delete: queue.auto_delete,
            arguments,
        },
    )
    .await;
    kept_if_inequivalent(declared.map(|_| ()))
}

async fn import_exchange(
    shard: &Shard,
    exchange: &ExchangeJson,
    vhost: &str,
) -> Result<(), ImportError> {
    // The standard exchanges exist in every vhost; RabbitMQ's exports leave them out.
    if exchange.name.is_empty() || exchange.name.starts_with("amq.") {
        return Ok(());
    }
    let arguments = json_to_table(&exchange.arguments).map_err(|e| ImportError(e.to_string()))?;
    let declare = ExchangeDeclare {
        name: short(&exchange.name, "exchange")?,
        kind: short(&exchange.kind, "exchange type")?,
        passive: false,
        durable: exchange.durable,
        auto_delete: exchange.auto_delete,
        internal: exchange.internal,
        arguments,
    };
    let declared = admin::declare_exchange(shard, short(vhost, "vhost")?, declare).await;
    kept_if_inequivalent(declared.map(|_| ()))
}

async fn import_binding(
    shard: &Shard,
    binding: &BindingJson,
    vhost: &str,
) -> Result<(), ImportError> {
    // Every queue's binding to the default exchange is implicit.
    if binding.source.is_empty() {
        return Ok(());
    }
    let destination = short(&binding.destination, "destination")?;
    let destination = match binding.destination_type.as_str() {
        "queue" => DestinationName::Queue(destination),
        "exchange" => DestinationName::Exchange(destination),
        other => return Err(ImportError(format!("unknown destination_type '{other}'"))),
    };
    let definition = BindingDefinition {
        source: short(&binding.source, "exchange")?,
        destination,
        routing_key: short(&binding.routing_key, "routing key")?,
        arguments: json_to_table(&binding.arguments).map_err(|e| ImportError(e.to_string()))?,
    };
    admin::change_binding(shard, short(vhost, "vhost")?, definition, true)
        .await
        .map_err(ImportError::from)
}
