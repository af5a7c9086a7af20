//! The on-disk layout of a segment: the segment header block and the record framing.
//!
//! Pure byte code: no I/O, no glommio. Every integer is little-endian and written explicitly.
//! `docs/storage-format.md` is the normative description; this file is its implementation.
//!
//! ```text
//! segment file (segment_size_bytes, a multiple of 4096, preallocated and zero-filled)
//! +---------------------------+ 0
//! | segment header (64 B)     |
//! | zero padding to 4096      |
//! +---------------------------+ 4096 = DATA_OFFSET_BYTES
//! | record | record | ...     |  each record starts 8-byte aligned
//! | 00 00 00 ... (end marker) |  a header of 20 zero bytes ends the segment's records
//! +---------------------------+ segment_size_bytes
//!
//! segment header                         record
//!  0  magic "HARESEG\0"     [u8; 8]       0  crc32        u32  (over bytes 4..20 + payload)
//!  8  format_version        u16           4  payload_len  u32
//! 10  header_size_bytes     u16 (= 64)    8  kind         u8   (opaque tag of the caller)
//! 12  segment_id            u32           9  flags        u8   (0 in version 1)
//! 16  first_lsn             u64          10  reserved     u16  (0)
//! 24  segment_size_bytes    u64          12  lsn          u64
//! 32  data_offset_bytes     u32 (= 4096) 20  payload      [u8; payload_len]
//! 36  reserved              [u8; 24] (0)  ..  zero padding to the next multiple of 8
//! 60  crc32                 u32  (over bytes 0..60)
//! ```

use crate::{Lsn, SegmentId};

/// The unit of O_DIRECT I/O and of the segment header block.
pub const BLOCK_SIZE_BYTES: u64 = 4096;
/// Records start at multiples of this.
pub const RECORD_ALIGN_BYTES: u64 = 8;
/// Size of the fixed record header.
pub const RECORD_HEADER_SIZE_BYTES: u64 = 20;
/// Size of the meaningful part of the segment header; the rest of its block is zero.
pub const SEGMENT_HEADER_SIZE_BYTES: u64 = 64;
/// Where the first record of a segment starts.
pub const DATA_OFFSET_BYTES: u64 = BLOCK_SIZE_BYTES;
/// The segment magic.
pub const SEGMENT_MAGIC: [u8; 8] = *b"HARESEG\0";
/// The only format version this code writes and reads.
pub const FORMAT_VERSION: u16 = 1;

const _: () = assert!(DATA_OFFSET_BYTES.is_multiple_of(BLOCK_SIZE_BYTES));
const _: () = assert!(SEGMENT_HEADER_SIZE_BYTES <= DATA_OFFSET_BYTES);
const _: () = assert!(BLOCK_SIZE_BYTES.is_multiple_of(RECORD_ALIGN_BYTES));
const _: () = assert!(RECORD_HEADER_SIZE_BYTES <= RECORD_ALIGN_BYTES * 3);

/// Why a record or a segment header is not valid. Carried by `StorageError::Corrupt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CorruptReason {
    #[error("segment header has the wrong magic")]
    BadMagic,
    #[error("segment header has unsupported format version {found}")]
    UnsupportedVersion { found: u16 },
    #[error("segment header checksum mismatch")]
    HeaderChecksum,
    #[error("segment header fields are inconsistent (id, size or data offset)")]
    HeaderFields,
    #[error("segment header block is all zero (segment never written)")]
    HeaderMissing,
    #[error("segment starts at lsn {found} but lsn {expected} was expected")]
    SegmentLsnGap { expected: u64, found: u64 },
    #[error("record length {payload_len} runs past the end of the segment")]
    LengthOutOfBounds { payload_len: u32 },
    #[error("record reserved or flag bits are set")]
    ReservedBits,
    #[error("record lsn {found} but lsn {expected} was expected")]
    LsnMismatch { expected: u64, found: u64 },
    #[error("record checksum mismatch")]
    RecordChecksum,
    #[error("record is not where its location says (offset or length mismatch)")]
    LocationMismatch,
}

/// Decoded segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub segment: SegmentId,
    pub first_lsn: Lsn,
    pub segment_size_bytes: u64,
}

/// Total on-disk size of a record with `payload_len` bytes of payload (header + payload + padding).
pub fn record_size_bytes(payload_len: u64) -> u64 {
    (RECORD_HEADER_SIZE_BYTES + payload_len).next_multiple_of(RECORD_ALIGN_BYTES)
}

/// The largest payload a segment of `segment_size_bytes` can hold.
pub fn payload_len_max(segment_size_bytes: u64) -> u64 {
    let space = segment_size_bytes - DATA_OFFSET_BYTES - RECORD_HEADER_SIZE_BYTES;
    (space - space % RECORD_ALIGN_BYTES).min(u64::from(u32::MAX))
}

