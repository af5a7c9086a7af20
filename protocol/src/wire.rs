//! The one cursor (`Reader`) and the one writer helper set (`Put`) every decoder and encoder in
//! `protocol` is built on.
//!
//! Wire integers are big-endian. Strings and tables are length-prefixed:
//!
//! ```text
//! shortstr:  len:u8  bytes[len]
//! longstr:   len:u32 bytes[len]
//! table:     len:u32 ( key:shortstr tag:u8 value )*      (len counts the entries' bytes)
//! bits:      consecutive bit arguments share one octet, first bit in the least significant bit
//! ```
//!
//! `Reader` never panics on peer bytes: every read checks the remaining length and reports
//! `DecodeError::Truncated` with the offset. Reads of strings and byte values are zero-copy slices
//! of the payload `Bytes`. Writers patch length prefixes after the body is written instead of
//! computing sizes by hand.

use bytes::Bytes;

use super::error::DecodeError;
use super::types::{FieldTable, LongStr, ShortStr};

/// Maximum nesting of field tables and arrays inside one another. Bounds decoder recursion so
/// hostile input cannot overflow the stack; RabbitMQ clients never come close.
pub const NESTING_DEPTH_MAX: usize = 64;

/// Cursor over a payload. `end` lets a nested table reuse the same buffer without copying, and
/// keeps error offsets relative to the whole payload.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
    end: usize,
    /// Octet holding the bit arguments being read, and how many of its bits were used
    /// (8 = none pending, so the next bit reads a fresh octet).
    bit_octet: u8,
    bit_used: u8,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
            bit_octet: 0,
            bit_used: 8,
        }
    }

    /// Offset of the next byte to read, relative to the start of the payload.
    pub(crate) fn offset(&self) -> usize {
        self.pos
    }

    pub(crate) fn remaining(&self) -> usize {
        self.end - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Errors unless every byte was consumed.
    pub(crate) fn expect_empty(&self) -> Result<(), DecodeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes {
                offset: self.pos,
                extra: self.remaining(),
            })
        }
    }

    /// The next `n` bytes as a zero-copy slice of the payload.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let range = self.advance(n)?;
        Ok(self.buf.slice(range))
    }

    /// Checks `n` bytes are available, consumes them and returns their range in `buf`.
    fn advance(&mut self, n: usize) -> Result<std::ops::Range<usize>, DecodeError> {
        self.bit_used = 8;
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                offset: self.pos,
                need: n,
                have: self.remaining(),
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(start..self.pos)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let range = self.advance(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[range]);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array()?))
    }
    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array()?))
    }
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        Ok(f32::from_be_bytes(self.array()?))
    }
    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    /// One bit argument. Consecutive bits come from the same octet, LSB first; any other read
    /// in between ends the group.
    pub(crate) fn bit(&mut self) -> Result<bool, DecodeError> {
        if self.bit_used == 8 {
            let octet = self.u8()?;
            self.bit_octet = octet;
            self.bit_used = 0;
        }
        let value = self.bit_octet & (1 << self.bit_used) != 0;
        self.bit_used += 1;
        Ok(value)
    }

    pub(crate) fn shortstr(&mut self) -> Result<ShortStr, DecodeError> {
        let len = self.u8()?;
        let bytes = self.take(usize::from(len))?;
        Ok(ShortStr::from_wire(bytes))
    }

    pub(crate) fn longstr_bytes(&mut self) -> Result<Bytes, DecodeError> {
        let len = self.len_u32()?;
        self.take(len)
    }

    pub(crate) fn longstr(&mut self) -> Result<LongStr, DecodeError> {
        Ok(LongStr::from_bytes(self.longstr_bytes()?))
    }

    /// A u32 length prefix. One that does not fit a usize cannot fit the buffer either, so it
    /// saturates and the following `take` reports the truncation.
    fn len_u32(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::try_from(self.u32()?).unwrap_or(usize::MAX))
    }

    /// A length-prefixed field table at nesting `depth` (0 for a method argument).
    pub(crate) fn table(&mut self, depth: usize) -> Result<FieldTable, DecodeError> {
        let mut sub = self.nested(depth)?;
        FieldTable::read_entries(&mut sub, depth)
    }

    /// A sub-reader over the next u32-length-prefixed region, for tables and arrays.
    pub(crate) fn nested(&mut self, depth: usize) -> Result<Reader<'a>, DecodeError> {
        if depth >= NESTING_DEPTH_MAX {
            return Err(DecodeError::NestingTooDeep {
                offset: self.pos,
                depth_max: NESTING_DEPTH_MAX,
            });
        }
        let len = self.len_u32()?;
        let range = self.advance(len)?;
        Ok(Reader {
            buf: self.buf,
            pos: range.start,
            end: range.end,
            bit_octet: 0,
            bit_used: 8,
        })
    }
}

