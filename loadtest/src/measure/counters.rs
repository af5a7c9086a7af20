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
    pub connections_opened: AtomicU64,
    /// Ready messages over all the run's queues, from the last poll; `DEPTH_UNKNOWN` if none.
    pub queue_depth: AtomicU64,
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
            connections_opened: AtomicU64::new(0),
            queue_depth: AtomicU64::new(DEPTH_UNKNOWN),
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
    pub connections_opened: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        if n > 0 {
            counter.fetch_add(n, Ordering::Relaxed);
        }
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
            connections_opened: get(&self.connections_opened),
        }
    }

    /// The last polled queue depth, if known.
    pub fn depth(&self) -> Option<u64> {
        let depth = self.queue_depth.load(Ordering::Relaxed);
        (depth != DEPTH_UNKNOWN).then_some(depth)
    }
}
