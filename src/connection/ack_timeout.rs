//! The consumer acknowledgement timeout (RabbitMQ's `consumer_timeout`): a channel whose
//! oldest unacknowledged delivery has been out longer than its timeout is closed with 406, and
//! its unacked messages are requeued as for any channel close.
//!
//! As in RabbitMQ only the oldest delivery of each channel is looked at: tags increase with
//! delivery time and the unacked map is ordered by tag, so it is the first entry, and a check
//! costs O(channels), not O(deliveries). One task per connection sleeps until the earliest
//! such deadline; a delivery whose deadline is earlier than the one the task sleeps towards (a
//! channel's first unacked delivery, or a queue with a shorter `x-consumer-timeout`) wakes it.
//! So the channel closes within a few milliseconds of the deadline, where RabbitMQ checks once
//! a minute, and an idle connection costs no wake-ups.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::connection::{raise, ConnectionShared};
use crate::exception::Exception;
use crate::shard::message::AckDeadline;
use crate::shard::notify::Notify;
use crate::shard::Shard;

/// The connection's side of the timer task: when it will look next, and how to wake it sooner.
#[derive(Debug, Default)]
pub struct AckTimer {
    /// The deadline the task sleeps towards; None while it waits for a first delivery.
    next_check: Cell<Option<Instant>>,
    wake: Notify,
}

impl AckTimer {
    /// A delivery with `deadline` was recorded: wake the task if it would look too late.
    pub fn delivered(&self, deadline: Option<AckDeadline>) {
        let Some(deadline) = deadline else {
            return;
        };
        if self.next_check.get().is_none_or(|next| deadline.at < next) {
            self.next_check.set(Some(deadline.at));
            self.wake.notify();
        }
    }

    /// Deliveries went back into the unacked map (tx.rollback): look again.
    pub fn recheck(&self) {
        self.wake.notify();
    }
}

/// RabbitMQ 3.13's text (`rabbit_channel:handle_consumer_timed_out`).
pub fn timed_out(channel: u16, timeout_ms: u64) -> Exception {
    Exception::precondition_failed(format!(
        "delivery acknowledgement on channel {channel} timed out. Timeout value used: \
         {timeout_ms} ms. This timeout value can be configured, see consumers doc guide to \
         learn more"
    ))
}

/// Runs for the life of the connection (dropped with it).
pub async fn run(shard: Rc<Shard>, connection: Rc<ConnectionShared>) {
    loop {
        let next = check(&shard, &connection, Instant::now());
        connection.ack_timer.next_check.set(next);
        match next {
            Some(at) => {
                // A millisecond past the deadline, so the delivery has timed out when we look.
                let wait = at.saturating_duration_since(Instant::now()) + Duration::from_millis(1);
                let sleep = glommio::timer::sleep(wait);
                futures_lite::future::or(sleep, connection.ack_timer.wake.wait()).await;
            }
            None => connection.ack_timer.wake.wait().await,
        }
        if connection.output.is_finished() {
            return;
        }
    }
}

/// Closes the channels whose oldest delivery timed out; returns the earliest deadline left.
fn check(shard: &Rc<Shard>, connection: &Rc<ConnectionShared>, now: Instant) -> Option<Instant> {
    if connection.is_closing() {
        return None;
    }
    let mut timed_out_channels = Vec::new();
    let mut next: Option<Instant> = None;
    {
        let state = connection.state.borrow();
        for channel in state.channels.values().filter(|c| c.is_open()) {
            let Some(deadline) = channel.oldest_ack_deadline() else {
                continue;
            };
            // RabbitMQ: timed out once strictly more than the timeout has passed.
            if deadline.at < now {
                timed_out_channels.push((channel.id.0, deadline.timeout_ms));
            } else {
                next = Some(next.map_or(deadline.at, |n| n.min(deadline.at)));
            }
        }
    }
    for (channel, timeout_ms) in timed_out_channels {
        tracing::warn!(connection = %connection.id, channel, timeout_ms, "delivery acknowledgement timed out");
        raise(shard, connection, channel, timed_out(channel, timeout_ms));
    }
    next
}
