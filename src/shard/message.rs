//! The typed messages that cross shards, and nothing else does. Every variant names its target
//! by id: a queue (sent to its owner shard), a connection (sent to its shard), or the metadata
//! shard. They travel in batches (`Vec<ShardMessage>`) over one bounded channel per ordered
//! pair of shards.

use std::fmt;
use std::sync::Arc;

use hare_storage::StorageError;

use crate::exception::Exception;
use crate::ids::{
    ChannelId, ConnectionId, DeliveryTag, ExchangeId, MessageId, PublishSeq, QueueId, ShardId,
};
use crate::protocol::{FieldTable, ShortStr};
use crate::queue::consumer::{ChannelKey, ConsumerKey};
use crate::queue::message::{Content, Message};
use crate::queue::SettleAction;
use crate::shard::pending::ReplyTo;
use crate::shard::Shard;
use crate::vhost::delta::{BindingDefinition, MetaUpdate};
use crate::vhost::queue_definition::QueueDefinition;
use crate::vhost::rules::{ExchangeDeclare, QueueDeclare};
use crate::vhost::VHost;

// A published message travels inline: boxing it would add an allocation per publish per
// shard, while moving a few hundred bytes within a batch is cheaper.
#[allow(clippy::large_enum_variant)]
pub enum ShardMessage {
    /// A metadata change request, to the metadata shard.
    Meta {
        /// None for changes nobody waits for (auto-delete, exclusive-queue cleanup).
        reply_to: Option<ReplyTo>,
        vhost: ShortStr,
        request: MetaRequest,
    },
    /// A metadata change, from the metadata shard to every other shard, in version order.
    MetaUpdate(MetaUpdate),
    /// A shard has applied metadata up to `version` (to the metadata shard, which answers a
    /// change only once every shard has it, so any connection can use it at once).
    MetaApplied { shard: ShardId, version: u64 },
    /// Answered once everything sent before it to this shard has been handled: the barrier
    /// tx.commit waits on.
    Barrier { reply_to: ReplyTo },
    /// An operation on a queue, to the queue's owner shard.
    Queue { queue: QueueId, op: QueueOp },
    /// A published message for one or more queues of the receiving shard.
    Publish {
        queues: QueueTargets,
        message: Message,
        confirm: Option<Confirm>,
    },
    /// The queues of one shard took a dead-lettered message (or refused it), to the shard of
    /// the queue it came from (`shard::dead_letter`).
    DeadLettered { token: u64, ok: bool },
    /// An event for a connection, to the connection's shard.
    Connection {
        connection: ConnectionId,
        event: ConnectionEvent,
    },
    /// The answer to a request.
    Reply { request: u64, reply: Reply },
    /// A freshly accepted socket for the receiving shard to own.
    Accepted(
        glommio::net::AcceptedTcpStream,
        crate::shard::endpoint::Listener,
    ),
    /// A shard's log failed: every shard raises the storage alarm and blocks its publishers
    /// (connection.blocked) until the log is back.
    StorageAlarm(StorageAlarm),
    /// The shard's log was reopened after a failure.
    StorageAlarmCleared { shard: ShardId },
    /// A connection on `shard` ended (for least-loaded placement on the accepting shard).
    ConnectionEnded { shard: ShardId },
    /// An open connection moved to the receiving shard, which serves it from now on.
    Moved(crate::shard::endpoint::MovedConnection),
    /// To the metadata shard: the connection `from` now lives on as `to` (on `to`'s shard),
    /// for the placement counts and the vhost connection counts. Sent by the new shard, so it
    /// arrives before that shard reports the connection's end.
    ConnectionMoved {
        from: ConnectionId,
        to: ConnectionId,
        /// The channels it has open, for its user's `max-channels` count: reports the old
        /// shard sent may arrive after this one and are then ignored.
        channels: u32,
    },
    /// Is a deduplication header value new for a deduplication exchange? To the exchange's
    /// cache shard (`shard::dedup`), answered with `Reply::DedupChecked`.
    DedupCheck {
        reply_to: ReplyTo,
        vhost: ShortStr,
        exchange: ExchangeId,
        query: crate::shard::dedup::DedupQuery,
    },
    /// A copy of the shard's statistics (`shard::stats`), answered with `Reply::Stats`.
    Stats { reply_to: ReplyTo },
    /// Close one of the shard's connections with 320 CONNECTION_FORCED (the management API);
    /// answered with `Reply::ConnectionClosed`, false if it was already gone.
    CloseConnection {
        reply_to: ReplyTo,
        connection: ConnectionId,
        reason: crate::shard::endpoint::ForcedClose,
    },
    /// A connection takes or gives back its place in its vhost's and its user's connection
    /// counts, or changes its number of channels, kept by the metadata shard for
    /// `max-connections` and `max-channels` (`shard::vhost_limits`, `shard::user_limits`).
    VHostConnection {
        connection: ConnectionId,
        change: VHostConnectionChange,
    },
}

