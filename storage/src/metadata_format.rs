//! The bytes of the metadata log (`metadata_log`): the file header, the record framing and the
//! entries inside a batch. Pure byte code: no I/O. Every integer is little-endian and written
//! explicitly. `docs/storage-format.md` ("Metadata log") is the normative description.
//!
//! ```text
//! file dir/<generation, 10 digits>.log
//!  0  magic "HAREMETA"   [u8; 8]
//!  8  format_version     u16 (= 1)
//! 10  reserved           u16 (0)
//! 12  generation         u32 (= the number in the file name)
//! 16  salt               u64 (random per file, mixed into every record's CRC)
//! 24  records, each starting 8-byte aligned; the first is the snapshot
//!
//! record
//!  0  crc32        u32   crc32fast over the file's salt (8 bytes LE), bytes 4..24, payload
//!  4  payload_len  u32
//!  8  sequence     u64   previous record's sequence + 1 within a file
//! 16  kind         u8    1 snapshot, 2 batch
//! 17  reserved     [u8; 7] (0)
//! 24  payload      [u8; payload_len]
//!  …  zero padding to the next multiple of 8
//!
//! batch payload: entry_count u32 | (entry_len u32 | entry bytes)*   (opaque entries)
//! snapshot payload: opaque
//! ```

/// First bytes of every metadata log file.
pub const METADATA_MAGIC: [u8; 8] = *b"HAREMETA";
/// The only metadata log format version this code writes and reads.
pub const METADATA_FORMAT_VERSION: u16 = 1;
/// Size of the file header; the first record starts here.
pub const FILE_HEADER_SIZE_BYTES: usize = 24;
/// Size of a record header.
pub const METADATA_RECORD_HEADER_SIZE_BYTES: usize = 24;
/// Records start at multiples of this, so a scan for records after a bad one has few places
/// to try.
pub const METADATA_RECORD_ALIGN_BYTES: usize = 8;
/// Upper bound of one record's payload. A snapshot of millions of objects stays far below it;
/// a length above it is refused as corrupt without looking further.
pub const METADATA_PAYLOAD_SIZE_MAX_BYTES: usize = 1 << 30;

const _: () = assert!(FILE_HEADER_SIZE_BYTES.is_multiple_of(METADATA_RECORD_ALIGN_BYTES));
const _: () =
    assert!(METADATA_RECORD_HEADER_SIZE_BYTES.is_multiple_of(METADATA_RECORD_ALIGN_BYTES));
const _: () = assert!(METADATA_PAYLOAD_SIZE_MAX_BYTES <= u32::MAX as usize);

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataRecordKind {
    /// The whole state at the start of a generation; always a file's first record.
    Snapshot,
    /// Changes made after the previous record, written together with one fdatasync.
    Batch,
}

impl MetadataRecordKind {
    fn code(self) -> u8 {
        match self {
            MetadataRecordKind::Snapshot => 1,
            MetadataRecordKind::Batch => 2,
        }
    }

    fn from_code(code: u8) -> Option<MetadataRecordKind> {
        match code {
            1 => Some(MetadataRecordKind::Snapshot),
            2 => Some(MetadataRecordKind::Batch),
            _ => None,
        }
    }
}

/// Why bytes are not a valid metadata record or file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataCorruptReason {
    #[error("file header has the wrong magic")]
    BadMagic,
    #[error("file header has unsupported format version {found}")]
    UnsupportedVersion { found: u16 },
    #[error("file header names generation {found}, its file name {expected}")]
    GenerationMismatch { expected: u32, found: u32 },
    #[error("record header runs past the end of the file")]
    HeaderTruncated,
    #[error("record length {payload_len} runs past the end of the file or the bound")]
    LengthOutOfBounds { payload_len: u32 },
    #[error("record kind {code} is unknown")]
    UnknownKind { code: u8 },
    #[error("record reserved bytes or padding are not zero")]
    ReservedBits,
    #[error("record checksum mismatch")]
    Checksum,
    #[error("record sequence {found} but {expected} was expected")]
    SequenceGap { expected: u64, found: u64 },
    #[error("the first record is not a snapshot")]
    FirstNotSnapshot,
    #[error("a snapshot record after the first record")]
    SnapshotNotFirst,
    #[error("batch entries do not fill the batch payload exactly")]
    BatchFraming,
}

