//! Dead lettering on the shard that owns the source queue: the message gets its `x-death`
//! headers (`queue::death`), is routed through the queue's dead-letter exchange on this
//! shard's metadata copy, and goes to the owners of the target queues like any publish.
//!
//! At least once, also across shards and `kill -9` (RabbitMQ's classic queues are at most
//! once here): the source record stays live in the log until every shard that took a copy
//! has it durable (`Confirm::DeadLetter`), and only then is it settled. A crash in between
//! recovers the source message, which dies again: a duplicate, never a loss.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::fast_map::FastMap;
use crate::ids::{QueueId, ShardId};
use crate::protocol::{BasicProperties, ShortStr};
use crate::queue::death::{self, Death};
use crate::queue::expiry::now_ms;
use crate::queue::message::Message;
use crate::queue::{Dead, DeathReason, Gone};
use crate::shard::message::{send_to_owners, Confirm, QueueTargets};
use crate::shard::queues::record_gone;
use crate::shard::{delayed, Shard};
use crate::vhost::route::{RouteScratch, RoutedMessage};

/// Source messages waiting for their dead-lettered copies to be safe, by token.
#[derive(Default)]
pub struct Waits {
    next_token: u64,
    waiting: FastMap<u64, Wait>,
    /// Dead messages of queues with a read back in flight, in the order they died: later
    /// ones, even with their bodies in RAM, wait behind it so a queue's dead letters keep
    /// their order.
    behind_reads: FastMap<QueueId, VecDeque<(Target, Vec<Dead>)>>,
}

struct Wait {
    queue: QueueId,
    gone: Gone,
    /// Shards that have not answered yet.
    remaining: usize,
    ok: bool,
}

/// Where a queue's dead messages go: taken from the queue when they leave it, so a queue
/// deleted while bodies are read back still dead-letters what already left it.
#[derive(Debug, Clone)]
pub struct Target {
    pub queue: QueueId,
    pub queue_name: ShortStr,
    pub vhost: ShortStr,
    pub via: Via,
}

#[derive(Debug, Clone)]
pub enum Via {
    /// The queue's dead-letter exchange and routing key (`x-death` recorded).
    DeadLetter {
        exchange: ShortStr,
        routing_key: Option<ShortStr>,
    },
    /// A delay store releasing messages through the exchange they were published to
    /// (`shard::delayed`).
    Release,
}

/// Dead-letters messages that left `target.queue`, in the order they left. Bodies on disk
/// are read back first; while a read for the queue is in flight, later dead messages wait
/// behind it.
pub fn send(shard: &Rc<Shard>, target: Target, dead: Vec<Dead>) {
    let queue = target.queue;
    let mut waits = shard.dead_letters.borrow_mut();
    if let Some(behind) = waits.behind_reads.get_mut(&queue) {
        behind.push_back((target, dead));
        return;
    }
    if dead.iter().any(|dead| dead.entry.message.is_none()) {
        waits
            .behind_reads
            .insert(queue, VecDeque::from([(target, dead)]));
        // The task takes `dead_letters` itself: released before it is spawned.
        drop(waits);
        glommio::spawn_local(send_in_order(shard.clone(), queue)).detach();
        return;
    }
    drop(waits);
    for dead in &dead {
        if let Some(message) = &dead.entry.message {
            dead_letter_one(shard, &target, dead, message);
        }
    }
}

/// Sends the queue's waiting dead messages, batch after batch, until none is left.
async fn send_in_order(shard: Rc<Shard>, queue: QueueId) {
    loop {
        let next = {
            let mut waits = shard.dead_letters.borrow_mut();
            let next = waits
                .behind_reads
                .get_mut(&queue)
                .and_then(VecDeque::pop_front);
            if next.is_none() {
                waits.behind_reads.remove(&queue);
            }
            next
        };
        let Some((target, dead)) = next else {
            return;
        };
        read_then_send(&shard, &target, &dead).await;
    }
}

/// Reads back the bodies on disk of `dead`, then dead-letters every message in order.
async fn read_then_send(shard: &Rc<Shard>, target: &Target, dead: &[Dead]) {
    let locations: Vec<_> = dead
        .iter()
        .filter(|dead| dead.entry.message.is_none())
        .filter_map(|dead| dead.entry.location())
        .collect();
    let mut read = if locations.is_empty() {
        Vec::new()
    } else {
        match shard.persistence().read_messages(&locations).await {
            Ok(messages) => messages,
            Err(error) => {
                // The records stay live: stored messages come back after a restart and die
                // again (paged ones are gone with the restart, as transient messages are).
                tracing::error!(%error, shard = %shard.id, queue = %target.queue_name,
                    "cannot read messages back to dead-letter them");
                Vec::new()
            }
        }
    }
    .into_iter();
    let read_ok = read.len() == locations.len();
    for dead in dead {
        match &dead.entry.message {
            Some(message) => dead_letter_one(shard, target, dead, message),
            None if read_ok && dead.entry.location().is_some() => {
                if let Some(message) = read.next() {
                    dead_letter_one(shard, target, dead, &message);
                }
            }
            None => {}
        }
    }
}

/// Dead-letters one message, or drops it (no such exchange, nothing routed, every target a
/// cycle) as RabbitMQ does.
fn dead_letter_one(shard: &Rc<Shard>, target: &Target, dead: &Dead, message: &Message) {
    let gone = dead.entry.gone();
    let Some((copy, groups)) = route(shard, target, dead.reason, message) else {
        if let Some(gone) = gone {
            record_gone(shard, target.queue, &[gone]);
        }
        return;
    };
    let confirm = gone.map(|gone| {
        let mut waits = shard.dead_letters.borrow_mut();
        waits.next_token += 1;
        let token = waits.next_token;
        waits.waiting.insert(
            token,
            Wait {
                queue: target.queue,
                gone,
                remaining: groups.len(),
                ok: true,
            },
        );
        Confirm::DeadLetter {
            shard: shard.id,
            token,
        }
    });
    send_to_owners(shard, groups, copy, confirm);
}

