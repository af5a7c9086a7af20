//! The statistics collector on shard 0: asks every shard for its `ShardStats` over the mesh
//! (`ShardMessage::Stats`), keeps the last two periodic samples for rates, and hands API
//! requests a fresh snapshot for counts.
//!
//! Rates (`*_details.rate`) are the change of a counter between the last two samples divided
//! by the time between them, as RabbitMQ reports them (its samples are every 5 s; ours every
//! `Config::stats_interval`). An object that appeared between the samples counts from zero.
//! A sample keeps only counters, so its size grows with the objects, not with the traffic.
//!
//! The node-wide totals of each sample are also kept for an hour (`History`), so that the
//! overview can answer RabbitMQ's `msg_rates_age`/`lengths_age` with `samples` and the web UI
//! draws its charts from the first view instead of from the moment it was opened.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::fast_map::FastMap;
use crate::ids::{ConnectionId, QueueId, ShardId};
use crate::protocol::ShortStr;
use crate::queue::counters::QueueCounters;
use crate::shard::message::{Reply, ShardMessage};
use crate::shard::stats::{
    ChannelCounters, ConnectionStats, ConsumerStats, ExchangeCounters, QueueStats, ShardStats,
};
use crate::shard::Shard;

/// Every shard's statistics, gathered at about the same moment.
pub struct Snapshot {
    pub shards: Vec<ShardStats>,
}

impl Snapshot {
    pub fn queues(&self) -> impl Iterator<Item = &QueueStats> {
        self.shards.iter().flat_map(|shard| shard.queues.iter())
    }

    pub fn connections(&self) -> impl Iterator<Item = &ConnectionStats> {
        self.shards
            .iter()
            .flat_map(|shard| shard.connections.iter())
    }

    pub fn consumers(&self) -> impl Iterator<Item = &ConsumerStats> {
        self.shards.iter().flat_map(|shard| shard.consumers.iter())
    }

    /// Each exchange's counters summed over the shards that routed through it.
    pub fn exchange_counters(&self) -> HashMap<(ShortStr, ShortStr), ExchangeCounters> {
        let mut sums: HashMap<(ShortStr, ShortStr), ExchangeCounters> = HashMap::new();
        for exchange in self.shards.iter().flat_map(|shard| shard.exchanges.iter()) {
            let sum = sums
                .entry((exchange.vhost.clone(), exchange.name.clone()))
                .or_default();
            sum.publish_in += exchange.counters.publish_in;
            sum.publish_out += exchange.counters.publish_out;
        }
        sums
    }

    /// Connections by id, to name a channel's or consumer's connection.
    pub fn connections_by_id(&self) -> FastMap<ConnectionId, &ConnectionStats> {
        self.connections()
            .map(|connection| (connection.id, connection))
            .collect()
    }

    /// The sum of every channel's counters (the overview's message_stats).
    pub fn channel_totals(&self) -> ChannelCounters {
        let mut total = ChannelCounters::default();
        for channel in self.connections().flat_map(|c| c.channels.iter()) {
            add_channel(&mut total, &channel.counters);
        }
        total
    }
}

fn add_channel(total: &mut ChannelCounters, counters: &ChannelCounters) {
    total.publish += counters.publish;
    total.confirm += counters.confirm;
    total.deliver += counters.deliver;
    total.deliver_no_ack += counters.deliver_no_ack;
    total.get += counters.get;
    total.get_no_ack += counters.get_no_ack;
    total.get_empty += counters.get_empty;
    total.redeliver += counters.redeliver;
    total.ack += counters.ack;
    total.return_unroutable += counters.return_unroutable;
    total.drop_unroutable += counters.drop_unroutable;
}

