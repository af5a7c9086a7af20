//! Statistics a shard reports about what it owns, for the management API and metrics.
//!
//! The counters themselves are plain integers kept where the work happens, by the shard that
//! owns the object: a queue's in `Queue::counters`, a channel's in its `Channel`, a
//! connection's octet and frame counts in the connection, an exchange's in its `Cell`s on each
//! shard's registry copy. Nothing on the message path takes a lock, an atomic or a slow path.
//! A `ShardMessage::Stats` request copies them into a `ShardStats` (answered with
//! `Reply::Stats`); the collector on shard 0 (`management::stats`) merges the shards' answers
//! and derives rates from two samples.
//!
//! Counters start at zero when their object is created, or when the broker starts (as in
//! RabbitMQ, they are not durable).

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::ids::{ConnectionId, QueueId, ShardId};
use crate::protocol::{FieldTable, ShortStr};
use crate::queue::counters::QueueCounters;
use crate::shard::message::Reply;
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;
pub use crate::vhost::exchange::{ExchangeCells, ExchangeCounters};

/// Everything one shard owns, as of the moment it answered.
#[derive(Debug, Clone)]
pub struct ShardStats {
    pub shard: ShardId,
    pub queues: Vec<QueueStats>,
    /// Exchanges this shard routed through (others have only zero counters here).
    pub exchanges: Vec<ExchangeStats>,
    pub connections: Vec<ConnectionStats>,
    pub consumers: Vec<ConsumerStats>,
    /// Connections opened and closed on this shard since start.
    pub connections_created: u64,
    pub connections_closed: u64,
    /// What the channels this shard closed since start had counted.
    pub closed_channels: ClosedChannels,
    /// Queue declares, creations and deletions since start (counted by the metadata shard,
    /// which decides them; zero elsewhere).
    pub queue_churn: QueueChurn,
    /// Stored messages this shard dropped because their record was damaged on disk.
    pub damaged_dropped: u64,
}

/// Queue churn as RabbitMQ counts it: every queue.declare (a redeclare too), every queue it
/// created, every queue deleted (by queue.delete, auto-delete, expiry or an exclusive owner
/// leaving). Counted on the metadata shard as it decides; not on the message path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueChurn {
    pub declared: u64,
    pub created: u64,
    pub deleted: u64,
}

/// The channels a shard closed since start and what they counted, so node-wide totals (the
/// Prometheus `rabbitmq_global_*` counters, channel churn) do not fall when a channel closes.
/// Added to once per channel, when it leaves its connection's table: not on the message path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosedChannels {
    pub count: u64,
    pub counters: ChannelCounters,
    /// Messages published on closed channels that were in confirm mode.
    pub confirm_publish: u64,
}

impl ClosedChannels {
    /// Counts one closed channel.
    pub fn add(&mut self, counters: &ChannelCounters, confirm_mode: bool) {
        self.count += 1;
        self.counters.add(counters);
        if confirm_mode {
            self.confirm_publish += counters.publish;
        }
    }
}

/// One queue on its owner shard.
#[derive(Debug, Clone)]
pub struct QueueStats {
    pub id: QueueId,
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub counters: QueueCounters,
    pub ready_count: u64,
    pub unacked_count: u64,
    pub ready_bytes: u64,
    pub unacked_bytes: u64,
    /// Ready messages whose body is in RAM (the rest are only in the log).
    pub resident_count: u64,
    pub consumer_count: u64,
    /// About what the queue holds in RAM (`Queue::ram_bytes`).
    pub memory_bytes: u64,
    /// Milliseconds since the epoch when the queue was last used.
    pub last_used_ms: u64,
}

/// One exchange's routing counts on one shard (the collector adds the shards up).
#[derive(Debug, Clone)]
pub struct ExchangeStats {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub counters: ExchangeCounters,
}

/// Where a connection is in its life (RabbitMQ's `state` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionLifecycle {
    Running,
    /// connection.blocked was sent (an alarm), or the reader is held by the memory or disk
    /// alarm.
    Blocked,
    /// We sent connection.close and wait for close-ok.
    Closing,
}

impl ConnectionLifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionLifecycle::Running => "running",
            ConnectionLifecycle::Blocked => "blocked",
            ConnectionLifecycle::Closing => "closing",
        }
    }
}

/// Bytes through one direction of a connection's socket and the socket operations that moved
/// them (RabbitMQ's `recv_oct`/`recv_cnt`, `send_oct`/`send_cnt` count the same way: octets
/// and socket reads or writes, not frames). Counted once per read or write, not per frame.
#[derive(Debug, Default)]
pub struct SocketCounters {
    octets: Cell<u64>,
    operations: Cell<u64>,
}

impl SocketCounters {
    pub fn add(&self, bytes: usize) {
        self.octets.set(self.octets.get() + bytes as u64);
        self.operations.set(self.operations.get() + 1);
    }

    pub fn octets(&self) -> u64 {
        self.octets.get()
    }

    /// Counters carried over from the connection's previous shard (it moved here).
    pub fn carried_over(octets: u64, operations: u64) -> SocketCounters {
        SocketCounters {
            octets: Cell::new(octets),
            operations: Cell::new(operations),
        }
    }

    pub fn operations(&self) -> u64 {
        self.operations.get()
    }
}

/// One open connection (after the handshake) on its shard.
#[derive(Debug, Clone)]
pub struct ConnectionStats {
    pub id: ConnectionId,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: ShortStr,
    pub vhost: ShortStr,
    pub state: ConnectionLifecycle,
    /// Milliseconds since the epoch.
    pub connected_at_ms: u64,
    pub client_properties: FieldTable,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat_secs: u64,
    /// The SASL mechanism the client logged in with.
    pub auth_mechanism: ShortStr,
    /// The TLS session, for a connection from the AMQPS listener.
    pub tls: Option<crate::tls::session_info::SessionInfo>,
    pub recv_oct: u64,
    pub recv_cnt: u64,
    pub send_oct: u64,
    pub send_cnt: u64,
    /// Bytes buffered for the socket and not yet written.
    pub send_pend: u64,
    pub channels: Vec<ChannelStats>,
}

