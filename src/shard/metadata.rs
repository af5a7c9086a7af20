//! The metadata shard's side of metadata requests: apply the rules (`vhost::rules`), bump the
//! version, broadcast the deltas to every other shard, then answer. A declared queue is
//! finished by its owner shard, which answers with the queue's counts.

use std::rc::Rc;

use crate::exception::Exception;
use crate::ids::ShardId;
use crate::protocol::{HardError, ShortStr};
use crate::shard::message::{MetaRequest, QueueDeleted, QueueOp, Reply, ShardMessage};
use crate::shard::metadata_writer::PendingChange;
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;
use crate::vhost::access::AccessRefusal;
use crate::vhost::access_delta::AccessDelta;
use crate::vhost::delta::{MetaDelta, MetaUpdate};
use crate::vhost::metadata_record::MetadataChange;
use crate::vhost::queue_definition::QueueDefinition;
use crate::vhost::rules::Change;

pub fn handle_request(
    shard: &Rc<Shard>,
    reply_to: Option<ReplyTo>,
    vhost_name: ShortStr,
    request: MetaRequest,
) {
    assert_eq!(shard.id, ShardId::METADATA, "only shard 0 decides metadata");
    let declare = matches!(&request, MetaRequest::QueueDeclare(declare) if !declare.passive);
    let Some(decision) = decide(shard, &vhost_name, request) else {
        if let Some(reply_to) = reply_to {
            let error = Exception::connection(
                HardError::NotAllowed,
                format!("vhost {vhost_name} not found"),
            );
            shard.reply(reply_to, Reply::Meta(Err(error)));
        }
        return;
    };
    let revoked = super::vhost_limits::revoked(&decision.deltas);
    super::user_limits::limits_changed(shard, &decision.deltas);
    count_queue_churn(shard, declare, &decision.deltas);
    let version = publish(shard, vhost_name, decision.deltas, decision.durable_deltas);
    shard.registry_changed.notify_all();
    super::vhost_limits::close_revoked(shard, &revoked);
    if let Some((target, message)) = answer(reply_to, decision.outcome, version) {
        answer_when_applied(
            shard,
            WaitingAnswer {
                version,
                durable_version: shard.metadata_durable_version.get(),
                target,
                message,
            },
        );
    }
}

/// Queue churn for the statistics: a queue.declare that is not passive, and the queues the
/// change created and deleted.
fn count_queue_churn(shard: &Shard, declare: bool, deltas: &[MetaDelta]) {
    let mut churn = shard.queue_churn.get();
    churn.declared += u64::from(declare);
    for delta in deltas {
        match delta {
            MetaDelta::QueueDeclared(_) => churn.created += 1,
            MetaDelta::QueueDeleted { .. } => churn.deleted += 1,
            _ => {}
        }
    }
    shard.queue_churn.set(churn);
}

/// An answer held until every shard applied its version and the metadata log holds every
/// durable change made up to it. Not only the answer's own change: an answer that changed
/// nothing (deleting an exchange that an auto-delete cascade removed a moment ago, say) tells
/// the client about state that a durable change of the broker's own made, and must not reach
/// the client before that change is on disk.
pub struct WaitingAnswer {
    version: u64,
    /// The newest version that changed something durable when the answer was made.
    durable_version: u64,
    target: ShardId,
    message: ShardMessage,
}

/// What the rules decided for one request.
struct Decision {
    outcome: Outcome,
    /// Every delta, applied on the metadata shard already.
    deltas: Vec<MetaDelta>,
    /// The deltas that change something durable: the change's metadata log entry.
    durable_deltas: Vec<MetaDelta>,
}

/// What the requester is told.
enum Outcome {
    Done(Result<(), Exception>),
    /// The owner shard finishes a declared queue and answers with its counts.
    QueueDeclared(QueueDefinition),
    QueueDeleted(Result<u32, Exception>),
}

/// Runs the rules on the metadata shard's copy of `vhost_name`; None if there is no such vhost.
fn decide(shard: &Shard, vhost_name: &ShortStr, request: MetaRequest) -> Option<Decision> {
    let request = match request {
        MetaRequest::Access(delta) => return Some(decide_access(shard, delta)),
        other => other,
    };
    if let MetaRequest::QueueDeclare(declare) = &request {
        let registry = shard.registry.borrow();
        let limited = registry.vhost(vhost_name).map(|vhost| {
            super::vhost_limits::check_queue_limit(
                &registry,
                vhost,
                declare,
                shard.config.queue_max,
            )
        });
        if let Some(Err(error)) = limited {
            return Some(Decision {
                outcome: Outcome::Done(Err(error)),
                deltas: Vec::new(),
                durable_deltas: Vec::new(),
            });
        }
    }
    let mut registry = shard.registry.borrow_mut();
    let vhost = registry.vhost_mut(vhost_name)?;
    let mut next_id = shard.next_metadata_id.get();
    let mut change = Change::new(vhost, &mut next_id);
    let outcome = match request {
        MetaRequest::ExchangeDeclare(declare) => Outcome::Done(change.exchange_declare(declare)),
        MetaRequest::ExchangeDelete { name, if_unused } => {
            Outcome::Done(change.exchange_delete(&name, if_unused))
        }
        MetaRequest::QueueDeclare(declare) => match change.queue_declare(declare) {
            Ok(definition) => Outcome::QueueDeclared(definition),
            Err(error) => Outcome::Done(Err(error)),
        },
        MetaRequest::Bind {
            binding,
            connection,
        } => Outcome::Done(change.bind(binding, connection)),
        MetaRequest::Unbind {
            binding,
            connection,
        } => Outcome::Done(change.unbind(binding, connection)),
        MetaRequest::QueueDeleted {
            name,
            id,
            message_count,
        } => {
            change.queue_deleted(&name, id);
            Outcome::QueueDeleted(Ok(message_count))
        }
        MetaRequest::Sync => Outcome::Done(Ok(())),
        MetaRequest::Access(_) => unreachable!("decided above"),
        MetaRequest::QueueAlreadyDeleted => Outcome::QueueDeleted(Ok(0)),
    };
    let deltas = std::mem::take(&mut change.deltas);
    let durable_deltas = std::mem::take(&mut change.durable_deltas);
    drop(change);
    shard.next_metadata_id.set(next_id);
    Some(Decision {
        outcome,
        deltas,
        durable_deltas,
    })
}

