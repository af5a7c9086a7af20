//! The direct exchange matcher: a routing key reaches the destinations bound with exactly the
//! same key bytes. No normalisation of any kind (case, trailing dots) is applied, as in RabbitMQ.

use crate::fast_map::FastMap;
use std::hash::Hash;

use super::destinations::DestinationCounts;

/// Binding keys to the destinations bound with them.
#[derive(Debug, Clone)]
pub struct DirectIndex<D> {
    /// No entry has an empty destination set.
    by_key: FastMap<Box<[u8]>, DestinationCounts<D>>,
}

impl<D> Default for DirectIndex<D> {
    fn default() -> Self {
        DirectIndex {
            by_key: FastMap::default(),
        }
    }
}

impl<D: Copy + Ord + Hash> DirectIndex<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one reference from `binding_key` to `destination`; true if the pair is new.
    pub fn insert(&mut self, binding_key: &[u8], destination: D) -> bool {
        match self.by_key.get_mut(binding_key) {
            Some(destinations) => destinations.add(destination),
            None => {
                let mut destinations = DestinationCounts::default();
                destinations.add(destination);
                self.by_key.insert(binding_key.into(), destinations);
                true
            }
        }
    }

    /// Drops one reference from `binding_key` to `destination`; false if there was none.
    pub fn remove(&mut self, binding_key: &[u8], destination: D) -> bool {
        let Some(destinations) = self.by_key.get_mut(binding_key) else {
            return false;
        };
        let removed = destinations.remove(destination);
        if destinations.is_empty() {
            self.by_key.remove(binding_key);
        }
        removed
    }

    /// Appends the destinations bound with `routing_key`, each once.
    pub fn route(&self, routing_key: &[u8], out: &mut Vec<D>) {
        if let Some(destinations) = self.by_key.get(routing_key) {
            destinations.extend_into(out);
        }
    }

    /// How many references `binding_key` → `destination` holds (0 if none).
    pub fn count(&self, binding_key: &[u8], destination: D) -> u32 {
        self.by_key
            .get(binding_key)
            .map_or(0, |destinations| destinations.count(destination))
    }

    /// The sum of all reference counts: one per binding inserted and not removed.
    pub fn reference_count(&self) -> usize {
        self.by_key
            .values()
            .map(DestinationCounts::reference_count)
            .sum()
    }

    pub fn check_invariants(&self) {
        for destinations in self.by_key.values() {
            assert!(!destinations.is_empty(), "empty keys are removed");
            destinations.check_invariants();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routed(index: &DirectIndex<u32>, key: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        index.route(key, &mut out);
        out
    }

    #[test]
    fn routes_on_exact_bytes_only() {
        let mut index = DirectIndex::new();
        assert!(index.insert(b"a", 1));
        assert!(index.insert(b"a", 2));
        assert!(index.insert(b"A", 3));
        assert!(index.insert(b"", 4));
        index.check_invariants();
        assert_eq!(routed(&index, b"a"), vec![1, 2]);
        assert_eq!(routed(&index, b"A"), vec![3]);
        assert_eq!(routed(&index, b""), vec![4]);
        assert_eq!(routed(&index, b"a."), Vec::<u32>::new());
        assert_eq!(routed(&index, b"b"), Vec::<u32>::new());
    }

    #[test]
    fn counts_repeated_pairs() {
        let mut index = DirectIndex::new();
        assert!(index.insert(b"k", 1));
        assert!(!index.insert(b"k", 1));
        assert_eq!(index.count(b"k", 1), 2);
        assert!(index.remove(b"k", 1));
        assert_eq!(routed(&index, b"k"), vec![1]);
        assert!(index.remove(b"k", 1));
        assert!(!index.remove(b"k", 1));
        index.check_invariants();
        assert_eq!(index.reference_count(), 0);
        assert_eq!(routed(&index, b"k"), Vec::<u32>::new());
    }
}