/// A record read back; `payload` borrows the file's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetadataRecord<'a> {
    pub kind: MetadataRecordKind,
    pub sequence: u64,
    pub payload: &'a [u8],
    /// Offset of the next record (this one's end, padding included).
    pub end_offset: usize,
}

/// The file header of generation `generation`. The salt is mixed into every record's CRC, so
/// bytes that only look like a record (a client's binding arguments quoted inside a torn
/// batch, say) never pass for one: whoever wrote them did not know the salt.
pub fn encode_file_header(generation: u32, salt: u64) -> [u8; FILE_HEADER_SIZE_BYTES] {
    let mut header = [0u8; FILE_HEADER_SIZE_BYTES];
    header[0..8].copy_from_slice(&METADATA_MAGIC);
    header[8..10].copy_from_slice(&METADATA_FORMAT_VERSION.to_le_bytes());
    header[12..16].copy_from_slice(&generation.to_le_bytes());
    header[16..24].copy_from_slice(&salt.to_le_bytes());
    header
}

/// Checks the header of a file whose name says `generation`; returns the file's salt.
pub fn check_file_header(bytes: &[u8], generation: u32) -> Result<u64, MetadataCorruptReason> {
    let Some(header) = bytes.get(..FILE_HEADER_SIZE_BYTES) else {
        return Err(MetadataCorruptReason::HeaderTruncated);
    };
    if header[0..8] != METADATA_MAGIC {
        return Err(MetadataCorruptReason::BadMagic);
    }
    let version = u16::from_le_bytes([header[8], header[9]]);
    if version != METADATA_FORMAT_VERSION {
        return Err(MetadataCorruptReason::UnsupportedVersion { found: version });
    }
    if header[10..12] != [0, 0] {
        return Err(MetadataCorruptReason::ReservedBits);
    }
    let found = u32::from_le_bytes(array(&header[12..16]));
    if found != generation {
        return Err(MetadataCorruptReason::GenerationMismatch {
            expected: generation,
            found,
        });
    }
    Ok(u64::from_le_bytes(array(&header[16..24])))
}

/// The CRC of a record: the file's salt, then the header after the CRC field and the payload.
fn record_crc(salt: u64, covered: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&salt.to_le_bytes());
    hasher.update(covered);
    hasher.finalize()
}

/// Appends one framed record (header, payload, zero padding) to `out`, which must end at a
/// record boundary. Panics if the payload is over the bound: callers size their records.
pub fn encode_record(
    out: &mut Vec<u8>,
    salt: u64,
    kind: MetadataRecordKind,
    sequence: u64,
    payload: &[u8],
) {
    assert!(out.len().is_multiple_of(METADATA_RECORD_ALIGN_BYTES));
    assert!(
        payload.len() <= METADATA_PAYLOAD_SIZE_MAX_BYTES,
        "metadata record payloads stay below the bound"
    );
    let start = out.len();
    let payload_len = u32::try_from(payload.len()).expect("bounded above by u32::MAX");
    out.extend_from_slice(&[0u8; 4]);
    out.extend_from_slice(&payload_len.to_le_bytes());
    out.extend_from_slice(&sequence.to_le_bytes());
    out.push(kind.code());
    out.extend_from_slice(&[0u8; 7]);
    out.extend_from_slice(payload);
    let crc = record_crc(salt, &out[start + 4..]);
    out[start..start + 4].copy_from_slice(&crc.to_le_bytes());
    out.resize(out.len().next_multiple_of(METADATA_RECORD_ALIGN_BYTES), 0);
    debug_assert_eq!(
        decode_record(out, start, salt).map(|record| record.payload),
        Ok(payload)
    );
}

