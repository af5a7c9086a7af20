//! The ready list: messages waiting for a consumer, in delivery order. Without priorities it is
//! one FIFO; with `x-max-priority` it is one FIFO per level, highest level first. Each level is
//! sorted by message id, so a requeued message goes back to its original position and a
//! fetched body finds its entry by binary search.
//!
//! A message that expires in the middle of a level (a per-message TTL shorter than those ahead
//! of it) is left in place as a tombstone (`QueuedMessage::is_tombstone`) until it reaches the
//! head of its level, where it is dropped: removing it in place would move up to the whole
//! backlog. A level's head is never a tombstone, and tombstones are not counted in `len`.

use std::collections::VecDeque;

use crate::ids::MessageId;
use crate::queue::entry::QueuedMessage;

#[derive(Debug)]
pub struct ReadyList {
    /// Index = priority level.
    levels: Vec<VecDeque<QueuedMessage>>,
    /// Entries that are not tombstones.
    live: usize,
}

impl ReadyList {
    pub fn new(levels: usize) -> ReadyList {
        ReadyList {
            levels: (0..levels.max(1)).map(|_| VecDeque::new()).collect(),
            live: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Entries held, tombstones included (what the list costs in RAM).
    pub fn entries(&self) -> usize {
        self.levels.iter().map(VecDeque::len).sum()
    }

    fn level_of(&self, entry: &QueuedMessage) -> usize {
        usize::from(entry.priority).min(self.levels.len() - 1)
    }

    /// Appends a new message: ids increase within a level.
    pub fn push_back(&mut self, entry: QueuedMessage) {
        let level = self.level_of(&entry);
        let queue = &mut self.levels[level];
        assert!(
            queue.back().is_none_or(|last| last.id < entry.id),
            "enqueued ids increase"
        );
        queue.push_back(entry);
        self.live += 1;
    }

    /// Puts a message back at its original position in its level.
    pub fn insert(&mut self, entry: QueuedMessage) {
        let level = self.level_of(&entry);
        let queue = &mut self.levels[level];
        let position = queue.partition_point(|queued| queued.id < entry.id);
        queue.insert(position, entry);
        self.live += 1;
    }

    /// The next message to deliver.
    pub fn front(&self) -> Option<&QueuedMessage> {
        self.levels.iter().rev().find_map(VecDeque::front)
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let level = self.levels.iter().rposition(|queue| !queue.is_empty())?;
        let entry = self.levels[level].pop_front()?;
        self.live -= 1;
        self.trim(level);
        Some(entry)
    }

    /// Drops the tombstones at the head of a level.
    fn trim(&mut self, level: usize) {
        let queue = &mut self.levels[level];
        while queue.front().is_some_and(QueuedMessage::is_tombstone) {
            queue.pop_front();
        }
    }

    /// The live entry with this id, in any level.
    pub fn get_mut(&mut self, id: MessageId) -> Option<&mut QueuedMessage> {
        self.levels.iter_mut().find_map(|queue| {
            let position = queue.partition_point(|queued| queued.id < id);
            queue
                .get_mut(position)
                .filter(|queued| queued.id == id && !queued.is_tombstone())
        })
    }

    /// Takes the live entry with this id out of the list (a tombstone stays behind if it was
    /// not at the head of its level) and returns it.
    pub fn take(&mut self, id: MessageId) -> Option<QueuedMessage> {
        let level = self.levels.iter().position(|queue| {
            let position = queue.partition_point(|queued| queued.id < id);
            queue
                .get(position)
                .is_some_and(|queued| queued.id == id && !queued.is_tombstone())
        })?;
        let queue = &mut self.levels[level];
        let position = queue.partition_point(|queued| queued.id < id);
        let entry = &mut queue[position];
        let taken = QueuedMessage {
            message: entry.message.take(),
            stored: entry.stored.take(),
            ..*entry
        };
        self.live -= 1;
        if position == 0 {
            self.trim(level);
        }
        Some(taken)
    }

    /// Takes every live entry with an id up to `last` (they are at the heads of their levels).
    pub fn take_through(&mut self, last: MessageId, out: &mut Vec<QueuedMessage>) {
        for level in 0..self.levels.len() {
            while self.levels[level]
                .front()
                .is_some_and(|queued| queued.id <= last)
            {
                let entry = self.levels[level].pop_front().expect("front checked");
                self.live -= 1;
                out.push(entry);
                self.trim(level);
            }
        }
    }

    /// Live entries in delivery order.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.levels
            .iter()
            .rev()
            .flat_map(|queue| queue.iter())
            .filter(|queued| !queued.is_tombstone())
    }

    /// Takes every live entry, in delivery order.
    pub fn drain(&mut self) -> Vec<QueuedMessage> {
        let mut out = Vec::with_capacity(self.live);
        for queue in self.levels.iter_mut().rev() {
            out.extend(queue.drain(..).filter(|queued| !queued.is_tombstone()));
        }
        self.live = 0;
        out
    }

    /// Keeps the live entries `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&QueuedMessage) -> bool) {
        for queue in &mut self.levels {
            queue.retain(|queued| !queued.is_tombstone() && keep(queued));
        }
        self.live = self.levels.iter().map(VecDeque::len).sum();
    }

