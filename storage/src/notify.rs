//! Single-threaded wake-up primitives for the tasks of one executor: an `Event` that wakes every
//! listener, and `LsnWaiters`, which wakes only the waiters whose LSN became durable.
//!
//! They live on one shard (`Rc`/`RefCell`), never cross threads, and never block.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A broadcast notification: `notify` wakes every listener created before it.
#[derive(Default)]
pub struct Event {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl Event {
    /// A future that resolves at the next `notify` after this call.
    pub fn listen(&self) -> Listener<'_> {
        Listener {
            event: self,
            generation: self.generation.get(),
        }
    }

    /// Wakes every current listener.
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        let wakers = std::mem::take(&mut *self.wakers.borrow_mut());
        for waker in wakers {
            waker.wake();
        }
    }
}

/// Future returned by [`Event::listen`].
pub struct Listener<'a> {
    event: &'a Event,
    generation: u64,
}

impl Future for Listener<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.generation {
            return Poll::Ready(());
        }
        let mut wakers = self.event.wakers.borrow_mut();
        if !wakers.iter().any(|w| w.will_wake(context.waker())) {
            wakers.push(context.waker().clone());
        }
        Poll::Pending
    }
}

/// Wakers keyed by the LSN they wait for. The count is bounded by the number of tasks waiting.
#[derive(Default)]
pub struct LsnWaiters {
    next_id: Cell<u64>,
    waiters: RefCell<BTreeMap<(u64, u64), Waker>>,
}

impl LsnWaiters {
    /// A fresh waiter id.
    pub fn next_id(&self) -> u64 {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        id
    }

    /// Registers (or refreshes) the waker of waiter `id` for `lsn`.
    pub fn register(&self, lsn: u64, id: u64, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        match waiters.get_mut(&(lsn, id)) {
            Some(existing) if existing.will_wake(waker) => {}
            Some(existing) => existing.clone_from(waker),
            None => {
                waiters.insert((lsn, id), waker.clone());
            }
        }
    }

    /// Forgets waiter `id` (its future was dropped or resolved).
    pub fn remove(&self, lsn: u64, id: u64) {
        self.waiters.borrow_mut().remove(&(lsn, id));
    }

    /// Wakes every waiter for an LSN at or below `durable_lsn`.
    pub fn wake_up_to(&self, durable_lsn: u64) {
        let woken = {
            let mut waiters = self.waiters.borrow_mut();
            let later = waiters.split_off(&(durable_lsn + 1, 0));
            std::mem::replace(&mut *waiters, later)
        };
        for waker in woken.into_values() {
            waker.wake();
        }
    }

    /// Wakes every waiter (the log failed).
    pub fn wake_all(&self) {
        let woken = std::mem::take(&mut *self.waiters.borrow_mut());
        for waker in woken.into_values() {
            waker.wake();
        }
    }
}