/// What a `ShardMessage::VHostConnection` does.
pub enum VHostConnectionChange {
    /// Answered with `Reply::VHostAdmitted`.
    Admit {
        reply_to: ReplyTo,
        vhost: ShortStr,
        user: ShortStr,
    },
    /// Gives back the connection's place, and its channels' places.
    Release,
    /// One more channel if the user's `max-channels` allows it, answered with
    /// `Reply::ChannelAdmitted`; sent only while the user has the limit.
    OpenChannel { reply_to: ReplyTo },
    /// The connection now has `open` channels (reported after every open and close).
    Channels { open: u32 },
}

/// Metadata requests, decided by the metadata shard.
pub enum MetaRequest {
    ExchangeDeclare(ExchangeDeclare),
    ExchangeDelete {
        name: ShortStr,
        if_unused: bool,
    },
    /// Declared queues are finished by the owner shard, which answers with the counts.
    QueueDeclare(QueueDeclare),
    Bind {
        binding: BindingDefinition,
        connection: ConnectionId,
    },
    Unbind {
        binding: BindingDefinition,
        connection: ConnectionId,
    },
    /// The owner shard deleted the queue; remove its metadata and answer with the count.
    QueueDeleted {
        name: ShortStr,
        id: QueueId,
        message_count: u32,
    },
    /// Changes nothing: answered (`Reply::Meta`) once every change made so far is applied on
    /// every shard and durable, for an answer that reports what those changes did
    /// (queue.delete-ok for a queue the asking connection already sees gone).
    Sync,
    /// The same for a queue its owner found gone, answered as a deletion of 0 messages.
    QueueAlreadyDeleted,
    /// A change to users, vhosts, permissions, policies or limits (the request's vhost is
    /// only a label: the delta names what it changes).
    Access(crate::vhost::access_delta::AccessDelta),
}

/// Who waits for the queues of a shard to take a message.
#[derive(Debug, Clone, Copy)]
pub enum Confirm {
    /// A publisher in confirm mode.
    Publisher(ConfirmRef),
    /// A dead-lettering shard: its source message is settled once every copy is safe.
    DeadLetter { shard: ShardId, token: u64 },
    /// A task waiting on a request (an operator's publish): answered with `Reply::Confirmed`.
    Reply(ReplyTo),
}

/// Identifies the publish to confirm.
#[derive(Debug, Clone, Copy)]
pub struct ConfirmRef {
    pub connection: ConnectionId,
    pub channel: ChannelId,
    pub seq: PublishSeq,
}

/// Operations on a queue, for its owner shard. Those that can answer with an error or delete
/// the queue carry the vhost the requesting connection uses: the queue's runtime does not know
/// its vhost, and error texts and metadata changes name it.
pub enum QueueOp {
    /// Sent by the metadata shard after a declare: answer `reply_to` with the counts once the
    /// queue exists here.
    Declared {
        reply_to: ReplyTo,
        definition: QueueDefinition,
        version: u64,
    },
    Consume {
        reply_to: ReplyTo,
        consumer: ConsumerKey,
        options: ConsumeOptions,
        arguments: FieldTable,
        vhost: ShortStr,
    },
    Cancel {
        reply_to: Option<ReplyTo>,
        consumer: ConsumerKey,
        /// For the metadata change if the queue auto-deletes.
        vhost: ShortStr,
    },
    Get {
        reply_to: ReplyTo,
        channel: ChannelKey,
        no_ack: bool,
        vhost: ShortStr,
    },
    Settle {
        channel: ChannelKey,
        ids: Vec<MessageId>,
        action: SettleAction,
    },
    Purge {
        reply_to: ReplyTo,
        vhost: ShortStr,
    },
    Delete {
        reply_to: Option<ReplyTo>,
        conditions: DeleteConditions,
        vhost: ShortStr,
    },
    /// Deliveries the consumer's connection wrote to its socket.
    Credit {
        consumer: ConsumerKey,
        count: u32,
    },
    /// The channel closed: requeue its unacked messages and drop its consumers.
    ChannelClosed {
        channel: ChannelKey,
        /// For the metadata change if the queue auto-deletes.
        vhost: ShortStr,
    },
    /// Channel-wide prefetch changed (basic.qos global=true).
    SetChannelPrefetch {
        channel: ChannelKey,
        prefetch_count: u16,
    },
}

