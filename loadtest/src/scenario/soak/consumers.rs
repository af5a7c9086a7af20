//! The soak's consumers, and the proof that an ack is on disk.
//!
//! **Consumers** take deliveries from every checked queue on channel 1 (manual ack, prefetch
//! `PREFETCH`), refuse some with requeue (`basic.nack` or `basic.reject`, alternately) until
//! the final drain, and ack the rest one by one.
//!
//! **Proving acks.** Hare appends an ack's settled record to the queue's shard log without an
//! fdatasync of its own; the next group commit carries it, so an ack made just before a
//! `kill -9` may come back, as in RabbitMQ (docs/ARCHITECTURE.md, "Acknowledgements and
//! settle records"). What Hare does promise follows from three documented rules:
//!
//! 1. a connection sends its channels' settlements and publishes to a queue's owner shard in
//!    the order it reads them, over one ordered mesh channel ("The mesh"), and a connection
//!    with consumers never moves to another shard ("Moving connections to their queues");
//! 2. the owner appends the settled record when it handles the settlement, and a persistent
//!    publish's message record when it handles the publish, into the same log, in that order;
//! 3. a publisher confirm is sent only once the log is durable up to the publish's record
//!    ("Publisher confirms"), and durability advances in log order.
//!
//! So after acking, the consumer publishes a persistent **marker** message to each checked
//! queue on channel 2 (confirm mode) of the same connection; once every marker of that round is
//! confirmed, the acks sent before the markers are on disk and are *proven*. A proven ack's
//! message must never be delivered again (`Ledger::delivered` counts an acked return).
//! Markers are ordinary checked messages: they too must be consumed. None are sent in the
//! final drain, which has no kills (the clean restart at the end checks those acks).
//!
//! **Crashing consumers** take a few deliveries from one checked queue, ack about half, and
//! drop the socket without closing: the broker must requeue the rest. Their acks are never
//! proven.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hare_protocol::{
    BasicAck, BasicConsume, BasicNack, BasicQos, BasicReject, ConfirmSelect, Method,
};

use crate::client::topology::short;
use crate::client::ClientError;
use crate::worker::consumer_behaviour::Rng;

use super::ledger::{body_for, body_id, IdSource};
use super::publishers::persistent;
use super::session::{Event, Session};
use super::shared::{reconnecting, Shared};

/// Per-consumer prefetch of the consumers.
const PREFETCH: u16 = 50;
/// Prefetch of a crashing consumer (what it can hold when it drops).
const CRASH_PREFETCH: u16 = 10;
/// How long a consumer waits for a frame before it looks at its flags and markers.
const CONSUMER_POLL: Duration = Duration::from_millis(50);
/// How often a consumer that acked something publishes its markers.
const MARKER_INTERVAL: Duration = Duration::from_millis(200);

/// One round of markers: their confirm tags still unanswered, and the acks they prove.
struct MarkerRound {
    tags: BTreeSet<u64>,
    acks: Vec<u64>,
    refused: bool,
}

/// A consumer session's marker state.
struct Markers {
    next_tag: u64,
    since_last: Vec<u64>,
    last_sent: Instant,
    rounds: Vec<MarkerRound>,
    /// Confirm tag → marker id.
    ids: std::collections::BTreeMap<u64, u64>,
}

/// A consumer of every checked queue, until the consumers stop.
pub fn consuming(shared: &Shared, worker: u32) {
    let mut ids = IdSource::new(worker);
    let mut rng = Rng::new(shared.seed ^ u64::from(worker));
    reconnecting(shared, Shared::consumers_stopped, |shared| {
        consuming_session(shared, worker, &mut ids, &mut rng)
    });
}

fn consuming_session(
    shared: &Shared,
    worker: u32,
    ids: &mut IdSource,
    rng: &mut Rng,
) -> Result<(), ClientError> {
    let mut session = shared.open(&format!("soak consumer {worker}"), 2, CONSUMER_POLL)?;
    shared.queues.declare(&mut session, 1)?;
    session.rpc(1, qos(PREFETCH))?;
    for queue in &shared.queues.checked {
        session.rpc(1, consume(queue)?)?;
    }
    session.rpc(2, Method::ConfirmSelect(ConfirmSelect { nowait: false }))?;
    let mut markers = Markers {
        next_tag: 1,
        since_last: Vec::new(),
        last_sent: Instant::now(),
        rounds: Vec::new(),
        ids: std::collections::BTreeMap::new(),
    };
    let mut refusals = 0u64;
    while !shared.consumers_stopped() {
        match session.next_event()? {
            Some(Event::Deliver {
                channel: 1,
                delivery_tag,
                redelivered,
                body,
            }) => {
                let id = body_id(&body);
                shared.ledger.delivered(id, redelivered);
                let refuse =
                    !shared.draining.load(Ordering::Relaxed) && rng.chance(shared.refuse_percent);
                if refuse {
                    refusals += 1;
                    session.send(1, &refusal(delivery_tag, refusals))?;
                    shared.ledger.refused();
                } else {
                    session.send(
                        1,
                        &Method::BasicAck(BasicAck {
                            delivery_tag,
                            multiple: false,
                        }),
                    )?;
                    if let Some(id) = id {
                        shared.ledger.acked(id);
                        markers.since_last.push(id);
                    }
                }
            }
            Some(Event::Method { channel: 2, method }) => {
                on_marker_confirm(shared, &mut markers, &method)
            }
            Some(Event::Method {
                method: Method::BasicCancel(_),
                ..
            }) => {
                return Err(ClientError::Unexpected {
                    expected: "deliveries",
                    got: "basic.cancel",
                })
            }
            _ => {}
        }
        // No markers in the final drain: each would be consumed, acked and answered with new
        // markers, and acks would never stop coming.
        let draining = shared.draining.load(Ordering::Relaxed);
        if !draining
            && !markers.since_last.is_empty()
            && markers.last_sent.elapsed() >= MARKER_INTERVAL
        {
            send_markers(shared, &mut session, &mut markers, ids)?;
        }
    }
    session.close()
}

