//! A single-shard wake-up flag: one task waits, any task on the same shard notifies. Several
//! notifications before the waiter runs collapse into one, which is what batching wants.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
pub struct Notify {
    notified: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Notify {
    pub fn new() -> Notify {
        Notify::default()
    }

    pub fn notify(&self) {
        self.notified.set(true);
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
    }

    /// Waits until `notify` was called since the last wait returned.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.notified.replace(false) {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await;
    }
}

/// A wake-up for many waiters: `wait` returns after the next `notify_all`. Waiters re-check
/// their condition in a loop; nothing can slip between the check and the first poll because
/// both run on the same thread without an await in between.
///
/// A waiter holds one entry, updated when it is polled again and removed when its `Wait` is
/// dropped: a task that races `wait` against something else (the accept loop against
/// shutdown, once per accepted socket) must not leave a waker behind each time. Every waker
/// left behind kept its task's reference count up, and glommio panics the shard when that
/// count passes 32,767.
#[derive(Debug, Default)]
pub struct Event {
    generation: Cell<u64>,
    next_waiter: Cell<u64>,
    waiters: RefCell<Vec<(u64, Waker)>>,
}

impl Event {
    pub fn new() -> Event {
        Event::default()
    }

    pub fn notify_all(&self) {
        self.generation.set(self.generation.get() + 1);
        // Taken first: a woken task's `Wait` may be dropped while we wake the others.
        let waiters = std::mem::take(&mut *self.waiters.borrow_mut());
        for (_, waker) in waiters {
            waker.wake();
        }
    }

    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            start: self.generation.get(),
            id: None,
        }
    }

    /// Waiters registered now (tests).
    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }
}

/// The future of `Event::wait`.
#[derive(Debug)]
pub struct Wait<'a> {
    event: &'a Event,
    start: u64,
    /// Its entry in `event.waiters`, once polled.
    id: Option<u64>,
}

impl Wait<'_> {
    fn deregister(&mut self) {
        if let Some(id) = self.id.take() {
            self.event
                .waiters
                .borrow_mut()
                .retain(|(waiter, _)| *waiter != id);
        }
    }
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.event.generation.get() != self.start {
            self.deregister();
            return Poll::Ready(());
        }
        let event = self.event;
        let mut waiters = event.waiters.borrow_mut();
        let entry = self
            .id
            .and_then(|id| waiters.iter_mut().find(|(waiter, _)| *waiter == id));
        match entry {
            Some((_, waker)) => waker.clone_from(cx.waker()),
            None => {
                let id = event.next_waiter.get();
                event.next_waiter.set(id + 1);
                waiters.push((id, cx.waker().clone()));
                drop(waiters);
                self.id = Some(id);
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn poll_once(wait: &mut Wait<'_>) -> Poll<()> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(wait).poll(&mut cx)
    }

    #[test]
    fn a_wait_dropped_before_the_notification_leaves_no_waker() {
        let event = Event::new();
        for _ in 0..100 {
            let mut wait = event.wait();
            assert_eq!(poll_once(&mut wait), Poll::Pending);
            assert_eq!(poll_once(&mut wait), Poll::Pending);
            assert_eq!(
                event.waiting(),
                1,
                "one entry per waiter, however often polled"
            );
        }
        assert_eq!(event.waiting(), 0);
    }

    #[test]
    fn notify_all_wakes_every_waiter_once() {
        let event = Event::new();
        let mut first = event.wait();
        let mut second = event.wait();
        assert_eq!(poll_once(&mut first), Poll::Pending);
        assert_eq!(poll_once(&mut second), Poll::Pending);
        event.notify_all();
        assert_eq!(event.waiting(), 0);
        assert_eq!(poll_once(&mut first), Poll::Ready(()));
        assert_eq!(poll_once(&mut second), Poll::Ready(()));
        // A wait begun after the notification waits for the next one.
        let mut third = event.wait();
        assert_eq!(poll_once(&mut third), Poll::Pending);
        drop(first);
        drop(second);
        assert_eq!(event.waiting(), 1);
    }
}
