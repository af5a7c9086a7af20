//! The topic exchange matcher: a trie over the dot-separated words of binding keys.
//!
//! Keys split on `.` into words; empty words are real words (`"a..b"` is `a`, ``, `b`) and the
//! empty key has zero words. In a binding key a whole word `*` matches exactly one word and a
//! whole word `#` matches zero or more; `a#b` or `*a` are literal words. Each trie edge is one
//! binding-key word: a literal, `*` or `#`. Routing walks the trie along the routing key's words
//! without splitting it into a `Vec`: a position is the byte offset where the next word starts,
//! and `key.len() + 1` means "no words left", so that `"a."` (words `a`, ``) stays distinct
//! from `"a"`.
//!
//! A naive walk is exponential on keys such as `#.#.#.#`, because each `#` may swallow any
//! number of words. The walk therefore remembers, per `#` node, the smallest position it has
//! already been entered at: everything from that position on has been explored, so a later entry
//! only explores the positions before it. That bounds a route to O(trie nodes × key words).
//! Recursion depth is bounded by the longest binding key in words; keys are AMQP short strings
//! (≤ 255 bytes), so at most 256 words.

use crate::fast_map::FastMap;

use super::dedup_tail;
use super::destinations::DestinationCounts;

/// The root is always node 0 and is never freed.
const ROOT: usize = 0;

/// The binding keys of one topic exchange and the destinations bound with each.
#[derive(Debug, Clone)]
pub struct TopicTrie<D> {
    /// Arena of nodes; indices of freed nodes are kept in `free` for reuse.
    nodes: Vec<Node<D>>,
    free: Vec<usize>,
    /// One per `insert` not undone by `remove`.
    reference_count: usize,
}

#[derive(Debug, Clone)]
struct Node<D> {
    literal: FastMap<Box<[u8]>, usize>,
    star: Option<usize>,
    hash: Option<usize>,
    /// Destinations whose binding key ends at this node.
    destinations: DestinationCounts<D>,
}

impl<D> Default for Node<D> {
    fn default() -> Self {
        Node {
            literal: FastMap::default(),
            star: None,
            hash: None,
            destinations: DestinationCounts::default(),
        }
    }
}

impl<D> Node<D> {
    fn has_children(&self) -> bool {
        !self.literal.is_empty() || self.star.is_some() || self.hash.is_some()
    }
}

/// One word of a binding key, as a trie edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge<'k> {
    Literal(&'k [u8]),
    Star,
    Hash,
}

impl<'k> Edge<'k> {
    fn of(word: &'k [u8]) -> Edge<'k> {
        match word {
            b"*" => Edge::Star,
            b"#" => Edge::Hash,
            _ => Edge::Literal(word),
        }
    }
}

impl<D> Default for TopicTrie<D> {
    fn default() -> Self {
        TopicTrie {
            nodes: vec![Node::default()],
            free: Vec::new(),
            reference_count: 0,
        }
    }
}

impl<D: Copy + Ord> TopicTrie<D> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one reference from `binding_key` to `destination`; true if the pair is new.
    pub fn insert(&mut self, binding_key: &[u8], destination: D) -> bool {
        let mut node = ROOT;
        for word in words(binding_key) {
            let edge = Edge::of(word);
            node = match self.child(node, edge) {
                Some(child) => child,
                None => {
                    let child = self.allocate();
                    self.set_child(node, edge, Some(child));
                    child
                }
            };
        }
        self.reference_count += 1;
        self.nodes[node].destinations.add(destination)
    }

