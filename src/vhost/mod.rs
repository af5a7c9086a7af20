//! Metadata: vhosts with their exchanges, queues and bindings. Every shard holds an identical
//! copy (the `Registry`) that it routes with, without asking another core. Only the metadata
//! shard (shard 0) decides changes (`rules.rs`); they travel as versioned `MetaUpdate`s and are
//! applied here, identically everywhere. Must not hold messages or consumers: those belong to
//! the queue's owner shard.

pub mod access;
pub mod access_delta;
pub mod definitions;
pub mod definitions_codec;
pub mod definitions_json;
pub mod delta;
pub mod exchange;
pub mod header_value;
pub mod json_table;
pub mod metadata_record;
pub mod metadata_replay;
pub mod names;
pub mod password;
pub mod policy;
pub mod queue_arguments;
pub mod queue_definition;
pub mod route;
pub mod rules;
pub mod user_limits;

use crate::fast_map::FastMap;

use crate::ids::{ExchangeId, QueueId};
use crate::protocol::{FieldTable, FieldValue, ShortStr};
use crate::routing::ExchangeKind;
use access_delta::AccessDelta;
use delta::{BindingDefinition, DestinationName, MetaDelta, MetaUpdate};
use exchange::{Destination, Exchange, ExchangeDefinition};
use queue_definition::QueueDefinition;

/// The vhost every broker starts with.
pub const DEFAULT_VHOST: &str = "/";

/// The exchanges every vhost is created with (name, kind, internal).
pub const STANDARD_EXCHANGES: [(&str, ExchangeKind, bool); 7] = [
    ("", ExchangeKind::Direct, false),
    ("amq.direct", ExchangeKind::Direct, false),
    ("amq.fanout", ExchangeKind::Fanout, false),
    ("amq.topic", ExchangeKind::Topic, false),
    ("amq.headers", ExchangeKind::Headers, false),
    ("amq.match", ExchangeKind::Headers, false),
    ("amq.rabbitmq.trace", ExchangeKind::Topic, true),
];

/// One virtual host's exchanges, queues and bindings.
#[derive(Debug)]
pub struct VHost {
    pub name: ShortStr,
    /// Firehose tracing is on (`connection::trace`); not durable.
    pub tracing: bool,
    exchanges: FastMap<ShortStr, Exchange>,
    exchange_names: FastMap<ExchangeId, ShortStr>,
    queues: FastMap<ShortStr, QueueDefinition>,
    queue_names: FastMap<QueueId, ShortStr>,
    /// The policies that apply to exchanges, best first, with their `alternate-exchange`:
    /// what an exchange without the argument routes its unroutable messages to.
    policy_alternates: Vec<policy::ExchangeAlternate>,
}

impl VHost {
    /// A vhost with the standard exchanges; their ids come from `next_exchange_id` so every
    /// shard that creates the same vhost the same way assigns the same ids.
    pub fn new(name: ShortStr, first_exchange_id: u64) -> VHost {
        let mut vhost = VHost {
            name,
            tracing: false,
            exchanges: FastMap::default(),
            exchange_names: FastMap::default(),
            queues: FastMap::default(),
            queue_names: FastMap::default(),
            policy_alternates: Vec::new(),
        };
        for (index, (name, kind, internal)) in STANDARD_EXCHANGES.iter().enumerate() {
            let id = first_exchange_id + u64::try_from(index).expect("seven exchanges fit u64");
            vhost.insert_exchange(ExchangeDefinition {
                delayed: false,
                id: ExchangeId(id),
                name: ShortStr::from_static(name),
                kind: *kind,
                durable: true,
                auto_delete: false,
                internal: *internal,
                arguments: FieldTable::new(),
            });
        }
        vhost
    }

    pub fn exchange(&self, name: &ShortStr) -> Option<&Exchange> {
        self.exchanges.get(name)
    }

    pub fn exchange_by_id(&self, id: ExchangeId) -> Option<&Exchange> {
        self.exchange_names
            .get(&id)
            .and_then(|name| self.exchanges.get(name))
    }

    pub fn queue(&self, name: &ShortStr) -> Option<&QueueDefinition> {
        self.queues.get(name)
    }

