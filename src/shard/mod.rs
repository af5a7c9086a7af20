//! Thread-per-core: one glommio executor per shard. A `Shard` is the per-core context every
//! task on that core shares (through `Rc`, never across threads): its copy of the metadata,
//! the queues it owns, the connections it owns, its view of the mesh, and the replies it
//! awaits. Other shards reach it only with `ShardMessage`s; `inbox.rs` handles them.
//!
//! This is the runtime the AMQP connection layer runs on, and it does not know that layer:
//! connections register as `endpoint::ConnectionEndpoint`s, and start-up serves each accepted
//! socket with the `endpoint::ServeConnection` it is given.
//!
//! Ownership: a queue lives on the shard chosen at declare time (the declaring connection's);
//! a connection lives on the shard that was handed its socket; metadata changes are decided by
//! shard 0 and applied everywhere.

pub mod admin;
pub mod damaged;
pub mod dead_letter;
pub mod dedup;
pub mod definitions_transfer;
pub mod delayed;
pub mod descriptors;
pub mod endpoint;
pub mod fault;
pub mod fetcher;
pub mod inbox;
pub mod mesh;
pub mod message;
pub mod metadata;
pub mod metadata_recovery;
pub mod metadata_writer;
pub mod notify;
pub mod operator_messages;
pub mod pending;
pub mod persistence;
pub mod policies;
pub mod pressure;
pub mod queues;
pub mod recovery;
pub mod resource_alarms;
pub mod startup;
pub mod stats;
pub mod timers;
pub mod user_limits;
pub mod vhost_limits;
pub mod waker;

use crate::fast_map::FastMap;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use crate::config::Config;
use crate::ids::{ConnectionId, QueueId, ShardId};
use crate::queue::channel_limits::ChannelLimits;
use crate::queue::Queue;
use crate::vhost::Registry;
use endpoint::{Connections, ServeConnection};
use mesh::Mesh;
use message::{Reply, ShardMessage, StorageAlarm};
use notify::Event;
use pending::{PendingReplies, ReplyTo};

pub struct Shard {
    pub id: ShardId,
    pub config: Rc<Config>,
    pub mesh: Rc<Mesh>,
    /// This shard's copy of the metadata, for routing without asking another core.
    pub registry: RefCell<Registry>,
    /// Fires when `registry` reaches a new version.
    pub registry_changed: Event,
    pub pending: RefCell<PendingReplies>,
    /// The queues this shard owns.
    pub queues: RefCell<FastMap<QueueId, Queue>>,
    pub channel_limits: RefCell<ChannelLimits>,
    /// Queues with something new to dispatch, handled by the dispatcher task.
    pub dirty_queues: RefCell<Vec<QueueId>>,
    pub dispatch_needed: notify::Notify,
    /// Stored messages to read back (`fetcher`), the task's wake-up, and the event each
    /// finished fetch fires (a basic.get waiting for a body listens to it).
    pub fetch_requests: RefCell<VecDeque<(QueueId, crate::queue::residency::FetchPlan)>>,
    pub fetch_wanted: notify::Notify,
    pub fetch_done: Event,
    /// Queue timers (`timers`): (when, queue), earliest first, and the task's wake-up.
    pub timers: RefCell<std::collections::BinaryHeap<std::cmp::Reverse<(u64, QueueId)>>>,
    pub timers_changed: notify::Notify,
    /// Dead-lettered messages waiting for their copies to be safe (`dead_letter`).
    pub dead_letters: RefCell<dead_letter::Waits>,
    /// The caches of the deduplication exchanges whose cache shard this is (`dedup`).
    pub dedup_caches: RefCell<FastMap<crate::ids::ExchangeId, crate::routing::dedup::DedupCache>>,
    /// The connections this shard owns, registered by the connection layer.
    pub connections: Connections,
    /// Serves each socket this shard is handed.
    pub serve_connection: ServeConnection,
    /// Metadata-shard state: queue declares, creations and deletions since start.
    pub queue_churn: Cell<stats::QueueChurn>,
    /// Stored messages dropped since start because their record was damaged (`damaged`).
    pub damaged_dropped: Cell<u64>,
    /// Metadata-shard state: the next id to assign.
    pub next_metadata_id: Cell<u64>,
    /// Metadata-shard state: the version each shard has applied.
    pub metadata_applied: RefCell<Vec<u64>>,
    /// Metadata-shard state: answers waiting until every shard has their version, in
    /// version order.
    pub metadata_answers: RefCell<VecDeque<metadata::WaitingAnswer>>,
    /// Metadata-shard state: durable changes not yet handed to the metadata log, in version
    /// order, and the newest version the log holds.
    pub metadata_pending: RefCell<Vec<metadata_writer::PendingChange>>,
    pub definitions_written: Cell<u64>,
    /// Metadata-shard state: the newest version that changed something durable.
    pub metadata_durable_version: Cell<u64>,
    pub definitions_wanted: notify::Notify,
    /// Accepting shard's estimate of the connections on each shard.
    pub connection_counts: RefCell<Vec<usize>>,
    /// Metadata-shard state: open connections per vhost, for `max-connections`.
    pub vhost_connections: vhost_limits::VHostConnections,
    next_connection_sequence: Cell<u64>,
    /// Queues placed by `place_queue` so far: whose turn is next.
    queue_placement_turn: Cell<usize>,
    /// The shard's log, installed by start-up once recovery is done.
    persistence: RefCell<Option<Rc<persistence::Persistence>>>,
    /// Shards whose log failed, with the reason: while any is set, connections are blocked.
    pub storage_alarms: RefCell<std::collections::BTreeMap<ShardId, StorageAlarm>>,
    /// This shard's connections were sent `block` for an alarm and not yet `unblock`.
    publishers_blocked: Cell<bool>,
    /// The `ResourceAlarms::generation` the housekeeping tick last acted on: a held
    /// connection reads again only once the clear was acted on, so its client got
    /// connection.unblocked first even when the alarm flaps faster than the tick.
    pub alarm_generation_seen: Cell<u64>,
    pub shutting_down: Cell<bool>,
    /// Fires when the shard starts shutting down.
    pub shutdown: Event,
}