/// Writes a segment header into `block` (at least `SEGMENT_HEADER_SIZE_BYTES` long) and zeroes
/// the rest of the block.
pub fn encode_segment_header(header: &SegmentHeader, block: &mut [u8]) {
    assert!(block.len() as u64 >= SEGMENT_HEADER_SIZE_BYTES);
    block.fill(0);
    block[0..8].copy_from_slice(&SEGMENT_MAGIC);
    block[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    block[10..12].copy_from_slice(&(SEGMENT_HEADER_SIZE_BYTES as u16).to_le_bytes());
    block[12..16].copy_from_slice(&header.segment.0.to_le_bytes());
    block[16..24].copy_from_slice(&header.first_lsn.0.to_le_bytes());
    block[24..32].copy_from_slice(&header.segment_size_bytes.to_le_bytes());
    block[32..36].copy_from_slice(&(DATA_OFFSET_BYTES as u32).to_le_bytes());
    let crc = crc32fast::hash(&block[0..60]);
    block[60..64].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes and validates a segment header block. `Err(HeaderMissing)` means the block is zero.
pub fn decode_segment_header(block: &[u8]) -> Result<SegmentHeader, CorruptReason> {
    let Some(bytes) = block.get(..SEGMENT_HEADER_SIZE_BYTES as usize) else {
        return Err(CorruptReason::HeaderMissing);
    };
    if bytes.iter().all(|&b| b == 0) {
        return Err(CorruptReason::HeaderMissing);
    }
    if bytes[0..8] != SEGMENT_MAGIC {
        return Err(CorruptReason::BadMagic);
    }
    let crc = read_u32(bytes, 60);
    if crc != crc32fast::hash(&bytes[0..60]) {
        return Err(CorruptReason::HeaderChecksum);
    }
    let version = read_u16(bytes, 8);
    if version != FORMAT_VERSION {
        return Err(CorruptReason::UnsupportedVersion { found: version });
    }
    let header_size = u64::from(read_u16(bytes, 10));
    let data_offset = u64::from(read_u32(bytes, 32));
    if header_size != SEGMENT_HEADER_SIZE_BYTES || data_offset != DATA_OFFSET_BYTES {
        return Err(CorruptReason::HeaderFields);
    }
    Ok(SegmentHeader {
        segment: SegmentId(read_u32(bytes, 12)),
        first_lsn: Lsn(read_u64(bytes, 16)),
        segment_size_bytes: read_u64(bytes, 24),
    })
}

/// Writes one record (header, the payload parts, zero padding) into `out`, which must be exactly
/// `record_size_bytes(payload_len)` long. Returns the CRC it wrote.
pub fn encode_record(out: &mut [u8], kind: u8, lsn: Lsn, parts: &[&[u8]]) -> u32 {
    let payload_len: usize = parts.iter().map(|p| p.len()).sum();
    assert_eq!(out.len() as u64, record_size_bytes(payload_len as u64));
    let payload_len_u32 = u32::try_from(payload_len).expect("caller checked payload_len_max");
    out[4..8].copy_from_slice(&payload_len_u32.to_le_bytes());
    out[8] = kind;
    out[9] = 0;
    out[10..12].copy_from_slice(&0u16.to_le_bytes());
    out[12..20].copy_from_slice(&lsn.0.to_le_bytes());
    let mut position = RECORD_HEADER_SIZE_BYTES as usize;
    for part in parts {
        out[position..position + part.len()].copy_from_slice(part);
        position += part.len();
    }
    out[position..].fill(0);
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&out[4..RECORD_HEADER_SIZE_BYTES as usize + payload_len]);
    let crc = hasher.finalize();
    out[0..4].copy_from_slice(&crc.to_le_bytes());
    crc
}

/// What sits at a record position.
#[derive(Debug, PartialEq, Eq)]
pub enum RecordScan {
    /// A zero header: there are no more records in this segment.
    End,
    /// A valid record.
    Record {
        kind: u8,
        lsn: Lsn,
        payload_len: u32,
        /// Header + payload + padding.
        size_bytes: u64,
    },
}

/// Decodes the record that starts at `bytes[0]`, where `bytes` runs at least to the end of the
/// record (or to the end of the segment) and `space_bytes` is what is left in the segment from
/// this position. `expected_lsn` is checked when given. The payload is `bytes[20..20 + len]`.
///
/// Returns `Err(NeedMore(n))` through `Incomplete` when `bytes` is shorter than the record.
pub fn decode_record(
    bytes: &[u8],
    space_bytes: u64,
    expected_lsn: Option<Lsn>,
) -> Result<RecordScan, DecodeError> {
    let header_len = RECORD_HEADER_SIZE_BYTES as usize;
    if space_bytes < RECORD_HEADER_SIZE_BYTES {
        return Ok(RecordScan::End);
    }
    let Some(header) = bytes.get(..header_len) else {
        return Err(DecodeError::Incomplete {
            need_bytes: RECORD_HEADER_SIZE_BYTES,
        });
    };
    if header.iter().all(|&b| b == 0) {
        return Ok(RecordScan::End);
    }
    let crc = read_u32(header, 0);
    let payload_len = read_u32(header, 4);
    let kind = header[8];
    let flags = header[9];
    let reserved = read_u16(header, 10);
    let lsn = Lsn(read_u64(header, 12));
    let size_bytes = record_size_bytes(u64::from(payload_len));
    if size_bytes > space_bytes {
        return Err(DecodeError::Corrupt(CorruptReason::LengthOutOfBounds {
            payload_len,
        }));
    }
    if flags != 0 || reserved != 0 {
        return Err(DecodeError::Corrupt(CorruptReason::ReservedBits));
    }
    if let Some(expected) = expected_lsn {
        if lsn != expected {
            return Err(DecodeError::Corrupt(CorruptReason::LsnMismatch {
                expected: expected.0,
                found: lsn.0,
            }));
        }
    }
    let end = header_len + payload_len as usize;
    let Some(covered) = bytes.get(4..end) else {
        return Err(DecodeError::Incomplete {
            need_bytes: size_bytes,
        });
    };
    if crc32fast::hash(covered) != crc {
        return Err(DecodeError::Corrupt(CorruptReason::RecordChecksum));
    }
    Ok(RecordScan::Record {
        kind,
        lsn,
        payload_len,
        size_bytes,
    })
}

/// Failure of [`decode_record`].
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ends before the record does; read at least this many bytes from its start.
    Incomplete { need_bytes: u64 },
    /// The bytes are not a valid record.
    Corrupt(CorruptReason),
}

