//! The fanout exchange matcher: every bound destination receives every message, whatever its
//! routing key. Destinations are kept in a sorted `Vec` so routing is one linear copy.

use super::destinations::DestinationCounts;

/// The destinations bound to a fanout exchange, each counted once per binding.
#[derive(Debug, Clone)]
pub struct FanoutSet<D> {
    destinations: DestinationCounts<D>,
}

impl<D> Default for FanoutSet<D> {
    fn default() -> Self {
        FanoutSet {
            destinations: DestinationCounts::default(),
        }
    }
}

impl<D: Copy + Ord> FanoutSet<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one binding reference to `destination`; true if it was not bound before.
    pub fn insert(&mut self, destination: D) -> bool {
        self.destinations.add(destination)
    }

    /// Drops one binding reference to `destination`; false if there was none.
    pub fn remove(&mut self, destination: D) -> bool {
        self.destinations.remove(destination)
    }

    /// Appends every bound destination, each once, in ascending order.
    pub fn route(&self, out: &mut Vec<D>) {
        self.destinations.extend_into(out);
    }

    /// How many bindings reference `destination`.
    pub fn count(&self, destination: D) -> u32 {
        self.destinations.count(destination)
    }

    /// The sum of all reference counts: one per binding inserted and not removed.
    pub fn reference_count(&self) -> usize {
        self.destinations.reference_count()
    }

    pub fn check_invariants(&self) {
        self.destinations.check_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_every_destination_once() {
        let mut set = FanoutSet::new();
        assert!(set.insert(2));
        assert!(set.insert(1));
        assert!(!set.insert(2));
        set.check_invariants();
        let mut out = vec![7];
        set.route(&mut out);
        assert_eq!(out, vec![7, 1, 2]);

        assert!(set.remove(2));
        assert!(set.remove(2));
        assert!(!set.remove(2));
        set.check_invariants();
        let mut out = Vec::new();
        set.route(&mut out);
        assert_eq!(out, vec![1]);
        assert_eq!(set.reference_count(), 1);
    }
}