    /// Drops one reference from `binding_key` to `destination`; false if there was none.
    /// Nodes left without destinations or children are freed.
    pub fn remove(&mut self, binding_key: &[u8], destination: D) -> bool {
        // Removal is off the publish path, so recording the path in a Vec is fine.
        let mut path: Vec<(usize, Edge<'_>)> = Vec::new();
        let mut node = ROOT;
        for word in words(binding_key) {
            let edge = Edge::of(word);
            let Some(child) = self.child(node, edge) else {
                return false;
            };
            path.push((node, edge));
            node = child;
        }
        if !self.nodes[node].destinations.remove(destination) {
            return false;
        }
        self.reference_count -= 1;
        while let Some((parent, edge)) = path.pop() {
            let child = &self.nodes[node];
            if child.has_children() || !child.destinations.is_empty() {
                break;
            }
            self.set_child(parent, edge, None);
            self.free.push(node);
            node = parent;
        }
        true
    }

    /// Appends every destination whose binding key matches `routing_key`, each once.
    pub fn route(&self, routing_key: &[u8], out: &mut Vec<D>) {
        let start = out.len();
        let mut visits = HashVisits::default();
        let position = if routing_key.is_empty() {
            end_of(routing_key)
        } else {
            0
        };
        self.walk(ROOT, routing_key, position, &mut visits, out);
        dedup_tail(out, start);
    }

    /// How many references `binding_key` → `destination` holds (0 if none).
    pub fn count(&self, binding_key: &[u8], destination: D) -> u32 {
        let mut node = ROOT;
        for word in words(binding_key) {
            match self.child(node, Edge::of(word)) {
                Some(child) => node = child,
                None => return 0,
            }
        }
        self.nodes[node].destinations.count(destination)
    }

    /// The sum of all reference counts: one per insert not undone by a remove.
    pub fn reference_count(&self) -> usize {
        self.reference_count
    }

    pub fn is_empty(&self) -> bool {
        self.reference_count == 0
    }

    /// Live nodes including the root; lets tests check that removal prunes.
    pub fn node_count(&self) -> usize {
        self.nodes.len() - self.free.len()
    }

    /// O(nodes): for tests and debug builds.
    pub fn check_invariants(&self) {
        let mut reachable = vec![false; self.nodes.len()];
        let mut stack = vec![ROOT];
        let mut references = 0;
        while let Some(index) = stack.pop() {
            assert!(!reachable[index], "the trie is a tree");
            reachable[index] = true;
            let node = &self.nodes[index];
            node.destinations.check_invariants();
            references += node.destinations.reference_count();
            if index != ROOT {
                assert!(
                    node.has_children() || !node.destinations.is_empty(),
                    "empty nodes are pruned"
                );
            }
            stack.extend(node.literal.values().copied());
            stack.extend(node.star);
            stack.extend(node.hash);
        }
        assert_eq!(references, self.reference_count);
        for &index in &self.free {
            assert!(index != ROOT, "the root is never freed");
            assert!(!reachable[index], "freed nodes are unreachable");
        }
        let reachable_count = reachable.iter().filter(|&&r| r).count();
        assert_eq!(reachable_count + self.free.len(), self.nodes.len());
    }

    fn walk(
        &self,
        index: usize,
        key: &[u8],
        position: usize,
        visits: &mut HashVisits,
        out: &mut Vec<D>,
    ) {
        let node = &self.nodes[index];
        let end = end_of(key);
        if position == end {
            node.destinations.extend_into(out);
        } else {
            let (word, next) = word_at(key, position);
            if let Some(&child) = node.literal.get(word) {
                self.walk(child, key, next, visits, out);
            }
            if let Some(child) = node.star {
                self.walk(child, key, next, visits, out);
            }
        }
        if let Some(child) = node.hash {
            // `#` swallows zero or more words: continue from every later position not yet
            // explored from this node.
            let stop = visits.claim(child, position, end);
            let mut at = position;
            while at < stop {
                self.walk(child, key, at, visits, out);
                if at == end {
                    break;
                }
                at = word_at(key, at).1;
            }
        }
    }

    fn child(&self, node: usize, edge: Edge<'_>) -> Option<usize> {
        let node = &self.nodes[node];
        match edge {
            Edge::Literal(word) => node.literal.get(word).copied(),
            Edge::Star => node.star,
            Edge::Hash => node.hash,
        }
    }

    fn set_child(&mut self, node: usize, edge: Edge<'_>, child: Option<usize>) {
        let node = &mut self.nodes[node];
        match (edge, child) {
            (Edge::Literal(word), Some(child)) => {
                node.literal.insert(word.into(), child);
            }
            (Edge::Literal(word), None) => {
                node.literal.remove(word);
            }
            (Edge::Star, child) => node.star = child,
            (Edge::Hash, child) => node.hash = child,
        }
    }

    fn allocate(&mut self) -> usize {
        match self.free.pop() {
            Some(index) => {
                // Freed nodes were empty when freed, but reset them so no stale state survives.
                self.nodes[index] = Node::default();
                index
            }
            None => {
                self.nodes.push(Node::default());
                self.nodes.len() - 1
            }
        }
    }
}

/// The words of a binding key: none for the empty key, else the `.`-separated pieces.
fn words(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    let pieces = key.split(|&byte| byte == b'.');
    pieces.take(if key.is_empty() { 0 } else { usize::MAX })
}

/// The position meaning "no words left".
fn end_of(key: &[u8]) -> usize {
    key.len() + 1
}

/// The word starting at byte `position` (which must be before the end) and the next position.
fn word_at(key: &[u8], position: usize) -> (&[u8], usize) {
    let rest = key.get(position..).unwrap_or_default();
    match rest.iter().position(|&byte| byte == b'.') {
        Some(dot) => (&rest[..dot], position + dot + 1),
        None => (rest, end_of(key)),
    }
}

/// Per `#` node, the smallest position the walk has entered it at during one route.
///
/// Most routes touch a handful of `#` nodes, so the first few live on the stack and only a trie
/// with many `#` nodes on one key's paths spills into a map.
struct HashVisits {
    inline: [(usize, usize); HASH_VISITS_INLINE_MAX],
    inline_count: usize,
    spilled: Option<FastMap<usize, usize>>,
}

const HASH_VISITS_INLINE_MAX: usize = 16;

impl Default for HashVisits {
    fn default() -> Self {
        HashVisits {
            inline: [(0, 0); HASH_VISITS_INLINE_MAX],
            inline_count: 0,
            spilled: None,
        }
    }
}

impl HashVisits {
    /// Records entering `node` at `position` and returns where exploring must stop: the
    /// previous smallest entry position (positions from there on were explored already), or
    /// past `end` on the first entry.
    fn claim(&mut self, node: usize, position: usize, end: usize) -> usize {
        let smallest = match self.find(node) {
            Some(smallest) => smallest,
            None => {
                self.record(node, position);
                return end + 1;
            }
        };
        if position < *smallest {
            let stop = *smallest;
            *smallest = position;
            stop
        } else {
            position
        }
    }

