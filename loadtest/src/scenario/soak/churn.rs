//! The soak's metadata churn and dead-letter consumer, on one connection: channel 1 declares a
//! durable queue, publishes a few persistent messages to it with confirms and deletes it,
//! again and again; channel 2 consumes (no-ack) the dead-letter queue that the TTL queue's
//! expired messages land in. Neither queue is checked for loss (see `topology.rs`).
//!
//! A kill between a churned queue's declare and its delete leaves the queue behind with its
//! messages, and a live message pins its log segment and every later one (docs/ARCHITECTURE.md,
//! "Acknowledgements and settle records", segment GC): the log would only grow, and with it
//! every restart's replay. So the churn remembers the queue it is working on and deletes it on
//! its next connection (and `finale` at the end).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hare_protocol::{BasicConsume, ConfirmSelect, FieldTable, Method, QueueDelete};

use crate::client::topology::short;
use crate::client::ClientError;

use super::ledger::{body_for, IdSource};
use super::publishers::persistent;
use super::session::{Event, Session};
use super::shared::{reconnecting, Shared};
use super::topology::declare_durable;

/// Messages published to each churned queue before it is deleted.
const CHURN_MESSAGES: u64 = 3;
/// Pause between two churned queues.
const CHURN_PAUSE: Duration = Duration::from_millis(100);
/// How long the churn waits for a frame.
const CHURN_POLL: Duration = Duration::from_millis(20);
/// How long the confirms of a churned queue's messages may take.
const CONFIRM_WAIT: Duration = Duration::from_secs(10);

/// Churns queues until the load stops.
pub fn churning(shared: &Shared, worker: u32) {
    let mut ids = IdSource::new(worker);
    let mut serial = 0u64;
    reconnecting(shared, Shared::load_stopped, |shared| {
        churning_session(shared, worker, &mut ids, &mut serial)
    });
}

/// Deletes `queue` on channel 1.
pub fn delete_queue(session: &mut Session, queue: &str) -> Result<(), ClientError> {
    session.rpc(
        1,
        Method::QueueDelete(QueueDelete {
            queue: short(queue)?,
            ..Default::default()
        }),
    )?;
    Ok(())
}

/// Deletes the churned queues a failed session left behind.
pub fn delete_leftovers(shared: &Shared, session: &mut Session) -> Result<(), ClientError> {
    for queue in shared.churn_leftovers() {
        delete_queue(session, &queue)?;
        shared.churn_done(&queue);
    }
    Ok(())
}

fn churning_session(
    shared: &Shared,
    worker: u32,
    ids: &mut IdSource,
    serial: &mut u64,
) -> Result<(), ClientError> {
    let mut session = shared.open(&format!("soak churn {worker}"), 2, CHURN_POLL)?;
    shared.queues.declare(&mut session, 1)?;
    delete_leftovers(shared, &mut session)?;
    session.rpc(1, Method::ConfirmSelect(ConfirmSelect { nowait: false }))?;
    session.rpc(
        2,
        Method::BasicConsume(BasicConsume {
            queue: short(&shared.queues.dead)?,
            consumer_tag: short("soak-dead")?,
            no_ack: true,
            ..Default::default()
        }),
    )?;
    let mut next_tag = 1u64;
    while !shared.load_stopped() {
        *serial += 1;
        let queue = format!("{}-{serial}", shared.queues.churn_prefix);
        shared.churn_started(&queue);
        declare_durable(&mut session, 1, &queue, FieldTable::new())?;
        for _ in 0..CHURN_MESSAGES {
            let body = body_for(ids.next_id(), shared.size);
            session.publish(1, "", &queue, &persistent(None), &body)?;
            shared.ledger.published(1);
        }
        let last = next_tag + CHURN_MESSAGES - 1;
        next_tag += CHURN_MESSAGES;
        wait_confirms(shared, &mut session, last)?;
        delete_queue(&mut session, &queue)?;
        shared.churn_done(&queue);
        shared.churned_queues.fetch_add(1, Ordering::Relaxed);
        let pause = Instant::now() + CHURN_PAUSE;
        while Instant::now() < pause {
            if let Some(event) = session.next_event()? {
                count_dead(shared, &event);
            }
        }
    }
    session.close()
}

/// Reads until the confirm of tag `last` (the churned queues' messages are not checked, so a
/// nack is as good as an ack here), counting dead-lettered deliveries on the way.
fn wait_confirms(shared: &Shared, session: &mut Session, last: u64) -> Result<(), ClientError> {
    let deadline = Instant::now() + CONFIRM_WAIT;
    while Instant::now() < deadline {
        match session.next_event()? {
            Some(Event::Method {
                channel: 1,
                method: Method::BasicAck(a),
            }) if a.delivery_tag >= last => return Ok(()),
            Some(Event::Method {
                channel: 1,
                method: Method::BasicNack(n),
            }) if n.delivery_tag >= last => return Ok(()),
            Some(event) => count_dead(shared, &event),
            None => {}
        }
    }
    Err(ClientError::Timeout {
        seconds: CONFIRM_WAIT.as_secs(),
        waiting_for: "churn confirms",
    })
}

fn count_dead(shared: &Shared, event: &Event) {
    if let Event::Deliver { channel: 2, .. } = event {
        shared.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
}
