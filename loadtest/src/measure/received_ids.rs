//! `ReceivedIds`: which message ids a consumer accepted, one bit per (producer, sequence), so a
//! run can prove that nothing was lost and count what arrived twice.
//!
//! Each consumer thread fills its own set without locks; at the end the sets of the consumers of
//! one queue are merged, and an id accepted by two consumers counts as a duplicate. A second
//! bitmap remembers the ids whose accepted delivery carried the redelivered flag.

use crate::message_id::MessageId;

/// Growable bitmap over sequence numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bitset(Vec<u64>);

impl Bitset {
    /// Sets bit `i`; returns false if it was already set.
    fn insert(&mut self, i: u64) -> bool {
        let word = usize::try_from(i / 64).expect("sequence numbers fit in usize");
        if word >= self.0.len() {
            self.0.resize((word + 1).next_power_of_two(), 0);
        }
        let bit = 1u64 << (i % 64);
        let slot = self.0.get_mut(word).expect("resized above");
        let fresh = *slot & bit == 0;
        *slot |= bit;
        fresh
    }

    fn contains(&self, i: u64) -> bool {
        usize::try_from(i / 64)
            .ok()
            .and_then(|word| self.0.get(word))
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// ORs `other` in; returns how many of its bits were already set here.
    fn union(&mut self, other: &Bitset) -> u64 {
        if other.0.len() > self.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        let mut overlap = 0;
        for (mine, theirs) in self.0.iter_mut().zip(&other.0) {
            overlap += u64::from((*mine & theirs).count_ones());
            *mine |= theirs;
        }
        overlap
    }

    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

/// The ids one consumer (or, merged, one queue's consumers) accepted.
#[derive(Debug, Clone, Default)]
pub struct ReceivedIds {
    accepted: Vec<Bitset>,
    redelivered: Vec<Bitset>,
    duplicates: u64,
}

/// What a comparison of published and accepted ids found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missing {
    pub count: u64,
    /// The first few missing ids, for the report.
    pub sample: Vec<MessageId>,
}

/// How many missing ids a report lists by name.
pub const MISSING_SAMPLE_MAX: usize = 10;

impl ReceivedIds {
    /// Records an accepted delivery; returns false (and counts a duplicate) if the id was
    /// accepted before.
    pub fn accept(&mut self, id: MessageId, redelivered: bool) -> bool {
        let producer = usize::from(id.producer_index);
        if producer >= self.accepted.len() {
            self.accepted.resize_with(producer + 1, Bitset::default);
            self.redelivered.resize_with(producer + 1, Bitset::default);
        }
        if redelivered {
            if let Some(set) = self.redelivered.get_mut(producer) {
                set.insert(id.sequence);
            }
        }
        let fresh = self
            .accepted
            .get_mut(producer)
            .is_some_and(|set| set.insert(id.sequence));
        if !fresh {
            self.duplicates += 1;
        }
        fresh
    }

    pub fn contains(&self, id: MessageId) -> bool {
        self.accepted
            .get(usize::from(id.producer_index))
            .is_some_and(|set| set.contains(id.sequence))
    }

    /// True if `id` was accepted from a delivery flagged redelivered.
    pub fn accepted_redelivered(&self, id: MessageId) -> bool {
        self.redelivered
            .get(usize::from(id.producer_index))
            .is_some_and(|set| set.contains(id.sequence))
    }

    /// Distinct ids accepted.
    pub fn unique_count(&self) -> u64 {
        self.accepted.iter().map(Bitset::count).sum()
    }

    /// Ids accepted more than once (within and, after merges, across consumers).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Distinct ids accepted from a redelivered delivery.
    pub fn redelivered_count(&self) -> u64 {
        self.redelivered.iter().map(Bitset::count).sum()
    }

    /// Folds another consumer's set in; ids both accepted become duplicates.
    pub fn merge(&mut self, other: &ReceivedIds) {
        let producers = self.accepted.len().max(other.accepted.len());
        self.accepted.resize_with(producers, Bitset::default);
        self.redelivered.resize_with(producers, Bitset::default);
        for (mine, theirs) in self.accepted.iter_mut().zip(&other.accepted) {
            self.duplicates += mine.union(theirs);
        }
        for (mine, theirs) in self.redelivered.iter_mut().zip(&other.redelivered) {
            mine.union(theirs);
        }
        self.duplicates += other.duplicates;
    }

    /// Ids `0..published[p]` of each listed producer that were never accepted.
    pub fn missing(&self, published: &[(u16, u64)]) -> Missing {
        let mut missing = Missing::default();
        for &(producer_index, count) in published {
            for sequence in 0..count {
                let id = MessageId::new(producer_index, sequence);
                if !self.contains(id) {
                    missing.count += 1;
                    if missing.sample.len() < MISSING_SAMPLE_MAX {
                        missing.sample.push(id);
                    }
                }
            }
        }
        missing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(p: u16, s: u64) -> MessageId {
        MessageId::new(p, s)
    }

    #[test]
    fn finds_missing_ids_and_duplicates_within_one_consumer() {
        let mut ids = ReceivedIds::default();
        for s in (0..1000).filter(|s| s % 100 != 7) {
            assert!(ids.accept(id(2, s), false));
        }
        assert!(
            !ids.accept(id(2, 5), true),
            "second acceptance is a duplicate"
        );
        assert_eq!(ids.duplicates(), 1);
        assert_eq!(ids.unique_count(), 990);
        let missing = ids.missing(&[(2, 1000), (0, 3)]);
        assert_eq!(missing.count, 13);
        assert_eq!(missing.sample[0], id(2, 7));
        assert_eq!(missing.sample.len(), MISSING_SAMPLE_MAX);
        assert!(ids.accepted_redelivered(id(2, 5)));
        assert!(!ids.accepted_redelivered(id(2, 6)));
    }

    #[test]
    fn merge_counts_overlap_as_duplicates_and_keeps_redelivered_marks() {
        let mut a = ReceivedIds::default();
        let mut b = ReceivedIds::default();
        for s in 0..100 {
            a.accept(id(0, s), false);
        }
        for s in 90..200 {
            b.accept(id(0, s), s >= 150);
        }
        b.accept(id(5, 1_000_000), false);
        a.merge(&b);
        assert_eq!(a.unique_count(), 201);
        assert_eq!(a.duplicates(), 10);
        assert_eq!(a.redelivered_count(), 50);
        assert_eq!(a.missing(&[(0, 200)]).count, 0);
        assert!(a.contains(id(5, 1_000_000)));
    }
}
