//! Exchange kinds and their binding tables: given the bindings of one exchange, which
//! destinations does a published message reach? This module is pure: it knows nothing about
//! queues, shards, I/O or the wire codec. Destinations are an opaque id chosen by the caller
//! (a queue or an exchange), and header values are reached only through the
//! [`HeaderValue`] trait so that the codec's `FieldValue` can plug
//! in without this module depending on it.
//!
//! One file per concept: [`direct`] (exact key), [`fanout`] (key ignored), [`topic`] (word
//! trie with `*` and `#`), [`headers`] (`x-match` over header tables), [`consistent_hash`]
//! (one destination per message by hashing a key over weighted bindings), [`dedup`] (the
//! bounded cache of a message-deduplication exchange, which routes as fanout) and
//! `binding_table`, which stores the bindings of one exchange and delegates routing to the
//! matcher of its kind.

pub mod consistent_hash;
pub mod dedup;
pub mod direct;
pub mod fanout;
pub mod headers;
pub mod topic;

mod binding_table;
mod destinations;
#[cfg(test)]
mod test_support;

pub use binding_table::{Argument, BindError, BindingTable};
pub use consistent_hash::{HashInputs, HashProperty, HashSource, StableHasher};
pub use headers::{HeaderValue, HeadersMatch, XMatch};
pub use topic::TopicTrie;

/// The exchange types this broker routes with. The consistent-hash type comes from a RabbitMQ
/// plugin but has a matcher of its own; other plugin types are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeKind {
    /// Exact byte equality between the routing key and the binding key.
    Direct,
    /// Every bound destination, whatever the routing key.
    Fanout,
    /// Dot-separated words with `*` (one word) and `#` (zero or more words) wildcards.
    Topic,
    /// Header table matching under `x-match`; the routing key is ignored.
    Headers,
    /// `x-consistent-hash`: one destination per message, by hashing a key over weighted
    /// bindings.
    ConsistentHash,
    /// `x-message-deduplication`: every bound destination, as fanout, unless the message is a
    /// duplicate (`dedup`; the caller decides that before routing).
    MessageDeduplication,
}

impl ExchangeKind {
    /// Parses the `type` field of `exchange.declare`. Names are case-sensitive, as in RabbitMQ.
    pub fn parse(name: &[u8]) -> Option<ExchangeKind> {
        match name {
            b"direct" => Some(ExchangeKind::Direct),
            b"fanout" => Some(ExchangeKind::Fanout),
            b"topic" => Some(ExchangeKind::Topic),
            b"headers" => Some(ExchangeKind::Headers),
            b"x-consistent-hash" => Some(ExchangeKind::ConsistentHash),
            b"x-message-deduplication" => Some(ExchangeKind::MessageDeduplication),
            _ => None,
        }
    }

    /// The wire and management name of this kind; `parse(kind.as_str())` round-trips.
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::MessageDeduplication => "x-message-deduplication",
        }
    }
}

/// Sorts and deduplicates `out[start..]` in place, leaving `out[..start]` untouched.
///
/// Routing appends one entry per matching binding; a destination bound several times must still
/// receive one copy. Sorting only the new tail costs nothing when at most one entry was added,
/// which is the common case, and allocates nothing.
pub(crate) fn dedup_tail<D: Copy + Ord>(out: &mut Vec<D>, start: usize) {
    let Some(tail) = out.get_mut(start..) else {
        return;
    };
    if tail.len() < 2 {
        return;
    }
    tail.sort_unstable();
    let mut kept = 1;
    for read in 1..tail.len() {
        if tail[read] != tail[kept - 1] {
            tail[kept] = tail[read];
            kept += 1;
        }
    }
    out.truncate(start + kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_kind_round_trips_and_rejects_unknown() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
            ExchangeKind::ConsistentHash,
            ExchangeKind::MessageDeduplication,
        ] {
            assert_eq!(ExchangeKind::parse(kind.as_str().as_bytes()), Some(kind));
        }
        assert_eq!(ExchangeKind::parse(b"Direct"), None);
        assert_eq!(ExchangeKind::parse(b"x-delayed-message"), None);
        assert_eq!(ExchangeKind::parse(b"X-Consistent-Hash"), None);
        assert_eq!(ExchangeKind::parse(b""), None);
    }

    #[test]
    fn dedup_tail_keeps_prefix_and_removes_duplicates() {
        let mut out = vec![9, 9, 3, 1, 3, 2, 1];
        dedup_tail(&mut out, 2);
        assert_eq!(out, vec![9, 9, 1, 2, 3]);

        let mut single = vec![5, 5];
        dedup_tail(&mut single, 1);
        assert_eq!(single, vec![5, 5]);

        let mut empty: Vec<u32> = Vec::new();
        dedup_tail(&mut empty, 0);
        assert!(empty.is_empty());
    }
}
