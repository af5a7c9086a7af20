//! The consistent-hash exchange matcher (`x-consistent-hash`, RabbitMQ's
//! rabbitmq_consistent_hash_exchange plugin): each message goes to exactly one destination,
//! chosen by hashing one value of the message, so that every message with the same value goes
//! to the same destination while the bindings stay the same. Several queues can then share a
//! stream and still process each key in order.
//!
//! * The binding key is the binding's weight, a positive integer of at most [`WEIGHT_MAX`]: the
//!   number of buckets the binding owns. Bindings own consecutive ranges of buckets in bind
//!   order; unbinding removes a range and the later ranges move down, as in the plugin.
//! * The hashed value is the message's routing key, or the header named by the exchange
//!   argument `hash-header`, or one of three properties named by `hash-property`
//!   ([`HashSource`]). A missing header or property is hashed as a fixed "absent" value, so such
//!   messages still reach one destination (the plugin hashes Erlang's `undefined`).
//! * A bucket is picked by jump consistent hashing (Lamping and Veach, 2014) of a 64-bit hash of
//!   the value, as the plugin does. Every bucket is equally likely, so a binding receives its
//!   weight's share of keys exactly in expectation; adding a binding of weight w to a ring of n
//!   buckets moves only w/(n+w) of the keys, all to the new binding.
//!
//! The hash is FNV-1a followed by a 64-bit finaliser, written here so placement never depends on
//! a library's or process's hash seed: it is the same in every shard and after a restart. It is
//! not the plugin's `erlang:phash2`, so a given key lands on a different bucket than in
//! RabbitMQ; only the properties above are shared. Routing is O(log buckets) for the jump and
//! O(log bindings) to find the bucket's owner; the ranges change only on bind and unbind.

use super::binding_table::BindError;
use super::headers::HeaderValue;

/// The largest weight a binding may have: the cap newer versions of the plugin have (3.13 has
/// none). It also keeps the bucket count far below 2^53, where the jump's float arithmetic
/// would lose precision.
pub const WEIGHT_MAX: u32 = 10_000;

/// What a consistent-hash exchange hashes, from its `hash-header` / `hash-property` arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashSource {
    /// The routing key the message was published with (no argument given).
    #[default]
    RoutingKey,
    /// The value of this header.
    Header(Box<[u8]>),
    /// One of the message's properties.
    Property(HashProperty),
}

/// The message properties `hash-property` may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashProperty {
    MessageId,
    CorrelationId,
    Timestamp,
}

impl HashProperty {
    /// Parses a `hash-property` value; `None` for any other property, as the plugin refuses.
    pub fn parse(name: &[u8]) -> Option<HashProperty> {
        match name {
            b"message_id" => Some(HashProperty::MessageId),
            b"correlation_id" => Some(HashProperty::CorrelationId),
            b"timestamp" => Some(HashProperty::Timestamp),
            _ => None,
        }
    }
}

/// What a consistent-hash exchange may hash besides the headers. The routing key is the one the
/// message was published with, even while a `CC` / `BCC` key is being routed: the plugin hashes
/// the first routing key only, so a message reaches one destination per exchange whatever its
/// extra keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashInputs<'a> {
    pub routing_key: &'a [u8],
    pub message_id: Option<&'a [u8]>,
    pub correlation_id: Option<&'a [u8]>,
    /// The AMQP 0-9-1 timestamp property (seconds).
    pub timestamp: Option<u64>,
}

/// A 64-bit hash that is the same in every process: FNV-1a over the bytes, then the MurmurHash3
/// finaliser so that keys differing in their last byte still spread over the whole range.
#[derive(Debug, Clone)]
pub struct StableHasher {
    state: u64,
}

const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Type tags written before a value, so that values of different types hash apart.
pub mod tag {
    pub const ABSENT: u8 = b'-';
    pub const STRING: u8 = b's';
    pub const INTEGER: u8 = b'i';
    pub const TIMESTAMP: u8 = b't';
    pub const OTHER: u8 = b'o';
}