fn read_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(raw)
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, lsn: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA; record_size_bytes(payload.len() as u64) as usize];
        encode_record(&mut out, kind, Lsn(lsn), &[payload]);
        out
    }

    #[test]
    fn record_golden_bytes() {
        let bytes = record(7, 0x0102_0304_0506_0708, b"abc");
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[4..8], &[3, 0, 0, 0]);
        assert_eq!(bytes[8], 7);
        assert_eq!(&bytes[9..12], &[0, 0, 0]);
        assert_eq!(&bytes[12..20], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&bytes[20..23], b"abc");
        assert_eq!(bytes[23], 0);
        let crc = crc32fast::hash(&bytes[4..23]);
        assert_eq!(&bytes[0..4], &crc.to_le_bytes());
    }

    #[test]
    fn record_roundtrip_and_parts() {
        let whole = record(1, 5, b"hello world");
        let mut split = vec![0; whole.len()];
        encode_record(&mut split, 1, Lsn(5), &[b"hello", b" ", b"world"]);
        assert_eq!(whole, split);
        let scan = decode_record(&whole, 1 << 20, Some(Lsn(5))).unwrap();
        assert_eq!(
            scan,
            RecordScan::Record {
                kind: 1,
                lsn: Lsn(5),
                payload_len: 11,
                size_bytes: 32
            }
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let good = record(3, 9, b"payload bytes");
        let covered = RECORD_HEADER_SIZE_BYTES as usize + 13;
        for bit in 0..covered * 8 {
            let mut bad = good.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let result = decode_record(&bad, 1 << 20, Some(Lsn(9)));
            assert!(
                !matches!(result, Ok(RecordScan::Record { .. })),
                "flip of bit {bit} went undetected"
            );
        }
    }

    #[test]
    fn truncation_at_every_byte_is_incomplete_never_a_panic() {
        let good = record(3, 9, b"payload bytes");
        for cut in 0..RECORD_HEADER_SIZE_BYTES as usize + 13 {
            let result = decode_record(&good[..cut], 1 << 20, Some(Lsn(9)));
            assert!(
                matches!(result, Err(DecodeError::Incomplete { .. })),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn zero_header_is_end_and_lengths_are_bounded() {
        assert_eq!(decode_record(&[0; 64], 1 << 20, None), Ok(RecordScan::End));
        assert_eq!(decode_record(&[0; 8], 8, None), Ok(RecordScan::End));
        let good = record(3, 9, &[1; 100]);
        assert_eq!(
            decode_record(&good, 64, None),
            Err(DecodeError::Corrupt(CorruptReason::LengthOutOfBounds {
                payload_len: 100
            }))
        );
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..10_000 {
            let len = rng.usize(0..64);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let _ = decode_record(&bytes, rng.u64(0..1 << 20), None);
            let _ = decode_segment_header(&bytes);
        }
    }

    #[test]
    fn segment_header_roundtrip_and_checks() {
        let header = SegmentHeader {
            segment: SegmentId(42),
            first_lsn: Lsn(1000),
            segment_size_bytes: 1 << 20,
        };
        let mut block = vec![0xFF; BLOCK_SIZE_BYTES as usize];
        encode_segment_header(&header, &mut block);
        assert_eq!(&block[0..8], b"HARESEG\0");
        assert!(block[64..].iter().all(|&b| b == 0));
        assert_eq!(decode_segment_header(&block), Ok(header));
        let mut flipped = block.clone();
        flipped[20] ^= 0x10;
        assert_eq!(
            decode_segment_header(&flipped),
            Err(CorruptReason::HeaderChecksum)
        );
        let mut magic = block.clone();
        magic[0] = b'X';
        assert_eq!(decode_segment_header(&magic), Err(CorruptReason::BadMagic));
        assert_eq!(
            decode_segment_header(&[0; 4096]),
            Err(CorruptReason::HeaderMissing)
        );
    }
}
