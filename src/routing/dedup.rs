//! The cache of a message-deduplication exchange (`x-message-deduplication`, the
//! rabbitmq-message-deduplication plugin's exchange type): the deduplication header values it
//! has seen, each until its TTL passes, at most `capacity` of them. A value seen again while
//! cached is a duplicate and the message is not routed.
//!
//! Bounded in entries: when full, the oldest inserted entry goes (the plugin removes an
//! unspecified one). Expired entries are dropped when they are looked up or reach the front of
//! the insertion order; a full cache evicts in insertion order whatever their TTLs, as the
//! plugin does. Every operation is O(1) amortised. Keys are the header values' identity bytes,
//! chosen by the caller.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    /// Milliseconds since the epoch after which the value may pass again; None: never.
    expires_at: Option<u64>,
    /// Position in `order`: an older position there for the same key is stale.
    seq: u64,
}

#[derive(Debug)]
pub struct DedupCache {
    capacity: usize,
    /// `x-cache-ttl` of the exchange, milliseconds; None keeps entries until evicted.
    default_ttl_ms: Option<u64>,
    entries: HashMap<Bytes, Entry>,
    /// Keys in insertion order, with the sequence number they were inserted under.
    order: VecDeque<(u64, Bytes)>,
    next_seq: u64,
}

impl DedupCache {
    /// A cache of at most `capacity` (at least 1) values.
    pub fn new(capacity: u64, default_ttl_ms: Option<u64>) -> DedupCache {
        DedupCache {
            capacity: usize::try_from(capacity.max(1)).unwrap_or(usize::MAX),
            default_ttl_ms,
            entries: HashMap::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks `key` up at `now_ms`: true if it is new (and is now cached, for the message's own
    /// `ttl_ms` if it has one, else the cache's), false if it is a duplicate. A TTL of 0 or
    /// less caches nothing: the value is new again at once.
    pub fn insert(&mut self, key: Bytes, ttl_ms: Option<i64>, now_ms: u64) -> bool {
        if let Some(entry) = self.entries.get(&key) {
            if entry.expires_at.is_none_or(|at| at > now_ms) {
                return false;
            }
            self.entries.remove(&key);
        }
        let ttl = match ttl_ms {
            Some(ttl) => Some(u64::try_from(ttl).unwrap_or(0)),
            None => self.default_ttl_ms,
        };
        if ttl == Some(0) {
            return true;
        }
        while self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let expires_at = ttl.map(|ttl| now_ms.saturating_add(ttl));
        self.entries.insert(key.clone(), Entry { expires_at, seq });
        self.order.push_back((seq, key));
        self.compact_order();
        true
    }

    /// Removes the oldest live entry.
    fn evict_oldest(&mut self) {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.entries.get(&key).is_some_and(|entry| entry.seq == seq) {
                self.entries.remove(&key);
                return;
            }
        }
    }

    /// Drops stale positions (keys that expired and came back, or were evicted) once they
    /// outnumber the live ones, so `order` stays within twice the entries.
    fn compact_order(&mut self) {
        if self.order.len() <= 2 * self.entries.len().max(16) {
            return;
        }
        let entries = &self.entries;
        self.order
            .retain(|(seq, key)| entries.get(key).is_some_and(|entry| entry.seq == *seq));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &'static str) -> Bytes {
        Bytes::from_static(text.as_bytes())
    }

    #[test]
    fn a_value_is_a_duplicate_while_cached() {
        let mut cache = DedupCache::new(10, None);
        assert!(cache.insert(key("a"), None, 1000));
        assert!(!cache.insert(key("a"), None, 1_000_000));
        assert!(cache.insert(key("b"), None, 1000));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn entries_expire_after_the_exchange_ttl_or_the_message_ttl() {
        let mut cache = DedupCache::new(10, Some(100));
        assert!(cache.insert(key("a"), None, 1000));
        assert!(!cache.insert(key("a"), None, 1099));
        assert!(cache.insert(key("a"), None, 1100), "expired at 1100");
        assert!(!cache.insert(key("a"), None, 1150), "cached again");

        assert!(cache.insert(key("long"), Some(1000), 1000));
        assert!(!cache.insert(key("long"), None, 1500), "its own TTL wins");
        assert!(cache.insert(key("long"), None, 2000));

        assert!(cache.insert(key("zero"), Some(0), 1000));
        assert!(cache.insert(key("zero"), Some(-5), 1000), "nothing cached");
    }

    #[test]
    fn a_full_cache_evicts_the_oldest_entry() {
        let mut cache = DedupCache::new(3, None);
        for name in ["a", "b", "c"] {
            assert!(cache.insert(key(name), None, 0));
        }
        assert!(cache.insert(key("d"), None, 0), "evicts a");
        assert_eq!(cache.len(), 3);
        assert!(!cache.insert(key("b"), None, 0));
        assert!(cache.insert(key("a"), None, 0), "a was evicted; evicts b");
        assert!(cache.insert(key("b"), None, 0), "b was evicted; evicts c");
        assert!(!cache.insert(key("d"), None, 0));
    }

    #[test]
    fn reinserting_expired_values_keeps_the_order_bounded() {
        let mut cache = DedupCache::new(4, Some(1));
        for now in 0..10_000u64 {
            assert!(cache.insert(key("same"), None, now * 2));
        }
        assert_eq!(cache.len(), 1);
        assert!(cache.order.len() <= 32, "{}", cache.order.len());
        // Stale positions never evict a live entry.
        for name in ["a", "b", "c"] {
            assert!(cache.insert(key(name), Some(1_000_000), 20_000));
        }
        assert!(!cache.insert(key("a"), None, 20_001));
        assert_eq!(cache.len(), 4);
    }
}
