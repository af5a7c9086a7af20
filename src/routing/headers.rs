//! The headers exchange matcher: a binding's arguments hold `x-match` and the header pairs to
//! test; the routing key plays no part.
//!
//! * `all` (the default when `x-match` is absent): every tested pair must be present in the
//!   message with an equal value. A binding with no tested pairs matches every message.
//! * `any`: at least one tested pair must match. A binding with no tested pairs matches nothing.
//! * Pairs whose name starts with `x-` are tested only under `all-with-x` / `any-with-x`;
//!   `x-match` itself is never tested.
//! * A binding value of type void means "present with any value".
//! * A message without headers behaves as an empty table.
//!
//! Values are reached only through [`HeaderValue`], which the codec's field value implements,
//! so this module does not depend on the codec. `x-match` is parsed once, at bind time.

use super::binding_table::BindError;
use super::consistent_hash::StableHasher;
use super::dedup_tail;

/// What the headers and consistent-hash exchanges need from a field value.
pub trait HeaderValue {
    /// RabbitMQ value equality: integers of different widths equal by value; 1 != "1"; 1 != 1.0.
    fn value_eq(&self, other: &Self) -> bool;
    /// True for the void type 'V' (a binding pair with void matches any value: "present").
    fn is_void(&self) -> bool;
    /// The string content if this is a string (longstr) value, for reading `x-match`.
    fn as_str_bytes(&self) -> Option<&[u8]>;
    /// Feeds the value to the consistent-hash exchange's hasher as a type tag and bytes that
    /// are the same in every process (`consistent_hash::tag`): integers of any width hash
    /// alike, strings as their bytes, void as an absent header, an array as its first element.
    fn hash_into(&self, hasher: &mut StableHasher);
}

/// The name of the binding argument that selects the match mode.
pub const X_MATCH: &[u8] = b"x-match";

/// How the tested pairs of a headers binding combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum XMatch {
    #[default]
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl XMatch {
    /// Parses an `x-match` value; `None` for anything but the four names (case-sensitive).
    pub fn parse(value: &[u8]) -> Option<XMatch> {
        match value {
            b"all" => Some(XMatch::All),
            b"any" => Some(XMatch::Any),
            b"all-with-x" => Some(XMatch::AllWithX),
            b"any-with-x" => Some(XMatch::AnyWithX),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            XMatch::All => "all",
            XMatch::Any => "any",
            XMatch::AllWithX => "all-with-x",
            XMatch::AnyWithX => "any-with-x",
        }
    }

    /// True when pairs named `x-…` (other than `x-match`) are tested too.
    pub fn tests_x_pairs(self) -> bool {
        matches!(self, XMatch::AllWithX | XMatch::AnyWithX)
    }

    /// True for the `any` family: one matching pair suffices.
    pub fn is_any(self) -> bool {
        matches!(self, XMatch::Any | XMatch::AnyWithX)
    }
}

/// A headers binding parsed at bind time: the match mode and the pairs it tests.
#[derive(Debug, Clone)]
pub struct HeadersMatch<V> {
    x_match: XMatch,
    /// Only the pairs that take part in matching, in binding order.
    pairs: Vec<(Vec<u8>, V)>,
}

impl<V: HeaderValue + Clone> HeadersMatch<V> {
    /// Parses binding arguments. The first `x-match` pair wins; its value must be a string
    /// naming one of the four modes, or the binding is refused (406 at the caller).
    pub fn parse<'a>(
        arguments: impl IntoIterator<Item = (&'a [u8], &'a V)> + Clone,
    ) -> Result<HeadersMatch<V>, BindError>
    where
        V: 'a,
    {
        let x_match = match arguments
            .clone()
            .into_iter()
            .find(|(name, _)| *name == X_MATCH)
        {
            None => XMatch::default(),
            Some((_, value)) => parse_x_match(value)?,
        };
        let pairs = arguments
            .into_iter()
            .filter(|(name, _)| is_tested(name, x_match))
            .map(|(name, value)| (name.to_vec(), value.clone()))
            .collect();
        Ok(HeadersMatch { x_match, pairs })
    }
}