/// Checks an access change (users, vhosts, permissions, policies, limits) and applies it. A
/// vhost is deleted only once its queues are gone: their owners delete them (and their
/// messages) first, as for queue.delete.
fn decide_access(shard: &Shard, delta: AccessDelta) -> Decision {
    let mut registry = shard.registry.borrow_mut();
    let checked = registry
        .access()
        .check_delta(&delta)
        .map_err(|refusal| match refusal {
            AccessRefusal::NotFound(text) => Exception::not_found(text),
            AccessRefusal::BadRequest(text) => Exception::precondition_failed(text),
        });
    let checked = checked.and_then(|()| match &delta {
        AccessDelta::VHostDeleted { name } => {
            let holds_queues = registry
                .vhosts()
                .find(|vhost| vhost.name.as_bytes() == name.as_bytes())
                .is_some_and(|vhost| vhost.queues().next().is_some());
            if holds_queues {
                Err(Exception::precondition_failed(format!(
                    "vhost '{name}' still holds queues"
                )))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    });
    if let Err(error) = checked {
        return Decision {
            outcome: Outcome::Done(Err(error)),
            deltas: Vec::new(),
            durable_deltas: Vec::new(),
        };
    }
    registry.apply_access(&delta);
    let durable = delta.is_durable();
    let delta = MetaDelta::Access(delta);
    Decision {
        outcome: Outcome::Done(Ok(())),
        durable_deltas: if durable {
            vec![delta.clone()]
        } else {
            Vec::new()
        },
        deltas: vec![delta],
    }
}

/// Gives the change its version, hands its durable deltas to the metadata log's writer and
/// broadcasts it to every other shard; returns the version (the current one if nothing
/// changed).
fn publish(
    shard: &Rc<Shard>,
    vhost_name: ShortStr,
    deltas: Vec<MetaDelta>,
    durable_deltas: Vec<MetaDelta>,
) -> u64 {
    let version = {
        let mut registry = shard.registry.borrow_mut();
        if deltas.is_empty() {
            return registry.version();
        }
        let version = registry.version() + 1;
        registry.set_version(version);
        version
    };
    super::queues::install_declared(shard, &vhost_name, &deltas);
    if !durable_deltas.is_empty() {
        shard.metadata_durable_version.set(version);
        let entry = MetadataChange {
            next_id: shard.next_metadata_id.get(),
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
}

/// The message that answers the requester, and the shard it goes to.
fn answer(
    reply_to: Option<ReplyTo>,
    outcome: Outcome,
    version: u64,
) -> Option<(ShardId, ShardMessage)> {
    let reply = match outcome {
        Outcome::QueueDeclared(definition) => {
            let reply_to = reply_to.expect("queue declares always wait for their answer");
            let owner = definition.owner_shard;
            let queue = definition.id;
            let op = QueueOp::Declared {
                reply_to,
                definition,
                version,
            };
            return Some((owner, ShardMessage::Queue { queue, op }));
        }
        Outcome::Done(result) => Reply::Meta(result.map(|()| version)),
        Outcome::QueueDeleted(result) => Reply::Deleted(result.map(|message_count| QueueDeleted {
            message_count,
            version,
        })),
    };
    let reply_to = reply_to?;
    let message = ShardMessage::Reply {
        request: reply_to.request,
        reply,
    };
    Some((reply_to.shard, message))
}

/// Sends the answer once every shard has applied its version and the metadata log holds every
/// durable change up to it: a client that got declare-ok or bind-ok may use what it
/// changed from any connection at once, and a restart keeps it.
fn answer_when_applied(shard: &Rc<Shard>, answer: WaitingAnswer) {
    shard.metadata_answers.borrow_mut().push_back(answer);
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
/// durable floor the metadata log holds.
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
                Some(answer) if answer.version <= minimum && answer.durable_version <= written => {
                    answers.pop_front()
                }
                _ => None,
            }
        };
        let Some(answer) = due else {
            return;
        };
        shard.send(answer.target, answer.message);
    }
}
