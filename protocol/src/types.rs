//! AMQP value types: `ShortStr`, `LongStr`, `FieldValue` and `FieldTable`.
//!
//! Strings are byte strings (the wire does not promise UTF-8), kept as zero-copy `Bytes` slices
//! of the frame they came from. Field tables follow RabbitMQ's tags, which differ from the 0-9-1
//! PDF (`s` is a signed 16-bit integer, not a short string):
//!
//! ```text
//! table: len:u32 ( key:shortstr tag:u8 value )*
//!   t bool(u8)   b i8    B u8    s i16   u i16    I i32    i u32    l i64 (L read as i64)
//!   f f32        d f64   D scale:u8 value:u32     S len:u32 bytes   A len:u32 (tag value)*
//!   T u64        F table V (nothing)              x len:u32 bytes
//! ```
//!
//! Tables keep entry order and duplicate keys, as RabbitMQ does; `get` returns the first match.

use std::fmt;

use bytes::Bytes;

use super::error::DecodeError;
use super::wire::{Put, Reader};

/// Longest short string: its length is one octet.
pub const SHORT_STR_LEN_MAX: usize = 255;

/// An AMQP short string: at most 255 bytes, not necessarily UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// A short string from a literal. Panics if longer than 255 bytes (a bug in the literal).
    pub fn from_static(s: &'static str) -> ShortStr {
        assert!(
            s.len() <= SHORT_STR_LEN_MAX,
            "short string literal longer than 255 bytes"
        );
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// `None` if `b` is longer than 255 bytes.
    pub fn try_from_bytes(b: Bytes) -> Option<ShortStr> {
        (b.len() <= SHORT_STR_LEN_MAX).then_some(ShortStr(b))
    }

    /// Copies `s`, cut at a char boundary to at most 255 bytes (for reply texts).
    pub fn from_str_truncated(s: &str) -> ShortStr {
        let mut end = s.len().min(SHORT_STR_LEN_MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        ShortStr(Bytes::copy_from_slice(&s.as_bytes()[..end]))
    }

    /// Copies `s`; `None` if it is longer than 255 bytes.
    pub fn copy_from_str(s: &str) -> Option<ShortStr> {
        (s.len() <= SHORT_STR_LEN_MAX).then(|| ShortStr(Bytes::copy_from_slice(s.as_bytes())))
    }

    /// A copy in an allocation of its own, so that it no longer keeps the buffer it was read
    /// from alive.
    pub fn detached(&self) -> ShortStr {
        ShortStr(Bytes::copy_from_slice(&self.0))
    }

    /// Wraps bytes whose length came from a one-octet prefix.
    pub(crate) fn from_wire(b: Bytes) -> ShortStr {
        assert!(b.len() <= SHORT_STR_LEN_MAX);
        ShortStr(b)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The string with invalid UTF-8 replaced by U+FFFD.
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}
impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}
impl AsRef<[u8]> for ShortStr {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// An AMQP long string: up to `u32::MAX` bytes, not necessarily UTF-8.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LongStr(Bytes);

impl LongStr {
    pub fn from_static(s: &'static str) -> LongStr {
        LongStr(Bytes::from_static(s.as_bytes()))
    }
    pub fn from_bytes(b: Bytes) -> LongStr {
        LongStr(b)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn to_string_lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

impl fmt::Display for LongStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}
impl fmt::Debug for LongStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(&self.0), f)
    }
}
impl PartialEq<str> for LongStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}
impl PartialEq<&str> for LongStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// One value in a field table or array, tagged as RabbitMQ tags it (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Bool(bool),
    I8(i8),
    U8(u8),
    I16(i16),
    U16(u16),
    I32(i32),
    U32(u32),
    I64(i64),
    F32(f32),
    F64(f64),
    Decimal { scale: u8, value: u32 },
    LongStr(Bytes),
    Array(Vec<FieldValue>),
    Timestamp(u64),
    Table(FieldTable),
    Void,
    ByteArray(Bytes),
}

