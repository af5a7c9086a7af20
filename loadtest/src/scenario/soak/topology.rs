//! The soak's queues: which exist, with which arguments, and which the loss check covers.
//!
//! - **checked**: `<queue>-soak-a`, `<queue>-soak-b` (plain durable) and `<queue>-soak-prio`
//!   (durable, `x-max-priority` 9). Nothing removes a message from them but a consumer's ack,
//!   so every confirmed message must be acked by the end.
//! - **ttl**: `<queue>-soak-ttl`, `x-message-ttl` 200 ms, dead-lettering through the default
//!   exchange to **dead** `<queue>-soak-dead`, which a consumer empties. Expiry decides what
//!   leaves, so neither is checked.
//! - **capped**: `<queue>-soak-capped`, `x-max-length` 50 (drop-head): never consumed, it only
//!   ever holds the newest 50. Not checked.
//! - **churn**: `<queue>-soak-churn-N`, declared, published to and deleted one after another.
//!   Not checked (deleting a queue drops its messages).
//!
//! Every worker declares the fixed queues again after each (re)connection: the declares are
//! idempotent, and the first worker to come back after a restart finds them recovered.

use bytes::Bytes;
use hare_protocol::{FieldTable, FieldValue, ShortStr};

use crate::client::ClientError;

use super::session::Session;
use hare_protocol::{Method, QueueDeclare};

/// Most messages the capped queue keeps.
pub const CAPPED_LENGTH: i64 = 50;
/// How long a message lives in the TTL queue before it is dead-lettered.
pub const TTL_MS: i64 = 200;
/// The priority queue's `x-max-priority`.
pub const MAX_PRIORITY: u8 = 9;

/// The names of the soak's queues.
#[derive(Debug, Clone)]
pub struct Queues {
    pub checked: Vec<String>,
    pub priority: String,
    pub ttl: String,
    pub dead: String,
    pub capped: String,
    pub churn_prefix: String,
}

impl Queues {
    pub fn new(prefix: &str) -> Queues {
        let name = |suffix: &str| format!("{prefix}-soak-{suffix}");
        Queues {
            checked: vec![name("a"), name("b"), name("prio")],
            priority: name("prio"),
            ttl: name("ttl"),
            dead: name("dead"),
            capped: name("capped"),
            churn_prefix: name("churn"),
        }
    }

    /// The fixed queues (not the churned ones).
    pub fn fixed(&self) -> Vec<String> {
        let mut all = self.checked.clone();
        all.extend([self.ttl.clone(), self.dead.clone(), self.capped.clone()]);
        all
    }

    /// Declares every fixed queue with its arguments, on `channel`.
    pub fn declare(&self, session: &mut Session, channel: u16) -> Result<(), ClientError> {
        for queue in self.fixed() {
            declare_durable(session, channel, &queue, self.arguments(&queue))?;
        }
        Ok(())
    }

    fn arguments(&self, queue: &str) -> FieldTable {
        let mut arguments = FieldTable::new();
        let mut set = |key: &'static str, value: FieldValue| {
            arguments.insert(ShortStr::from_static(key), value);
        };
        if queue == self.priority {
            set("x-max-priority", FieldValue::I64(i64::from(MAX_PRIORITY)));
        } else if queue == self.ttl {
            set("x-message-ttl", FieldValue::I64(TTL_MS));
            set("x-dead-letter-exchange", text(""));
            set("x-dead-letter-routing-key", text(&self.dead));
        } else if queue == self.capped {
            set("x-max-length", FieldValue::I64(CAPPED_LENGTH));
        }
        arguments
    }
}

/// Declares a durable queue; returns its ready message count.
pub fn declare_durable(
    session: &mut Session,
    channel: u16,
    queue: &str,
    arguments: FieldTable,
) -> Result<u32, ClientError> {
    let request = QueueDeclare {
        queue: crate::client::topology::short(queue)?,
        durable: true,
        arguments,
        ..Default::default()
    };
    match session.rpc(channel, Method::QueueDeclare(request))? {
        Method::QueueDeclareOk(ok) => Ok(ok.message_count),
        other => Err(ClientError::Unexpected {
            expected: "queue.declare-ok",
            got: other.name(),
        }),
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_and_priority_queues_are_checked() {
        let queues = Queues::new("p");
        assert_eq!(queues.checked, vec!["p-soak-a", "p-soak-b", "p-soak-prio"]);
        for unchecked in [&queues.ttl, &queues.dead, &queues.capped] {
            assert!(!queues.checked.contains(unchecked));
        }
        assert_eq!(queues.fixed().len(), 6);
        assert!(queues.arguments("p-soak-a").is_empty());
        assert!(!queues.arguments("p-soak-ttl").is_empty());
    }
}
