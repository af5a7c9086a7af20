//! Replies to cross-shard requests. A task that needs an answer from another shard registers a
//! slot, sends its request carrying a `ReplyTo`, and awaits the slot; the shard's inbox handler
//! fills the slot when the reply arrives. Nothing here blocks an inbox handler.

use crate::fast_map::FastMap;
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::ids::ShardId;
use crate::shard::message::Reply;

/// Where a reply goes: a shard and a request number unique on that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo {
    pub shard: ShardId,
    pub request: u64,
}

#[derive(Default)]
struct Slot {
    reply: Option<Reply>,
    waker: Option<Waker>,
}

/// The requests of one shard that await a reply.
#[derive(Default)]
pub struct PendingReplies {
    next_request: u64,
    slots: FastMap<u64, Rc<RefCell<Slot>>>,
}

/// A registered request; await `wait` for its reply.
pub struct PendingReply {
    slot: Rc<RefCell<Slot>>,
    pub reply_to: ReplyTo,
}

impl PendingReplies {
    pub fn register(&mut self, shard: ShardId) -> PendingReply {
        self.next_request += 1;
        let slot = Rc::new(RefCell::new(Slot::default()));
        self.slots.insert(self.next_request, slot.clone());
        PendingReply {
            slot,
            reply_to: ReplyTo {
                shard,
                request: self.next_request,
            },
        }
    }

    /// Delivers a reply. A reply for a request nobody waits for any more (its connection went
    /// away) is dropped.
    pub fn complete(&mut self, request: u64, reply: Reply) {
        if let Some(slot) = self.slots.remove(&request) {
            let mut slot = slot.borrow_mut();
            slot.reply = Some(reply);
            if let Some(waker) = slot.waker.take() {
                waker.wake();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

impl PendingReply {
    pub async fn wait(self) -> Reply {
        poll_fn(|cx| {
            let mut slot = self.slot.borrow_mut();
            match slot.reply.take() {
                Some(reply) => Poll::Ready(reply),
                None => {
                    slot.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}