/// Writer helpers on the output buffer. Integers go out big-endian.
pub(crate) trait Put {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_slice(&mut self, v: &[u8]);
    fn put_shortstr(&mut self, v: &ShortStr);
    /// A u32 length prefix patched after `body` has written the bytes it counts.
    fn put_len_u32_prefixed(&mut self, body: impl FnOnce(&mut Vec<u8>));
    fn put_longstr_bytes(&mut self, v: &[u8]);
    fn put_table(&mut self, v: &FieldTable);
}

impl Put for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_slice(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
    fn put_shortstr(&mut self, v: &ShortStr) {
        let len = u8::try_from(v.len()).expect("ShortStr invariant: length <= 255");
        self.push(len);
        self.extend_from_slice(v.as_bytes());
    }
    fn put_len_u32_prefixed(&mut self, body: impl FnOnce(&mut Vec<u8>)) {
        let at = self.len();
        self.extend_from_slice(&0u32.to_be_bytes());
        body(self);
        let len = u32::try_from(self.len() - at - 4).expect("length-prefixed values fit in u32");
        self[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }
    fn put_longstr_bytes(&mut self, v: &[u8]) {
        self.put_len_u32_prefixed(|out| out.extend_from_slice(v));
    }
    fn put_table(&mut self, v: &FieldTable) {
        self.put_len_u32_prefixed(|out| v.write_entries(out));
    }
}

/// Writes method arguments, packing consecutive bits into shared octets (LSB first).
pub(crate) struct ArgWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Index in `out` of the octet collecting bits, and how many bits it holds (8 = none open).
    bit_at: usize,
    bit_used: u8,
}

impl<'a> ArgWriter<'a> {
    pub(crate) fn new(out: &'a mut Vec<u8>) -> ArgWriter<'a> {
        ArgWriter {
            out,
            bit_at: 0,
            bit_used: 8,
        }
    }

    /// The buffer for a non-bit argument; ends any open group of bits.
    pub(crate) fn out(&mut self) -> &mut Vec<u8> {
        self.bit_used = 8;
        self.out
    }

    pub(crate) fn bit(&mut self, v: bool) {
        if self.bit_used == 8 {
            self.bit_at = self.out.len();
            self.out.push(0);
            self.bit_used = 0;
        }
        if v {
            self.out[self.bit_at] |= 1 << self.bit_used;
        }
        self.bit_used += 1;
    }
}

/// A method argument type: how one domain reads and writes itself.
pub(crate) trait Arg: Sized {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError>;
    fn write(&self, w: &mut ArgWriter<'_>);
}

impl Arg for bool {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bit()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.bit(*self);
    }
}
impl Arg for u8 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u8()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_u8(*self);
    }
}
impl Arg for u16 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u16()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_u16(*self);
    }
}
impl Arg for u32 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u32()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_u32(*self);
    }
}
impl Arg for u64 {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.u64()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_u64(*self);
    }
}
impl Arg for ShortStr {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.shortstr()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_shortstr(self);
    }
}
impl Arg for LongStr {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.longstr()
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_longstr_bytes(self.as_bytes());
    }
}
impl Arg for FieldTable {
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.table(0)
    }
    fn write(&self, w: &mut ArgWriter<'_>) {
        w.out().put_table(self);
    }
}
