//! `Counters`: the run-wide totals every worker adds to and the sampler reads once a second.
//!
//! Workers add per batch (one write, one read buffer), never per message, so the shared cache
//! lines are touched a few thousand times a second at most.

use std::sync::atomic::{AtomicU64, Ordering};

/// Marks `queue_depth` as not (yet) known.
pub const DEPTH_UNKNOWN: u64 = u64::MAX;

/// Run-wide totals, all monotonic except `queue_depth` (the last polled value).
#[derive(Debug)]
pub struct Counters {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub returned: AtomicU64,
    /// Every basic.deliver received, including ones a consumer then refused or held.
    pub delivered: AtomicU64,
    /// Deliveries a consumer accepted (acked, or received with auto-ack).
    pub accepted: AtomicU64,
    /// Accepted deliveries of an id the same consumer had accepted before. Ids accepted by two
    /// different consumers are only found when their sets are merged at the end.
    pub duplicates: AtomicU64,
    pub connections_opened: AtomicU64,
    /// Metadata changes the broker answered (declare-ok, bind-ok, delete-ok of the declare
    /// scenario), added to one by one: each is a round trip anyway.
    pub metadata_changes: AtomicU64,
    /// Ready messages over all the run's queues, from the last poll; `DEPTH_UNKNOWN` if none.
    pub queue_depth: AtomicU64,
    /// Nanoseconds since the run's epoch when a consumer last accepted a message; 0 if none
    /// has. Written before `accepted` (see `add_accepted`), so whoever sees a count sees a time
    /// at least as late as the batch that reached it.
    pub last_accepted_ns: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            returned: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            connections_opened: AtomicU64::new(0),
            metadata_changes: AtomicU64::new(0),
            queue_depth: AtomicU64::new(DEPTH_UNKNOWN),
            last_accepted_ns: AtomicU64::new(0),
        }
    }
}

/// One reading of every counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    pub published: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub returned: u64,
    pub delivered: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub connections_opened: u64,
    pub metadata_changes: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Adds `n` accepted messages, accepted at `at_ns` (since the run's epoch).
    pub fn add_accepted(&self, n: u64, at_ns: u64) {
        if n == 0 {
            return;
        }
        // SeqCst on both: a reader that loads `accepted` and then `last_accepted_ns` must see
        // the time of the batch that brought the count to what it read (or a later one).
        self.last_accepted_ns.fetch_max(at_ns, Ordering::SeqCst);
        self.accepted.fetch_add(n, Ordering::SeqCst);
    }

    /// The accepted count and the time of the last acceptance (ns since the epoch, `None`
    /// before the first), read in the order that keeps them consistent.
    pub fn accepted_at(&self) -> (u64, Option<u64>) {
        let accepted = self.accepted.load(Ordering::SeqCst);
        let at_ns = self.last_accepted_ns.load(Ordering::SeqCst);
        (accepted, (at_ns > 0).then_some(at_ns))
    }

    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            published: get(&self.published),
            confirmed: get(&self.confirmed),
            nacked: get(&self.nacked),
            returned: get(&self.returned),
            delivered: get(&self.delivered),
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            connections_opened: get(&self.connections_opened),
            metadata_changes: get(&self.metadata_changes),
        }
    }

    /// The last polled queue depth, if known.
    pub fn depth(&self) -> Option<u64> {
        let depth = self.queue_depth.load(Ordering::Relaxed);
        (depth != DEPTH_UNKNOWN).then_some(depth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_count_and_time_move_together() {
        let counters = Counters::default();
        assert_eq!(counters.accepted_at(), (0, None));
        counters.add_accepted(0, 99);
        assert_eq!(
            counters.accepted_at(),
            (0, None),
            "an empty batch changes nothing"
        );
        counters.add_accepted(10, 2_000);
        counters.add_accepted(5, 1_000);
        assert_eq!(
            counters.accepted_at(),
            (15, Some(2_000)),
            "the time only moves forward"
        );
        assert_eq!(counters.snapshot().accepted, 15);
    }
}