impl<V: HeaderValue> HeadersMatch<V> {
    pub fn x_match(&self) -> XMatch {
        self.x_match
    }

    /// The pairs this binding tests, after dropping `x-match` and (unless `*-with-x`) `x-…`.
    pub fn pairs(&self) -> &[(Vec<u8>, V)] {
        &self.pairs
    }

    /// Does a message with these headers match? Pass an empty iterator for a message without
    /// headers. If a message repeats a header name, its first occurrence is the one tested.
    pub fn matches<'a>(&self, headers: impl IntoIterator<Item = (&'a [u8], &'a V)> + Clone) -> bool
    where
        V: 'a,
    {
        let mut pair_matches = self.pairs.iter().map(|(name, expected)| {
            let found = headers
                .clone()
                .into_iter()
                .find(|(header, _)| *header == name.as_slice());
            match found {
                None => false,
                Some(_) if expected.is_void() => true,
                Some((_, actual)) => expected.value_eq(actual),
            }
        });
        if self.x_match.is_any() {
            pair_matches.any(|matched| matched)
        } else {
            pair_matches.all(|matched| matched)
        }
    }

    /// True if both test the same pairs (by name and `value_eq`, in order) under the same mode.
    pub fn same_as(&self, other: &HeadersMatch<V>) -> bool {
        self.x_match == other.x_match
            && self.pairs.len() == other.pairs.len()
            && self
                .pairs
                .iter()
                .zip(&other.pairs)
                .all(|((a, x), (b, y))| a == b && x.is_void() == y.is_void() && x.value_eq(y))
    }
}

/// The headers bindings of one exchange in bind order, each tagged with an id chosen by the
/// owner so that unbinding removes exactly the entry it added, even when two bindings parse to
/// the same test.
#[derive(Debug, Clone)]
pub struct HeadersBindings<D, V> {
    entries: Vec<(u64, D, HeadersMatch<V>)>,
}

impl<D, V> Default for HeadersBindings<D, V> {
    fn default() -> Self {
        HeadersBindings {
            entries: Vec::new(),
        }
    }
}