/// The payload of a batch record holding `entries`.
pub fn encode_batch(entries: &[&[u8]]) -> Vec<u8> {
    let size = 4 + entries.iter().map(|entry| 4 + entry.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let count = u32::try_from(entries.len()).expect("a batch holds fewer than 2^32 entries");
    out.extend_from_slice(&count.to_le_bytes());
    for entry in entries {
        let len = u32::try_from(entry.len()).expect("entries are far below 4 GiB");
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(entry);
    }
    assert_eq!(out.len(), size);
    out
}

/// Splits a batch payload into its entries; the framing must fill the payload exactly.
pub fn decode_batch(payload: &[u8]) -> Result<Vec<&[u8]>, MetadataCorruptReason> {
    let framing = MetadataCorruptReason::BatchFraming;
    let count = payload.get(..4).ok_or(framing)?;
    let count = u32::from_le_bytes(array(count));
    let mut entries = Vec::new();
    let mut at = 4usize;
    for _ in 0..count {
        let len = payload.get(at..at + 4).ok_or(framing)?;
        let len = usize::try_from(u32::from_le_bytes(array(len))).map_err(|_| framing)?;
        at += 4;
        let end = at.checked_add(len).ok_or(framing)?;
        entries.push(payload.get(at..end).ok_or(framing)?);
        at = end;
    }
    if at != payload.len() {
        return Err(framing);
    }
    Ok(entries)
}

/// Decodes the record at `offset` of a file salted with `salt`, checking everything but its
/// sequence. Never panics.
pub fn decode_record(
    bytes: &[u8],
    offset: usize,
    salt: u64,
) -> Result<MetadataRecord<'_>, MetadataCorruptReason> {
    assert!(offset.is_multiple_of(METADATA_RECORD_ALIGN_BYTES));
    let header_end = offset
        .checked_add(METADATA_RECORD_HEADER_SIZE_BYTES)
        .filter(|end| *end <= bytes.len())
        .ok_or(MetadataCorruptReason::HeaderTruncated)?;
    let header = &bytes[offset..header_end];
    let crc = u32::from_le_bytes(array(&header[0..4]));
    let payload_len = u32::from_le_bytes(array(&header[4..8]));
    let sequence = u64::from_le_bytes(array(&header[8..16]));
    let code = header[16];
    let out_of_bounds = MetadataCorruptReason::LengthOutOfBounds { payload_len };
    let payload_size = usize::try_from(payload_len).map_err(|_| out_of_bounds)?;
    if payload_size > METADATA_PAYLOAD_SIZE_MAX_BYTES {
        return Err(out_of_bounds);
    }
    let payload_end = header_end + payload_size;
    let end_offset = payload_end.next_multiple_of(METADATA_RECORD_ALIGN_BYTES);
    if end_offset > bytes.len() {
        return Err(out_of_bounds);
    }
    if record_crc(salt, &bytes[offset + 4..payload_end]) != crc {
        return Err(MetadataCorruptReason::Checksum);
    }
    let kind =
        MetadataRecordKind::from_code(code).ok_or(MetadataCorruptReason::UnknownKind { code })?;
    let reserved = &header[17..24];
    let padding = &bytes[payload_end..end_offset];
    if reserved.iter().chain(padding).any(|byte| *byte != 0) {
        return Err(MetadataCorruptReason::ReservedBits);
    }
    Ok(MetadataRecord {
        kind,
        sequence,
        payload: &bytes[header_end..payload_end],
        end_offset,
    })
}

