//! Reads the bodies of stored messages back from the shard's log before consumers need them
//! (see `queue::residency`). Dispatch asks for a fetch when a queue's resident head runs low;
//! this task reads each plan with coalesced O_DIRECT reads, decodes the records and hands the
//! bodies to the queue, which then dispatches them. Reading is the only await on the way from
//! a backlog to a consumer, and it happens off the dispatch path.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::ids::{MessageId, QueueId};
use crate::queue::message::Message;
use crate::queue::residency::FetchPlan;
use crate::shard::damaged::{self, Damaged};
use crate::shard::persistence::{PersistenceError, ReadBack};
use crate::shard::Shard;

/// How long a basic.get waits for the head's body before it gives up with 541
/// INTERNAL_ERROR: only a failing disk (or consumers taking every fetched head first for that
/// long) gets there.
pub const GET_FETCH_WAIT_MAX: std::time::Duration = std::time::Duration::from_secs(30);

/// Pause after a read that failed for some of a plan's messages, before the queue may ask
/// again, so a bad disk is not hammered. Damaged records do not pause anything: their
/// messages are dropped (`shard::damaged`).
const FAILED_READ_PAUSE: Duration = Duration::from_millis(100);

/// Asks for the queue's next fetch plan, if it wants one (`force`: a basic.get waits, even
/// with no consumer). A no-op while a fetch for the queue is in flight.
pub fn request(shard: &Shard, queue: QueueId, force: bool) {
    let plan = match shard.queues.borrow_mut().get_mut(&queue) {
        Some(q) => q.fetch_plan(force),
        None => None,
    };
    if let Some(plan) = plan {
        shard.fetch_requests.borrow_mut().push_back((queue, plan));
        shard.fetch_wanted.notify();
    }
}

/// Serves fetch plans, one at a time, forever.
pub async fn run_fetcher(shard: Rc<Shard>) {
    loop {
        let next = shard.fetch_requests.borrow_mut().pop_front();
        let Some((queue, plan)) = next else {
            shard.fetch_wanted.wait().await;
            continue;
        };
        fetch(&shard, queue, plan).await;
        shard.fetch_done.notify_all();
    }
}

async fn fetch(shard: &Rc<Shard>, queue: QueueId, plan: FetchPlan) {
    let reads = shard.persistence().read_back(&plan.locations).await;
    let sorted = SortedReads::of(plan, reads);
    if !sorted.damaged.is_empty() {
        damaged::drop_damaged(shard, queue, &sorted.damaged);
    }
    if let Some(error) = sorted.unavailable {
        // Those messages stay queued (and on disk); the next dispatch or get asks again.
        tracing::error!(%error, shard = %shard.id, queue = queue.0, "cannot read stored messages back");
        glommio::timer::sleep(FAILED_READ_PAUSE).await;
    }
    if let Some(q) = shard.queues.borrow_mut().get_mut(&queue) {
        q.fetched(sorted.loaded);
    }
    shard.mark_dirty(queue);
}

/// A fetch plan's reads, by outcome.
struct SortedReads {
    loaded: Vec<(MessageId, Arc<Message>)>,
    damaged: Vec<Damaged>,
    /// The first error of the messages not readable now.
    unavailable: Option<PersistenceError>,
}

impl SortedReads {
    fn of(plan: FetchPlan, reads: Vec<ReadBack>) -> SortedReads {
        let mut sorted = SortedReads {
            loaded: Vec::with_capacity(reads.len()),
            damaged: Vec::new(),
            unavailable: None,
        };
        let planned = plan.ids.into_iter().zip(plan.locations);
        for ((id, location), read) in planned.zip(reads) {
            match read {
                ReadBack::Message(message) => sorted.loaded.push((id, Arc::new(message))),
                ReadBack::Damaged(error) => sorted.damaged.push(Damaged {
                    id,
                    location,
                    error,
                }),
                ReadBack::Unavailable(error) => {
                    sorted.unavailable.get_or_insert(error);
                }
            }
        }
        sorted
    }
}