    pub fn queue_by_id(&self, id: QueueId) -> Option<&QueueDefinition> {
        self.queue_names
            .get(&id)
            .and_then(|name| self.queues.get(name))
    }

    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.exchanges.values()
    }

    pub fn queues(&self) -> impl Iterator<Item = &QueueDefinition> {
        self.queues.values()
    }

    /// Applies one delta. Deltas were validated by the metadata shard, so a delta that does
    /// not fit this copy means the copies diverged: a bug, not a peer fault.
    pub fn apply(&mut self, delta: &MetaDelta) {
        match delta {
            MetaDelta::ExchangeDeclared(definition) => self.insert_exchange(definition.clone()),
            MetaDelta::ExchangeDeleted { name } => self.remove_exchange(name),
            MetaDelta::QueueDeclared(definition) => {
                let old = self
                    .queues
                    .insert(definition.name.clone(), definition.clone());
                assert!(old.is_none(), "queue {} declared twice", definition.name);
                self.queue_names
                    .insert(definition.id, definition.name.clone());
            }
            MetaDelta::QueueDeleted { name } => {
                let definition = self.queues.remove(name).expect("deleted queue exists");
                self.queue_names.remove(&definition.id);
                let destination = Destination::Queue(definition.id);
                for exchange in self.exchanges.values_mut() {
                    exchange.bindings.remove_destination(destination);
                }
            }
            MetaDelta::Bound(binding) => {
                let (source, destination, arguments) = self.resolve_binding(binding);
                let exchange = self
                    .exchanges
                    .get_mut(&source)
                    .expect("bound source exists");
                // The metadata shard validated x-match before emitting the delta.
                let added = exchange
                    .bindings
                    .bind(binding.routing_key.as_bytes(), arguments, destination)
                    .expect("binding arguments were validated before broadcast");
                assert!(added, "binding added twice");
            }
            MetaDelta::Access(_) => unreachable!("the registry applies access deltas"),
            MetaDelta::Unbound(binding) => {
                let (source, destination, arguments) = self.resolve_binding(binding);
                let exchange = self
                    .exchanges
                    .get_mut(&source)
                    .expect("unbound source exists");
                let removed = exchange.bindings.unbind(
                    binding.routing_key.as_bytes(),
                    &arguments,
                    destination,
                );
                assert!(removed, "binding removed twice");
            }
        }
    }

    /// Resolves a binding's names to ids.
    pub fn resolve_binding(
        &self,
        binding: &BindingDefinition,
    ) -> (ShortStr, Destination, Vec<(Vec<u8>, FieldValue)>) {
        let destination = self
            .destination_id(&binding.destination)
            .expect("binding destination exists");
        (
            binding.source.clone(),
            destination,
            binding_arguments(&binding.arguments),
        )
    }

    pub fn destination_id(&self, name: &DestinationName) -> Option<Destination> {
        match name {
            DestinationName::Queue(name) => self.queues.get(name).map(|q| Destination::Queue(q.id)),
            DestinationName::Exchange(name) => self
                .exchanges
                .get(name)
                .map(|e| Destination::Exchange(e.id())),
        }
    }

    /// True if any exchange has a binding to `destination`.
    pub fn is_bound_destination(&self, destination: Destination) -> bool {
        self.exchanges
            .values()
            .any(|exchange| exchange.bindings.has_destination(destination))
    }

    fn insert_exchange(&mut self, definition: ExchangeDefinition) {
        self.exchange_names
            .insert(definition.id, definition.name.clone());
        let name = definition.name.clone();
        let mut exchange = Exchange::new(definition);
        exchange.alternate_exchange = self.alternate_of(&exchange);
        let old = self.exchanges.insert(name, exchange);
        assert!(old.is_none(), "exchange declared twice");
    }

    /// Replaces the policies that give exchanges an alternate exchange, and applies them.
    pub fn set_policy_alternates(&mut self, alternates: Vec<policy::ExchangeAlternate>) {
        self.policy_alternates = alternates;
        let mut exchanges = std::mem::take(&mut self.exchanges);
        for exchange in exchanges.values_mut() {
            exchange.alternate_exchange = self.alternate_of(exchange);
        }
        self.exchanges = exchanges;
    }

    /// `rabbit_policy:get_arg/3`: the `alternate-exchange` argument wins over the policy's
    /// key. The default exchange has none (RabbitMQ routes it before alternates).
    fn alternate_of(&self, exchange: &Exchange) -> Option<ShortStr> {
        if exchange.name().is_empty() {
            return None;
        }
        exchange
            .definition
            .alternate_exchange()
            .or_else(|| policy::alternate_for(&self.policy_alternates, exchange.name()))
    }

    fn remove_exchange(&mut self, name: &ShortStr) {
        let exchange = self
            .exchanges
            .remove(name)
            .expect("deleted exchange exists");
        self.exchange_names.remove(&exchange.id());
        let destination = Destination::Exchange(exchange.id());
        for other in self.exchanges.values_mut() {
            other.bindings.remove_destination(destination);
        }
    }
}

/// Binding arguments in the shape the routing tables store.
pub fn binding_arguments(arguments: &FieldTable) -> Vec<(Vec<u8>, FieldValue)> {
    arguments
        .iter()
        .map(|(key, value)| (key.as_bytes().to_vec(), value.clone()))
        .collect()
}