    fn find(&mut self, node: usize) -> Option<&mut usize> {
        if let Some(spilled) = self.spilled.as_mut() {
            return spilled.get_mut(&node);
        }
        self.inline[..self.inline_count]
            .iter_mut()
            .find(|(n, _)| *n == node)
            .map(|(_, smallest)| smallest)
    }

    fn record(&mut self, node: usize, position: usize) {
        if let Some(spilled) = self.spilled.as_mut() {
            spilled.insert(node, position);
        } else if self.inline_count < HASH_VISITS_INLINE_MAX {
            self.inline[self.inline_count] = (node, position);
            self.inline_count += 1;
        } else {
            let mut spilled: FastMap<usize, usize> = self.inline.iter().copied().collect();
            spilled.insert(node, position);
            self.spilled = Some(spilled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::test_support::Rng;

    /// docs/rabbitmq-compatibility.md §11: (binding key, keys that match, keys that do not).
    const GOLDEN: &[(&str, &[&str], &[&str])] = &[
        ("#", &["", "a", "a.b", ".", "a..b", "x.y.z.w"], &[]),
        ("#.#", &["", "a", "a.b", ".", "a..b", "x.y.z.w"], &[]),
        ("", &[""], &["a", "."]),
        ("*", &["a", "oneword"], &["", "a.b"]),
        ("*.*", &["a.b", "vodka.gin"], &["a", "a.b.c"]),
        ("*.#", &["a", "a.b", ".", "a.b.c"], &[""]),
        ("#.*.#", &["a", "a.b", ".", "a.b.c"], &[""]),
        ("*.#.#", &["a", "a.b", ".", "a.b.c"], &[""]),
        ("*.#.*", &["a.b", ".", "a.b.c", "a.b.c.d"], &["a", ""]),
        ("a.#", &["a", "a.b", "a.a.a.a.a"], &["b.a"]),
        ("a.#.b", &["a.b", "a.b.b", "a.x.y.b"], &["a.b.c"]),
        ("a.*.c", &["a.b.c"], &["a.c", "a.b.b.c"]),
        ("#.b", &["a.b", "a.b.b", "b"], &["a.b.c"]),
        ("#.b.#", &["a.b.c", "a.b", "b.b.c", "b.c.c"], &["a.c"]),
        ("a.b.b.c", &["a.b.b.c"], &["a.b.c"]),
        // Literal words that merely contain wildcard characters, and empty words.
        ("a#b.*a", &["a#b.*a"], &["a#b.xa", "axb.*a"]),
        ("a..b", &["a..b"], &["a.b", "a.x.b"]),
        ("a.*.b", &["a..b"], &["a.b"]),
        (".", &["."], &["", "a"]),
        ("*", &["*"], &["."]),
    ];

    fn routed(trie: &TopicTrie<u32>, key: &[u8]) -> Vec<u32> {
        let mut out = Vec::new();
        trie.route(key, &mut out);
        out
    }

    #[test]
    fn golden_cases_from_the_notes() {
        for &(binding, matching, not_matching) in GOLDEN {
            let mut trie = TopicTrie::new();
            assert!(trie.insert(binding.as_bytes(), 1));
            trie.check_invariants();
            for key in matching {
                assert_eq!(
                    routed(&trie, key.as_bytes()),
                    vec![1],
                    "{binding:?} ~ {key:?}"
                );
            }
            for key in not_matching {
                assert!(
                    routed(&trie, key.as_bytes()).is_empty(),
                    "{binding:?} !~ {key:?}"
                );
            }
        }
    }

    #[test]
    fn golden_cases_in_one_trie_route_each_destination_once() {
        let mut trie = TopicTrie::new();
        for (destination, &(binding, _, _)) in (0u32..).zip(GOLDEN) {
            assert!(trie.insert(binding.as_bytes(), destination));
        }
        trie.check_invariants();
        for (destination, &(_, matching, not_matching)) in (0u32..).zip(GOLDEN) {
            for key in matching {
                let out = routed(&trie, key.as_bytes());
                assert!(out.contains(&destination), "{key:?}");
                assert!(out.windows(2).all(|pair| pair[0] < pair[1]), "deduplicated");
            }
            for key in not_matching {
                assert!(!routed(&trie, key.as_bytes()).contains(&destination));
            }
        }
    }

    #[test]
    fn remove_prunes_nodes_and_keeps_shared_prefixes() {
        let mut trie = TopicTrie::new();
        assert!(trie.insert(b"a.b.c", 1));
        assert!(trie.insert(b"a.#", 2));
        assert!(!trie.insert(b"a.#", 2));
        assert!(trie.insert(b"a.*.c", 1));
        trie.check_invariants();
        assert_eq!(trie.count(b"a.#", 2), 2);
        assert_eq!(routed(&trie, b"a.b.c"), vec![1, 2]);

        assert!(!trie.remove(b"a.b", 1), "no such key");
        assert!(!trie.remove(b"a.b.c", 2), "no such destination");
        assert!(trie.remove(b"a.b.c", 1));
        trie.check_invariants();
        assert_eq!(routed(&trie, b"a.b.c"), vec![1, 2], "still via a.*.c");
        assert!(trie.remove(b"a.*.c", 1));
        assert!(trie.remove(b"a.#", 2));
        assert_eq!(routed(&trie, b"a.b.c"), vec![2]);
        assert!(trie.remove(b"a.#", 2));
        trie.check_invariants();
        assert!(trie.is_empty());
        assert_eq!(trie.node_count(), 1, "only the root is left");

        // Freed nodes are reused.
        assert!(trie.insert(b"x.y", 3));
        trie.check_invariants();
        assert_eq!(trie.node_count(), 3);
        assert_eq!(routed(&trie, b"x.y"), vec![3]);
    }

    #[test]
    fn empty_binding_key_lives_on_the_root() {
        let mut trie = TopicTrie::new();
        assert!(trie.insert(b"", 1));
        assert_eq!(trie.node_count(), 1);
        assert_eq!(routed(&trie, b""), vec![1]);
        assert!(routed(&trie, b".").is_empty());
        assert!(trie.remove(b"", 1));
        trie.check_invariants();
        assert!(trie.is_empty());
    }

    #[test]
    fn many_hashes_route_in_polynomial_time() {
        // Without the per-`#` memo these take on the order of 2^60 steps.
        let mut trie = TopicTrie::new();
        let hashes = ["#"; 60].join(".");
        assert!(trie.insert(hashes.as_bytes(), 1));
        let alternating = ["#.a"; 30].join(".");
        assert!(trie.insert(alternating.as_bytes(), 2));
        assert!(trie.insert(format!("{hashes}.b").as_bytes(), 3));
        trie.check_invariants();
        let key = ["a"; 120].join(".");
        assert_eq!(routed(&trie, key.as_bytes()), vec![1, 2]);
        let key = format!("{key}.b");
        assert_eq!(routed(&trie, key.as_bytes()), vec![1, 3]);
        // Each `#` chain has more nodes than the memo keeps inline, so these spill.
        let short = ["a"; 10].join(".");
        assert_eq!(routed(&trie, short.as_bytes()), vec![1]);
    }

    /// The obvious recursive definition, used as the oracle.
    fn reference_matches(pattern: &[&[u8]], key: &[&[u8]]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&b"#", rest)) => {
                (0..=key.len()).any(|skip| reference_matches(rest, &key[skip..]))
            }
            Some((word, rest)) => match key.split_first() {
                None => false,
                Some((first, key_rest)) => {
                    (*word == b"*" || word == first) && reference_matches(rest, key_rest)
                }
            },
        }
    }

