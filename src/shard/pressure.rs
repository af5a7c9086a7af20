//! Publisher flow control on queued memory. RabbitMQ slows publishers that outrun their queues
//! (credit flow) and blocks them above a memory watermark; without either, a publisher faster
//! than its consumers grows a transient backlog in RAM without bound (hareperf measured a
//! 4-million-message, 1.9 GB backlog in 8 s of 16-byte messages).
//!
//! Each shard adds up what its queues hold in RAM (`QueueMemoryScan`) and raises its flag above
//! `QUEUED_BYTES_HIGH`, lowering it again below half of that. The scan visits every queue, so
//! it runs every housekeeping tick (5 ms) only while it is cheap: with many queues it runs less
//! often, at most `SCAN_SHARE_DIVISOR`-th of the shard's time (100,000 queues take about 5 ms
//! to visit, so a scan every 100 ms), and the flag reacts that much later. While any flag is up,
//! connections that have published wait before reading more from their socket, at most
//! `PUBLISHER_PAUSE_MAX` at a time: a connection that also consumes still gets its acks read,
//! so progress is slowed, never stopped. Stored messages whose bodies are on disk cost only
//! their 32-byte entry here, so a persistent backlog does not trigger it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;
use crate::ids::{QueueId, ShardId};
use crate::queue::Queue;

/// RAM one shard's queues may hold before publishers are slowed.
pub const QUEUED_BYTES_HIGH: usize = 128 << 20;
/// Longest single pause of a publishing connection's reads.
pub const PUBLISHER_PAUSE_MAX: Duration = Duration::from_millis(20);

/// A scan of the queues' memory takes at most this inverse share of a shard's time: the next
/// scan waits this many times as long as the last one took.
pub const SCAN_SHARE_DIVISOR: u32 = 20;

/// What one shard's queues hold in RAM, rescanned as often as `SCAN_SHARE_DIVISOR` allows.
#[derive(Debug)]
pub struct QueueMemoryScan {
    queued_bytes: usize,
    next_scan: Instant,
}

impl Default for QueueMemoryScan {
    fn default() -> Self {
        QueueMemoryScan {
            queued_bytes: 0,
            next_scan: Instant::now(),
        }
    }
}

impl QueueMemoryScan {
    /// The queues' RAM as of the last scan, scanning again first if it is due.
    pub fn queued_bytes(&mut self, queues: &FastMap<QueueId, Queue>) -> usize {
        let started = Instant::now();
        if started >= self.next_scan {
            self.queued_bytes = queues.values().map(Queue::ram_bytes).sum();
            let took = started.elapsed();
            self.next_scan = started + took + took * SCAN_SHARE_DIVISOR;
        }
        self.queued_bytes
    }
}

/// The shards' flags, shared by every shard.
#[derive(Debug)]
pub struct Pressure {
    over: Vec<AtomicBool>,
}

impl Pressure {
    pub fn new(shard_count: usize) -> Pressure {
        Pressure {
            over: (0..shard_count).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Records what `shard`'s queues hold, with hysteresis.
    pub fn update(&self, shard: ShardId, queued_bytes: usize) {
        let flag = &self.over[shard.index()];
        let was_over = flag.load(Ordering::Relaxed);
        let over = if was_over {
            queued_bytes > QUEUED_BYTES_HIGH / 2
        } else {
            queued_bytes > QUEUED_BYTES_HIGH
        };
        if over != was_over {
            flag.store(over, Ordering::Relaxed);
            tracing::info!(shard = %shard, queued_bytes, over, "queue memory pressure changed");
        }
    }

    /// True while some shard's queues are above the mark.
    pub fn any(&self) -> bool {
        self.over.iter().any(|flag| flag.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raised_above_the_mark_and_lowered_below_half() {
        let pressure = Pressure::new(2);
        pressure.update(ShardId(1), QUEUED_BYTES_HIGH);
        assert!(!pressure.any());
        pressure.update(ShardId(1), QUEUED_BYTES_HIGH + 1);
        assert!(pressure.any());
        pressure.update(ShardId(1), QUEUED_BYTES_HIGH / 2 + 1);
        assert!(pressure.any(), "hysteresis");
        pressure.update(ShardId(1), QUEUED_BYTES_HIGH / 2);
        assert!(!pressure.any());
    }
}
