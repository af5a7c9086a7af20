//! The shard mesh: one bounded glommio `shared_channel` per ordered pair of shards, created at
//! start-up, carrying batches of `ShardMessage`. Senders never await a cross-shard send inside
//! an inbox handler (that could deadlock two shards that send to each other): they push into an
//! outbox, and one flusher task per target drains it. Messages to the own shard go through the
//! same outbox shape and are handled by a local task, so handlers never re-enter each other.

use std::sync::Arc;

use crate::shard::pressure::Pressure;
use crate::shard::resource_alarms::ResourceAlarms;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};

use crate::ids::ShardId;
use crate::shard::message::ShardMessage;
use crate::shard::notify::{Event, Notify};
use crate::shard::waker::WakeHandles;

/// Capacity, in batches, of each shard-to-shard channel. Small capacities park senders
/// constantly (docs/ARCHITECTURE.md, The mesh); batches amortise the rest.
pub const MESH_CHANNEL_CAPACITY: usize = 1024;

/// Messages per batch at most, so one batch cannot hold a shard for long.
pub const MESH_BATCH_MAX: usize = 4096;

/// Outbox length above which connections stop reading their sockets until it drains: the
/// back-pressure that keeps a fast publisher from queueing unbounded work for a slow shard.
pub const OUTBOX_HIGH_WATER: usize = 64 * 1024;

pub type Batch = Vec<ShardMessage>;

/// One target's pending messages.
pub struct Outbox {
    messages: RefCell<Vec<ShardMessage>>,
    ready: Notify,
    /// Wakes publishers waiting for the outbox to drain below the high water mark.
    drained: Event,
    flushing: Cell<bool>,
}

impl Outbox {
    fn new() -> Outbox {
        Outbox {
            messages: RefCell::new(Vec::new()),
            ready: Notify::new(),
            drained: Event::new(),
            flushing: Cell::new(false),
        }
    }

    fn push(&self, message: ShardMessage) {
        self.messages.borrow_mut().push(message);
        self.ready.notify();
    }

    fn take_batch(&self) -> Batch {
        let mut messages = self.messages.borrow_mut();
        if messages.len() <= MESH_BATCH_MAX {
            std::mem::take(&mut *messages)
        } else {
            let rest = messages.split_off(MESH_BATCH_MAX);
            std::mem::replace(&mut *messages, rest)
        }
    }

    fn len(&self) -> usize {
        self.messages.borrow().len()
    }
}

/// This shard's view of the mesh.
pub struct Mesh {
    me: ShardId,
    outboxes: Vec<Outbox>,
    wake: WakeHandles,
    /// Queue memory flags of every shard (publisher flow control).
    pub pressure: Arc<Pressure>,
    /// The memory and disk alarms, shared by every shard.
    pub alarms: Arc<ResourceAlarms>,
}

impl Mesh {
    pub fn new(
        me: ShardId,
        shard_count: usize,
        wake: WakeHandles,
        pressure: Arc<Pressure>,
        alarms: Arc<ResourceAlarms>,
    ) -> Mesh {
        Mesh {
            me,
            outboxes: (0..shard_count).map(|_| Outbox::new()).collect(),
            wake,
            pressure,
            alarms,
        }
    }

    pub fn me(&self) -> ShardId {
        self.me
    }

    pub fn shard_count(&self) -> usize {
        self.outboxes.len()
    }

    /// Queues a message for `target` (possibly this shard). Never blocks. A publish's body
    /// bytes count as in flight until `target` handles it (`Pressure::publish_handled`).
    pub fn send(&self, target: ShardId, message: ShardMessage) {
        if let ShardMessage::Publish { message, .. } = &message {
            self.pressure.publish_sent(target, message.body.len());
        }
        self.outboxes[target.index()].push(message);
    }

    /// Queues a message for every shard, this one included.
    pub fn broadcast(&self, mut make: impl FnMut() -> ShardMessage) {
        for index in 0..self.outboxes.len() {
            let target = ShardId(u16::try_from(index).expect("shard count fits u16"));
            self.send(target, make());
        }
    }

    /// True if some outbox is above its high water mark.
    pub fn is_congested(&self) -> bool {
        self.outboxes
            .iter()
            .any(|outbox| outbox.len() > OUTBOX_HIGH_WATER)
    }

    /// Waits until no outbox is above its high water mark.
    pub async fn wait_uncongested(&self) {
        while let Some(outbox) = self
            .outboxes
            .iter()
            .find(|outbox| outbox.len() > OUTBOX_HIGH_WATER)
        {
            outbox.drained.wait().await;
        }
    }

    /// Drains the outbox for a remote `target` into its channel, forever.
    pub async fn run_flusher(self: Rc<Self>, target: ShardId, sender: ConnectedSender<Batch>) {
        let outbox = &self.outboxes[target.index()];
        assert!(!outbox.flushing.replace(true), "one flusher per outbox");
        loop {
            outbox.ready.wait().await;
            loop {
                let batch = outbox.take_batch();
                if batch.is_empty() {
                    break;
                }
                if sender.send(batch).await.is_err() {
                    // The peer shard has shut down; nothing more can reach it.
                    return;
                }
                // glommio's own cross-executor wake-up can be lost (see `waker`).
                self.wake.poke(target.index());
                outbox.drained.notify_all();
            }
        }
    }

    /// Handles messages this shard sent to itself, forever.
    pub async fn run_local(self: Rc<Self>, mut handle: impl FnMut(Batch)) {
        let outbox = &self.outboxes[self.me.index()];
        loop {
            outbox.ready.wait().await;
            loop {
                let batch = outbox.take_batch();
                if batch.is_empty() {
                    break;
                }
                handle(batch);
                outbox.drained.notify_all();
                glommio::yield_if_needed().await;
            }
        }
    }

    /// Handles batches arriving from one remote shard, until that shard goes away.
    pub async fn run_inbox(receiver: ConnectedReceiver<Batch>, mut handle: impl FnMut(Batch)) {
        while let Some(batch) = receiver.recv().await {
            handle(batch);
            glommio::yield_if_needed().await;
        }
    }
}