/// True if a record that decodes cleanly and continues the sequence after `last_sequence`
/// starts anywhere at or after `from`: then bad bytes at `from` are not a torn last write
/// (only the last write can be torn) but corruption of data that was synced.
pub fn valid_record_after(bytes: &[u8], from: usize, last_sequence: u64, salt: u64) -> bool {
    let first = from.next_multiple_of(METADATA_RECORD_ALIGN_BYTES);
    (first..bytes.len())
        .step_by(METADATA_RECORD_ALIGN_BYTES)
        .any(|offset| {
            decode_record(bytes, offset, salt).is_ok_and(|record| record.sequence > last_sequence)
        })
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SALT: u64 = 0x5a17_5a17_0000_0001;

    fn one_record(kind: MetadataRecordKind, sequence: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_record(&mut out, SALT, kind, sequence, payload);
        out
    }

    #[test]
    fn a_record_round_trips_with_its_padding() {
        for len in 0..20 {
            let payload: Vec<u8> = (0..len).map(|i| i as u8 ^ 0x5a).collect();
            let bytes = one_record(MetadataRecordKind::Batch, 7, &payload);
            assert_eq!(bytes.len() % METADATA_RECORD_ALIGN_BYTES, 0);
            let record = decode_record(&bytes, 0, SALT).unwrap();
            assert_eq!(record.kind, MetadataRecordKind::Batch);
            assert_eq!(record.sequence, 7);
            assert_eq!(record.payload, &payload[..]);
            assert_eq!(record.end_offset, bytes.len());
        }
    }

    #[test]
    fn every_truncation_of_a_record_is_an_error() {
        let bytes = one_record(MetadataRecordKind::Snapshot, 1, b"some snapshot bytes");
        for len in 0..bytes.len() {
            assert!(
                decode_record(&bytes[..len], 0, SALT).is_err(),
                "length {len}"
            );
        }
    }

    #[test]
    fn every_flipped_bit_of_a_record_is_an_error() {
        let bytes = one_record(MetadataRecordKind::Batch, 3, b"entries!!");
        for bit in 0..bytes.len() * 8 {
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(decode_record(&flipped, 0, SALT).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn batches_round_trip_and_bad_framing_is_refused() {
        let entries: [&[u8]; 3] = [b"a", b"", b"ccc"];
        let payload = encode_batch(&entries);
        assert_eq!(decode_batch(&payload).unwrap(), entries.to_vec());
        assert_eq!(decode_batch(&encode_batch(&[])).unwrap().len(), 0);
        for len in 0..payload.len() {
            assert!(decode_batch(&payload[..len]).is_err(), "length {len}");
        }
        let mut longer = payload.clone();
        longer.push(0);
        assert!(decode_batch(&longer).is_err());
    }

    #[test]
    fn the_file_header_checks_magic_version_and_generation() {
        let header = encode_file_header(42, SALT);
        assert_eq!(check_file_header(&header, 42), Ok(SALT));
        assert_eq!(
            check_file_header(&header, 41),
            Err(MetadataCorruptReason::GenerationMismatch {
                expected: 41,
                found: 42
            })
        );
        let mut bad = header;
        bad[0] ^= 1;
        assert_eq!(
            check_file_header(&bad, 42),
            Err(MetadataCorruptReason::BadMagic)
        );
        let mut bad = header;
        bad[8] = 9;
        assert!(matches!(
            check_file_header(&bad, 42),
            Err(MetadataCorruptReason::UnsupportedVersion { found: 9 })
        ));
        assert!(check_file_header(&header[..15], 42).is_err());
    }

    #[test]
    fn a_valid_record_after_bad_bytes_is_found() {
        let mut bytes = one_record(MetadataRecordKind::Batch, 5, b"first");
        let second_at = bytes.len();
        encode_record(&mut bytes, SALT, MetadataRecordKind::Batch, 6, b"second");
        bytes[0] ^= 0xff;
        assert!(valid_record_after(&bytes, 0, 4, SALT));
        assert!(valid_record_after(&bytes, second_at, 5, SALT));
        // A record that does not continue the sequence does not count.
        assert!(!valid_record_after(&bytes, second_at, 6, SALT));
        assert!(!valid_record_after(&bytes, bytes.len(), 0, SALT));
    }

    /// A record's bytes quoted inside another record's payload (a client can put any bytes in
    /// a binding argument) do not pass for a record in a file with another salt.
    #[test]
    fn a_record_from_a_file_with_another_salt_is_not_valid() {
        let forged = one_record(MetadataRecordKind::Batch, 1 << 40, b"forged");
        assert!(decode_record(&forged, 0, SALT).is_ok());
        assert_eq!(
            decode_record(&forged, 0, SALT ^ 1),
            Err(MetadataCorruptReason::Checksum)
        );
        assert!(!valid_record_after(&forged, 0, 0, SALT ^ 1));
    }
}