/// Messages through one channel, counted by the connection layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    pub publish: u64,
    pub confirm: u64,
    pub deliver: u64,
    pub deliver_no_ack: u64,
    pub get: u64,
    pub get_no_ack: u64,
    pub get_empty: u64,
    pub redeliver: u64,
    pub ack: u64,
    pub return_unroutable: u64,
    pub drop_unroutable: u64,
}

impl ChannelCounters {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &ChannelCounters) {
        self.publish += other.publish;
        self.confirm += other.confirm;
        self.deliver += other.deliver;
        self.deliver_no_ack += other.deliver_no_ack;
        self.get += other.get;
        self.get_no_ack += other.get_no_ack;
        self.get_empty += other.get_empty;
        self.redeliver += other.redeliver;
        self.ack += other.ack;
        self.return_unroutable += other.return_unroutable;
        self.drop_unroutable += other.drop_unroutable;
    }
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelLifecycle {
    Running,
    Closing,
}

impl ChannelLifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelLifecycle::Running => "running",
            ChannelLifecycle::Closing => "closing",
        }
    }
}

/// One channel of an open connection.
#[derive(Debug, Clone)]
pub struct ChannelStats {
    pub number: u16,
    pub state: ChannelLifecycle,
    pub counters: ChannelCounters,
    pub prefetch_count: u16,
    pub global_prefetch_count: u16,
    pub confirm: bool,
    pub transactional: bool,
    pub unacked_count: u64,
    pub unconfirmed_count: u64,
    pub consumer_count: u64,
}

/// One consumer, as its queue's owner shard sees it.
#[derive(Debug, Clone)]
pub struct ConsumerStats {
    pub queue: QueueId,
    pub queue_name: ShortStr,
    pub vhost: ShortStr,
    pub connection: ConnectionId,
    pub channel: u16,
    pub tag: ShortStr,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch_count: u16,
    /// False for a waiting consumer under `x-single-active-consumer`.
    pub active: bool,
    pub arguments: FieldTable,
    /// How long its deliveries may stay unacknowledged, ms (None: no limit).
    pub consumer_timeout_ms: Option<u64>,
}

/// Answers a `ShardMessage::Stats`: copies this shard's counters. Runs to completion in the
/// inbox handler; its cost grows with what the shard owns, once per collection.
pub fn handle_request(shard: &Rc<Shard>, reply_to: ReplyTo) {
    shard.reply(reply_to, Reply::Stats(Box::new(collect(shard))));
}

/// This shard's statistics.
pub fn collect(shard: &Shard) -> ShardStats {
    let mut stats = ShardStats {
        shard: shard.id,
        queues: Vec::new(),
        exchanges: Vec::new(),
        connections: Vec::new(),
        consumers: Vec::new(),
        connections_created: shard.connections.created(),
        connections_closed: shard.connections.closed(),
        closed_channels: shard.connections.closed_channels(),
        queue_churn: shard.queue_churn.get(),
        damaged_dropped: shard.damaged_dropped.get(),
    };
    collect_queues(shard, &mut stats);
    collect_exchanges(shard, &mut stats);
    stats.connections = shard
        .connections
        .all()
        .iter()
        .map(|endpoint| endpoint.stats())
        .collect();
    stats
}

fn collect_queues(shard: &Shard, stats: &mut ShardStats) {
    let queues = shard.queues.borrow();
    stats.queues.reserve(queues.len());
    for queue in queues.values() {
        if queue.is_delay_store() {
            continue;
        }
        let single_active = queue.settings.single_active_consumer;
        let default_timeout_ms = shard
            .config
            .consumer_timeout
            .map(|timeout| u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
        let consumer_timeout_ms = queue.settings.ack_timeout_ms(default_timeout_ms);
        for (index, consumer) in queue.consumers().enumerate() {
            stats.consumers.push(ConsumerStats {
                queue: queue.id,
                queue_name: queue.name.clone(),
                vhost: queue.vhost.clone(),
                connection: consumer.key.connection,
                channel: consumer.key.channel.0,
                tag: consumer.key.tag.clone(),
                ack_required: !consumer.no_ack,
                exclusive: consumer.exclusive,
                prefetch_count: consumer.prefetch_count,
                active: !single_active || index == 0,
                arguments: consumer.arguments.clone(),
                consumer_timeout_ms,
            });
        }
        stats.queues.push(QueueStats {
            id: queue.id,
            vhost: queue.vhost.clone(),
            name: queue.name.clone(),
            counters: queue.counters,
            ready_count: queue.ready_count() as u64,
            unacked_count: queue.unacked_count() as u64,
            ready_bytes: queue.ready_bytes(),
            unacked_bytes: queue.unacked_bytes(),
            resident_count: queue.resident_count() as u64,
            consumer_count: queue.consumer_count() as u64,
            memory_bytes: queue.ram_bytes() as u64,
            last_used_ms: queue.last_used_ms(),
        });
    }
}

fn collect_exchanges(shard: &Shard, stats: &mut ShardStats) {
    let registry = shard.registry.borrow();
    for vhost in registry.vhosts() {
        for exchange in vhost.exchanges() {
            let counters = exchange.counters.snapshot();
            if counters == ExchangeCounters::default() {
                continue;
            }
            stats.exchanges.push(ExchangeStats {
                vhost: vhost.name.clone(),
                name: exchange.name().clone(),
                counters,
            });
        }
    }
}
