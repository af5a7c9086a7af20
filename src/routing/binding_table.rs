//! The bindings of one exchange: what `queue.bind` / `exchange.bind` added, as listed by the
//! management API, plus the matcher of the exchange's kind that routing consults.
//!
//! A binding is identified by (routing key, arguments, destination). The same destination bound
//! with different keys or arguments holds several bindings, yet routing yields it once per
//! message. Bindings are grouped per destination so that deleting a queue (which drops all of its
//! bindings) and asking whether a destination is bound are cheap. This module does not know what
//! a destination is, nor the exchange-level rules (auto-delete, `amq.*` protection) built on it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::consistent_hash::{parse_weight, HashInputs, HashRing, HashSource};
use super::direct::DirectIndex;
use super::fanout::FanoutSet;
use super::headers::{HeaderValue, HeadersBindings, HeadersMatch};
use super::topic::TopicTrie;
use super::ExchangeKind;

/// One binding argument: a field name and its value. Binding arguments are `Vec<Argument<V>>`.
pub type Argument<V> = (Vec<u8>, V);

/// Why a binding was refused; each maps to a 406 PRECONDITION_FAILED channel exception.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error(
        "invalid x-match field value {value}; expected one of all, any, all-with-x, any-with-x"
    )]
    InvalidXMatch { value: String },
    #[error("invalid x-match field value of a non-string type; expected one of all, any, all-with-x, any-with-x")]
    InvalidXMatchType,
    /// A consistent-hash weight that is not an integer; `key` is printed as the plugin does.
    #[error("The binding key must be an integer: {key}")]
    WeightNotInteger { key: String },
    #[error("The binding key must be greater than 0")]
    WeightNotPositive,
    #[error("The binding key must not exceed {max}")]
    WeightTooLarge { max: u32 },
}

/// The bindings of one exchange, with the index its kind routes through.
///
/// `D` identifies a destination (a queue or an exchange); `V` is a header field value.
#[derive(Debug, Clone)]
pub struct BindingTable<D, V> {
    kind: ExchangeKind,
    /// No destination maps to an empty list; bindings keep insertion order for listings.
    by_destination: BTreeMap<D, Vec<Binding<V>>>,
    binding_count: usize,
    /// Ties a headers binding to its parsed matcher, so unbinding removes exactly that one.
    binding_id_next: u64,
    matcher: Matcher<D, V>,
}

#[derive(Debug, Clone)]
struct Binding<V> {
    routing_key: Box<[u8]>,
    arguments: Vec<(Vec<u8>, V)>,
    id: u64,
}

#[derive(Debug, Clone)]
enum Matcher<D, V> {
    Direct(DirectIndex<D>),
    Fanout(FanoutSet<D>),
    Topic(TopicTrie<D>),
    Headers(HeadersBindings<D, V>),
    ConsistentHash(HashRing<D>),
}