    fn split(key: &str) -> Vec<&[u8]> {
        words(key.as_bytes()).collect()
    }

    fn expected(bindings: &[(String, u32)], key: &str) -> Vec<u32> {
        let key_words = split(key);
        let mut out: Vec<u32> = bindings
            .iter()
            .filter(|(pattern, _)| reference_matches(&split(pattern), &key_words))
            .map(|&(_, destination)| destination)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn randomized_differential_against_reference_matcher() {
        const PATTERN_WORDS: &[&str] = &["a", "b", "", "*", "#", "#", "a#b", "*a"];
        const KEY_WORDS: &[&str] = &["a", "b", "", "a#b", "*a", "*", "#"];
        for seed in 0..40u64 {
            let mut rng = Rng(seed);
            let mut trie = TopicTrie::new();
            let mut bindings: Vec<(String, u32)> = Vec::new();
            for _ in 0..40 {
                let pattern = rng.key(PATTERN_WORDS, 6);
                let destination = rng.below(12) as u32;
                trie.insert(pattern.as_bytes(), destination);
                bindings.push((pattern, destination));
            }
            trie.check_invariants();
            for round in 0..2 {
                for _ in 0..150 {
                    let key = rng.key(KEY_WORDS, 7);
                    assert_eq!(
                        routed(&trie, key.as_bytes()),
                        expected(&bindings, &key),
                        "seed {seed} round {round} key {key:?}"
                    );
                }
                // Remove about half of the bindings, then compare again.
                let mut kept = Vec::new();
                for (pattern, destination) in bindings.drain(..) {
                    if rng.below(2) == 0 {
                        assert!(trie.remove(pattern.as_bytes(), destination), "seed {seed}");
                        trie.check_invariants();
                    } else {
                        kept.push((pattern, destination));
                    }
                }
                bindings = kept;
            }
        }
    }
}