impl Shard {
    pub fn new(
        id: ShardId,
        config: Rc<Config>,
        mesh: Rc<Mesh>,
        serve_connection: ServeConnection,
    ) -> Shard {
        let shard_count = mesh.shard_count();
        Shard {
            id,
            config,
            mesh,
            registry: RefCell::new(Registry::new()),
            registry_changed: Event::new(),
            pending: RefCell::new(PendingReplies::default()),
            queues: RefCell::new(FastMap::default()),
            channel_limits: RefCell::new(ChannelLimits::default()),
            dirty_queues: RefCell::new(Vec::new()),
            dispatch_needed: notify::Notify::new(),
            fetch_requests: RefCell::new(VecDeque::new()),
            timers: RefCell::new(std::collections::BinaryHeap::new()),
            timers_changed: notify::Notify::new(),
            dead_letters: RefCell::new(dead_letter::Waits::default()),
            fetch_wanted: notify::Notify::new(),
            fetch_done: Event::new(),
            dedup_caches: RefCell::new(FastMap::default()),
            connections: Connections::default(),
            serve_connection,
            queue_churn: Cell::new(stats::QueueChurn::default()),
            damaged_dropped: Cell::new(0),
            next_metadata_id: Cell::new(Registry::FIRST_DYNAMIC_ID),
            metadata_applied: RefCell::new(vec![0; shard_count]),
            metadata_answers: RefCell::new(VecDeque::new()),
            metadata_pending: RefCell::new(Vec::new()),
            definitions_written: Cell::new(0),
            metadata_durable_version: Cell::new(0),
            definitions_wanted: notify::Notify::new(),
            connection_counts: RefCell::new(vec![0; shard_count]),
            vhost_connections: vhost_limits::VHostConnections::default(),
            next_connection_sequence: Cell::new(1),
            queue_placement_turn: Cell::new(0),
            persistence: RefCell::new(None),
            storage_alarms: RefCell::new(std::collections::BTreeMap::new()),
            publishers_blocked: Cell::new(false),
            alarm_generation_seen: Cell::new(0),
            shutting_down: Cell::new(false),
            shutdown: Event::new(),
        }
    }

    pub fn shard_count(&self) -> usize {
        self.mesh.shard_count()
    }

    /// The shard's log, if start-up got as far as installing it.
    pub fn installed_persistence(&self) -> Option<Rc<persistence::Persistence>> {
        self.persistence.borrow().clone()
    }

    pub fn install_persistence(&self, persistence: Rc<persistence::Persistence>) {
        let old = self.persistence.replace(Some(persistence));
        assert!(old.is_none(), "one log per shard");
    }

    /// The shard's log. Start-up installs it before the shard handles any message.
    /// After appending to the log: a write buffer over half full holds publishers at once,
    /// not a housekeeping tick later (`pressure`).
    pub fn note_appended(&self, persistence: &persistence::Persistence) {
        if persistence.write_buffer_high() {
            self.mesh.pressure.set_disk_behind(self.id, true);
        }
    }