impl Default for StableHasher {
    fn default() -> Self {
        StableHasher {
            state: FNV_OFFSET_BASIS,
        }
    }
}

impl StableHasher {
    pub fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.state = (self.state ^ u64::from(byte)).wrapping_mul(FNV_PRIME);
        }
    }

    /// A type tag followed by the value's bytes.
    pub fn write_tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.write(&[tag]);
        self.write(bytes);
    }

    pub fn finish(&self) -> u64 {
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The bucket of `key` among `buckets` (at least 1), by jump consistent hashing: growing the
/// bucket count from n to n+1 moves a key only into the new bucket, with probability 1/(n+1).
pub fn jump_consistent_hash(mut key: u64, buckets: u64) -> u64 {
    debug_assert!(buckets > 0);
    let scale = (1u64 << 31) as f64;
    let mut bucket = 0;
    let mut next = 0u64;
    while next < buckets {
        bucket = next;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        next = ((bucket + 1) as f64 * (scale / ((key >> 33) + 1) as f64)) as u64;
    }
    bucket
}

/// The weight a binding key gives: an optionally signed decimal integer, as Erlang's
/// `list_to_integer` reads it, from 1 to [`WEIGHT_MAX`].
pub fn parse_weight(binding_key: &[u8]) -> Result<u32, BindError> {
    let (negative, digits) = match binding_key.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, binding_key),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BindError::WeightNotInteger {
            key: erlang_binary(binding_key),
        });
    }
    let all_zero = digits.iter().all(|&digit| digit == b'0');
    if negative || all_zero {
        return Err(BindError::WeightNotPositive);
    }
    let mut value: u32 = 0;
    for &digit in digits {
        value = value
            .saturating_mul(10)
            .saturating_add(u32::from(digit - b'0'));
    }
    if value > WEIGHT_MAX {
        return Err(BindError::WeightTooLarge { max: WEIGHT_MAX });
    }
    Ok(value)
}

/// A binary as Erlang's `~tp` prints it in the plugin's message: `<<"text">>` when printable
/// ASCII, otherwise the byte list `<<1,2,3>>`.
fn erlang_binary(bytes: &[u8]) -> String {
    let printable = bytes.iter().all(|byte| (b' '..=b'~').contains(byte));
    if !printable {
        let list: Vec<String> = bytes.iter().map(u8::to_string).collect();
        return format!("<<{}>>", list.join(","));
    }
    let mut text = String::from("<<\"");
    for &byte in bytes {
        if byte == b'"' || byte == b'\\' {
            text.push('\\');
        }
        text.push(char::from(byte));
    }
    text.push_str("\">>");
    text
}

/// One binding's range of buckets.
#[derive(Debug, Clone)]
struct Range<D> {
    /// The binding this range belongs to (the binding table's id).
    binding: u64,
    destination: D,
    /// One past the binding's last bucket; the range starts at the previous range's end.
    end: u64,
}

/// The buckets of a consistent-hash exchange: consecutive ranges, one per binding, in bind
/// order.
#[derive(Debug, Clone)]
pub struct HashRing<D> {
    source: HashSource,
    /// `end` strictly increases; the last `end` is the bucket count.
    ranges: Vec<Range<D>>,
}

impl<D: Copy + Eq> HashRing<D> {
    pub fn new(source: HashSource) -> Self {
        HashRing {
            source,
            ranges: Vec::new(),
        }
    }

    pub fn source(&self) -> &HashSource {
        &self.source
    }

    /// The total weight of all bindings.
    pub fn bucket_count(&self) -> u64 {
        self.ranges.last().map_or(0, |range| range.end)
    }

    /// Appends `weight` buckets for `binding` after the existing ones.
    pub fn insert(&mut self, binding: u64, destination: D, weight: u32) {
        debug_assert!(weight > 0, "weights are checked by parse_weight");
        let end = self.bucket_count() + u64::from(weight);
        self.ranges.push(Range {
            binding,
            destination,
            end,
        });
    }

