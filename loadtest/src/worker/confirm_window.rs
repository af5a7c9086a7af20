//! `ConfirmWindow` and the publisher's reader thread.
//!
//! The producer registers each message (delivery tag = 1-based publish sequence, and the publish
//! time) before writing it; the reader thread, on a `try_clone` of the same socket, settles
//! `basic.ack` / `basic.nack` (multiple=true settles every tag up to it), records publish→confirm
//! latency and wakes the producer, whose window of unconfirmed messages has room again.
//! The reader also watches for `connection.blocked`, `basic.return` and the broker closing the
//! channel or connection, which it reports back as the producer's error.

use std::collections::VecDeque;
use std::net::Shutdown;

use crate::client::Stream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hare_protocol::{FrameType, Method};

use crate::client::connection::{channel_closed, connection_closed, is_timeout};
use crate::client::inbound::{method_ids, parse_confirm, Confirm};
use crate::client::read_buffer::{scan_frame, ReadBuffer};
use crate::client::ClientError;
use crate::measure::counters::Counters;
use crate::measure::latency::LatencyHistogram;

/// How long the reader blocks in `read` before it looks at its stop flag.
const READ_POLL: Duration = Duration::from_millis(100);

/// Shared between a producer and its reader thread.
#[derive(Debug)]
pub struct ConfirmWindow {
    /// Unconfirmed messages allowed at once; `None` = confirms are off.
    window: Option<usize>,
    state: Mutex<WindowState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct WindowState {
    /// (delivery tag, publish time in ns), oldest first.
    outstanding: VecDeque<(u64, u64)>,
    confirmed: u64,
    nacked: u64,
    blocked_notices: u64,
    /// When the reader received the last confirm that settled something (ns since the run's
    /// epoch); 0 before the first.
    last_settled_ns: u64,
    failure: Option<String>,
    /// Set by the producer once it has sent `connection.close`.
    closing: bool,
}

impl ConfirmWindow {
    pub fn new(window: Option<usize>) -> ConfirmWindow {
        if let Some(window) = window {
            assert!(window > 0, "a confirm window holds at least one message");
        }
        ConfirmWindow {
            window,
            state: Mutex::new(WindowState::default()),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, WindowState> {
        // A poisoned lock means the other thread panicked; its state is still the best we have.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits up to `timeout` for room and returns how many of `wanted` messages may be
    /// published now (0 after a timeout), or the broker's error.
    pub fn reserve(&self, wanted: usize, timeout: Duration) -> Result<usize, String> {
        let mut state = self.lock();
        let Some(window) = self.window else {
            return match &state.failure {
                Some(failure) => Err(failure.clone()),
                None => Ok(wanted),
            };
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            let room = window.saturating_sub(state.outstanding.len());
            if room > 0 {
                return Ok(room.min(wanted));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(0);
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Registers tags `first..first+count` published at `publish_ns` (before they are written).
    pub fn register(&self, first: u64, count: u64, publish_ns: u64) {
        if self.window.is_none() {
            return;
        }
        let mut state = self.lock();
        state
            .outstanding
            .extend((first..first + count).map(|tag| (tag, publish_ns)));
    }

    /// Waits until every registered message is settled, or `timeout` passes. Returns the
    /// number still outstanding.
    pub fn drain(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while !state.outstanding.is_empty() && state.failure.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        state.outstanding.len()
    }

    pub fn mark_closing(&self) {
        self.lock().closing = true;
    }

    /// When the last confirm (ack or nack) that settled a message arrived, in ns since the
    /// run's epoch; `None` if none has.
    pub fn last_settled_ns(&self) -> Option<u64> {
        let at_ns = self.lock().last_settled_ns;
        (at_ns > 0).then_some(at_ns)
    }

    /// (confirmed, nacked, blocked notices, failure)
    pub fn totals(&self) -> (u64, u64, u64, Option<String>) {
        let state = self.lock();
        (
            state.confirmed,
            state.nacked,
            state.blocked_notices,
            state.failure.clone(),
        )
    }

    /// Settles a confirm that arrived at `now_ns`; returns the publish times of the settled
    /// messages through `settled`.
    fn settle(&self, confirm: Confirm, now_ns: u64, mut settled: impl FnMut(u64)) -> u64 {
        let (tag, multiple, ack) = match confirm {
            Confirm::Ack {
                delivery_tag,
                multiple,
            } => (delivery_tag, multiple, true),
            Confirm::Nack {
                delivery_tag,
                multiple,
            } => (delivery_tag, multiple, false),
        };
        let mut state = self.lock();
        let mut count = 0u64;
        if multiple {
            while let Some(&(front, publish_ns)) = state.outstanding.front() {
                if front > tag {
                    break;
                }
                state.outstanding.pop_front();
                settled(publish_ns);
                count += 1;
            }
        } else if let Ok(at) = state.outstanding.binary_search_by_key(&tag, |&(t, _)| t) {
            if let Some((_, publish_ns)) = state.outstanding.remove(at) {
                settled(publish_ns);
                count = 1;
            }
        }
        if count > 0 {
            state.last_settled_ns = state.last_settled_ns.max(now_ns);
        }
        if ack {
            state.confirmed += count;
        } else {
            state.nacked += count;
        }
        drop(state);
        self.changed.notify_all();
        count
    }

    fn fail(&self, failure: String) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some(failure);
        }
        drop(state);
        self.changed.notify_all();
    }
}

/// The publisher's reader loop; returns the publish→confirm latencies it saw.
pub fn read_confirms(
    mut stream: Stream,
    mut read: ReadBuffer,
    frame_max: u32,
    window: &Arc<ConfirmWindow>,
    counters: &Counters,
    epoch: Instant,
) -> LatencyHistogram {
    let mut latency = LatencyHistogram::default();
    let mut close_deadline: Option<Instant> = None;
    if let Err(e) = stream.set_read_timeout(Some(READ_POLL)) {
        window.fail(format!("cannot set a read timeout: {e}"));
        return latency;
    }
    loop {
        match process_frames(&mut read, frame_max, window, counters, epoch, &mut latency) {
            Ok(ReaderStep::Continue) => {}
            Ok(ReaderStep::Closed) => return latency,
            Err(e) => {
                window.fail(e.to_string());
                let _ = stream.shutdown(Shutdown::Both);
                return latency;
            }
        }
        match read.fill(&mut stream, frame_max) {
            Ok(0) => {
                if !window.lock().closing {
                    window.fail(ClientError::Eof.to_string());
                }
                return latency;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {
                if window.lock().closing {
                    let deadline = *close_deadline.get_or_insert_with(|| {
                        Instant::now() + crate::client::connection::RPC_TIMEOUT
                    });
                    if Instant::now() > deadline {
                        return latency;
                    }
                }
            }
            Err(e) => {
                if !window.lock().closing {
                    window.fail(ClientError::Io(e).to_string());
                }
                return latency;
            }
        }
    }
}

enum ReaderStep {
    Continue,
    Closed,
}

fn process_frames(
    read: &mut ReadBuffer,
    frame_max: u32,
    window: &ConfirmWindow,
    counters: &Counters,
    epoch: Instant,
    latency: &mut LatencyHistogram,
) -> Result<ReaderStep, ClientError> {
    let now_ns = u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let (mut confirmed, mut nacked) = (0u64, 0u64);
    let mut step = ReaderStep::Continue;
    while let Some((frame, used)) = scan_frame(read.unread(), frame_max)? {
        if frame.frame_type == FrameType::Method {
            if let Some(confirm) = parse_confirm(frame.payload) {
                let n = window.settle(confirm, now_ns, |publish_ns| {
                    latency.record_ns(now_ns.saturating_sub(publish_ns));
                });
                match confirm {
                    Confirm::Ack { .. } => confirmed += n,
                    Confirm::Nack { .. } => nacked += n,
                }
            } else if method_ids(frame.payload) == Some((60, 50)) {
                Counters::add(&counters.returned, 1);
            } else {
                let channel = frame.channel;
                match Method::decode(&Bytes::copy_from_slice(frame.payload))? {
                    Method::ConnectionClose(close) => return Err(connection_closed(&close)),
                    Method::ChannelClose(close) => return Err(channel_closed(channel, &close)),
                    Method::ConnectionCloseOk(_) => step = ReaderStep::Closed,
                    Method::ConnectionBlocked(blocked) => {
                        window.lock().blocked_notices += 1;
                        eprintln!(
                            "hareperf: the broker blocked a publisher: {}",
                            blocked.reason
                        );
                    }
                    _ => {}
                }
            }
        }
        read.consume(used);
    }
    Counters::add(&counters.confirmed, confirmed);
    Counters::add(&counters.nacked, nacked);
    Ok(step)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_opens_as_confirms_settle() {
        let window = ConfirmWindow::new(Some(4));
        assert_eq!(window.reserve(10, Duration::ZERO), Ok(4));
        window.register(1, 4, 100);
        assert_eq!(window.reserve(1, Duration::from_millis(1)), Ok(0));
        let mut times = Vec::new();
        let n = window.settle(
            Confirm::Ack {
                delivery_tag: 2,
                multiple: true,
            },
            500,
            |t| times.push(t),
        );
        assert_eq!(n, 2);
        assert_eq!(times, vec![100, 100]);
        assert_eq!(window.reserve(10, Duration::ZERO), Ok(2));
        let n = window.settle(
            Confirm::Nack {
                delivery_tag: 4,
                multiple: false,
            },
            700,
            |_| {},
        );
        assert_eq!(n, 1);
        assert_eq!(window.last_settled_ns(), Some(700));
        let n = window.settle(
            Confirm::Ack {
                delivery_tag: 4,
                multiple: false,
            },
            900,
            |_| {},
        );
        assert_eq!(n, 0, "tag 4 was settled already");
        assert_eq!(
            window.last_settled_ns(),
            Some(700),
            "a confirm that settles nothing does not end the publishing"
        );
        assert_eq!(window.drain(Duration::ZERO), 1, "tag 3 is still out");
        let (confirmed, nacked, _, failure) = window.totals();
        assert_eq!((confirmed, nacked, failure), (2, 1, None));
    }

    #[test]
    fn a_failure_ends_every_wait() {
        let window = ConfirmWindow::new(Some(1));
        window.register(1, 1, 0);
        window.fail("broker closed the connection".into());
        assert!(window.reserve(1, Duration::from_secs(5)).is_err());
        assert_eq!(window.drain(Duration::from_secs(5)), 1);
        assert!(ConfirmWindow::new(None).reserve(7, Duration::ZERO) == Ok(7));
    }
}
