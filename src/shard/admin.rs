//! Operator requests that the management API (and through it `harectl`) makes of the broker,
//! as any task on any shard can make them: the same typed messages a connection sends, and
//! the same answers, so an operator's change is checked, logged and applied exactly like a
//! client's. Vhost deletion is the one request of several steps.

use crate::exception::Exception;
use crate::ids::{ConnectionId, QueueId, ShardId};
use crate::protocol::{FieldTable, ShortStr};
use crate::shard::message::{DeleteConditions, MetaRequest, QueueOp, Reply, ShardMessage};
use crate::shard::Shard;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::BindingDefinition;
use crate::vhost::rules::{no_queue, ExchangeDeclare, QueueDeclare};
use crate::vhost::DEFAULT_VHOST;

/// How often a vhost deletion deletes the queues it finds and tries again, when clients keep
/// declaring queues in the vhost while it is being deleted.
const VHOST_DELETE_ROUNDS_MAX: usize = 10;

/// Applies an access change on the metadata shard and waits until this shard's copy has it
/// (and the metadata log holds it, as for every answer of the metadata shard).
pub async fn change_access(shard: &Shard, delta: AccessDelta) -> Result<u64, Exception> {
    let vhost = access_label(&delta);
    meta_change(shard, vhost, MetaRequest::Access(delta)).await
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
            delete_queue_at(shard, vhost.clone(), id, owner, DeleteConditions::NONE).await?;
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
        AccessDelta::UserPut(_)
        | AccessDelta::UserDeleted { .. }
        | AccessDelta::UserLimitsSet { .. } => DEFAULT_VHOST,
    };
    ShortStr::copy_from_str(name).unwrap_or_else(|| ShortStr::from_static(DEFAULT_VHOST))
}

fn unexpected_reply() -> Exception {
    Exception::connection(
        crate::protocol::HardError::InternalError,
        "unexpected reply between shards",
    )
}