    /// Fills an empty list with messages sorted by id. One level reuses the vector's
    /// allocation: no second copy of a large recovered index.
    pub fn restore(&mut self, messages: Vec<QueuedMessage>) {
        assert!(self.entries() == 0, "restore into an empty ready list");
        self.live = messages.len();
        if self.levels.len() == 1 {
            self.levels[0] = VecDeque::from(messages);
            return;
        }
        for entry in messages {
            let level = self.level_of(&entry);
            self.levels[level].push_back(entry);
        }
    }

    /// Test and debug check: ids increase within each level, heads are live, `live` is right.
    pub fn check_invariants(&self) {
        for queue in &self.levels {
            debug_assert!(queue
                .iter()
                .zip(queue.iter().skip(1))
                .all(|(a, b)| a.id < b.id));
            debug_assert!(queue.front().is_none_or(|q| !q.is_tombstone()));
        }
        debug_assert_eq!(self.live, self.iter().count());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u64, priority: u8) -> QueuedMessage {
        let message = std::sync::Arc::new(crate::queue::message::Message {
            exchange: crate::protocol::ShortStr::from_static(""),
            routing_key: crate::protocol::ShortStr::from_static("k"),
            persistent: false,
            properties_raw: bytes::Bytes::new(),
            body: bytes::Bytes::from_static(b"x"),
            ttl: None,
            priority,
        });
        QueuedMessage {
            id: MessageId(id),
            message: Some(message),
            stored: None,
            redelivered: false,
            priority,
            record_overhead: 0,
        }
    }

    fn ids(list: &ReadyList) -> Vec<u64> {
        list.iter().map(|q| q.id.0).collect()
    }

    #[test]
    fn higher_levels_first_fifo_within_a_level() {
        let mut list = ReadyList::new(4);
        for (id, priority) in [(1, 0), (2, 3), (3, 1), (4, 3), (5, 9)] {
            list.push_back(entry(id, priority));
        }
        // Priority 9 is above the top level (3): it counts as 3.
        assert_eq!(ids(&list), vec![2, 4, 5, 3, 1]);
        assert_eq!(list.pop_front().unwrap().id, MessageId(2));
        list.insert(entry(2, 3));
        assert_eq!(ids(&list), vec![2, 4, 5, 3, 1]);
        list.check_invariants();
    }

    #[test]
    fn taken_entries_leave_tombstones_that_are_skipped_and_trimmed() {
        let mut list = ReadyList::new(1);
        for id in 1..=5 {
            list.push_back(entry(id, 0));
        }
        assert!(list.take(MessageId(3)).is_some());
        assert!(
            list.take(MessageId(3)).is_none(),
            "a tombstone is not taken twice"
        );
        assert_eq!(list.len(), 4);
        assert_eq!(list.entries(), 5);
        assert_eq!(ids(&list), vec![1, 2, 4, 5]);
        assert!(list.get_mut(MessageId(3)).is_none());
        list.pop_front();
        list.pop_front();
        // The tombstone of 3 was at the head after 2 left: dropped.
        assert_eq!(list.entries(), 2);
        assert_eq!(list.front().unwrap().id, MessageId(4));
        list.check_invariants();
    }

    #[test]
    fn take_through_takes_the_expired_prefix_of_every_level() {
        let mut list = ReadyList::new(2);
        for (id, priority) in [(1, 0), (2, 1), (3, 0), (4, 1), (5, 0)] {
            list.push_back(entry(id, priority));
        }
        let mut out = Vec::new();
        list.take_through(MessageId(3), &mut out);
        let mut taken: Vec<u64> = out.iter().map(|q| q.id.0).collect();
        taken.sort_unstable();
        assert_eq!(taken, vec![1, 2, 3]);
        assert_eq!(ids(&list), vec![4, 5]);
        list.check_invariants();
    }
}