/// How a basic.consume consumer takes messages.
#[derive(Debug, Clone, Copy)]
pub struct ConsumeOptions {
    pub no_ack: bool,
    pub exclusive: bool,
    /// The client sent nowait: no consume-ok.
    pub nowait: bool,
    /// basic.qos global=false when the consumer was created: its own limit.
    pub prefetch_count: u16,
    /// basic.qos global=true: the channel's limit, shared by its consumers.
    pub global_prefetch_count: u16,
    /// `x-priority`.
    pub priority: i32,
}

/// When queue.delete must refuse instead of deleting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeleteConditions {
    /// Refuse while the queue has consumers.
    pub if_unused: bool,
    /// Refuse while the queue has ready messages.
    pub if_empty: bool,
}

impl DeleteConditions {
    /// Delete whatever the queue holds: auto-delete and exclusive-queue cleanup.
    pub const NONE: DeleteConditions = DeleteConditions {
        if_unused: false,
        if_empty: false,
    };
}

pub enum ConnectionEvent {
    Deliver {
        channel: ChannelId,
        consumer_tag: ShortStr,
        no_ack: bool,
        owner: ShardId,
        queue: QueueId,
        message_id: MessageId,
        redelivered: bool,
        content: Content,
    },
    /// The queue went away: tell the client its consumer is cancelled.
    ConsumerCancelled {
        channel: ChannelId,
        consumer_tag: ShortStr,
        queue: QueueId,
    },
    /// The queues a confirmed publish went to on one shard accepted it (or refused it).
    Confirmed {
        channel: ChannelId,
        seq: PublishSeq,
        ok: bool,
    },
    /// A direct reply-to response for the channel's reply consumer.
    DirectReply {
        channel: ChannelId,
        secret: u64,
        content: Content,
    },
}

/// A shard's log failed, and why; shown to clients as the connection.blocked reason.
#[derive(Debug, Clone)]
pub struct StorageAlarm {
    pub shard: ShardId,
    pub cause: Arc<StorageError>,
}

impl fmt::Display for StorageAlarm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "disk fault on shard {}: {}", self.shard.0, self.cause)
    }
}

/// Answers to requests.
pub enum Reply {
    /// A metadata change was applied at `version`.
    Meta(Result<u64, Exception>),
    QueueDeclared {
        version: u64,
        name: ShortStr,
        message_count: u32,
        consumer_count: u32,
    },
    /// The consumer is registered. The shard's inbox handler writes consume-ok as it receives
    /// this, so it reaches the client before any delivery that follows on the same channel.
    Consumed(Result<ConsumeOk, Exception>),
    Cancelled,
    Got(Result<Option<GetOk>, Exception>),
    Purged(Result<u32, Exception>),
    /// Everything sent before the barrier was handled; `durable` is false when the shard's
    /// log failed, so persistent work in it may not be on disk.
    Barrier {
        durable: bool,
    },
    /// A queue was deleted.
    Deleted(Result<QueueDeleted, Exception>),
    /// The queues of one shard took a message (`ok`) or refused it (`Confirm::Reply`).
    Confirmed {
        ok: bool,
    },
    /// A deduplication exchange's cache: true if the value was new (the message routes).
    DedupChecked {
        fresh: bool,
    },
    /// A shard's statistics (boxed: the mesh moves replies inline).
    Stats(Box<crate::shard::stats::ShardStats>),
    /// Whether the connection to close was still open.
    ConnectionClosed(bool),
    /// The connection has a place in its vhost; Err is the `max-connections` reached.
    VHostAdmitted(Result<(), crate::shard::vhost_limits::ConnectionLimit>),
    /// The connection may open one more channel; Err is the user's `max-channels` reached.
    ChannelAdmitted(Result<(), i64>),
}