impl<D, V> BindingTable<D, V>
where
    D: Copy + Eq + Hash + Ord + Debug,
    V: HeaderValue + Clone,
{
    pub fn new(kind: ExchangeKind) -> Self {
        let matcher = match kind {
            ExchangeKind::Direct => Matcher::Direct(DirectIndex::new()),
            ExchangeKind::Fanout | ExchangeKind::MessageDeduplication => {
                Matcher::Fanout(FanoutSet::new())
            }
            ExchangeKind::Topic => Matcher::Topic(TopicTrie::new()),
            ExchangeKind::Headers => Matcher::Headers(HeadersBindings::new()),
            ExchangeKind::ConsistentHash => {
                Matcher::ConsistentHash(HashRing::new(HashSource::RoutingKey))
            }
        };
        BindingTable {
            kind,
            by_destination: BTreeMap::new(),
            binding_count: 0,
            binding_id_next: 0,
            matcher,
        }
    }

    /// An empty consistent-hash table that hashes what `source` names.
    pub fn consistent_hash(source: HashSource) -> Self {
        let mut table = Self::new(ExchangeKind::ConsistentHash);
        table.matcher = Matcher::ConsistentHash(HashRing::new(source));
        table
    }

    pub fn kind(&self) -> ExchangeKind {
        self.kind
    }

    /// Ok(true) if added, Ok(false) if an identical binding existed. For the headers kind the
    /// arguments are parsed now, so an invalid `x-match` is refused before anything changes; for
    /// the consistent-hash kind the routing key is the weight, checked the same way.
    pub fn bind(
        &mut self,
        routing_key: &[u8],
        arguments: Vec<(Vec<u8>, V)>,
        destination: D,
    ) -> Result<bool, BindError> {
        if self.find(routing_key, &arguments, destination).is_some() {
            return Ok(false);
        }
        let id = self.binding_id_next;
        match &mut self.matcher {
            Matcher::Direct(index) => {
                index.insert(routing_key, destination);
            }
            Matcher::Fanout(set) => {
                set.insert(destination);
            }
            Matcher::Topic(trie) => {
                trie.insert(routing_key, destination);
            }
            Matcher::Headers(bindings) => {
                let parsed = HeadersMatch::parse(pairs(&arguments))?;
                bindings.insert(id, destination, parsed);
            }
            Matcher::ConsistentHash(ring) => {
                ring.insert(id, destination, parse_weight(routing_key)?);
            }
        }
        self.binding_id_next += 1;
        self.binding_count += 1;
        self.by_destination
            .entry(destination)
            .or_default()
            .push(Binding {
                routing_key: routing_key.into(),
                arguments,
                id,
            });
        Ok(true)
    }

    /// True if a binding was removed. Arguments are compared as unordered tables by
    /// [`HeaderValue::value_eq`].
    pub fn unbind(
        &mut self,
        routing_key: &[u8],
        arguments: &[(Vec<u8>, V)],
        destination: D,
    ) -> bool {
        let Some(index) = self.find(routing_key, arguments, destination) else {
            return false;
        };
        let Some(bindings) = self.by_destination.get_mut(&destination) else {
            return false;
        };
        let binding = bindings.remove(index);
        if bindings.is_empty() {
            self.by_destination.remove(&destination);
        }
        self.binding_count -= 1;
        self.matcher.remove(&binding, destination);
        true
    }

    /// Removes every binding to `destination` (the queue or exchange was deleted); returns how
    /// many there were.
    pub fn remove_destination(&mut self, destination: D) -> usize {
        let Some(bindings) = self.by_destination.remove(&destination) else {
            return 0;
        };
        for binding in &bindings {
            self.matcher.remove(binding, destination);
        }
        self.binding_count -= bindings.len();
        bindings.len()
    }

    /// Appends each matching destination once to `out`; entries already in `out` are left
    /// alone, so the caller can collect several exchanges into one buffer and reuse it.
    /// `routing_key` is the key being routed (the published one or a `CC` / `BCC` key),
    /// `headers` is the message's header table, `None` if it has none, and `hashed` what a
    /// consistent-hash exchange may hash. Allocates nothing beyond growing `out`.
    pub fn route<K: AsRef<[u8]>>(
        &self,
        routing_key: &[u8],
        headers: Option<&[(K, V)]>,
        hashed: &HashInputs<'_>,
        out: &mut Vec<D>,
    ) {
        match &self.matcher {
            Matcher::Direct(index) => index.route(routing_key, out),
            Matcher::Fanout(set) => set.route(out),
            Matcher::Topic(trie) => trie.route(routing_key, out),
            Matcher::Headers(bindings) => {
                let table = headers.unwrap_or(&[]);
                bindings.route(
                    table.iter().map(|(name, value)| (name.as_ref(), value)),
                    out,
                );
            }
            Matcher::ConsistentHash(ring) => ring.route(headers, hashed, out),
        }
    }

    pub fn len(&self) -> usize {
        self.binding_count
    }

    pub fn is_empty(&self) -> bool {
        self.binding_count == 0
    }

    /// True if this exact binding exists (arguments compared as in `unbind`). Looks only at
    /// `destination`'s bindings, so it stays cheap however many the exchange has.
    pub fn contains(&self, routing_key: &[u8], arguments: &[(Vec<u8>, V)], destination: D) -> bool {
        self.find(routing_key, arguments, destination).is_some()
    }

    pub fn has_destination(&self, destination: D) -> bool {
        self.by_destination.contains_key(&destination)
    }

    /// How many bindings lead to `destination`.
    pub fn destination_binding_count(&self, destination: D) -> usize {
        self.by_destination.get(&destination).map_or(0, Vec::len)
    }

    /// Every binding, for listings: (routing key, arguments, destination), grouped by
    /// destination in ascending order, then in bind order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[Argument<V>], D)> {
        self.by_destination
            .iter()
            .flat_map(|(&destination, bindings)| {
                bindings.iter().map(move |binding| {
                    (
                        &*binding.routing_key,
                        binding.arguments.as_slice(),
                        destination,
                    )
                })
            })
    }

    /// Every binding in the order it was bound, as `iter` lists them. Snapshots store bindings
    /// in this order so that replaying them rebuilds a consistent-hash ring the same.
    pub fn iter_in_bind_order(&self) -> impl Iterator<Item = (&[u8], &[Argument<V>], D)> {
        let mut all: Vec<(&Binding<V>, D)> = self
            .by_destination
            .iter()
            .flat_map(|(&destination, bindings)| {
                bindings.iter().map(move |binding| (binding, destination))
            })
            .collect();
        all.sort_unstable_by_key(|(binding, _)| binding.id);
        all.into_iter().map(|(binding, destination)| {
            (
                &*binding.routing_key,
                binding.arguments.as_slice(),
                destination,
            )
        })
    }

    /// O(bindings): for tests and debug builds.
    pub fn check_invariants(&self) {
        let mut total = 0;
        for (&destination, bindings) in &self.by_destination {
            assert!(
                !bindings.is_empty(),
                "destinations without bindings are dropped"
            );
            total += bindings.len();
            for (index, binding) in bindings.iter().enumerate() {
                assert!(binding.id < self.binding_id_next);
                for earlier in &bindings[..index] {
                    assert!(
                        !same_binding(earlier, &binding.routing_key, &binding.arguments),
                        "no duplicate bindings"
                    );
                }
                self.check_matcher_has(binding, destination, bindings);
            }
        }
        assert_eq!(total, self.binding_count);
        match &self.matcher {
            Matcher::Direct(index) => {
                index.check_invariants();
                assert_eq!(index.reference_count(), total);
            }
            Matcher::Fanout(set) => {
                set.check_invariants();
                assert_eq!(set.reference_count(), total);
            }
            Matcher::Topic(trie) => {
                trie.check_invariants();
                assert_eq!(trie.reference_count(), total);
            }
            Matcher::Headers(bindings) => assert_eq!(bindings.len(), total),
            Matcher::ConsistentHash(ring) => {
                ring.check_invariants();
                assert_eq!(ring.len(), total);
            }
        }
    }

    fn check_matcher_has(&self, binding: &Binding<V>, destination: D, all: &[Binding<V>]) {
        let same_key = all
            .iter()
            .filter(|other| other.routing_key == binding.routing_key)
            .count();
        let key = &*binding.routing_key;
        match &self.matcher {
            Matcher::Direct(index) => assert_eq!(index.count(key, destination) as usize, same_key),
            Matcher::Topic(trie) => assert_eq!(trie.count(key, destination) as usize, same_key),
            Matcher::Fanout(set) => assert_eq!(set.count(destination) as usize, all.len()),
            Matcher::Headers(bindings) => assert_eq!(
                bindings.count(binding.id, destination),
                1,
                "each headers binding has exactly one entry"
            ),
            Matcher::ConsistentHash(ring) => {
                assert_eq!(ring.destination(binding.id), Some(destination));
                let weight = parse_weight(key).expect("stored weights were checked");
                assert_eq!(ring.weight(binding.id), u64::from(weight));
            }
        }
    }

    /// The index of the identical binding in `destination`'s list, if there is one.
    fn find(
        &self,
        routing_key: &[u8],
        arguments: &[(Vec<u8>, V)],
        destination: D,
    ) -> Option<usize> {
        self.by_destination
            .get(&destination)?
            .iter()
            .position(|binding| same_binding(binding, routing_key, arguments))
    }
}