impl FieldValue {
    /// Any integer value widened to i64 (`None` for timestamps, floats and non-numbers).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(i64::from(v)),
            FieldValue::U8(v) => Some(i64::from(v)),
            FieldValue::I16(v) => Some(i64::from(v)),
            FieldValue::U16(v) => Some(i64::from(v)),
            FieldValue::I32(v) => Some(i64::from(v)),
            FieldValue::U32(v) => Some(i64::from(v)),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(v) => Some(v),
            _ => None,
        }
    }

    /// The bytes of a long string or byte array.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => Some(b),
            _ => None,
        }
    }

    /// Equality as RabbitMQ compares arguments: integers of any width are equal by value, but an
    /// integer never equals a string or a float. Arrays and tables compare element-wise, in order.
    pub fn value_eq(&self, other: &FieldValue) -> bool {
        if let (Some(a), Some(b)) = (self.as_i64(), other.as_i64()) {
            return a == b;
        }
        match (self, other) {
            (FieldValue::Array(a), FieldValue::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.value_eq(y))
            }
            (FieldValue::Table(a), FieldValue::Table(b)) => a.value_eq(b),
            _ => self == other,
        }
    }

    /// RabbitMQ's name for the value's type, as used in error texts.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Bool(_) => "bool",
            FieldValue::I8(_) => "byte",
            FieldValue::U8(_) => "unsignedbyte",
            FieldValue::I16(_) => "short",
            FieldValue::U16(_) => "unsignedshort",
            FieldValue::I32(_) => "signedint",
            FieldValue::U32(_) => "unsignedint",
            FieldValue::I64(_) => "long",
            FieldValue::F32(_) => "float",
            FieldValue::F64(_) => "double",
            FieldValue::Decimal { .. } => "decimal",
            FieldValue::LongStr(_) => "longstr",
            FieldValue::Array(_) => "array",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Table(_) => "table",
            FieldValue::Void => "void",
            FieldValue::ByteArray(_) => "binary",
        }
    }

    /// The wire tag this value is written with.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::ByteArray(_) => b'x',
        }
    }

    /// Reads a tag and its value; `depth` is the nesting level of the enclosing table or array.
    pub(crate) fn read(r: &mut Reader<'_>, depth: usize) -> Result<FieldValue, DecodeError> {
        let offset = r.offset();
        let tag = r.u8()?;
        Ok(match tag {
            b't' => FieldValue::Bool(r.u8()? != 0),
            b'b' => FieldValue::I8(r.i8()?),
            b'B' => FieldValue::U8(r.u8()?),
            b's' => FieldValue::I16(r.i16()?),
            b'u' => FieldValue::U16(r.u16()?),
            b'I' => FieldValue::I32(r.i32()?),
            b'i' => FieldValue::U32(r.u32()?),
            b'l' | b'L' => FieldValue::I64(r.i64()?),
            b'f' => FieldValue::F32(r.f32()?),
            b'd' => FieldValue::F64(r.f64()?),
            b'D' => FieldValue::Decimal {
                scale: r.u8()?,
                value: r.u32()?,
            },
            b'S' => FieldValue::LongStr(r.longstr_bytes()?),
            b'A' => {
                let mut sub = r.nested(depth + 1)?;
                let mut items = Vec::new();
                while !sub.is_empty() {
                    items.push(FieldValue::read(&mut sub, depth + 1)?);
                }
                FieldValue::Array(items)
            }
            b'T' => FieldValue::Timestamp(r.u64()?),
            b'F' => FieldValue::Table(r.table(depth + 1)?),
            b'V' => FieldValue::Void,
            b'x' => FieldValue::ByteArray(r.longstr_bytes()?),
            tag => return Err(DecodeError::UnknownFieldType { offset, tag }),
        })
    }

    /// Bytes that identify the value as RabbitMQ's Erlang terms compare it, for keying a set
    /// of values (message deduplication): integers of any width by value, long strings and
    /// byte arrays by their bytes (both are Erlang binaries), anything else by its wire form.
    pub fn identity_bytes(&self) -> Bytes {
        let mut out = Vec::new();
        if let Some(int) = self.as_i64() {
            out.put_u8(b'l');
            out.put_slice(&int.to_be_bytes());
        } else if let Some(bytes) = self.as_bytes() {
            out.put_u8(b'S');
            out.put_slice(bytes);
        } else {
            self.write(&mut out);
        }
        Bytes::from(out)
    }

    /// Writes the tag and the value.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.put_u8(self.tag());
        match self {
            FieldValue::Bool(v) => out.put_u8(u8::from(*v)),
            FieldValue::I8(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::U8(v) => out.put_u8(*v),
            FieldValue::I16(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::U16(v) => out.put_u16(*v),
            FieldValue::I32(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::U32(v) => out.put_u32(*v),
            FieldValue::I64(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::F32(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::F64(v) => out.put_slice(&v.to_be_bytes()),
            FieldValue::Decimal { scale, value } => {
                out.put_u8(*scale);
                out.put_u32(*value);
            }
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => out.put_longstr_bytes(b),
            FieldValue::Array(items) => out.put_len_u32_prefixed(|out| {
                for item in items {
                    item.write(out);
                }
            }),
            FieldValue::Timestamp(v) => out.put_u64(*v),
            FieldValue::Table(t) => out.put_table(t),
            FieldValue::Void => {}
        }
    }
}

/// An AMQP field table: ordered entries, duplicate keys allowed (as RabbitMQ keeps them).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldTable {
    pub entries: Vec<(ShortStr, FieldValue)>,
}

impl FieldTable {
    pub fn new() -> FieldTable {
        FieldTable::default()
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Replaces the value of the first entry named `key`, or appends a new entry.
    pub fn insert(&mut self, key: ShortStr, value: FieldValue) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes the first entry named `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let index = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(index).1)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.entries.iter()
    }
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Entry-wise `FieldValue::value_eq`, keys and order included.
    pub fn value_eq(&self, other: &FieldTable) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|((ka, va), (kb, vb))| ka == kb && va.value_eq(vb))
    }

    /// Decodes a table from its wire form including the u32 length prefix; the whole of `raw`
    /// must be consumed.
    pub fn decode(raw: &Bytes) -> Result<FieldTable, DecodeError> {
        let mut r = Reader::new(raw);
        let table = r.table(0)?;
        r.expect_empty()?;
        Ok(table)
    }

    /// Decodes a table body without its u32 length prefix: the form AMQPLAIN responses take
    /// (py-amqp and kombu send them that way).
    pub fn decode_entries(raw: &Bytes) -> Result<FieldTable, DecodeError> {
        let mut r = Reader::new(raw);
        FieldTable::read_entries(&mut r, 0)
    }

    /// Appends the wire form including the u32 length prefix.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_table(self);
    }

    /// Reads entries until `r` (already limited to the table's bytes) is empty.
    pub(crate) fn read_entries(
        r: &mut Reader<'_>,
        depth: usize,
    ) -> Result<FieldTable, DecodeError> {
        let mut entries = Vec::new();
        while !r.is_empty() {
            let key = r.shortstr()?;
            let value = FieldValue::read(r, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable { entries })
    }

    pub(crate) fn write_entries(&self, out: &mut Vec<u8>) {
        for (key, value) in &self.entries {
            out.put_shortstr(key);
            value.write(out);
        }
    }
}

impl FromIterator<(ShortStr, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (ShortStr, FieldValue)>>(iter: I) -> FieldTable {
        FieldTable {
            entries: iter.into_iter().collect(),
        }
    }
}

#[cfg(test)]
#[path = "types_tests.rs"]
mod tests;

#[cfg(test)]
mod identity_tests {
    use super::*;

    #[test]
    fn identity_bytes_compare_as_erlang_terms() {
        let text = FieldValue::LongStr(Bytes::from_static(b"1"));
        let binary = FieldValue::ByteArray(Bytes::from_static(b"1"));
        assert_eq!(text.identity_bytes(), binary.identity_bytes());
        assert_eq!(
            FieldValue::I8(1).identity_bytes(),
            FieldValue::I64(1).identity_bytes()
        );
        assert_ne!(FieldValue::I32(1).identity_bytes(), text.identity_bytes());
        assert_ne!(
            FieldValue::F64(1.0).identity_bytes(),
            FieldValue::I32(1).identity_bytes()
        );
    }
}
