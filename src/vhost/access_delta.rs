//! Changes to who may do what (`access::AccessState`): vhosts and their limits, users,
//! permissions, topic permissions, policies. Like the other metadata deltas they are decided
//! by the metadata shard, applied on every shard in version order, and (all but tracing)
//! written to the metadata log; they are plain serde values so the log stores them as JSON
//! (docs/storage-format.md, Durable definitions).

use serde::{Deserialize, Serialize};

use crate::vhost::access::{
    Permission, Policy, PolicyKind, TopicPermission, User, UserLimits, VHostLimits, VHostMetadata,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum AccessDelta {
    /// Creates the vhost (with its standard exchanges) or replaces its metadata.
    VHostPut {
        name: String,
        metadata: VHostMetadata,
    },
    /// Removes the vhost with its exchanges, bindings, permissions, policies and limits. Its
    /// queues were deleted by their owners first.
    VHostDeleted {
        name: String,
    },
    /// Replaces the vhost's limits.
    VHostLimitsSet {
        vhost: String,
        limits: VHostLimits,
    },
    /// Not durable: RabbitMQ forgets tracing on restart.
    TracingSet {
        vhost: String,
        enabled: bool,
    },
    UserPut(User),
    /// Also removes the user's permissions, topic permissions and limits.
    UserDeleted {
        name: String,
    },
    /// Replaces the user's limits (empty removes them). A user's limits are kept when the
    /// user is put again, as RabbitMQ keeps them when a user is updated without limits.
    UserLimitsSet {
        user: String,
        limits: UserLimits,
    },
    PermissionSet(Permission),
    PermissionCleared {
        user: String,
        vhost: String,
    },
    TopicPermissionSet(TopicPermission),
    /// `exchange` None clears every topic permission of the user in the vhost.
    TopicPermissionCleared {
        user: String,
        vhost: String,
        exchange: Option<String>,
    },
    PolicySet(Policy),
    PolicyCleared {
        kind: PolicyKind,
        vhost: String,
        name: String,
    },
}

impl AccessDelta {
    /// True if the change must survive a restart.
    pub fn is_durable(&self) -> bool {
        !matches!(self, AccessDelta::TracingSet { .. })
    }
}
