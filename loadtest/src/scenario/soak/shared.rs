//! What the soak's worker threads share, and the reconnect loop every one of them runs in.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::client::{AmqpUri, ClientError};

use super::ledger::Ledger;
use super::session::Session;
use super::topology::Queues;

/// Pause before reconnecting after a failure: short, so the workers are back soon after a
/// restart, but not a busy loop while the broker is down.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// State shared by all workers of one soak.
#[derive(Debug)]
pub struct Shared {
    pub uri: AmqpUri,
    pub queues: Queues,
    pub ledger: Ledger,
    /// Publishers, the churn and the crashing consumers stop.
    pub stop_load: AtomicBool,
    /// The consumers stop (after the final drain).
    pub stop_consumers: AtomicBool,
    /// Consumers refuse nothing any more: the final drain.
    pub draining: AtomicBool,
    /// Messages per second per publisher.
    pub rate: f64,
    pub size: usize,
    pub refuse_percent: u32,
    pub seed: u64,
    pub crashes: AtomicU64,
    pub churned_queues: AtomicU64,
    /// Churned queues declared and not yet deleted.
    pub churn_pending: Mutex<BTreeSet<String>>,
    pub dead_lettered: AtomicU64,
    pub connections: AtomicU64,
}

impl Shared {
    pub fn load_stopped(&self) -> bool {
        self.stop_load.load(Ordering::Relaxed)
    }

    pub fn consumers_stopped(&self) -> bool {
        self.stop_consumers.load(Ordering::Relaxed)
    }

    fn churn_pending(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // Single inserts and removals: a panic cannot leave the set half-changed.
        self.churn_pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The churn is about to declare `queue`.
    pub fn churn_started(&self, queue: &str) {
        self.churn_pending().insert(queue.to_string());
    }

    /// `queue` was deleted.
    pub fn churn_done(&self, queue: &str) {
        self.churn_pending().remove(queue);
    }

    /// Churned queues that may still exist.
    pub fn churn_leftovers(&self) -> Vec<String> {
        self.churn_pending().iter().cloned().collect()
    }

    /// Opens a session, counting the connection.
    pub fn open(&self, name: &str, channels: u16, poll: Duration) -> Result<Session, ClientError> {
        let session = Session::open(&self.uri, name, channels, poll)?;
        self.connections.fetch_add(1, Ordering::Relaxed);
        Ok(session)
    }
}

/// Runs `session_life` again and again until `stopped` says so: each call opens its own
/// session and returns when told to stop (`Ok`) or when the connection failed (`Err`, counted
/// by kind, then a short pause and the next attempt). Failures are the point of a soak: they
/// are counted, never fatal.
pub fn reconnecting(
    shared: &Shared,
    stopped: impl Fn(&Shared) -> bool,
    mut session_life: impl FnMut(&Shared) -> Result<(), ClientError>,
) {
    while !stopped(shared) {
        if let Err(e) = session_life(shared) {
            shared.ledger.error(error_kind(&e));
            std::thread::sleep(RECONNECT_PAUSE);
        }
    }
}

/// A client error's kind, for the report's error counts: what happened, without the details
/// that differ every time (delivery tags, addresses).
pub fn error_kind(e: &ClientError) -> String {
    match e {
        ClientError::Io(io) => format!("I/O: {:?}", io.kind()),
        ClientError::Frame(_) => "framing error".to_string(),
        ClientError::Decode(_) => "undecodable method".to_string(),
        ClientError::Malformed { what } => format!("malformed {what}"),
        ClientError::ConnectionClosed { code, text, .. } => {
            format!("connection.close {code} {}", first_words(text))
        }
        ClientError::ChannelClosed { code, text, .. } => {
            format!("channel.close {code} {}", first_words(text))
        }
        ClientError::Unexpected { expected, got } => format!("expected {expected}, got {got}"),
        ClientError::Eof => "socket closed by the broker".to_string(),
        ClientError::Timeout { waiting_for, .. } => format!("timeout waiting for {waiting_for}"),
        ClientError::Uri { reason, .. } => format!("bad name: {reason}"),
    }
}

/// The reply text's first three words (RabbitMQ's texts name the object after them).
fn first_words(text: &str) -> String {
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_drop_the_details() {
        let closed = ClientError::ChannelClosed {
            channel: 3,
            code: 406,
            text: "PRECONDITION_FAILED - unknown delivery tag 17".to_string(),
            method: "basic.ack".to_string(),
        };
        assert_eq!(
            error_kind(&closed),
            "channel.close 406 PRECONDITION_FAILED - unknown"
        );
        assert_eq!(error_kind(&ClientError::Eof), "socket closed by the broker");
    }
}
