//! The metadata shard's side of metadata requests: apply the rules (`vhost::rules`), bump the
//! version, broadcast the deltas to every other shard, then answer. A declared queue is
//! finished by its owner shard, which answers with the queue's counts.

use std::rc::Rc;

use crate::exception::Exception;
use crate::ids::ShardId;
use crate::protocol::{HardError, ShortStr};
use crate::shard::message::{MetaRequest, QueueOp, Reply, ShardMessage};
use crate::shard::metadata_writer::PendingChange;
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;
use crate::vhost::delta::MetaUpdate;
use crate::vhost::metadata_record::MetadataChange;
use crate::vhost::rules::Change;

pub fn handle_request(
    shard: &Rc<Shard>,
    reply_to: Option<ReplyTo>,
    vhost_name: ShortStr,
    request: MetaRequest,
) {
    assert_eq!(shard.id, ShardId::METADATA, "only shard 0 decides metadata");
    let mut registry = shard.registry.borrow_mut();
    let Some(vhost) = registry.vhost_mut(&vhost_name) else {
        drop(registry);
        if let Some(reply_to) = reply_to {
            let error = Exception::connection(
                HardError::NotAllowed,
                format!("vhost {vhost_name} not found"),
            );
            shard.reply(reply_to, Reply::Meta(Err(error)));
        }
        return;
    };
    let mut next_id = shard.next_metadata_id.get();
    let mut change = Change::new(vhost, &mut next_id);
    let mut declared = None;
    let mut deleted_count = None;
    let result = match request {
        MetaRequest::ExchangeDeclare(declare) => change.exchange_declare(declare),
        MetaRequest::ExchangeDelete { name, if_unused } => change.exchange_delete(&name, if_unused),
        MetaRequest::QueueDeclare(declare) => change.queue_declare(declare).map(|definition| {
            declared = Some(definition);
        }),
        MetaRequest::Bind {
            binding,
            connection,
        } => change.bind(binding, connection),
        MetaRequest::Unbind {
            binding,
            connection,
        } => change.unbind(binding, connection),
        MetaRequest::QueueDeleted {
            name,
            id,
            message_count,
        } => {
            change.queue_deleted(&name, id);
            deleted_count = Some(message_count);
            Ok(())
        }
    };
    let deltas = std::mem::take(&mut change.deltas);
    let durable_deltas = std::mem::take(&mut change.durable_deltas);
    drop(change);
    let needs_definitions = !durable_deltas.is_empty();
    shard.next_metadata_id.set(next_id);
    let version = if deltas.is_empty() {
        let version = registry.version();
        drop(registry);
        version
    } else {
        let version = registry.version() + 1;
        registry.set_version(version);
        drop(registry);
        super::queues::install_declared(shard, &deltas);
        if needs_definitions {
            let entry = MetadataChange {
                next_id,
                vhost: vhost_name.clone(),
                deltas: durable_deltas,
            };
            shard.metadata_pending.borrow_mut().push(PendingChange {
                version,
                entry: entry.encode(),
            });
            shard.definitions_wanted.notify();
        }
        let update = MetaUpdate {
            version,
            vhost: vhost_name,
            deltas,
        };
        for target in 0..shard.shard_count() {
            let target = ShardId(u16::try_from(target).expect("shard count fits u16"));
            if target != shard.id {
                shard.send(target, ShardMessage::MetaUpdate(update.clone()));
            }
        }
        version
    };
    shard.registry_changed.notify_all();

    let answer = match (result, declared) {
        (Err(error), _) => reply_to.map(|reply_to| {
            let reply = match deleted_count {
                Some(_) => Reply::Deleted(Err(error)),
                None => Reply::Meta(Err(error)),
            };
            (
                reply_to.shard,
                ShardMessage::Reply {
                    request: reply_to.request,
                    reply,
                },
            )
        }),
        // The owner answers a declare with the queue's counts.
        (Ok(()), Some(definition)) => {
            let reply_to = reply_to.expect("queue declares always wait for their answer");
            let owner = definition.owner_shard;
            let queue = definition.id;
            Some((
                owner,
                ShardMessage::Queue {
                    queue,
                    op: QueueOp::Declared {
                        reply_to,
                        definition,
                        version,
                    },
                },
            ))
        }
        (Ok(()), None) => reply_to.map(|reply_to| {
            let reply = match deleted_count {
                Some(count) => Reply::Deleted(Ok((count, version))),
                None => Reply::Meta(Ok(version)),
            };
            (
                reply_to.shard,
                ShardMessage::Reply {
                    request: reply_to.request,
                    reply,
                },
            )
        }),
    };
    if let Some((target, message)) = answer {
        answer_when_applied(shard, version, needs_definitions, target, message);
    }
}

/// Sends `message` once every shard has applied `version` (and, for a durable change, once
/// the metadata log holds it): a client that got declare-ok or bind-ok may use what it
/// changed from any connection at once, and a restart keeps it.
fn answer_when_applied(
    shard: &Rc<Shard>,
    version: u64,
    needs_definitions: bool,
    target: ShardId,
    message: ShardMessage,
) {
    shard
        .metadata_answers
        .borrow_mut()
        .push_back((version, needs_definitions, target, message));
    release_answers(shard.as_ref());
}

/// Another shard applied metadata up to `version`: send the answers now due.
pub fn applied(shard: &Rc<Shard>, from: ShardId, version: u64) {
    {
        let mut applied = shard.metadata_applied.borrow_mut();
        applied[from.index()] = applied[from.index()].max(version);
    }
    release_answers(shard.as_ref());
}

/// Sends, in version order, every answer whose version every shard has applied and whose
/// durable change is written.
pub(super) fn release_answers(shard: &Shard) {
    let minimum = {
        let mut applied = shard.metadata_applied.borrow_mut();
        // The metadata shard applied every version it made.
        applied[shard.id.index()] = shard.registry.borrow().version();
        applied.iter().copied().min().unwrap_or(0)
    };
    let written = shard.definitions_written.get();
    loop {
        let due = {
            let mut answers = shard.metadata_answers.borrow_mut();
            match answers.front() {
                Some((version, needs_definitions, _, _))
                    if *version <= minimum && (!*needs_definitions || *version <= written) =>
                {
                    answers.pop_front()
                }
                _ => None,
            }
        };
        let Some((_, _, target, message)) = due else {
            return;
        };
        shard.send(target, message);
    }
}
