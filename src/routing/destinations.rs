//! A small multiset of destinations shared by the direct, fanout and topic matchers.
//!
//! Several bindings can lead to the same destination through the same matcher entry (the same
//! key with different arguments, for example), so each entry counts its bindings and forgets a
//! destination only when the last of them goes. Entries are kept sorted in a `Vec` because the
//! hot path iterates them and most entries hold one or two destinations.

/// Destinations with the number of bindings that reference each; every count is at least 1.
#[derive(Debug, Clone)]
pub(crate) struct DestinationCounts<D> {
    /// Sorted by destination, no duplicates, no zero counts.
    entries: Vec<(D, u32)>,
}

impl<D> Default for DestinationCounts<D> {
    fn default() -> Self {
        DestinationCounts {
            entries: Vec::new(),
        }
    }
}

impl<D: Copy + Ord> DestinationCounts<D> {
    /// Adds one reference to `destination`; true if it was not present before.
    pub(crate) fn add(&mut self, destination: D) -> bool {
        match self.entries.binary_search_by(|(d, _)| d.cmp(&destination)) {
            Ok(index) => {
                let count = &mut self.entries[index].1;
                *count = count
                    .checked_add(1)
                    .expect("a binding count fits in u32: bindings are bounded far below that");
                false
            }
            Err(index) => {
                self.entries.insert(index, (destination, 1));
                true
            }
        }
    }

    /// Drops one reference to `destination`; false if it had none.
    pub(crate) fn remove(&mut self, destination: D) -> bool {
        match self.entries.binary_search_by(|(d, _)| d.cmp(&destination)) {
            Ok(index) => {
                let count = &mut self.entries[index].1;
                *count -= 1;
                if *count == 0 {
                    self.entries.remove(index);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// The number of references to `destination` (0 if absent).
    pub(crate) fn count(&self, destination: D) -> u32 {
        match self.entries.binary_search_by(|(d, _)| d.cmp(&destination)) {
            Ok(index) => self.entries[index].1,
            Err(_) => 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The sum of all reference counts.
    pub(crate) fn reference_count(&self) -> usize {
        self.entries.iter().map(|&(_, count)| count as usize).sum()
    }

    /// Appends every distinct destination to `out`, in ascending order.
    pub(crate) fn extend_into(&self, out: &mut Vec<D>) {
        out.extend(self.entries.iter().map(|&(destination, _)| destination));
    }

    pub(crate) fn check_invariants(&self) {
        for pair in self.entries.windows(2) {
            assert!(pair[0].0 < pair[1].0, "destinations sorted and distinct");
        }
        for &(_, count) in &self.entries {
            assert!(count > 0, "no zero counts are stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_references_and_forgets_at_zero() {
        let mut set = DestinationCounts::default();
        assert!(set.add(3));
        assert!(set.add(1));
        assert!(!set.add(3));
        set.check_invariants();
        assert_eq!(set.count(3), 2);
        assert_eq!(set.reference_count(), 3);
        let mut out = Vec::new();
        set.extend_into(&mut out);
        assert_eq!(out, vec![1, 3]);

        assert!(set.remove(3));
        assert_eq!(set.count(3), 1);
        assert!(set.remove(3));
        assert!(!set.remove(3));
        assert!(set.remove(1));
        set.check_invariants();
        assert!(set.is_empty());
    }
}
