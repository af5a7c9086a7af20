//! Publisher flow control on queued memory. RabbitMQ slows publishers that outrun their queues
//! (credit flow) and blocks them above a memory watermark; without either, a publisher faster
//! than its consumers grows a transient backlog in RAM without bound (hareperf measured a
//! 4-million-message, 1.9 GB backlog in 8 s of 16-byte messages).
//!
//! Every housekeeping tick (5 ms) each shard adds up what its queues hold in RAM and raises its
//! flag above `QUEUED_BYTES_HIGH`, lowering it again below half of that. While any flag is up,
//! connections that have published wait before reading more from their socket, at most
//! `PUBLISHER_PAUSE_MAX` at a time: a connection that also consumes still gets its acks read,
//! so progress is slowed, never stopped. Stored messages whose bodies are on disk cost only
//! their 32-byte entry here, so a persistent backlog does not trigger it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::ids::ShardId;

/// RAM one shard's queues may hold before publishers are slowed.
pub const QUEUED_BYTES_HIGH: usize = 128 << 20;
/// Longest single pause of a publishing connection's reads.
pub const PUBLISHER_PAUSE_MAX: Duration = Duration::from_millis(20);

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