impl<D: Copy + Ord, V: HeaderValue> HeadersBindings<D, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, id: u64, destination: D, parsed: HeadersMatch<V>) {
        self.entries.push((id, destination, parsed));
    }

    /// Removes the entry tagged `id`; false if there is none.
    pub fn remove(&mut self, id: u64) -> bool {
        match self
            .entries
            .iter()
            .position(|(entry_id, _, _)| *entry_id == id)
        {
            Some(index) => {
                self.entries.remove(index);
                true
            }
            None => false,
        }
    }

    /// Appends each destination with at least one matching binding, once. Every binding is
    /// tested: a headers exchange has no index to narrow the candidates.
    pub fn route<'a>(
        &self,
        headers: impl IntoIterator<Item = (&'a [u8], &'a V)> + Clone,
        out: &mut Vec<D>,
    ) where
        V: 'a,
    {
        let start = out.len();
        for (_, destination, parsed) in &self.entries {
            if parsed.matches(headers.clone()) {
                out.push(*destination);
            }
        }
        dedup_tail(out, start);
    }

    /// How many entries are tagged `id` and lead to `destination` (0 or 1 when ids are unique).
    pub fn count(&self, id: u64, destination: D) -> usize {
        self.entries
            .iter()
            .filter(|(entry_id, entry_destination, _)| {
                *entry_id == id && *entry_destination == destination
            })
            .count()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_x_match<V: HeaderValue>(value: &V) -> Result<XMatch, BindError> {
    match value.as_str_bytes() {
        Some(text) => XMatch::parse(text).ok_or_else(|| BindError::InvalidXMatch {
            value: String::from_utf8_lossy(text).into_owned(),
        }),
        None => Err(BindError::InvalidXMatchType),
    }
}

fn is_tested(name: &[u8], x_match: XMatch) -> bool {
    if name == X_MATCH {
        return false;
    }
    x_match.tests_x_pairs() || !name.starts_with(b"x-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::test_support::{s, table, TestValue};

    fn binding(pairs: &[(&str, TestValue)]) -> HeadersMatch<TestValue> {
        let arguments = table(pairs);
        HeadersMatch::parse(arguments.iter().map(|(n, v)| (n.as_slice(), v)))
            .expect("test bindings are valid")
    }

    fn matches(binding: &HeadersMatch<TestValue>, headers: &[(&str, TestValue)]) -> bool {
        let headers = table(headers);
        binding.matches(headers.iter().map(|(n, v)| (n.as_slice(), v)))
    }

    #[test]
    fn all_is_the_default_and_needs_every_pair() {
        let b = binding(&[("a", TestValue::Int(1)), ("b", s("x"))]);
        assert_eq!(b.x_match(), XMatch::All);
        assert!(matches(
            &b,
            &[
                ("b", s("x")),
                ("a", TestValue::Int(1)),
                ("c", TestValue::Int(9))
            ]
        ));
        assert!(!matches(&b, &[("a", TestValue::Int(1))]));
        assert!(!matches(&b, &[("a", TestValue::Int(2)), ("b", s("x"))]));
        assert!(!matches(&b, &[]));
    }

    #[test]
    fn any_needs_one_pair() {
        let b = binding(&[
            ("x-match", s("any")),
            ("a", TestValue::Int(1)),
            ("b", s("x")),
        ]);
        assert_eq!(b.x_match(), XMatch::Any);
        assert!(matches(&b, &[("b", s("x"))]));
        assert!(matches(&b, &[("a", TestValue::Int(1)), ("b", s("y"))]));
        assert!(!matches(&b, &[("a", TestValue::Int(2)), ("b", s("y"))]));
        assert!(!matches(&b, &[]));
    }

    #[test]
    fn x_pairs_are_tested_only_with_x() {
        let all = binding(&[("x-match", s("all")), ("x-id", TestValue::Int(7))]);
        assert!(all.pairs().is_empty());
        assert!(matches(&all, &[]), "x-id is ignored, so nothing is tested");
        let all_x = binding(&[("x-match", s("all-with-x")), ("x-id", TestValue::Int(7))]);
        assert_eq!(
            all_x.pairs().len(),
            1,
            "x-match itself is never a tested pair"
        );
        assert!(matches(&all_x, &[("x-id", TestValue::Int(7))]));
        assert!(!matches(&all_x, &[]));
        let any_x = binding(&[
            ("x-match", s("any-with-x")),
            ("x-id", TestValue::Int(7)),
            ("a", TestValue::Int(1)),
        ]);
        assert!(matches(&any_x, &[("x-id", TestValue::Int(7))]));
        assert!(!matches(&any_x, &[("x-match", s("any-with-x"))]));
    }

    #[test]
    fn void_binding_value_means_present() {
        let b = binding(&[("a", TestValue::Void)]);
        assert!(matches(&b, &[("a", s("anything"))]));
        assert!(matches(&b, &[("a", TestValue::Void)]));
        assert!(!matches(&b, &[("b", TestValue::Int(1))]));
    }

    #[test]
    fn equality_is_by_value_and_type() {
        let b = binding(&[("n", TestValue::Int(1))]);
        assert!(matches(&b, &[("n", TestValue::Int(1))]));
        assert!(
            matches(&b, &[("n", TestValue::Short(1))]),
            "widths differ, values equal"
        );
        assert!(!matches(&b, &[("n", TestValue::Short(2))]));
        assert!(!matches(&b, &[("n", s("1"))]));
        assert!(!matches(&b, &[("n", TestValue::Float(1.0))]));
        let void_header = binding(&[("n", TestValue::Int(1))]);
        assert!(!matches(&void_header, &[("n", TestValue::Void)]));
    }

    #[test]
    fn no_tested_pairs_all_matches_everything_any_nothing() {
        let all = binding(&[]);
        assert!(matches(&all, &[]));
        assert!(matches(&all, &[("a", TestValue::Int(1))]));
        let any = binding(&[("x-match", s("any")), ("x-a", TestValue::Int(1))]);
        assert!(!matches(&any, &[]));
        assert!(!matches(&any, &[("x-a", TestValue::Int(1))]));
    }

    #[test]
    fn first_occurrence_of_a_repeated_header_is_tested() {
        let b = binding(&[("a", TestValue::Int(1))]);
        assert!(matches(
            &b,
            &[("a", TestValue::Int(1)), ("a", TestValue::Int(2))]
        ));
        assert!(!matches(
            &b,
            &[("a", TestValue::Int(2)), ("a", TestValue::Int(1))]
        ));
    }

    #[test]
    fn invalid_x_match_is_refused() {
        for bad in [
            s("ALL"),
            s("none"),
            s(""),
            TestValue::Int(1),
            TestValue::Void,
        ] {
            let arguments = table(&[("x-match", bad)]);
            let result = HeadersMatch::parse(arguments.iter().map(|(n, v)| (n.as_slice(), v)));
            assert!(matches!(
                result,
                Err(BindError::InvalidXMatch { .. } | BindError::InvalidXMatchType)
            ));
        }
        let arguments = table(&[("x-match", s("nope"))]);
        let error = HeadersMatch::parse(arguments.iter().map(|(n, v)| (n.as_slice(), v)))
            .expect_err("nope is not a mode");
        assert_eq!(
            error.to_string(),
            "invalid x-match field value nope; expected one of all, any, all-with-x, any-with-x"
        );
        let arguments = table(&[("x-match", TestValue::Int(1))]);
        let error = HeadersMatch::parse(arguments.iter().map(|(n, v)| (n.as_slice(), v)))
            .expect_err("an integer is not a mode");
        assert_eq!(
            error.to_string(),
            "invalid x-match field value of a non-string type; expected one of all, any, \
             all-with-x, any-with-x"
        );
    }

    #[test]
    fn x_match_names_round_trip() {
        for mode in [XMatch::All, XMatch::Any, XMatch::AllWithX, XMatch::AnyWithX] {
            assert_eq!(XMatch::parse(mode.as_str().as_bytes()), Some(mode));
        }
    }

    #[test]
    fn same_as_compares_mode_and_pairs() {
        let a = binding(&[("a", TestValue::Int(1))]);
        assert!(a.same_as(&binding(&[
            ("a", TestValue::Int(1)),
            ("x-b", TestValue::Int(2))
        ])));
        assert!(!a.same_as(&binding(&[("a", TestValue::Int(2))])));
        assert!(!a.same_as(&binding(&[("x-match", s("any")), ("a", TestValue::Int(1))])));
    }

    #[test]
    fn headers_bindings_route_each_destination_once_and_remove_by_id() {
        let mut bindings = HeadersBindings::new();
        bindings.insert(0, 2u32, binding(&[("a", TestValue::Int(1))]));
        bindings.insert(1, 1, binding(&[("a", TestValue::Int(1))]));
        bindings.insert(
            2,
            2,
            binding(&[("x-match", s("any")), ("a", TestValue::Void)]),
        );
        let message = table(&[("a", TestValue::Int(1))]);
        let mut out = vec![9];
        bindings.route(message.iter().map(|(n, v)| (n.as_slice(), v)), &mut out);
        assert_eq!(out, vec![9, 1, 2]);

        assert!(bindings.remove(0));
        assert!(!bindings.remove(0));
        assert_eq!(bindings.count(2, 2), 1);
        assert_eq!(bindings.len(), 2);
        let mut out = Vec::new();
        bindings.route(std::iter::empty(), &mut out);
        assert!(
            out.is_empty(),
            "no headers: `all` with a pair and `any` both fail"
        );
    }
}