fn qos(prefetch_count: u16) -> Method {
    Method::BasicQos(BasicQos {
        prefetch_size: 0,
        prefetch_count,
        global: false,
    })
}

fn consume(queue: &str) -> Result<Method, ClientError> {
    Ok(Method::BasicConsume(BasicConsume {
        queue: short(queue)?,
        consumer_tag: short(&format!("soak-{queue}"))?,
        ..Default::default()
    }))
}

/// Alternately `basic.nack` and `basic.reject`, both with requeue.
fn refusal(delivery_tag: u64, count: u64) -> Method {
    if count.is_multiple_of(2) {
        Method::BasicNack(BasicNack {
            delivery_tag,
            multiple: false,
            requeue: true,
        })
    } else {
        Method::BasicReject(BasicReject {
            delivery_tag,
            requeue: true,
        })
    }
}

/// Publishes one marker to each checked queue; the acks made so far ride on them.
fn send_markers(
    shared: &Shared,
    session: &mut Session,
    markers: &mut Markers,
    ids: &mut IdSource,
) -> Result<(), ClientError> {
    let mut tags = BTreeSet::new();
    for queue in &shared.queues.checked {
        let id = ids.next_id();
        let priority = (*queue == shared.queues.priority).then_some(0);
        session.publish(
            2,
            "",
            queue,
            &persistent(priority),
            &body_for(id, shared.size),
        )?;
        shared.ledger.published(1);
        tags.insert(markers.next_tag);
        markers.ids.insert(markers.next_tag, id);
        markers.next_tag += 1;
    }
    markers.rounds.push(MarkerRound {
        tags,
        acks: std::mem::take(&mut markers.since_last),
        refused: false,
    });
    markers.last_sent = Instant::now();
    Ok(())
}

/// A confirm on the marker channel: settles marker tags, proves the acks of complete rounds.
fn on_marker_confirm(shared: &Shared, markers: &mut Markers, method: &Method) {
    let (tag, multiple, ack) = match method {
        Method::BasicAck(a) => (a.delivery_tag, a.multiple, true),
        Method::BasicNack(n) => (n.delivery_tag, n.multiple, false),
        _ => return,
    };
    let covered: Vec<u64> = if multiple {
        markers.ids.range(..=tag).map(|(t, _)| *t).collect()
    } else {
        vec![tag]
    };
    let mut confirmed = Vec::new();
    for t in &covered {
        if let Some(id) = markers.ids.remove(t) {
            confirmed.push(id);
        }
        for round in &mut markers.rounds {
            if round.tags.remove(t) && !ack {
                round.refused = true;
            }
        }
    }
    if ack {
        shared.ledger.confirmed(&confirmed);
    } else {
        shared.ledger.nacked(confirmed.len() as u64);
    }
    // A refused marker proves nothing; its round's acks stay unproven.
    markers.rounds.retain(|round| {
        if !round.tags.is_empty() {
            return true;
        }
        if !round.refused {
            shared.ledger.proven(&round.acks);
        }
        false
    });
}

/// A consumer that crashes again and again while holding deliveries, until the load stops.
pub fn crashing(shared: &Shared, worker: u32) {
    let mut rng = Rng::new(shared.seed ^ u64::from(worker));
    reconnecting(shared, Shared::load_stopped, |shared| {
        crashing_session(shared, worker, &mut rng)
    });
}

fn crashing_session(shared: &Shared, worker: u32, rng: &mut Rng) -> Result<(), ClientError> {
    let mut session = shared.open(&format!("soak crasher {worker}"), 1, CONSUMER_POLL)?;
    shared.queues.declare(&mut session, 1)?;
    session.rpc(1, qos(CRASH_PREFETCH))?;
    let checked = &shared.queues.checked;
    let queue = &checked[(rng.next_u64() % checked.len() as u64) as usize];
    session.rpc(1, consume(queue)?)?;
    let life = Duration::from_millis(300 + rng.next_u64() % 1500);
    let born = Instant::now();
    while born.elapsed() < life && !shared.load_stopped() {
        if let Some(Event::Deliver {
            delivery_tag,
            redelivered,
            body,
            ..
        }) = session.next_event()?
        {
            let id = body_id(&body);
            shared.ledger.delivered(id, redelivered);
            if rng.chance(50) {
                session.send(
                    1,
                    &Method::BasicAck(BasicAck {
                        delivery_tag,
                        multiple: false,
                    }),
                )?;
                if let Some(id) = id {
                    shared.ledger.acked(id);
                }
            }
        }
    }
    session.drop_socket();
    shared.crashes.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(200 + rng.next_u64() % 800));
    Ok(())
}