/// Asks every shard (this one included) for its statistics; the requests are all in flight
/// at once.
pub async fn gather(shard: &Shard) -> Snapshot {
    let mut waiting = Vec::with_capacity(shard.shard_count());
    for index in 0..shard.shard_count() {
        let target = ShardId(u16::try_from(index).expect("shard count fits u16"));
        let pending = shard.pending.borrow_mut().register(shard.id);
        shard.send(
            target,
            ShardMessage::Stats {
                reply_to: pending.reply_to,
            },
        );
        waiting.push(pending);
    }
    let mut shards = Vec::with_capacity(waiting.len());
    for pending in waiting {
        match pending.wait().await {
            Reply::Stats(stats) => shards.push(*stats),
            _ => unreachable!("a stats request is answered with stats"),
        }
    }
    Snapshot { shards }
}

/// Counters of one moment, for rates.
#[derive(Default)]
pub struct Sample {
    pub at: Option<Instant>,
    pub queues: FastMap<QueueId, QueueSample>,
    pub exchanges: HashMap<(ShortStr, ShortStr), ExchangeCounters>,
    /// Received and sent octets.
    pub connections: FastMap<ConnectionId, (u64, u64)>,
    pub channels: FastMap<(ConnectionId, u16), ChannelCounters>,
    pub channel_totals: ChannelCounters,
    pub queue_totals: QueueSample,
    /// Messages dead-lettered out of every queue.
    pub dead_lettered: u64,
    pub connections_created: u64,
    pub connections_closed: u64,
    pub queue_churn: crate::shard::stats::QueueChurn,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct QueueSample {
    pub counters: QueueCounters,
    pub ready: u64,
    pub unacked: u64,
}

impl Sample {
    fn of(snapshot: &Snapshot, at: Instant) -> Sample {
        let mut sample = Sample {
            at: Some(at),
            exchanges: snapshot.exchange_counters(),
            channel_totals: snapshot.channel_totals(),
            ..Sample::default()
        };
        for queue in snapshot.queues() {
            let entry = QueueSample {
                counters: queue.counters,
                ready: queue.ready_count,
                unacked: queue.unacked_count,
            };
            sample.queue_totals.ready += entry.ready;
            sample.dead_lettered += queue.counters.dead_lettered;
            sample.queue_totals.unacked += entry.unacked;
            sample.queues.insert(queue.id, entry);
        }
        for connection in snapshot.connections() {
            sample
                .connections
                .insert(connection.id, (connection.recv_oct, connection.send_oct));
            for channel in &connection.channels {
                sample
                    .channels
                    .insert((connection.id, channel.number), channel.counters);
            }
        }
        for shard in &snapshot.shards {
            sample.connections_created += shard.connections_created;
            sample.connections_closed += shard.connections_closed;
            sample.queue_churn.declared += shard.queue_churn.declared;
            sample.queue_churn.created += shard.queue_churn.created;
            sample.queue_churn.deleted += shard.queue_churn.deleted;
        }
        sample
    }
}

/// The last two periodic samples, and an hour of node-wide totals.
#[derive(Default)]
pub struct Collector {
    samples: RefCell<(Rc<Sample>, Rc<Sample>)>,
    history: RefCell<VecDeque<Point>>,
}

/// How long node-wide totals are kept (RabbitMQ's default for its overview samples).
pub const HISTORY_MS: u64 = 60 * 60 * 1000;

/// Node-wide totals at one moment (a few dozen bytes: an hour at 5 s is about 60 KiB).
#[derive(Debug, Clone, Copy, Default)]
pub struct Point {
    /// Wall-clock milliseconds, as RabbitMQ's `timestamp`.
    pub timestamp: u64,
    pub channel_totals: ChannelCounters,
    pub dead_lettered: u64,
    pub ready: u64,
    pub unacked: u64,
}

/// Milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

/// Two samples to take rates between: `latest` and the one before it.
pub struct Rates {
    pub previous: Rc<Sample>,
    pub latest: Rc<Sample>,
    seconds: f64,
}

impl Collector {
    /// Records a periodic sample, dropping the oldest.
    pub fn record(&self, snapshot: &Snapshot, at: Instant) {
        let sample = Rc::new(Sample::of(snapshot, at));
        self.remember(Point {
            timestamp: wall_clock_ms(),
            channel_totals: sample.channel_totals,
            dead_lettered: sample.dead_lettered,
            ready: sample.queue_totals.ready,
            unacked: sample.queue_totals.unacked,
        });
        let mut samples = self.samples.borrow_mut();
        let latest = std::mem::replace(&mut samples.1, sample);
        samples.0 = latest;
    }

