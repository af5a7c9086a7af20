//! Operator requests that the management API (and through it `harectl`) makes of the broker,
//! as any task on any shard can make them: the same typed messages a connection sends, and
//! the same answers, so an operator's change is checked, logged and applied exactly like a
//! client's. Vhost deletion is the one request of several steps.

use crate::exception::Exception;
use crate::ids::ShardId;
use crate::protocol::ShortStr;
use crate::shard::message::{DeleteConditions, MetaRequest, QueueOp, Reply, ShardMessage};
use crate::shard::Shard;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::DEFAULT_VHOST;

/// How often a vhost deletion deletes the queues it finds and tries again, when clients keep
/// declaring queues in the vhost while it is being deleted.
const VHOST_DELETE_ROUNDS_MAX: usize = 10;

/// Applies an access change on the metadata shard and waits until this shard's copy has it
/// (and the metadata log holds it, as for every answer of the metadata shard).
pub async fn change_access(shard: &Shard, delta: AccessDelta) -> Result<u64, Exception> {
    let vhost = access_label(&delta);
    let reply = shard
        .request(ShardId::METADATA, |reply_to| ShardMessage::Meta {
            reply_to: Some(reply_to),
            vhost,
            request: MetaRequest::Access(delta),
        })
        .await;
    let version = match reply {
        Reply::Meta(result) => result?,
        _ => return Err(unexpected_reply()),
    };
    shard.wait_for_version(version).await;
    Ok(version)
}

/// Deletes a vhost with everything in it: each queue is deleted by its owner shard (its
/// messages settled in that shard's log, as queue.delete does), then the vhost with its
/// exchanges, bindings, permissions, policies and limits, in one metadata change. A crash
/// in between leaves the vhost with fewer queues, never a queue without its vhost.
pub async fn delete_vhost(shard: &Shard, name: &str) -> Result<(), Exception> {
    let vhost = ShortStr::copy_from_str(name)
        .ok_or_else(|| Exception::not_found(format!("vhost '{name}' does not exist")))?;
    for _ in 0..VHOST_DELETE_ROUNDS_MAX {
        let queues: Vec<_> = {
            let registry = shard.registry.borrow();
            let Some(found) = registry.vhost(&vhost) else {
                return Err(Exception::not_found(format!(
                    "vhost '{name}' does not exist"
                )));
            };
            found
                .queues()
                .map(|queue| (queue.id, queue.owner_shard))
                .collect()
        };
        for (id, owner) in queues {
            let reply = shard
                .request(owner, |reply_to| ShardMessage::Queue {
                    queue: id,
                    op: QueueOp::Delete {
                        reply_to: Some(reply_to),
                        conditions: DeleteConditions::NONE,
                        vhost: vhost.clone(),
                    },
                })
                .await;
            match reply {
                Reply::Deleted(result) => {
                    let deleted = result?;
                    shard.wait_for_version(deleted.version).await;
                }
                _ => return Err(unexpected_reply()),
            }
        }
        let delta = AccessDelta::VHostDeleted {
            name: name.to_owned(),
        };
        match change_access(shard, delta).await {
            Err(error) if error.explanation.ends_with("still holds queues") => continue,
            other => return other.map(|_| ()),
        }
    }
    Err(Exception::precondition_failed(format!(
        "vhost '{name}' kept getting new queues while being deleted"
    )))
}

/// The vhost a change is filed under (the metadata log names one per change).
fn access_label(delta: &AccessDelta) -> ShortStr {
    let name = match delta {
        AccessDelta::VHostPut { name, .. } | AccessDelta::VHostDeleted { name } => name,
        AccessDelta::VHostLimitsSet { vhost, .. }
        | AccessDelta::TracingSet { vhost, .. }
        | AccessDelta::PermissionCleared { vhost, .. }
        | AccessDelta::TopicPermissionCleared { vhost, .. }
        | AccessDelta::PolicyCleared { vhost, .. } => vhost,
        AccessDelta::PermissionSet(permission) => &permission.vhost,
        AccessDelta::TopicPermissionSet(permission) => &permission.vhost,
        AccessDelta::PolicySet(policy) => &policy.vhost,
        AccessDelta::UserPut(_) | AccessDelta::UserDeleted { .. } => DEFAULT_VHOST,
    };
    ShortStr::copy_from_str(name).unwrap_or_else(|| ShortStr::from_static(DEFAULT_VHOST))
}

fn unexpected_reply() -> Exception {
    Exception::connection(
        crate::protocol::HardError::InternalError,
        "unexpected reply between shards",
    )
}
