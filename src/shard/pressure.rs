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
//!
//! A second flag per shard says its log's write buffer is over half full: the disk is behind
//! what publishers send, persistent or paged. It is raised as soon as an append crosses the
//! mark and lowered on the housekeeping tick, and publishers wait for it without a time
//! limit: the disk drains the buffer whatever clients do, and a publisher let through every
//! 20 ms outran a slow disk by enough to fill the buffer, after which paged messages stay in
//! RAM and persistent ones are nacked.
//!
//! The mesh between a publisher's shard and a queue's owner holds work too: up to 1024
//! batches per channel, which at 64 KiB a message is far more than the log's buffer. So the
//! body bytes of publishes sent to each shard and not yet handled there are counted as well
//! (`Mesh::send` adds, the owner's inbox subtracts), and publishers also wait, without a time
//! limit, while a shard has more than `PUBLISH_BYTES_IN_FLIGHT_HIGH` coming.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fast_map::FastMap;
use crate::ids::{QueueId, ShardId};
use crate::queue::Queue;

/// RAM one shard's queues may hold before publishers are slowed.
pub const QUEUED_BYTES_HIGH: usize = 128 << 20;
/// Body bytes of publishes on their way to one shard above which publishers wait.
pub const PUBLISH_BYTES_IN_FLIGHT_HIGH: usize = 8 << 20;
/// Longest single pause of a publishing connection's reads for queue memory.
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
    disk_behind: Vec<AtomicBool>,
    /// Body bytes of publishes sent to each shard and not yet handled there.
    in_flight: Vec<AtomicUsize>,
}

impl Pressure {
    pub fn new(shard_count: usize) -> Pressure {
        Pressure {
            over: (0..shard_count).map(|_| AtomicBool::new(false)).collect(),
            disk_behind: (0..shard_count).map(|_| AtomicBool::new(false)).collect(),
            in_flight: (0..shard_count).map(|_| AtomicUsize::new(0)).collect(),
        }
    }

    /// A publish with `bytes` of body was sent to `target`.
    pub fn publish_sent(&self, target: ShardId, bytes: usize) {
        self.in_flight[target.index()].fetch_add(bytes, Ordering::Relaxed);
    }

    /// `target` handled a publish with `bytes` of body.
    pub fn publish_handled(&self, target: ShardId, bytes: usize) {
        self.in_flight[target.index()].fetch_sub(bytes, Ordering::Relaxed);
    }

    /// True while some shard has more publishes coming than it should.
    pub fn publishes_behind(&self) -> bool {
        self.in_flight
            .iter()
            .any(|bytes| bytes.load(Ordering::Relaxed) > PUBLISH_BYTES_IN_FLIGHT_HIGH)
    }

    /// Records whether `shard`'s log write buffer is over half full.
    pub fn set_disk_behind(&self, shard: ShardId, behind: bool) {
        let flag = &self.disk_behind[shard.index()];
        if flag.load(Ordering::Relaxed) != behind {
            flag.store(behind, Ordering::Relaxed);
        }
    }

    /// True while some shard's log is behind its appends.
    pub fn disk_behind(&self) -> bool {
        self.disk_behind
            .iter()
            .any(|flag| flag.load(Ordering::Relaxed))
    }

    /// True while some shard's queues are above the mark.
    pub fn queues_over(&self) -> bool {
        self.over.iter().any(|flag| flag.load(Ordering::Relaxed))
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

    /// True while publishers should wait without a time limit: some shard's log, or the
    /// publishes on their way to it, are behind.
    pub fn must_wait(&self) -> bool {
        self.disk_behind() || self.publishes_behind()
    }

    /// True while publishers should wait: some shard's queues, log or inbox are behind.
    pub fn any(&self) -> bool {
        self.queues_over() || self.must_wait()
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

    #[test]
    fn a_log_behind_holds_publishers_apart_from_queue_memory() {
        let pressure = Pressure::new(2);
        pressure.set_disk_behind(ShardId(0), true);
        assert!(pressure.any() && pressure.disk_behind() && !pressure.queues_over());
        pressure.set_disk_behind(ShardId(0), false);
        assert!(!pressure.any());
    }

    #[test]
    fn publishes_in_flight_to_a_shard_hold_publishers_above_the_mark() {
        let pressure = Pressure::new(2);
        pressure.publish_sent(ShardId(1), PUBLISH_BYTES_IN_FLIGHT_HIGH);
        assert!(!pressure.any());
        pressure.publish_sent(ShardId(1), 1);
        assert!(pressure.must_wait() && pressure.publishes_behind());
        pressure.publish_handled(ShardId(1), 1);
        assert!(!pressure.any());
    }
}