/// What queue.delete-ok reports, and the metadata version that removed the queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueDeleted {
    pub message_count: u32,
    pub version: u64,
}

pub struct ConsumeOk {
    pub consumer: ConsumerKey,
    pub owner: ShardId,
    pub queue: QueueId,
    pub no_ack: bool,
    pub nowait: bool,
    /// How long the consumer's deliveries may stay unacknowledged (the queue's
    /// `x-consumer-timeout` or the broker's default), milliseconds; None for no limit.
    pub ack_timeout_ms: Option<u64>,
}

pub struct GetOk {
    pub owner: ShardId,
    pub queue: QueueId,
    pub message_id: MessageId,
    pub redelivered: bool,
    pub message_count: u32,
    pub content: Content,
    /// As `ConsumeOk::ack_timeout_ms`: a basic.get delivery times out too, as in RabbitMQ.
    pub ack_timeout_ms: Option<u64>,
}

/// The delivery a channel recorded for a tag, to settle it with the owner later.
#[derive(Debug, Clone)]
pub struct UnackedDelivery {
    pub tag: DeliveryTag,
    pub owner: ShardId,
    pub queue: QueueId,
    pub message_id: MessageId,
    /// When the delivery times out unacknowledged (consumer timeout), if it does.
    pub ack_deadline: Option<AckDeadline>,
}

/// When an unacknowledged delivery times out, and the timeout it was given (the channel
/// error names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckDeadline {
    pub at: std::time::Instant,
    pub timeout_ms: u64,
}

impl AckDeadline {
    /// The deadline of a delivery made now with `timeout_ms` (None: no deadline).
    pub fn starting_now(timeout_ms: Option<u64>) -> Option<AckDeadline> {
        let timeout_ms = timeout_ms?;
        Some(AckDeadline {
            at: std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms),
            timeout_ms,
        })
    }
}

/// The queues of one shard a message goes to: usually one, without a heap allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTargets {
    One(QueueId),
    Many(Vec<QueueId>),
}

impl QueueTargets {
    pub fn push(&mut self, id: QueueId) {
        match self {
            QueueTargets::One(first) => *self = QueueTargets::Many(vec![*first, id]),
            QueueTargets::Many(ids) => ids.push(id),
        }
    }

    pub fn as_slice(&self) -> &[QueueId] {
        match self {
            QueueTargets::One(id) => std::slice::from_ref(id),
            QueueTargets::Many(ids) => ids,
        }
    }
}

impl QueueTargets {
    /// Groups routed queues by owner shard: one message per shard. One target queue, the
    /// common case, allocates only the one-element list.
    pub fn group_by_owner(vhost: &VHost, queues: &[QueueId]) -> Vec<(ShardId, QueueTargets)> {
        let owner_of = |id: &QueueId| {
            vhost
                .queue_by_id(*id)
                .expect("routing returns existing queues")
                .owner_shard
        };
        let mut groups: Vec<(ShardId, QueueTargets)> = Vec::with_capacity(1);
        if let [only] = queues[..] {
            groups.push((owner_of(&only), QueueTargets::One(only)));
        } else {
            for id in queues {
                let owner = owner_of(id);
                match groups.iter_mut().find(|(shard, _)| *shard == owner) {
                    Some((_, targets)) => targets.push(*id),
                    None => groups.push((owner, QueueTargets::One(*id))),
                }
            }
        }
        groups
    }
}

/// Sends a routed message to each owner shard, moving it into the last one.
pub fn send_to_owners(
    shard: &Shard,
    groups: Vec<(ShardId, QueueTargets)>,
    message: Message,
    confirm: Option<Confirm>,
) {
    let last = groups.len() - 1;
    let mut message = Some(message);
    for (index, (owner, ids)) in groups.into_iter().enumerate() {
        let message = if index == last {
            message.take().expect("moved only for the last group")
        } else {
            message
                .as_ref()
                .expect("present until the last group")
                .clone()
        };
        shard.send(
            owner,
            ShardMessage::Publish {
                queues: ids,
                message,
                confirm,
            },
        );
    }
}
