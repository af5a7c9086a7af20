//! The soak's publishers: persistent messages with publisher confirms, and a transactional
//! publisher. Both only ever count a message as confirmed on the broker's own word
//! (`basic.ack`, or `tx.commit-ok`); a publish whose answer was lost in a crash is neither
//! confirmed nor retried with the same id, so it may arrive or not.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hare_protocol::{BasicProperties, ConfirmSelect, Method, TxCommit, TxSelect};

use crate::client::ClientError;
use crate::worker::consumer_behaviour::Rng;

use super::ledger::{body_for, IdSource};
use super::session::Event;
use super::shared::{reconnecting, Shared};
use super::topology::MAX_PRIORITY;

/// Unconfirmed publishes a confirming publisher allows itself.
const CONFIRM_WINDOW: usize = 200;
/// How long a confirming publisher waits for a frame before it publishes again.
const PUBLISHER_POLL: Duration = Duration::from_millis(10);
/// How long a stopping publisher waits for its last confirms.
const LAST_CONFIRMS_WAIT: Duration = Duration::from_secs(5);
/// Most messages in one transaction.
const TX_BATCH_MAX: u64 = 5;
/// Pause between two transactions.
const TX_PAUSE: Duration = Duration::from_millis(50);

/// Persistent, with a priority for the priority queue.
pub fn persistent(priority: Option<u8>) -> BasicProperties {
    BasicProperties {
        delivery_mode: Some(2),
        priority,
        ..Default::default()
    }
}

/// Where one publish goes, picked at random: mostly the checked queues, a little to the TTL
/// and capped queues.
struct Target<'a> {
    queue: &'a str,
    checked: bool,
    priority: Option<u8>,
}

fn pick<'a>(shared: &'a Shared, rng: &mut Rng) -> Target<'a> {
    let queues = &shared.queues;
    let roll = rng.next_u64() % 20;
    let (queue, checked) = match roll {
        0..=7 => (queues.checked[0].as_str(), true),
        8..=15 => (queues.checked[1].as_str(), true),
        16..=17 => (queues.priority.as_str(), true),
        18 => (queues.ttl.as_str(), false),
        _ => (queues.capped.as_str(), false),
    };
    let priority = (queue == queues.priority)
        .then(|| u8::try_from(rng.next_u64() % u64::from(MAX_PRIORITY + 1)).unwrap_or(0));
    Target {
        queue,
        checked,
        priority,
    }
}

/// A publisher with confirms at `shared.rate` messages per second, until the load stops.
pub fn confirming(shared: &Shared, worker: u32) {
    let mut ids = IdSource::new(worker);
    let mut rng = Rng::new(shared.seed ^ u64::from(worker));
    reconnecting(shared, Shared::load_stopped, |shared| {
        confirming_session(shared, worker, &mut ids, &mut rng)
    });
}

fn confirming_session(
    shared: &Shared,
    worker: u32,
    ids: &mut IdSource,
    rng: &mut Rng,
) -> Result<(), ClientError> {
    let mut session = shared.open(&format!("soak publisher {worker}"), 1, PUBLISHER_POLL)?;
    shared.queues.declare(&mut session, 1)?;
    session.rpc(1, Method::ConfirmSelect(ConfirmSelect { nowait: false }))?;
    // Delivery tag → the id, for publishes to checked queues.
    let mut outstanding: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    let mut next_tag = 1u64;
    let started = Instant::now();
    let mut sent = 0u64;
    while !shared.load_stopped() {
        let due = (started.elapsed().as_secs_f64() * shared.rate) as u64;
        while sent < due && outstanding.len() < CONFIRM_WINDOW {
            let target = pick(shared, rng);
            let id = ids.next_id();
            session.publish(
                1,
                "",
                target.queue,
                &persistent(target.priority),
                &body_for(id, shared.size),
            )?;
            shared.ledger.published(1);
            outstanding.insert(next_tag, target.checked.then_some(id));
            next_tag += 1;
            sent += 1;
        }
        // Behind by more than a second (a restart): do not burst to catch up.
        sent = sent.max(due.saturating_sub(shared.rate as u64));
        if let Some(event) = session.next_event()? {
            on_confirm(shared, &mut outstanding, &event);
        }
    }
    let deadline = Instant::now() + LAST_CONFIRMS_WAIT;
    while !outstanding.is_empty() && Instant::now() < deadline {
        if let Some(event) = session.next_event()? {
            on_confirm(shared, &mut outstanding, &event);
        }
    }
    session.close()
}

/// Settles the publishes a `basic.ack` or `basic.nack` covers.
fn on_confirm(shared: &Shared, outstanding: &mut BTreeMap<u64, Option<u64>>, event: &Event) {
    let (tag, multiple, ack) = match event {
        Event::Method {
            method: Method::BasicAck(ack),
            ..
        } => (ack.delivery_tag, ack.multiple, true),
        Event::Method {
            method: Method::BasicNack(nack),
            ..
        } => (nack.delivery_tag, nack.multiple, false),
        _ => return,
    };
    let settled: Vec<u64> = if multiple {
        outstanding.range(..=tag).map(|(t, _)| *t).collect()
    } else {
        vec![tag]
    };
    let mut confirmed = Vec::new();
    for t in settled {
        if let Some(Some(id)) = outstanding.remove(&t) {
            confirmed.push(id);
        }
    }
    if ack {
        shared.ledger.confirmed(&confirmed);
    } else {
        shared.ledger.nacked(confirmed.len() as u64);
    }
}

/// A transactional publisher: batches of 1 to `TX_BATCH_MAX` messages to the checked queues,
/// each batch one `tx.commit`, until the load stops.
pub fn transactional(shared: &Shared, worker: u32) {
    let mut ids = IdSource::new(worker);
    let mut rng = Rng::new(shared.seed ^ u64::from(worker));
    reconnecting(shared, Shared::load_stopped, |shared| {
        transactional_session(shared, worker, &mut ids, &mut rng)
    });
}

fn transactional_session(
    shared: &Shared,
    worker: u32,
    ids: &mut IdSource,
    rng: &mut Rng,
) -> Result<(), ClientError> {
    let mut session = shared.open(&format!("soak transactions {worker}"), 1, PUBLISHER_POLL)?;
    shared.queues.declare(&mut session, 1)?;
    session.rpc(1, Method::TxSelect(TxSelect {}))?;
    let checked = shared.queues.checked.clone();
    while !shared.load_stopped() {
        let count = 1 + rng.next_u64() % TX_BATCH_MAX;
        let mut batch = Vec::new();
        for _ in 0..count {
            let queue = &checked[(rng.next_u64() % checked.len() as u64) as usize];
            let priority = (*queue == shared.queues.priority).then_some(1);
            let id = ids.next_id();
            session.publish(
                1,
                "",
                queue,
                &persistent(priority),
                &body_for(id, shared.size),
            )?;
            batch.push(id);
        }
        shared.ledger.published(count);
        match session.rpc(1, Method::TxCommit(TxCommit {}))? {
            Method::TxCommitOk(_) => shared.ledger.committed(&batch),
            other => {
                return Err(ClientError::Unexpected {
                    expected: "tx.commit-ok",
                    got: other.name(),
                })
            }
        }
        std::thread::sleep(TX_PAUSE);
    }
    session.close()
}