    pub fn persistence(&self) -> Rc<persistence::Persistence> {
        self.persistence
            .borrow()
            .clone()
            .expect("persistence is installed before the shard serves")
    }

    pub fn next_connection_id(&self) -> ConnectionId {
        let sequence = self.next_connection_sequence.get();
        self.next_connection_sequence.set(sequence + 1);
        ConnectionId::new(self.id, sequence)
    }

    /// The shard for a queue a connection of this shard declares, if it is new. An exclusive
    /// queue stays here, with its only possible consumer. Others go round the shards starting
    /// here (`--queue-placement balanced`, the default), so the queues a set-up connection
    /// declares spread over every core and the connections that use them follow
    /// (`connection::moving`); or all stay here (`client-local`, RabbitMQ's default locator).
    pub fn place_queue(&self, exclusive: bool) -> ShardId {
        if exclusive || self.config.queue_placement == crate::config::QueuePlacement::ClientLocal {
            return self.id;
        }
        let turn = self.queue_placement_turn.get();
        self.queue_placement_turn.set(turn.wrapping_add(1));
        let count = self.shard_count();
        let index = (usize::from(self.id.0) + turn % count) % count;
        ShardId(u16::try_from(index).expect("shard index fits u16"))
    }

    /// Why publishers are blocked, if any alarm is in effect: the memory and disk alarms
    /// (RabbitMQ's reasons), else the first failed log.
    pub fn alarm_reason(&self) -> Option<String> {
        let resources = self.mesh.alarms.in_effect();
        if !resources.is_empty() {
            return Some(resource_alarms::blocked_reason(&resources));
        }
        self.storage_alarms
            .borrow()
            .values()
            .next()
            .map(ToString::to_string)
    }

    /// An alarm was raised or cleared: blocks this shard's connections when the first alarm
    /// is raised, unblocks them when none is left (the storage, memory and disk alarms
    /// compose: clearing one while another is up changes nothing for clients).
    pub fn alarms_changed(&self) {
        match self.alarm_reason() {
            Some(reason) if !self.publishers_blocked.replace(true) => {
                for endpoint in self.connections.all() {
                    endpoint.block(&reason);
                }
            }
            None if self.publishers_blocked.replace(false) => {
                for endpoint in self.connections.all() {
                    endpoint.unblock();
                }
            }
            _ => {}
        }
    }

    pub fn send(&self, target: ShardId, message: ShardMessage) {
        self.mesh.send(target, message);
    }

    pub fn reply(&self, reply_to: ReplyTo, reply: Reply) {
        self.mesh.send(
            reply_to.shard,
            ShardMessage::Reply {
                request: reply_to.request,
                reply,
            },
        );
    }

    /// Sends a request built around a fresh `ReplyTo` and waits for its reply.
    pub async fn request(
        &self,
        target: ShardId,
        build: impl FnOnce(ReplyTo) -> ShardMessage,
    ) -> Reply {
        let pending = self.pending.borrow_mut().register(self.id);
        self.send(target, build(pending.reply_to));
        pending.wait().await
    }

    /// Waits until this shard's metadata copy has applied `version`, so a client that got
    /// declare-ok can publish at once and find what it declared.
    pub async fn wait_for_version(&self, version: u64) {
        while self.registry.borrow().version() < version {
            self.registry_changed.wait().await;
        }
    }

    /// Tells whoever waits that the queues of this shard took a message (`ok`) or not.
    pub fn confirm(&self, confirm: message::Confirm, ok: bool) {
        match confirm {
            message::Confirm::Publisher(publisher) => self.send(
                publisher.connection.shard(),
                message::ShardMessage::Connection {
                    connection: publisher.connection,
                    event: message::ConnectionEvent::Confirmed {
                        channel: publisher.channel,
                        seq: publisher.seq,
                        ok,
                    },
                },
            ),
            message::Confirm::DeadLetter { shard, token } => {
                self.send(shard, message::ShardMessage::DeadLettered { token, ok });
            }
            message::Confirm::Reply(reply_to) => {
                self.reply(reply_to, message::Reply::Confirmed { ok });
            }
        }
    }

    pub fn mark_dirty(&self, queue: QueueId) {
        let mut dirty = self.dirty_queues.borrow_mut();
        if !dirty.contains(&queue) {
            dirty.push(queue);
        }
        self.dispatch_needed.notify();
    }
}