impl<D: Copy + Eq + Hash + Ord, V: HeaderValue> Matcher<D, V> {
    /// Drops the index entry of one binding to `destination`.
    fn remove(&mut self, binding: &Binding<V>, destination: D) {
        let removed = match self {
            Matcher::Direct(index) => index.remove(&binding.routing_key, destination),
            Matcher::Fanout(set) => set.remove(destination),
            Matcher::Topic(trie) => trie.remove(&binding.routing_key, destination),
            Matcher::Headers(bindings) => bindings.remove(binding.id),
            Matcher::ConsistentHash(ring) => ring.remove(binding.id),
        };
        assert!(removed, "every stored binding has an index entry");
    }
}

fn pairs<V>(arguments: &[(Vec<u8>, V)]) -> impl Iterator<Item = (&[u8], &V)> + Clone {
    arguments
        .iter()
        .map(|(name, value)| (name.as_slice(), value))
}

fn same_binding<V: HeaderValue>(
    binding: &Binding<V>,
    routing_key: &[u8],
    arguments: &[(Vec<u8>, V)],
) -> bool {
    *binding.routing_key == *routing_key && same_table(&binding.arguments, arguments)
}

/// Argument tables are equal regardless of order, as RabbitMQ sorts them before comparing.
fn same_table<V: HeaderValue>(a: &[(Vec<u8>, V)], b: &[(Vec<u8>, V)]) -> bool {
    let contains = |table: &[(Vec<u8>, V)], (name, value): &(Vec<u8>, V)| {
        table.iter().any(|(other_name, other_value)| {
            other_name == name
                && other_value.is_void() == value.is_void()
                && other_value.value_eq(value)
        })
    };
    a.len() == b.len()
        && a.iter().all(|pair| contains(b, pair))
        && b.iter().all(|pair| contains(a, pair))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::test_support::{s, table, Rng, TestValue};

    type Table = BindingTable<u32, TestValue>;
    type Arguments = Vec<(Vec<u8>, TestValue)>;

    fn bind(t: &mut Table, key: &str, arguments: Arguments, destination: u32) -> bool {
        let added = t
            .bind(key.as_bytes(), arguments, destination)
            .expect("test bindings are valid");
        t.check_invariants();
        added
    }

    fn unbind(t: &mut Table, key: &str, arguments: &Arguments, destination: u32) -> bool {
        let removed = t.unbind(key.as_bytes(), arguments, destination);
        t.check_invariants();
        removed
    }

    fn route(t: &Table, key: &str, headers: Option<&Arguments>) -> Vec<u32> {
        let mut out = Vec::new();
        let hashed = HashInputs {
            routing_key: key.as_bytes(),
            ..HashInputs::default()
        };
        t.route(
            key.as_bytes(),
            headers.map(Vec::as_slice),
            &hashed,
            &mut out,
        );
        out
    }

    #[test]
    fn bind_is_idempotent_and_unbind_removes_one() {
        let mut t = Table::new(ExchangeKind::Direct);
        assert_eq!(t.kind(), ExchangeKind::Direct);
        assert!(bind(&mut t, "k", vec![], 1));
        assert!(!bind(&mut t, "k", vec![], 1));
        assert!(bind(&mut t, "k", table(&[("a", TestValue::Int(1))]), 1));
        assert!(bind(&mut t, "k", vec![], 2));
        assert_eq!(t.len(), 3);
        assert_eq!(t.destination_binding_count(1), 2);
        assert_eq!(route(&t, "k", None), vec![1, 2]);

        assert!(!unbind(&mut t, "k", &table(&[("a", TestValue::Int(2))]), 1));
        assert!(unbind(
            &mut t,
            "k",
            &table(&[("a", TestValue::Short(1))]),
            1
        ));
        assert_eq!(
            route(&t, "k", None),
            vec![1, 2],
            "the plain binding remains"
        );
        assert!(unbind(&mut t, "k", &vec![], 1));
        assert!(!unbind(&mut t, "k", &vec![], 1));
        assert!(!t.has_destination(1));
        assert_eq!(route(&t, "k", None), vec![2]);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn argument_order_does_not_make_a_new_binding() {
        let mut t = Table::new(ExchangeKind::Fanout);
        let forward = table(&[("a", TestValue::Int(1)), ("b", s("x"))]);
        let backward = table(&[("b", s("x")), ("a", TestValue::Int(1))]);
        assert!(bind(&mut t, "", forward, 1));
        assert!(!bind(&mut t, "", backward.clone(), 1));
        assert!(
            bind(&mut t, "", table(&[("a", TestValue::Int(1))]), 1),
            "a subset differs"
        );
        assert_eq!(t.len(), 2);
        assert!(unbind(&mut t, "", &backward, 1));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_destination_bound_several_ways_gets_one_copy() {
        let mut topic = Table::new(ExchangeKind::Topic);
        assert!(bind(&mut topic, "a.*", vec![], 1));
        assert!(bind(&mut topic, "*.b", vec![], 1));
        assert!(bind(&mut topic, "#", vec![], 2));
        assert_eq!(route(&topic, "a.b", None), vec![1, 2]);

        let mut fanout = Table::new(ExchangeKind::Fanout);
        assert!(bind(&mut fanout, "x", vec![], 1));
        assert!(bind(&mut fanout, "y", vec![], 1));
        assert_eq!(route(&fanout, "anything", None), vec![1]);

        let mut headers = Table::new(ExchangeKind::Headers);
        assert!(bind(
            &mut headers,
            "",
            table(&[("a", TestValue::Int(1))]),
            1
        ));
        assert!(bind(
            &mut headers,
            "",
            table(&[("b", TestValue::Int(2))]),
            1
        ));
        let message = table(&[("a", TestValue::Int(1)), ("b", TestValue::Int(2))]);
        assert_eq!(route(&headers, "", Some(&message)), vec![1]);
    }

    #[test]
    fn route_appends_after_existing_entries() {
        let mut t = Table::new(ExchangeKind::Topic);
        assert!(bind(&mut t, "#", vec![], 1));
        assert!(bind(&mut t, "a", vec![], 1));
        let mut out = vec![1, 0];
        let hashed = HashInputs::default();
        t.route(b"a", None::<&[(Vec<u8>, TestValue)]>, &hashed, &mut out);
        assert_eq!(
            out,
            vec![1, 0, 1],
            "deduplication is per exchange, within the new tail"
        );
    }

    #[test]
    fn headers_kind_matches_headers_and_ignores_the_key() {
        let mut t = Table::new(ExchangeKind::Headers);
        assert!(bind(
            &mut t,
            "ignored",
            table(&[("a", TestValue::Int(1))]),
            1
        ));
        let any = table(&[
            ("x-match", s("any")),
            ("a", TestValue::Int(2)),
            ("b", s("y")),
        ]);
        assert!(bind(&mut t, "", any.clone(), 2));
        assert!(
            bind(&mut t, "", vec![], 3),
            "no pairs under all: matches everything"
        );
        assert!(
            bind(&mut t, "", table(&[("x-match", s("any"))]), 4),
            "no pairs under any: nothing"
        );

        let message = table(&[("a", TestValue::Short(1)), ("b", s("y"))]);
        assert_eq!(route(&t, "other", Some(&message)), vec![1, 2, 3]);
        assert_eq!(
            route(&t, "ignored", None),
            vec![3],
            "no headers is an empty table"
        );

        assert!(unbind(&mut t, "", &any, 2));
        assert_eq!(route(&t, "", Some(&message)), vec![1, 3]);
    }

    #[test]
    fn invalid_x_match_changes_nothing() {
        let mut t = Table::new(ExchangeKind::Headers);
        let bad = table(&[("x-match", s("some")), ("a", TestValue::Int(1))]);
        assert_eq!(
            t.bind(b"", bad, 1),
            Err(BindError::InvalidXMatch {
                value: "some".to_string()
            })
        );
        let not_a_string = table(&[("x-match", TestValue::Int(1))]);
        assert!(t.bind(b"", not_a_string, 1).is_err());
        t.check_invariants();
        assert!(t.is_empty());
        assert!(!t.has_destination(1));

        // Other kinds do not interpret arguments at all.
        let mut direct = Table::new(ExchangeKind::Direct);
        assert!(bind(&mut direct, "k", table(&[("x-match", s("some"))]), 1));
    }

    #[test]
    fn remove_destination_drops_all_its_bindings() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            let mut t = Table::new(kind);
            assert!(bind(&mut t, "a", vec![], 1));
            assert!(bind(&mut t, "b", vec![], 1));
            assert!(bind(&mut t, "a", table(&[("h", TestValue::Void)]), 1));
            assert!(bind(&mut t, "a", vec![], 2));
            assert_eq!(t.remove_destination(1), 3, "{kind:?}");
            t.check_invariants();
            assert_eq!(t.remove_destination(1), 0);
            assert!(!t.has_destination(1));
            assert!(t.has_destination(2));
            assert_eq!(t.len(), 1);
            assert_eq!(route(&t, "a", None), vec![2], "{kind:?}");
        }
    }

    #[test]
    fn iter_lists_every_binding() {
        let mut t = Table::new(ExchangeKind::Direct);
        assert!(bind(&mut t, "b", vec![], 2));
        assert!(bind(&mut t, "a", table(&[("x", TestValue::Int(1))]), 1));
        assert!(bind(&mut t, "c", vec![], 2));
        let listed: Vec<(Vec<u8>, usize, u32)> = t
            .iter()
            .map(|(key, arguments, destination)| (key.to_vec(), arguments.len(), destination))
            .collect();
        assert_eq!(
            listed,
            vec![
                (b"a".to_vec(), 1, 1),
                (b"b".to_vec(), 0, 2),
                (b"c".to_vec(), 0, 2)
            ]
        );
    }

    #[test]
    fn randomized_operations_keep_invariants() {
        const KEYS: &[&str] = &["a", "b", "a.b", "#", "*", ""];
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Fanout,
            ExchangeKind::Topic,
            ExchangeKind::Headers,
        ] {
            for seed in 0..10u64 {
                let mut rng = Rng(seed);
                let mut next = |bound: u64| rng.below(bound as usize) as u64;
                let mut t = Table::new(kind);
                let mut model: Vec<(&str, i64, u32)> = Vec::new();
                for _ in 0..300 {
                    let key = KEYS[next(KEYS.len() as u64) as usize];
                    let value = next(2) as i64;
                    let destination = next(5) as u32;
                    let arguments = table(&[("h", TestValue::Int(value))]);
                    let entry = (key, value, destination);
                    match next(5) {
                        0..=2 => {
                            let added = bind(&mut t, key, arguments, destination);
                            assert_eq!(added, !model.contains(&entry), "seed {seed}");
                            if added {
                                model.push(entry);
                            }
                        }
                        3 => {
                            let removed = unbind(&mut t, key, &arguments, destination);
                            assert_eq!(removed, model.contains(&entry), "seed {seed}");
                            model.retain(|e| *e != entry);
                        }
                        _ => {
                            let before = model.len();
                            model.retain(|e| e.2 != destination);
                            assert_eq!(t.remove_destination(destination), before - model.len());
                            t.check_invariants();
                        }
                    }
                    assert_eq!(t.len(), model.len(), "seed {seed}");
                    let bound = model.iter().any(|e| e.2 == destination);
                    assert_eq!(t.has_destination(destination), bound, "seed {seed}");
                }
            }
        }
    }
}
