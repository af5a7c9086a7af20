//! Policies on the shard that owns the queues: a queue's effective settings are computed
//! here, when its runtime is installed (declare, recovery) and again, for every queue this
//! shard owns in the vhost, when a policy or operator policy of that vhost is set or cleared.
//! The result lives in the queue's `QueueSettings`, so the data path never looks a policy up
//! (docs/ARCHITECTURE.md "Policies").

use std::rc::Rc;

use crate::ids::QueueId;
use crate::protocol::ShortStr;
use crate::queue::expiry::now_ms;
use crate::queue::settings::{QueueSettings, QueueType};
use crate::shard::{queues, timers, Shard};
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::MetaDelta;
use crate::vhost::policy::{PolicyTarget, VHostPolicies};
use crate::vhost::queue_definition::QueueDefinition;

/// The settings of a queue with `definition` under the vhost's policies.
pub fn settings_for(policies: &VHostPolicies<'_>, definition: &QueueDefinition) -> QueueSettings {
    if policies.is_empty() {
        return QueueSettings::parse(&definition.arguments).unwrap_or_default();
    }
    let queue_type = QueueSettings::parse(&definition.arguments)
        .map(|settings| settings.queue_type)
        .unwrap_or(QueueType::Classic);
    let effective = policies.effective(definition.name.as_bytes(), PolicyTarget::Queue(queue_type));
    QueueSettings::effective(&definition.arguments, &effective.definition)
}

/// After an update is applied: the queues this shard owns in every vhost whose policies the
/// update changed get their settings again, and react at once (`Queue::apply_settings`).
pub fn follow_policy_changes(shard: &Rc<Shard>, deltas: &[MetaDelta]) {
    let mut vhosts: Vec<&str> = deltas
        .iter()
        .filter_map(|delta| match delta {
            MetaDelta::Access(AccessDelta::PolicySet(policy)) => Some(policy.vhost.as_str()),
            MetaDelta::Access(AccessDelta::PolicyCleared { vhost, .. }) => Some(vhost.as_str()),
            _ => None,
        })
        .collect();
    vhosts.sort_unstable();
    vhosts.dedup();
    for vhost in vhosts {
        let changed = recompute_vhost(shard, vhost);
        for id in changed {
            queues::finish_leaving(shard, id);
            shard.mark_dirty(id);
            timers::reschedule(shard, id);
        }
    }
}

/// Applies the vhost's policies to the queues this shard owns there; returns those whose
/// settings changed.
fn recompute_vhost(shard: &Rc<Shard>, vhost: &str) -> Vec<QueueId> {
    let Some(name) = ShortStr::copy_from_str(vhost) else {
        return Vec::new();
    };
    let registry = shard.registry.borrow();
    let Some(routing) = registry.vhost(&name) else {
        return Vec::new();
    };
    let policies = VHostPolicies::of(registry.access(), vhost);
    let now = now_ms();
    let mut changed = Vec::new();
    let mut owned = shard.queues.borrow_mut();
    for queue in owned.values_mut() {
        if queue.vhost != name || queue.is_delay_store() {
            continue;
        }
        let Some(definition) = routing.queue_by_id(queue.id) else {
            continue;
        };
        if queue.apply_settings(settings_for(&policies, definition), now) {
            tracing::debug!(shard = %shard.id, queue = queue.id.0, "policy changed the queue's settings");
            changed.push(queue.id);
        }
    }
    changed
}
