//! The shard's queue timers: message deadlines (`x-message-ttl`, `expiration`) and queue
//! expiry (`x-expires`). One task sleeps until the earliest timer of any queue this shard
//! owns; each queue has at most one timer that matters (`Queue::timer_scheduled`, its
//! earliest), so a queue with a million deadlines costs one heap entry, not a million.
//! Stale entries (a queue that was used since, or deleted) fire harmlessly.

use std::cmp::Reverse;
use std::rc::Rc;
use std::time::Duration;

use crate::ids::QueueId;
use crate::queue::expiry::now_ms;
use crate::queue::Queue;
use crate::shard::message::DeleteConditions;
use crate::shard::queues;
use crate::shard::Shard;

/// Makes sure the shard's timer fires for the queue's next deadline.
pub fn schedule(shard: &Shard, queue: &mut Queue) {
    let Some(next) = queue.next_timer() else {
        return;
    };
    if queue
        .timer_scheduled
        .is_some_and(|scheduled| scheduled <= next)
    {
        return;
    }
    queue.timer_scheduled = Some(next);
    shard.timers.borrow_mut().push(Reverse((next, queue.id)));
    shard.timers_changed.notify();
}

/// `schedule` for a queue by id.
pub fn reschedule(shard: &Shard, id: QueueId) {
    if let Some(queue) = shard.queues.borrow_mut().get_mut(&id) {
        schedule(shard, queue);
    }
}

/// Fires due timers, forever.
pub async fn run_timers(shard: Rc<Shard>) {
    loop {
        let next = shard.timers.borrow().peek().map(|Reverse((at, _))| *at);
        let Some(next) = next else {
            shard.timers_changed.wait().await;
            continue;
        };
        let now = now_ms();
        if next > now {
            let sleep = glommio::timer::sleep(Duration::from_millis(next - now));
            futures_lite::future::or(sleep, shard.timers_changed.wait()).await;
            continue;
        }
        let mut due = Vec::new();
        {
            let mut timers = shard.timers.borrow_mut();
            while let Some(Reverse((at, id))) = timers.peek().copied() {
                if at > now {
                    break;
                }
                timers.pop();
                due.push(id);
            }
        }
        due.sort_unstable();
        due.dedup();
        for id in due {
            fire(&shard, id, now);
        }
        glommio::yield_if_needed().await;
    }
}

/// Expires the queue's due messages, or the queue itself if it stayed unused.
fn fire(shard: &Rc<Shard>, id: QueueId, now: u64) {
    let unused_vhost = {
        let mut all = shard.queues.borrow_mut();
        let Some(queue) = all.get_mut(&id) else {
            return;
        };
        if queue.timer_scheduled.is_some_and(|at| at <= now) {
            queue.timer_scheduled = None;
        }
        queue.expire(now);
        if let Some(plan) = queue.read_ahead_plan(now) {
            shard.fetch_requests.borrow_mut().push_back((id, plan));
            shard.fetch_wanted.notify();
        }
        queue
            .expires_at()
            .is_some_and(|at| at <= now)
            .then(|| queue.vhost.clone())
    };
    if let Some(vhost) = unused_vhost {
        tracing::debug!(shard = %shard.id, queue = id.0, "queue expired (x-expires)");
        queues::delete(shard, id, None, DeleteConditions::NONE, vhost);
        return;
    }
    queues::finish_leaving(shard, id);
    shard.mark_dirty(id);
    reschedule(shard, id);
}
