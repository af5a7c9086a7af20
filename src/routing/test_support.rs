//! Test-only helpers shared by the routing tests: a stand-in header value type that mimics the
//! codec's field value, table builders, and a small seeded random number generator.

use super::consistent_hash::{tag, StableHasher};
use super::headers::HeaderValue;

/// A stand-in for the codec's field value with just the shapes the rules care about.
#[derive(Debug, Clone)]
pub(crate) enum TestValue {
    Int(i64),
    Short(i16),
    Str(Vec<u8>),
    Float(f64),
    Void,
}

impl HeaderValue for TestValue {
    fn value_eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TestValue::Int(a), TestValue::Int(b)) => a == b,
            (TestValue::Short(a), TestValue::Short(b)) => a == b,
            (TestValue::Int(a), TestValue::Short(b)) | (TestValue::Short(b), TestValue::Int(a)) => {
                *a == i64::from(*b)
            }
            (TestValue::Str(a), TestValue::Str(b)) => a == b,
            (TestValue::Float(a), TestValue::Float(b)) => a == b,
            (TestValue::Void, TestValue::Void) => true,
            _ => false,
        }
    }

    fn is_void(&self) -> bool {
        matches!(self, TestValue::Void)
    }

    fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            TestValue::Str(text) => Some(text),
            _ => None,
        }
    }

    fn hash_into(&self, hasher: &mut StableHasher) {
        match self {
            TestValue::Int(value) => hasher.write_tagged(tag::INTEGER, &value.to_le_bytes()),
            TestValue::Short(value) => {
                hasher.write_tagged(tag::INTEGER, &i64::from(*value).to_le_bytes());
            }
            TestValue::Str(text) => hasher.write_tagged(tag::STRING, text),
            TestValue::Float(value) => hasher.write_tagged(tag::OTHER, &value.to_le_bytes()),
            TestValue::Void => hasher.write(&[tag::ABSENT]),
        }
    }
}

pub(crate) fn s(text: &str) -> TestValue {
    TestValue::Str(text.as_bytes().to_vec())
}

pub(crate) fn table(pairs: &[(&str, TestValue)]) -> Vec<(Vec<u8>, TestValue)> {
    pairs
        .iter()
        .map(|(name, value)| (name.as_bytes().to_vec(), value.clone()))
        .collect()
}

/// SplitMix64: small, seedable and good enough to shuffle test inputs.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound as u64) as usize
    }

    pub(crate) fn key(&mut self, vocabulary: &[&str], words_max: usize) -> String {
        let count = self.below(words_max + 1);
        let words: Vec<&str> = (0..count)
            .map(|_| vocabulary[self.below(vocabulary.len())])
            .collect();
        words.join(".")
    }
}
