//! When a queue's messages expire, kept apart from the 32-byte entries so a queue without TTL
//! pays nothing. Times are milliseconds since the Unix epoch: absolute, so a deadline recorded
//! in the log means the same after a restart.
//!
//! The queue TTL (`x-message-ttl`) gives deadlines that grow with message ids, so they are
//! kept as runs, one per distinct millisecond: (deadline, last id with it). When a run is due,
//! every ready message with an id up to its last id is due too (a per-message deadline is
//! only kept when it is earlier), so the queue takes that prefix from the heads of its levels.
//!
//! Deadlines earlier than the queue's (per-message `expiration`, recovered messages) are kept
//! one by one in an ordered set and expire wherever their message is in the queue, unlike
//! RabbitMQ, which expires them only at the head.

use std::collections::{BTreeSet, VecDeque};

use crate::ids::MessageId;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

#[derive(Debug, Default)]
pub struct ExpiryIndex {
    /// Queue-TTL deadlines in id order: (deadline, last id with it).
    runs: VecDeque<(u64, MessageId)>,
    /// Deadlines of single messages: (deadline, id).
    singles: BTreeSet<(u64, MessageId)>,
    /// Every message with an id up to this one is past its queue-TTL deadline: a message
    /// requeued from unacked below it expires instead.
    expired_through: MessageId,
}

/// What is due now.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Due {
    /// Every message with an id up to this one.
    pub through: Option<MessageId>,
    /// Single messages, wherever they are.
    pub singles: Vec<MessageId>,
}

impl ExpiryIndex {
    /// A message's deadline under the queue TTL. A deadline earlier than the last run's (the
    /// clock stepped back) is kept as a single, so runs stay ordered.
    pub fn add_queue_ttl(&mut self, id: MessageId, deadline: u64) {
        match self.runs.back_mut() {
            Some((last_deadline, last_id)) if *last_deadline == deadline => *last_id = id,
            Some((last_deadline, _)) if *last_deadline > deadline => self.add_single(id, deadline),
            _ => self.runs.push_back((deadline, id)),
        }
    }

    pub fn add_single(&mut self, id: MessageId, deadline: u64) {
        self.singles.insert((deadline, id));
    }

    pub fn next_deadline(&self) -> Option<u64> {
        let run = self.runs.front().map(|(deadline, _)| *deadline);
        let single = self.singles.first().map(|(deadline, _)| *deadline);
        match (run, single) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes every deadline at or before `now`.
    pub fn take_due(&mut self, now: u64) -> Due {
        let mut due = Due::default();
        while let Some(&(deadline, last)) = self.runs.front() {
            if deadline > now {
                break;
            }
            self.runs.pop_front();
            due.through = Some(last);
            self.expired_through = self.expired_through.max(last);
        }
        while let Some(&(deadline, id)) = self.singles.first() {
            if deadline > now {
                break;
            }
            self.singles.pop_first();
            due.singles.push(id);
        }
        due
    }

    /// The earliest deadline after `after`, if any.
    pub fn first_deadline_after(&self, after: u64) -> Option<u64> {
        let position = self
            .runs
            .partition_point(|(deadline, _)| *deadline <= after);
        let run = self.runs.get(position).map(|(deadline, _)| *deadline);
        let single = self
            .singles
            .range((after.saturating_add(1), MessageId(0))..)
            .next()
            .map(|(deadline, _)| *deadline);
        match (run, single) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What comes due in `(after, until]`: the last id of the queue-TTL runs in it (every
    /// ready id up to it is due), and the single messages.
    pub fn due_between(&self, after: u64, until: u64) -> Due {
        let through = self
            .runs
            .iter()
            .take_while(|(deadline, _)| *deadline <= until)
            .filter(|(deadline, _)| *deadline > after)
            .map(|(_, last)| *last)
            .last();
        let singles = self
            .singles
            .range((after.saturating_add(1), MessageId(0))..)
            .take_while(|(deadline, _)| *deadline <= until)
            .map(|(_, id)| *id)
            .collect();
        Due { through, singles }
    }

    /// True if a message with this id is past its queue-TTL deadline.
    pub fn is_expired_by_queue_ttl(&self, id: MessageId) -> bool {
        id <= self.expired_through
    }

    /// Forgets everything (the queue was purged of all it had, or its TTL went away).
    pub fn clear(&mut self) {
        self.runs.clear();
        self.singles.clear();
    }

    /// Deadlines held (for RAM accounting and tests).
    pub fn entries(&self) -> usize {
        self.runs.len() + self.singles.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_ttl_runs_collapse_per_millisecond_and_expire_as_a_prefix() {
        let mut index = ExpiryIndex::default();
        for id in 1..=100 {
            index.add_queue_ttl(MessageId(id), 1_000 + id / 50);
        }
        // Deadlines 1000, 1001 and 1002: three runs for a hundred messages.
        assert_eq!(index.entries(), 3);
        assert_eq!(index.next_deadline(), Some(1_000));
        assert_eq!(index.take_due(999), Due::default());
        let due = index.take_due(1_001);
        assert_eq!(due.through, Some(MessageId(99)));
        assert!(index.is_expired_by_queue_ttl(MessageId(99)));
        assert!(!index.is_expired_by_queue_ttl(MessageId(100)));
        assert_eq!(index.next_deadline(), Some(1_002));
    }

    #[test]
    fn single_deadlines_expire_in_deadline_order_whatever_their_ids() {
        let mut index = ExpiryIndex::default();
        index.add_queue_ttl(MessageId(1), 60_000);
        index.add_single(MessageId(2), 1_000);
        index.add_single(MessageId(3), 500);
        assert_eq!(index.next_deadline(), Some(500));
        let due = index.take_due(1_000);
        assert_eq!(due.through, None);
        assert_eq!(due.singles, vec![MessageId(3), MessageId(2)]);
        assert_eq!(index.next_deadline(), Some(60_000));
    }

    #[test]
    fn what_comes_due_in_a_window_is_found_without_taking_it() {
        let mut index = ExpiryIndex::default();
        index.add_queue_ttl(MessageId(1), 100);
        index.add_queue_ttl(MessageId(2), 200);
        index.add_queue_ttl(MessageId(3), 300);
        index.add_single(MessageId(9), 150);
        index.add_single(MessageId(8), 400);
        let due = index.due_between(100, 250);
        assert_eq!(due.through, Some(MessageId(2)));
        assert_eq!(due.singles, vec![MessageId(9)]);
        assert_eq!(index.first_deadline_after(150), Some(200));
        assert_eq!(index.first_deadline_after(300), Some(400));
        assert_eq!(index.first_deadline_after(400), None);
        assert_eq!(index.entries(), 5, "nothing taken");
    }

    #[test]
    fn a_clock_step_back_keeps_runs_ordered() {
        let mut index = ExpiryIndex::default();
        index.add_queue_ttl(MessageId(1), 2_000);
        index.add_queue_ttl(MessageId(2), 1_500);
        let due = index.take_due(1_600);
        assert_eq!(due.through, None);
        assert_eq!(due.singles, vec![MessageId(2)]);
    }
}