/// A queue as the operator declares it (management API, definitions import): never exclusive.
pub struct OperatorQueue {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub durable: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

/// What queue.declare-ok would report.
#[derive(Debug, Clone, Copy)]
pub struct DeclaredQueue {
    /// False if the queue existed already.
    pub created: bool,
    pub message_count: u32,
    pub consumer_count: u32,
}

/// Declares a queue with RabbitMQ's rules (an inequivalent redeclare is 406). The owner shard
/// is spread by the name's hash: operators declare from one shard, clients from many.
pub async fn declare_queue(
    shard: &Shard,
    queue: OperatorQueue,
) -> Result<DeclaredQueue, Exception> {
    let existed = shard
        .registry
        .borrow()
        .vhost(&queue.vhost)
        .is_some_and(|vhost| vhost.queue(&queue.name).is_some());
    let preferred_shard = spread(&queue.name, shard.shard_count());
    let vhost = queue.vhost;
    let request = MetaRequest::QueueDeclare(QueueDeclare {
        name: queue.name,
        passive: false,
        durable: queue.durable,
        exclusive: false,
        auto_delete: queue.auto_delete,
        arguments: queue.arguments,
        connection: ConnectionId::operator(shard.id),
        preferred_shard,
        server_named: false,
    });
    let reply = shard
        .request(ShardId::METADATA, |reply_to| ShardMessage::Meta {
            reply_to: Some(reply_to),
            vhost,
            request,
        })
        .await;
    match reply {
        Reply::QueueDeclared {
            version,
            message_count,
            consumer_count,
            ..
        } => {
            shard.wait_for_version(version).await;
            Ok(DeclaredQueue {
                created: !existed,
                message_count,
                consumer_count,
            })
        }
        Reply::Meta(Err(error)) => Err(error),
        _ => Err(unexpected_reply()),
    }
}

/// Declares an exchange with RabbitMQ's rules; Ok(false) if it existed already.
pub async fn declare_exchange(
    shard: &Shard,
    vhost: ShortStr,
    declare: ExchangeDeclare,
) -> Result<bool, Exception> {
    let existed = shard
        .registry
        .borrow()
        .vhost(&vhost)
        .is_some_and(|found| found.exchange(&declare.name).is_some());
    meta_change(shard, vhost, MetaRequest::ExchangeDeclare(declare)).await?;
    Ok(!existed)
}

pub async fn delete_exchange(
    shard: &Shard,
    vhost: ShortStr,
    name: ShortStr,
    if_unused: bool,
) -> Result<(), Exception> {
    let request = MetaRequest::ExchangeDelete { name, if_unused };
    meta_change(shard, vhost, request).await.map(|_| ())
}

/// Adds (`bind`) or removes a binding.
pub async fn change_binding(
    shard: &Shard,
    vhost: ShortStr,
    binding: BindingDefinition,
    bind: bool,
) -> Result<(), Exception> {
    let connection = ConnectionId::operator(shard.id);
    let request = if bind {
        MetaRequest::Bind {
            binding,
            connection,
        }
    } else {
        MetaRequest::Unbind {
            binding,
            connection,
        }
    };
    meta_change(shard, vhost, request).await.map(|_| ())
}

/// Deletes a queue on its owner shard (queue.delete); returns the ready messages it held.
pub async fn delete_queue(
    shard: &Shard,
    vhost: ShortStr,
    name: &ShortStr,
    conditions: DeleteConditions,
) -> Result<u32, Exception> {
    let (id, owner) = find_queue(shard, &vhost, name)?;
    delete_queue_at(shard, vhost, id, owner, conditions).await
}

/// Deletes the queue `id` on its owner and waits until this shard's metadata has it gone.
async fn delete_queue_at(
    shard: &Shard,
    vhost: ShortStr,
    id: QueueId,
    owner: ShardId,
    conditions: DeleteConditions,
) -> Result<u32, Exception> {
    let reply = shard
        .request(owner, |reply_to| ShardMessage::Queue {
            queue: id,
            op: QueueOp::Delete {
                reply_to: Some(reply_to),
                conditions,
                vhost,
            },
        })
        .await;
    match reply {
        Reply::Deleted(result) => {
            let deleted = result?;
            shard.wait_for_version(deleted.version).await;
            Ok(deleted.message_count)
        }
        _ => Err(unexpected_reply()),
    }
}

/// Removes a queue's ready messages (queue.purge); returns how many.
pub async fn purge_queue(
    shard: &Shard,
    vhost: ShortStr,
    name: &ShortStr,
) -> Result<u32, Exception> {
    let (id, owner) = find_queue(shard, &vhost, name)?;
    let reply = shard
        .request(owner, |reply_to| ShardMessage::Queue {
            queue: id,
            op: QueueOp::Purge { reply_to, vhost },
        })
        .await;
    match reply {
        Reply::Purged(result) => result,
        _ => Err(unexpected_reply()),
    }
}

/// The queue's id and owner, or RabbitMQ's 404.
pub fn find_queue(
    shard: &Shard,
    vhost: &ShortStr,
    name: &ShortStr,
) -> Result<(QueueId, ShardId), Exception> {
    let registry = shard.registry.borrow();
    registry
        .vhost(vhost)
        .and_then(|found| found.queue(name))
        .map(|queue| (queue.id, queue.owner_shard))
        .ok_or_else(|| no_queue(name, &vhost.to_string_lossy()))
}

/// A metadata change that answers with its version, once this shard has it.
async fn meta_change(
    shard: &Shard,
    vhost: ShortStr,
    request: MetaRequest,
) -> Result<u64, Exception> {
    let reply = shard
        .request(ShardId::METADATA, |reply_to| ShardMessage::Meta {
            reply_to: Some(reply_to),
            vhost,
            request,
        })
        .await;
    match reply {
        Reply::Meta(result) => {
            let version = result?;
            shard.wait_for_version(version).await;
            Ok(version)
        }
        _ => Err(unexpected_reply()),
    }
}

/// The shard an operator-declared queue goes to: FNV-1a of its name, so a definitions import
/// spreads its queues over every shard instead of piling them on the importing one.
fn spread(name: &ShortStr, shard_count: usize) -> ShardId {
    let hash = name
        .as_bytes()
        .iter()
        .fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
    let count = u64::try_from(shard_count.max(1)).expect("shard count fits u64");
    ShardId(u16::try_from(hash % count).expect("shard index fits u16"))
}