    /// Removes the buckets of `binding`; the later ranges move down. False if it had none.
    pub fn remove(&mut self, binding: u64) -> bool {
        let Some(index) = self.ranges.iter().position(|r| r.binding == binding) else {
            return false;
        };
        let start = index
            .checked_sub(1)
            .map_or(0, |before| self.ranges[before].end);
        let weight = self.ranges[index].end - start;
        self.ranges.remove(index);
        for later in &mut self.ranges[index..] {
            later.end -= weight;
        }
        true
    }

    /// Appends the one destination the message's hashed value selects; nothing if the ring is
    /// empty.
    pub fn route<'m, K, V>(
        &self,
        headers: Option<&'m [(K, V)]>,
        inputs: &HashInputs<'_>,
        out: &mut Vec<D>,
    ) where
        K: AsRef<[u8]>,
        V: HeaderValue + 'm,
    {
        let buckets = self.bucket_count();
        if buckets == 0 {
            return;
        }
        let bucket = jump_consistent_hash(self.hash(headers, inputs), buckets);
        out.push(self.owner(bucket));
    }

    /// The destination whose range holds `bucket` (below the bucket count).
    fn owner(&self, bucket: u64) -> D {
        let index = self.ranges.partition_point(|range| range.end <= bucket);
        self.ranges[index].destination
    }

    /// The 64-bit hash of the value this exchange hashes on.
    fn hash<'m, K, V>(&self, headers: Option<&'m [(K, V)]>, inputs: &HashInputs<'_>) -> u64
    where
        K: AsRef<[u8]>,
        V: HeaderValue + 'm,
    {
        let mut hasher = StableHasher::default();
        match &self.source {
            HashSource::RoutingKey => hasher.write_tagged(tag::STRING, inputs.routing_key),
            HashSource::Header(name) => {
                let value = headers
                    .unwrap_or(&[])
                    .iter()
                    .find(|(key, _)| key.as_ref() == &**name)
                    .map(|(_, value)| value);
                match value {
                    Some(value) => value.hash_into(&mut hasher),
                    None => hasher.write(&[tag::ABSENT]),
                }
            }
            HashSource::Property(property) => hash_property(*property, inputs, &mut hasher),
        }
        hasher.finish()
    }

    /// How many buckets `binding` owns (0 if none).
    pub fn weight(&self, binding: u64) -> u64 {
        let Some(index) = self.ranges.iter().position(|r| r.binding == binding) else {
            return 0;
        };
        let start = index
            .checked_sub(1)
            .map_or(0, |before| self.ranges[before].end);
        self.ranges[index].end - start
    }

    /// The destination of `binding`, if it has buckets.
    pub fn destination(&self, binding: u64) -> Option<D> {
        self.ranges
            .iter()
            .find(|range| range.binding == binding)
            .map(|range| range.destination)
    }

    /// How many bindings hold buckets.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn check_invariants(&self) {
        let mut start = 0;
        for (index, range) in self.ranges.iter().enumerate() {
            assert!(range.end > start, "every range holds at least one bucket");
            assert!(
                range.end - start <= u64::from(WEIGHT_MAX),
                "weights are capped"
            );
            let repeated = self.ranges[..index]
                .iter()
                .any(|earlier| earlier.binding == range.binding);
            assert!(!repeated, "one range per binding");
            start = range.end;
        }
    }
}

fn hash_property(property: HashProperty, inputs: &HashInputs<'_>, hasher: &mut StableHasher) {
    let text = match property {
        HashProperty::MessageId => inputs.message_id,
        HashProperty::CorrelationId => inputs.correlation_id,
        HashProperty::Timestamp => {
            match inputs.timestamp {
                Some(seconds) => hasher.write_tagged(tag::TIMESTAMP, &seconds.to_le_bytes()),
                None => hasher.write(&[tag::ABSENT]),
            }
            return;
        }
    };
    match text {
        Some(text) => hasher.write_tagged(tag::STRING, text),
        None => hasher.write(&[tag::ABSENT]),
    }
}

#[cfg(test)]
#[path = "consistent_hash_tests.rs"]
mod tests;
