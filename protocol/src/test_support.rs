//! Test-only helpers: a seeded xorshift generator and random values of every wire type, so the
//! codec tests can build non-default instances of every method and property set.

use bytes::Bytes;

use super::properties::BasicProperties;
use super::types::{FieldTable, FieldValue, LongStr, ShortStr};

/// xorshift64*: small, seeded, good enough to explore encodings.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Random bytes, random length in 0..max.
    pub(crate) fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max) as usize;
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
    /// Printable ASCII of random length in 1..=max, never empty so it differs from Default.
    pub(crate) fn text(&mut self, max: u64) -> Vec<u8> {
        let len = 1 + self.below(max) as usize;
        (0..len).map(|_| b'a' + self.below(26) as u8).collect()
    }
}

/// A random non-default value of a wire type.
pub(crate) trait Sample {
    fn sample(rng: &mut Rng) -> Self;
}

impl Sample for bool {
    fn sample(rng: &mut Rng) -> bool {
        rng.below(2) == 1
    }
}
impl Sample for u8 {
    fn sample(rng: &mut Rng) -> u8 {
        1 + rng.below(255) as u8
    }
}
impl Sample for u16 {
    fn sample(rng: &mut Rng) -> u16 {
        1 + rng.below(u64::from(u16::MAX)) as u16
    }
}
impl Sample for u32 {
    fn sample(rng: &mut Rng) -> u32 {
        1 + rng.below(u64::from(u32::MAX)) as u32
    }
}
impl Sample for u64 {
    /// Stays at or below i64::MAX so the amq-protocol oracle (signed long-long) can compare.
    fn sample(rng: &mut Rng) -> u64 {
        1 + rng.below(i64::MAX as u64)
    }
}
impl Sample for ShortStr {
    fn sample(rng: &mut Rng) -> ShortStr {
        ShortStr::try_from_bytes(Bytes::from(rng.text(40))).unwrap()
    }
}
impl Sample for LongStr {
    fn sample(rng: &mut Rng) -> LongStr {
        LongStr::from_bytes(Bytes::from(rng.text(300)))
    }
}
impl Sample for FieldTable {
    fn sample(rng: &mut Rng) -> FieldTable {
        random_table(rng, 2)
    }
}

/// A table of 1..=4 entries with unique keys in sorted order (so an oracle that keeps tables in
/// a sorted map re-encodes them identically); values may nest `depth` more levels.
pub(crate) fn random_table(rng: &mut Rng, depth: u32) -> FieldTable {
    let count = 1 + rng.below(4) as usize;
    let mut entries: Vec<(ShortStr, FieldValue)> = (0..count)
        .map(|i| {
            let mut key = rng.text(10);
            key.extend_from_slice(format!("{i}").as_bytes());
            (
                ShortStr::try_from_bytes(Bytes::from(key)).unwrap(),
                random_value(rng, depth),
            )
        })
        .collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    FieldTable { entries }
}

/// Any field value; `depth` bounds nesting of arrays and tables.
pub(crate) fn random_value(rng: &mut Rng, depth: u32) -> FieldValue {
    let kinds = if depth == 0 { 15 } else { 17 };
    match rng.below(kinds) {
        0 => FieldValue::Bool(bool::sample(rng)),
        1 => FieldValue::I8(rng.next_u64() as i8),
        2 => FieldValue::U8(rng.next_u64() as u8),
        3 => FieldValue::I16(rng.next_u64() as i16),
        4 => FieldValue::U16(rng.next_u64() as u16),
        5 => FieldValue::I32(rng.next_u64() as i32),
        6 => FieldValue::U32(rng.next_u64() as u32),
        7 => FieldValue::I64(rng.next_u64() as i64),
        8 => FieldValue::F32(rng.below(1 << 20) as f32 / 8.0),
        9 => FieldValue::F64(rng.below(1 << 40) as f64 / 16.0),
        10 => FieldValue::Decimal {
            scale: rng.below(10) as u8,
            value: rng.next_u64() as u32,
        },
        11 => FieldValue::LongStr(Bytes::from(rng.text(50))),
        12 => FieldValue::Timestamp(rng.below(i64::MAX as u64)),
        13 => FieldValue::Void,
        14 => FieldValue::ByteArray(Bytes::from(rng.bytes(20))),
        15 => FieldValue::Array(
            (0..rng.below(4))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => FieldValue::Table(random_table(rng, depth - 1)),
    }
}

/// Properties with each one present or absent at random.
pub(crate) fn random_properties(rng: &mut Rng) -> BasicProperties {
    fn maybe<T: Sample>(rng: &mut Rng) -> Option<T> {
        bool::sample(rng).then(|| T::sample(rng))
    }
    BasicProperties {
        content_type: maybe(rng),
        content_encoding: maybe(rng),
        headers: maybe(rng),
        delivery_mode: maybe(rng),
        priority: maybe(rng),
        correlation_id: maybe(rng),
        reply_to: maybe(rng),
        expiration: maybe(rng),
        message_id: maybe(rng),
        timestamp: maybe(rng),
        kind: maybe(rng),
        user_id: maybe(rng),
        app_id: maybe(rng),
        cluster_id: maybe(rng),
    }
}