    fn remember(&self, point: Point) {
        let mut history = self.history.borrow_mut();
        while history
            .front()
            .is_some_and(|oldest| point.timestamp.saturating_sub(oldest.timestamp) > HISTORY_MS)
        {
            history.pop_front();
        }
        history.push_back(point);
    }

    /// The totals of the last `age_ms`, newest first, at most one per `increment_ms` (the
    /// newest of each step), as RabbitMQ's `samples` lists them.
    pub fn history(&self, age_ms: u64, increment_ms: u64) -> Vec<Point> {
        let history = self.history.borrow();
        let Some(newest) = history.back() else {
            return Vec::new();
        };
        let since = newest.timestamp.saturating_sub(age_ms);
        let increment = increment_ms.max(1);
        let mut picked: Vec<Point> = Vec::new();
        let mut last_step = None;
        for point in history.iter().rev() {
            if point.timestamp < since {
                break;
            }
            // The nearest whole step back from the newest: samples drift by a few
            // milliseconds, and rounding keeps a sample 4,998 ms old in step 1, not 0.
            let back = newest.timestamp - point.timestamp;
            let step = (back + increment / 2) / increment;
            if last_step != Some(step) {
                picked.push(*point);
                last_step = Some(step);
            }
        }
        picked
    }

    pub fn rates(&self) -> Rates {
        let samples = self.samples.borrow();
        let seconds = match (samples.0.at, samples.1.at) {
            (Some(previous), Some(latest)) => latest.duration_since(previous).as_secs_f64(),
            _ => 0.0,
        };
        Rates {
            previous: samples.0.clone(),
            latest: samples.1.clone(),
            seconds,
        }
    }
}

impl Rates {
    /// Per second between the samples of what `read` finds in each (missing: zero).
    pub fn rate(&self, read: impl Fn(&Sample) -> Option<u64>) -> f64 {
        if self.seconds <= 0.0 {
            return 0.0;
        }
        let latest = read(&self.latest).unwrap_or(0);
        let previous = read(&self.previous).unwrap_or(0);
        // A gauge (queue depth) may fall: its rate is negative, as in RabbitMQ.
        (latest as f64 - previous as f64) / self.seconds
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(timestamp: u64, publish: u64) -> Point {
        let mut point = Point {
            timestamp,
            ..Point::default()
        };
        point.channel_totals.publish = publish;
        point
    }

    #[test]
    fn history_answers_the_age_newest_first_at_most_one_per_increment() {
        let collector = Collector::default();
        // A sample every second for two minutes, a few milliseconds late each time.
        for second in 0..120u64 {
            collector.remember(point(1_000_000 + second * 1000 + second % 3, second));
        }
        let every_5s = collector.history(60_000, 5000);
        assert_eq!(
            every_5s.first().map(|p| p.channel_totals.publish),
            Some(119)
        );
        assert!(every_5s.windows(2).all(|pair| {
            let step = pair[0].timestamp - pair[1].timestamp;
            (2500..=7500).contains(&step)
        }));
        assert_eq!(every_5s.len(), 13, "steps 0 to 12 of the last minute");
        assert_eq!(collector.history(10_500, 1000).len(), 11);
        assert!(Collector::default().history(60_000, 5000).is_empty());
    }

    #[test]
    fn history_forgets_what_is_older_than_an_hour() {
        let collector = Collector::default();
        collector.remember(point(0, 1));
        collector.remember(point(HISTORY_MS / 2, 2));
        collector.remember(point(HISTORY_MS + 1, 3));
        let kept: Vec<u64> = collector
            .history(u64::MAX, 1)
            .iter()
            .map(|p| p.channel_totals.publish)
            .collect();
        assert_eq!(kept, vec![3, 2]);
    }
}