/// What a copy is routed with: its properties, exchange and routing keys (the first is the
/// copy's own), and what the copy is.
struct Copy {
    properties: BasicProperties,
    exchange: ShortStr,
    keys: Vec<ShortStr>,
    persistent: bool,
    ttl: Option<u32>,
}

/// The dead-lettered copy and the queues it goes to, by owner shard, or None if it goes
/// nowhere.
fn route(
    shard: &Shard,
    target: &Target,
    reason: DeathReason,
    message: &Message,
) -> Option<(Message, Vec<(ShardId, QueueTargets)>)> {
    let properties = BasicProperties::decode(&message.properties_raw).ok()?;
    let copy = match &target.via {
        Via::DeadLetter {
            exchange,
            routing_key,
        } => dead_letter_copy(target, reason, message, properties, exchange, routing_key),
        Via::Release => release_copy(message, properties),
    };
    let registry = shard.registry.borrow();
    let vhost = registry.vhost(&target.vhost)?;
    let exchange = vhost.exchange(&copy.exchange)?;
    let mut scratch = RouteScratch::default();
    let mut queues = Vec::new();
    let mut routed = Vec::new();
    for key in &copy.keys {
        let routed_message = RoutedMessage::new(key, &copy.properties);
        vhost.route(exchange, key, &routed_message, &mut scratch, &mut routed);
        queues.extend_from_slice(&routed);
    }
    queues.sort_unstable();
    queues.dedup();
    if matches!(target.via, Via::DeadLetter { .. }) {
        queues.retain(|id| {
            vhost.queue_by_id(*id).is_some_and(|queue| {
                !death::is_cycle(&copy.properties, reason, queue.name.as_bytes())
            })
        });
    }
    if queues.is_empty() {
        return None;
    }
    let groups = QueueTargets::group_by_owner(vhost, &queues);
    let routed_copy = Message {
        exchange: copy.exchange,
        routing_key: copy.keys[0].clone(),
        persistent: copy.persistent,
        ttl: copy.ttl,
        priority: copy.properties.priority.unwrap_or(0),
        properties_raw: copy.properties.to_raw(),
        body: message.body.clone(),
    };
    Some((routed_copy, groups))
}

/// A dead-lettered copy: `x-death` recorded, to the dead-letter exchange with its routing key
/// (then without `CC`) or the message's own keys.
fn dead_letter_copy(
    target: &Target,
    reason: DeathReason,
    message: &Message,
    mut properties: BasicProperties,
    exchange: &ShortStr,
    routing_key: &Option<ShortStr>,
) -> Copy {
    let routing_keys = death::routing_keys(&message.routing_key, properties.headers.as_ref());
    death::record(
        &mut properties,
        &Death {
            reason,
            queue: target.queue_name.clone(),
            exchange: message.exchange.clone(),
            routing_keys: routing_keys.clone(),
            time: now_ms() / 1000,
        },
    );
    let keys = match routing_key {
        Some(key) => {
            // A routing key of its own replaces the message's keys, CC included.
            if let Some(headers) = properties.headers.as_mut() {
                headers.remove("CC");
            }
            vec![key.clone()]
        }
        None => routing_keys
            .into_iter()
            .filter_map(ShortStr::try_from_bytes)
            .collect(),
    };
    Copy {
        properties,
        exchange: exchange.clone(),
        keys,
        persistent: message.persistent,
        // The expiration moved into x-death: the copy does not expire by it again.
        ttl: None,
    }
}

/// A delayed message released through its exchange, as published (its `CC` keys too), with
/// the plugin's negated `x-delay` marker and its own `expiration` from now on.
fn release_copy(message: &Message, mut properties: BasicProperties) -> Copy {
    let keys = death::routing_keys(&message.routing_key, properties.headers.as_ref())
        .into_iter()
        .filter_map(ShortStr::try_from_bytes)
        .collect();
    if let Some(headers) = properties.headers.as_mut() {
        if let Some(delay) = delayed::delay_of(Some(headers)) {
            headers.insert(
                ShortStr::from_static("x-delay"),
                delayed::released_header(delay),
            );
        }
    }
    let ttl = properties.expiration.as_ref().and_then(|expiration| {
        std::str::from_utf8(expiration.as_bytes())
            .ok()?
            .parse()
            .ok()
    });
    Copy {
        persistent: properties.is_persistent(),
        properties,
        exchange: message.exchange.clone(),
        keys,
        ttl,
    }
}

/// A shard took (or refused) a dead-lettered copy: once all have, the source is settled.
/// A refused copy leaves the source record live, to die again after a restart.
pub fn confirmed(shard: &Rc<Shard>, token: u64, ok: bool) {
    let done = {
        let mut waits = shard.dead_letters.borrow_mut();
        let Some(wait) = waits.waiting.get_mut(&token) else {
            return;
        };
        wait.remaining -= 1;
        wait.ok &= ok;
        if wait.remaining > 0 {
            return;
        }
        waits.waiting.remove(&token)
    };
    if let Some(wait) = done {
        if wait.ok {
            record_gone(shard, wait.queue, &[wait.gone]);
        } else {
            tracing::warn!(shard = %shard.id, queue = wait.queue.0,
                "a dead-lettered copy was not stored; the source message is kept in the log");
        }
    }
}
