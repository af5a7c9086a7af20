//! Helpers for channel methods that need another shard: metadata changes (answered once this
//! shard's copy has the new version, so the client can use what it declared at once) and
//! queue-name resolution against the local metadata copy.

use std::rc::Rc;

use crate::connection::ConnectionShared;
use crate::exception::Exception;
use crate::ids::{ChannelId, QueueId, ShardId};
use crate::protocol::{HardError, ShortStr};
use crate::shard::message::{MetaRequest, Reply, ShardMessage};
use crate::shard::Shard;
use crate::vhost::delta::BindingDefinition;
use crate::vhost::rules::{locked_queue, no_queue};

/// Asks the metadata shard for a change and waits until this shard has applied it.
pub async fn meta_change(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    request: MetaRequest,
) -> Result<u64, Exception> {
    let vhost = connection.state.borrow().vhost.clone();
    let reply = shard
        .request(ShardId::METADATA, |reply_to| ShardMessage::Meta {
            reply_to: Some(reply_to),
            vhost,
            request,
        })
        .await;
    let version = match reply {
        Reply::Meta(result) => result?,
        _ => return Err(unexpected_reply()),
    };
    shard.wait_for_version(version).await;
    Ok(version)
}

/// Whether a binding change adds or removes the binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingChange {
    Bind,
    Unbind,
}

/// Asks the metadata shard to add or remove a binding, and waits for it like `meta_change`.
pub async fn change_binding(
    shard: &Rc<Shard>,
    connection: &Rc<ConnectionShared>,
    change: BindingChange,
    binding: BindingDefinition,
) -> Result<(), Exception> {
    let request = match change {
        BindingChange::Bind => MetaRequest::Bind {
            binding,
            connection: connection.id,
        },
        BindingChange::Unbind => MetaRequest::Unbind {
            binding,
            connection: connection.id,
        },
    };
    meta_change(shard, connection, request).await.map(|_| ())
}

pub fn unexpected_reply() -> Exception {
    Exception::connection(HardError::InternalError, "unexpected reply between shards")
}

/// The queue a method names: an empty name means the channel's last declared queue.
pub fn queue_name(
    connection: &ConnectionShared,
    channel: ChannelId,
    name: &ShortStr,
) -> Result<ShortStr, Exception> {
    if !name.is_empty() {
        return Ok(name.clone());
    }
    let state = connection.state.borrow();
    state
        .channels
        .get(&channel.0)
        .and_then(|channel| channel.last_declared_queue.clone())
        .ok_or_else(|| Exception::not_found("no previously declared queue"))
}

/// A queue as this shard's metadata knows it, checked for exclusive use by another connection.
pub struct ResolvedQueue {
    pub id: QueueId,
    pub owner: ShardId,
    pub name: ShortStr,
}

pub fn resolve_queue(
    shard: &Shard,
    connection: &ConnectionShared,
    name: &ShortStr,
) -> Result<Option<ResolvedQueue>, Exception> {
    let vhost_name = connection.state.borrow().vhost.clone();
    let registry = shard.registry.borrow();
    let Some(queue) = registry
        .vhost(&vhost_name)
        .and_then(|vhost| vhost.queue(name))
    else {
        return Ok(None);
    };
    if queue
        .exclusive_owner
        .is_some_and(|owner| owner != connection.id)
    {
        return Err(locked_queue(name, &vhost_name.to_string_lossy()));
    }
    Ok(Some(ResolvedQueue {
        id: queue.id,
        owner: queue.owner_shard,
        name: queue.name.clone(),
    }))
}

/// Like `resolve_queue`, but a missing queue is 404.
pub fn existing_queue(
    shard: &Shard,
    connection: &ConnectionShared,
    name: &ShortStr,
) -> Result<ResolvedQueue, Exception> {
    resolve_queue(shard, connection, name)?.ok_or_else(|| {
        let vhost = connection.state.borrow().vhost.to_string_lossy();
        no_queue(name, &vhost)
    })
}