/// Every vhost of one shard's copy of the metadata, with the version last applied.
#[derive(Debug)]
pub struct Registry {
    version: u64,
    vhosts: FastMap<ShortStr, VHost>,
    /// Users, vhost metadata, permissions, policies.
    access: access::AccessState,
    /// Bumped by every access change: connections cache their permissions until it moves.
    access_generation: u64,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// Ids below this are reserved for the standard exchanges of every vhost.
    pub const FIRST_DYNAMIC_ID: u64 = 1000;

    /// A registry with the vhost `/` and no users: start-up installs the stored (or default)
    /// access state.
    pub fn new() -> Registry {
        let mut registry = Registry {
            version: 0,
            vhosts: FastMap::default(),
            access: access::AccessState::default(),
            access_generation: 0,
        };
        registry.apply_access(&AccessDelta::VHostPut {
            name: DEFAULT_VHOST.to_owned(),
            metadata: access::VHostMetadata::default(),
        });
        registry
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn vhost(&self, name: &ShortStr) -> Option<&VHost> {
        self.vhosts.get(name)
    }

    pub fn vhost_mut(&mut self, name: &ShortStr) -> Option<&mut VHost> {
        self.vhosts.get_mut(name)
    }

    pub fn vhosts(&self) -> impl Iterator<Item = &VHost> {
        self.vhosts.values()
    }

    pub fn access(&self) -> &access::AccessState {
        &self.access
    }

    /// Changes whenever the access state does (users, permissions, limits, policies...).
    pub fn access_generation(&self) -> u64 {
        self.access_generation
    }

    /// Applies a broadcast update; updates arrive in version order on every shard.
    pub fn apply(&mut self, update: &MetaUpdate) {
        assert!(
            update.version > self.version,
            "metadata updates arrive in order"
        );
        for delta in &update.deltas {
            self.apply_delta(&update.vhost, delta);
        }
        self.version = update.version;
    }

    /// Applies one delta of `vhost`'s update (access deltas name their own objects).
    pub fn apply_delta(&mut self, vhost: &ShortStr, delta: &MetaDelta) {
        match delta {
            MetaDelta::Access(access) => self.apply_access(access),
            other => self
                .vhosts
                .get_mut(vhost)
                .expect("updates name an existing vhost")
                .apply(other),
        }
    }

    /// Applies an access delta, creating or dropping the routing side of a vhost with it. A
    /// deleted vhost's queues were deleted by their owners before.
    pub fn apply_access(&mut self, delta: &AccessDelta) {
        match delta {
            AccessDelta::VHostPut { name, .. } => {
                let key = ShortStr::copy_from_str(name).expect("vhost names were checked");
                self.vhosts
                    .entry(key.clone())
                    .or_insert_with(|| VHost::new(key, 1));
            }
            AccessDelta::VHostDeleted { name } => {
                let key = ShortStr::copy_from_str(name).expect("vhost names were checked");
                let removed = self.vhosts.remove(&key).expect("deleted vhost exists");
                assert!(
                    removed.queues.is_empty(),
                    "a vhost's queues are deleted before the vhost"
                );
            }
            AccessDelta::TracingSet { vhost, enabled } => {
                let key = ShortStr::copy_from_str(vhost).expect("vhost names were checked");
                if let Some(found) = self.vhosts.get_mut(&key) {
                    found.tracing = *enabled;
                }
            }
            _ => {}
        }
        self.access_generation += 1;
        self.access.apply(delta);
        match delta {
            AccessDelta::PolicySet(access::Policy { vhost, .. })
            | AccessDelta::PolicyCleared { vhost, .. } => self.refresh_policy_alternates(vhost),
            _ => {}
        }
    }

    /// Gives the exchanges of `vhost` the alternate exchanges its policies now set.
    fn refresh_policy_alternates(&mut self, vhost: &str) {
        let alternates = policy::exchange_alternates(&self.access, vhost);
        let Some(key) = ShortStr::copy_from_str(vhost) else {
            return;
        };
        if let Some(routing) = self.vhosts.get_mut(&key) {
            routing.set_policy_alternates(alternates);
        }
    }

    /// Replaces the access state (start-up, from the metadata log), creating every vhost it
    /// names.
    pub fn install_access(&mut self, state: access::AccessState) {
        self.vhosts.retain(|name, vhost| {
            let kept = state.vhosts.contains_key(&name.to_string_lossy());
            assert!(kept || vhost.queues.is_empty(), "a dropped vhost is empty");
            kept
        });
        for name in state.vhosts.keys() {
            let key = ShortStr::copy_from_str(name).expect("vhost names were checked");
            self.vhosts
                .entry(key.clone())
                .or_insert_with(|| VHost::new(key, 1));
        }
        self.access = state;
        self.access_generation += 1;
        let names: Vec<String> = self.access.vhosts.keys().cloned().collect();
        for name in names {
            self.refresh_policy_alternates(&name);
        }
    }

    /// Marks a locally applied update (the metadata shard applies deltas as it makes them).
    pub fn set_version(&mut self, version: u64) {
        assert!(version > self.version);
        self.version = version;
    }
}
