//! Rebuilds the durable metadata from the metadata log at start-up: the snapshot's vhosts,
//! then every change entry in order, on a scratch registry. Each delta is checked against the
//! state it is applied to before it is applied, so a log that does not fit together is an
//! error naming what is wrong, never a panic in `VHost::apply`. The result is one
//! `MetadataSnapshot`, which start-up hands to every shard and which also starts the next
//! generation of the log. Runs before any executor, on the main thread.

use crate::ids::ShardId;
use crate::vhost::access::AccessState;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::definitions::{
    apply_binding, check, check_exchange_arguments, invalid, is_standard, BindingChange,
    DefinitionsError,
};
use crate::vhost::delta::MetaDelta;
use crate::vhost::metadata_record::{MetadataChange, MetadataSnapshot};
use crate::vhost::{Registry, VHost};

/// The state rebuilt so far.
pub struct MetadataReplay {
    shard_count: u16,
    next_id: u64,
    registry: Registry,
    changes: u64,
    /// False while neither the snapshot nor any change held access state (a log from before
    /// users existed): the result then has no access document, and start-up installs the
    /// defaults.
    has_access: bool,
}

impl MetadataReplay {
    /// Starts from a snapshot, checking each vhost's definitions as a definitions file is
    /// checked.
    pub fn new(snapshot: &MetadataSnapshot) -> Result<MetadataReplay, DefinitionsError> {
        let mut registry = Registry::new();
        if let Some(document) = &snapshot.access {
            let state = AccessState::from_document(document)
                .map_err(|_| invalid("snapshot access document does not fit together"))?;
            registry.install_access(state);
        }
        for definitions in &snapshot.vhosts {
            let vhost = definitions.build_vhost()?;
            let slot = registry
                .vhosts
                .get_mut(&definitions.vhost)
                .ok_or(invalid("snapshot names a vhost that does not exist"))?;
            *slot = vhost;
        }
        Ok(MetadataReplay {
            shard_count: snapshot.shard_count,
            next_id: snapshot.next_id,
            registry,
            changes: 0,
            has_access: snapshot.access.is_some(),
        })
    }

    /// Applies one change after checking that every delta fits.
    pub fn apply(&mut self, change: &MetadataChange) -> Result<(), DefinitionsError> {
        check(change.next_id >= self.next_id, "next id went backwards")?;
        let rules = Rules {
            next_id: change.next_id,
            shard_count: self.shard_count,
        };
        for delta in &change.deltas {
            if let MetaDelta::Access(access) = delta {
                check_access(&self.registry, access)?;
                self.registry.apply_access(access);
                self.has_access = true;
                continue;
            }
            let vhost = self
                .registry
                .vhosts
                .get_mut(&change.vhost)
                .ok_or(invalid("change names a vhost that does not exist"))?;
            rules.apply(vhost, delta)?;
        }
        self.next_id = change.next_id;
        self.changes += 1;
        Ok(())
    }

    /// Changes applied so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// What the log holds, as one snapshot.
    pub fn finish(self) -> MetadataSnapshot {
        let snapshot = MetadataSnapshot::collect(&self.registry, self.next_id, self.shard_count);
        MetadataSnapshot {
            access: snapshot.access.filter(|_| self.has_access),
            ..snapshot
        }
    }
}

/// An access change fits the state before it, and a deleted vhost holds no queue.
fn check_access(registry: &Registry, delta: &AccessDelta) -> Result<(), DefinitionsError> {
    registry
        .access()
        .check_stored(delta)
        .map_err(|_| invalid("access change does not fit the state before it"))?;
    if let AccessDelta::VHostDeleted { name } = delta {
        let holds_queues = registry
            .vhosts()
            .find(|vhost| vhost.name.as_bytes() == name.as_bytes())
            .is_some_and(|vhost| vhost.queues().next().is_some());
        check(!holds_queues, "deleted vhost still holds queues")?;
    }
    Ok(())
}

/// The bounds a change is checked against.
struct Rules {
    next_id: u64,
    shard_count: u16,
}

impl Rules {
    fn apply(&self, vhost: &mut VHost, delta: &MetaDelta) -> Result<(), DefinitionsError> {
        match delta {
            MetaDelta::ExchangeDeclared(exchange) => {
                self.check_new_id(vhost, exchange.id.0)?;
                check(exchange.durable, "stored exchange is transient")?;
                check(!exchange.name.is_empty(), "stored exchange has no name")?;
                let taken = vhost.exchange(&exchange.name).is_some();
                check(!taken, "declared exchange exists already")?;
                check_exchange_arguments(exchange)?;
                vhost.apply(delta);
            }
            MetaDelta::ExchangeDeleted { name } => {
                check(!is_standard(name), "standard exchange deleted")?;
                check(
                    vhost.exchange(name).is_some(),
                    "deleted exchange does not exist",
                )?;
                vhost.apply(delta);
            }
            MetaDelta::QueueDeclared(queue) => {
                self.check_new_id(vhost, queue.id.0)?;
                check(queue.durable, "stored queue is transient")?;
                check(queue.exclusive_owner.is_none(), "stored queue is exclusive")?;
                check(!queue.name.is_empty(), "stored queue has no name")?;
                let owner_ok = queue.owner_shard < ShardId(self.shard_count);
                check(owner_ok, "queue owner shard not below the shard count")?;
                check(
                    vhost.queue(&queue.name).is_none(),
                    "declared queue exists already",
                )?;
                vhost.apply(delta);
            }
            MetaDelta::QueueDeleted { name } => {
                check(vhost.queue(name).is_some(), "deleted queue does not exist")?;
                vhost.apply(delta);
            }
            MetaDelta::Bound(binding) => apply_binding(vhost, binding, BindingChange::Bind)?,
            MetaDelta::Unbound(binding) => apply_binding(vhost, binding, BindingChange::Unbind)?,
            MetaDelta::Access(_) => unreachable!("access deltas are applied to the registry"),
        }
        Ok(())
    }

    /// A new object's id is from the dynamic range, below the change's next id, and unused.
    fn check_new_id(&self, vhost: &VHost, id: u64) -> Result<(), DefinitionsError> {
        check(
            id >= Registry::FIRST_DYNAMIC_ID,
            "id below the first dynamic id",
        )?;
        check(id < self.next_id, "id not below next id")?;
        let used = vhost
            .exchange_names
            .contains_key(&crate::ids::ExchangeId(id))
            || vhost.queue_names.contains_key(&crate::ids::QueueId(id));
        check(!used, "id in use")
    }
}
