//! Recovery: scans every segment in id order, validates each record (length, CRC, LSN
//! continuity), reports valid records to the caller, and cuts a torn tail.
//!
//! Rules:
//! - A bad record or header in the **last** segment is a torn tail (a crash during a commit
//!   write): the log ends just before it, and the rest of that segment is zeroed and fsynced
//!   before the log accepts writes. A last segment whose header is bad but whose first record
//!   is valid is not a torn write and is reported as corrupt.
//! - A bad record or header in an **older** segment is corruption: `StorageError::Corrupt`.
//! - Files with an all-zero header after the last segment are preallocated spares; one with the
//!   next id and the right size is kept for the writer, others are removed.
//! - Segment ids may have gaps (garbage collection deletes whole segments); LSNs are contiguous
//!   within a segment and across adjacent ids, and increasing across a gap.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::io::DmaFile;

use crate::aligned::align_down;
use crate::error::StorageError;
use crate::format::{
    decode_record, decode_segment_header, CorruptReason, DecodeError, RecordScan, SegmentHeader,
    BLOCK_SIZE_BYTES, DATA_OFFSET_BYTES, RECORD_HEADER_SIZE_BYTES,
};
use crate::scanner::{read, Scanner, RECOVERY_READ_BYTES};
use crate::segment::{list_segment_files, open_segment_file, SegmentEntry, SegmentTable};
use crate::writer::TailBlock;
use crate::{Lsn, RecordLocation, RecoveredRecord, RecoveryReport, SegmentId};

/// What recovery hands to the writer.
pub struct Recovered {
    pub report: RecoveryReport,
    pub segments: SegmentTable,
    pub next_lsn: Lsn,
    /// `SegmentId(0)` when the log is empty.
    pub active_segment: SegmentId,
    pub active_offset: u64,
    pub tail: TailBlock,
    pub spare: Option<(SegmentId, Rc<DmaFile>)>,
}

/// Scans `dir` (see the module rules). Calls `on_record` for every valid record in LSN order.
///
/// Steps: open every segment file and classify its header; scan the written segments in id
/// order, deciding here whether damage is a torn tail or corruption; keep one spare file and
/// remove the other unused ones; derive the write position from where the records end.
pub async fn recover(
    dir: &Path,
    segment_size_bytes: u64,
    on_record: &mut dyn FnMut(RecoveredRecord<'_>),
) -> Result<Recovered, StorageError> {
    let started = Instant::now();
    let files = open_segment_files(dir).await?;
    let written_count = written_count(&files);
    let mut scan = LogScan::new();
    for (index, entry) in files[..written_count].iter().enumerate() {
        let is_last = index + 1 == written_count;
        let header = match &entry.header {
            HeaderState::Valid(header) => *header,
            HeaderState::Zero => {
                return Err(corrupt(entry.segment, 0, CorruptReason::HeaderMissing));
            }
            HeaderState::Bad(reason) => {
                if !is_last || first_record_is_valid(entry, scan.last_lsn).await? {
                    return Err(corrupt(entry.segment, 0, *reason));
                }
                tracing::warn!(segment = entry.segment.0, %reason, "torn segment header at the tail; zeroing the segment");
                scan.torn_tail_bytes += zero_from(entry, segment_size_bytes, 0).await?;
                scan.zeroed_tail = Some(index);
                break;
            }
        };
        scan.check_follows(&header)?;
        let mut scanner = Scanner::new(&entry.file, &entry.path, header.segment_size_bytes);
        let records = scan_records(&mut scanner, &header, on_record).await?;
        if let Some(reason) = records.cut {
            if !is_last {
                return Err(corrupt(entry.segment, records.end_offset, reason));
            }
            tracing::warn!(segment = entry.segment.0, offset = records.end_offset, %reason, "torn tail; cutting the log here");
        }
        let tail = scanner.tail_block(records.end_offset).await?;
        if is_last {
            scan.torn_tail_bytes +=
                zero_from(entry, header.segment_size_bytes, records.end_offset).await?;
        }
        scan.add_segment(entry, &header, &records, tail);
    }
    let spare_candidates = &files[scan.zeroed_tail.unwrap_or(written_count)..];
    let spare = keep_spare(spare_candidates, scan.next_segment(), segment_size_bytes)?;
    let position = write_position(scan.end.take(), segment_size_bytes);
    let report = scan.report(started.elapsed());
    Ok(Recovered {
        next_lsn: Lsn(report.last_lsn.0 + 1),
        report,
        segments: scan.segments,
        active_segment: position.segment,
        active_offset: position.offset,
        tail: position.tail,
        spare,
    })
}

enum HeaderState {
    Valid(SegmentHeader),
    Zero,
    Bad(CorruptReason),
}

struct SegmentFile {
    segment: SegmentId,
    path: PathBuf,
    file: Rc<DmaFile>,
    size_bytes: u64,
    header: HeaderState,
}

/// What the scan of the written segments has found so far.
struct LogScan {
    segments: SegmentTable,
    segments_scanned: u32,
    records: u64,
    torn_tail_bytes: u64,
    /// Highest LSN recovered so far (`Lsn(0)` while none).
    last_lsn: Lsn,
    /// The last segment scanned.
    last_segment: Option<SegmentId>,
    /// Where the records of `last_segment` end.
    end: Option<LogEnd>,
    /// Index, in the file list, of a last segment zeroed because its header was torn.
    zeroed_tail: Option<usize>,
}

/// Where the records of the last scanned segment end.
struct LogEnd {
    segment: SegmentId,
    /// Offset just past the last valid record.
    offset: u64,
    /// The bytes of the block `offset` falls in, up to `offset`.
    tail: Vec<u8>,
    /// The segment size its header states.
    segment_size_bytes: u64,
}

/// The valid records at the start of one segment, and where and why they end.
struct SegmentRecords {
    /// Offset just past the last valid record (`DATA_OFFSET_BYTES` when there is none).
    end_offset: u64,
    count: u64,
    /// LSN of the last valid record, if any.
    last_lsn: Option<Lsn>,
    /// Why the records end before the end marker, if they do: a torn tail or corruption.
    cut: Option<CorruptReason>,
}

/// Where the writer continues.
struct WritePosition {
    /// `SegmentId(0)` when the log is empty.
    segment: SegmentId,
    offset: u64,
    tail: TailBlock,
}

/// Opens every segment file of `dir`, in id order, and classifies its header.
async fn open_segment_files(dir: &Path) -> Result<Vec<SegmentFile>, StorageError> {
    let mut files = Vec::new();
    for (segment, path) in list_segment_files(dir)? {
        let file = open_segment_file(&path).await?;
        let size_bytes = file
            .file_size()
            .await
            .map_err(|e| StorageError::io("stat segment", &path, e))?;
        let header_block = read(&file, &path, 0, BLOCK_SIZE_BYTES).await?;
        let header = classify_header(segment, &header_block, size_bytes);
        files.push(SegmentFile {
            segment,
            path,
            file,
            size_bytes,
            header,
        });
    }
    Ok(files)
}

/// What the header block of the file named for `segment` says.
fn classify_header(segment: SegmentId, block: &[u8], file_size_bytes: u64) -> HeaderState {
    match decode_segment_header(block) {
        Err(CorruptReason::HeaderMissing) => HeaderState::Zero,
        Err(reason) => HeaderState::Bad(reason),
        Ok(h) if h.segment != segment || !valid_size(h.segment_size_bytes, file_size_bytes) => {
            HeaderState::Bad(CorruptReason::HeaderFields)
        }
        Ok(h) => HeaderState::Valid(h),
    }
}

/// How many files, from the first, belong to the log: up to the last one whose header is not
/// all zero. The files after it are preallocated spares.
fn written_count(files: &[SegmentFile]) -> usize {
    files
        .iter()
        .rposition(|f| !matches!(f.header, HeaderState::Zero))
        .map_or(0, |index| index + 1)
}

/// Scans the records of one segment from its data offset, reporting each valid one to
/// `on_record`, up to the end marker or the first record that is not valid.
async fn scan_records(
    scanner: &mut Scanner<'_>,
    header: &SegmentHeader,
    on_record: &mut dyn FnMut(RecoveredRecord<'_>),
) -> Result<SegmentRecords, StorageError> {
    let mut records = SegmentRecords {
        end_offset: DATA_OFFSET_BYTES,
        count: 0,
        last_lsn: None,
        cut: None,
    };
    loop {
        let offset = records.end_offset;
        let space = scanner.limit - offset;
        if space < RECORD_HEADER_SIZE_BYTES {
            return Ok(records);
        }
        let expected = records
            .last_lsn
            .map_or(header.first_lsn, |lsn| Lsn(lsn.0 + 1));
        match next_record(scanner, offset, space, expected).await? {
            Ok(RecordScan::End) => return Ok(records),
            Ok(RecordScan::Record {
                kind,
                lsn,
                payload_len,
                size_bytes,
            }) => {
                let bytes = scanner.at(offset, size_bytes).await?;
                let payload = &bytes[RECORD_HEADER_SIZE_BYTES as usize..][..payload_len as usize];
                let location = RecordLocation {
                    segment: header.segment,
                    offset: u32::try_from(offset).expect("segment sizes fit in u32"),
                    length: payload_len,
                };
                on_record(RecoveredRecord {
                    lsn,
                    kind,
                    location,
                    payload,
                });
                records.count += 1;
                records.last_lsn = Some(lsn);
                records.end_offset += size_bytes;
            }
            Err(reason) => {
                records.cut = Some(reason);
                return Ok(records);
            }
        }
    }
}

/// Decodes the record at `offset`, reading more when its header says it is longer than what was
/// read. The outer error is an I/O failure; the inner one says why the bytes are not a record.
async fn next_record(
    scanner: &mut Scanner<'_>,
    offset: u64,
    space_bytes: u64,
    expected: Lsn,
) -> Result<Result<RecordScan, CorruptReason>, StorageError> {
    let bytes = scanner.at(offset, RECORD_HEADER_SIZE_BYTES).await?;
    let mut decoded = decode_record(bytes, space_bytes, Some(expected));
    if let Err(DecodeError::Incomplete { need_bytes }) = decoded {
        let bytes = scanner.at(offset, need_bytes).await?;
        decoded = decode_record(bytes, space_bytes, Some(expected));
    }
    Ok(decoded.map_err(|error| match error {
        // The file ends before a record its header says fits in the segment.
        DecodeError::Incomplete { .. } => CorruptReason::LengthOutOfBounds { payload_len: 0 },
        DecodeError::Corrupt(reason) => reason,
    }))
}

impl LogScan {
    fn new() -> LogScan {
        LogScan {
            segments: SegmentTable::default(),
            segments_scanned: 0,
            records: 0,
            torn_tail_bytes: 0,
            last_lsn: Lsn(0),
            last_segment: None,
            end: None,
            zeroed_tail: None,
        }
    }

    /// Checks that a segment's first LSN follows the records scanned so far: the next LSN after
    /// an adjacent segment, and any higher LSN after a gap in the ids (or as the first segment).
    fn check_follows(&self, header: &SegmentHeader) -> Result<(), StorageError> {
        let adjacent = self
            .last_segment
            .is_some_and(|last| last.0 + 1 == header.segment.0);
        let follows = if adjacent {
            header.first_lsn.0 == self.last_lsn.0 + 1
        } else {
            header.first_lsn > self.last_lsn && header.first_lsn.0 > 0
        };
        if follows {
            return Ok(());
        }
        Err(corrupt(
            header.segment,
            0,
            CorruptReason::SegmentLsnGap {
                expected: self.last_lsn.0 + 1,
                found: header.first_lsn.0,
            },
        ))
    }

    /// Records a scanned segment: its table entry, its counts and where its records end.
    fn add_segment(
        &mut self,
        entry: &SegmentFile,
        header: &SegmentHeader,
        records: &SegmentRecords,
        tail: Vec<u8>,
    ) {
        self.segments.insert(
            entry.segment,
            SegmentEntry {
                path: entry.path.clone(),
                file: Some(entry.file.clone()),
                live_count: 0,
                last_lsn: records.last_lsn.unwrap_or(Lsn(0)),
            },
        );
        self.segments_scanned += 1;
        self.records += records.count;
        if let Some(lsn) = records.last_lsn {
            self.last_lsn = lsn;
        }
        self.last_segment = Some(entry.segment);
        self.end = Some(LogEnd {
            segment: entry.segment,
            offset: records.end_offset,
            tail,
            segment_size_bytes: header.segment_size_bytes,
        });
    }

    /// The id a new segment after the scanned ones gets.
    fn next_segment(&self) -> SegmentId {
        SegmentId(self.last_segment.map_or(1, |last| last.0 + 1))
    }

    fn report(&self, duration: Duration) -> RecoveryReport {
        RecoveryReport {
            segments_scanned: self.segments_scanned,
            records: self.records,
            torn_tail_bytes: self.torn_tail_bytes,
            duration,
            last_lsn: self.last_lsn,
            in_use: Default::default(),
        }
    }
}

/// Keeps the first of `candidates` (the files after the log's last segment) that can serve as
/// segment `next`: the right id and the configured size. The others are removed (blocking
/// `std::fs`, start-up only).
fn keep_spare(
    candidates: &[SegmentFile],
    next: SegmentId,
    segment_size_bytes: u64,
) -> Result<Option<(SegmentId, Rc<DmaFile>)>, StorageError> {
    let kept = candidates
        .iter()
        .find(|f| f.segment == next && f.size_bytes == segment_size_bytes);
    let kept_segment = kept.map(|f| f.segment);
    // File names are unique, so are the segment ids they give.
    for entry in candidates
        .iter()
        .filter(|f| Some(f.segment) != kept_segment)
    {
        tracing::info!(file = %entry.path.display(), "removing unused preallocated segment");
        std::fs::remove_file(&entry.path)
            .map_err(|source| StorageError::io("remove spare segment", &entry.path, source))?;
    }
    Ok(kept.map(|f| (f.segment, f.file.clone())))
}

/// Where the writer continues after the scanned segments. A last segment of another size than
/// configured is closed, and so is the missing segment of an empty log (`SegmentId(0)`): the
/// first append then rolls to a new segment.
fn write_position(end: Option<LogEnd>, segment_size_bytes: u64) -> WritePosition {
    let closed = |segment| WritePosition {
        segment,
        offset: segment_size_bytes,
        tail: TailBlock {
            segment,
            file_offset: segment_size_bytes,
            bytes: Vec::new(),
        },
    };
    match end {
        Some(end) if end.segment_size_bytes == segment_size_bytes => WritePosition {
            segment: end.segment,
            offset: end.offset,
            tail: TailBlock {
                segment: end.segment,
                file_offset: align_down(end.offset),
                bytes: end.tail,
            },
        },
        Some(end) => closed(end.segment),
        None => closed(SegmentId(0)),
    }
}

fn valid_size(header_size_bytes: u64, file_size_bytes: u64) -> bool {
    header_size_bytes.is_multiple_of(BLOCK_SIZE_BYTES)
        && header_size_bytes > DATA_OFFSET_BYTES
        && header_size_bytes <= u64::from(u32::MAX)
        && file_size_bytes >= DATA_OFFSET_BYTES
}

/// Whether a segment whose header is bad still starts with a valid record (then the header was
/// damaged after the fact, which is corruption, not a torn write).
async fn first_record_is_valid(entry: &SegmentFile, last_lsn: Lsn) -> Result<bool, StorageError> {
    if entry.size_bytes <= DATA_OFFSET_BYTES {
        return Ok(false);
    }
    let bytes = read(
        &entry.file,
        &entry.path,
        DATA_OFFSET_BYTES,
        RECOVERY_READ_BYTES,
    )
    .await?;
    let expected = (last_lsn.0 > 0).then_some(Lsn(last_lsn.0 + 1));
    let space = entry.size_bytes - DATA_OFFSET_BYTES;
    Ok(matches!(
        decode_record(&bytes, space, expected),
        Ok(RecordScan::Record { .. })
    ))
}

/// Zeroes `[from, size_bytes)` of a segment where it is not zero already (and extends a
/// truncated file back to `size_bytes`), then fdatasyncs. Returns how many bytes past `from`
/// were not zero.
async fn zero_from(entry: &SegmentFile, size_bytes: u64, from: u64) -> Result<u64, StorageError> {
    let mut dirty_bytes = 0;
    let mut wrote = false;
    let mut window = align_down(from);
    // The rest of a 64 MiB segment is read to check it is zero: with reads ahead too.
    let mut scanner = Scanner::new(&entry.file, &entry.path, size_bytes);
    while window < size_bytes {
        let length = RECOVERY_READ_BYTES.min(size_bytes - window);
        let bytes = scanner.at(window, length).await?;
        let bytes = &bytes[..bytes.len().min(length as usize)];
        let keep = from.saturating_sub(window) as usize;
        let dirty = bytes.iter().skip(keep).filter(|&&b| b != 0).count();
        if dirty > 0 || (bytes.len() as u64) < length {
            dirty_bytes += dirty as u64;
            let mut buffer = glommio::allocate_dma_buffer(length as usize);
            let out = buffer.as_bytes_mut();
            out.fill(0);
            let kept = keep.min(bytes.len());
            out[..kept].copy_from_slice(&bytes[..kept]);
            let written = entry
                .file
                .write_at(buffer, window)
                .await
                .map_err(|e| StorageError::io("zero torn tail", &entry.path, e))?;
            if written as u64 != length {
                return Err(StorageError::ShortWrite {
                    operation: "zero torn tail",
                    path: entry.path.clone(),
                    written_bytes: written as u64,
                    asked_bytes: length,
                });
            }
            wrote = true;
        }
        window += length;
    }
    if wrote {
        entry
            .file
            .fdatasync()
            .await
            .map_err(|e| StorageError::io("fdatasync torn tail", &entry.path, e))?;
    }
    Ok(dirty_bytes)
}

fn corrupt(segment: SegmentId, offset: u64, reason: CorruptReason) -> StorageError {
    StorageError::Corrupt {
        segment,
        offset,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::encode_segment_header;

    const SEGMENT_SIZE_BYTES: u64 = 1 << 20;

    fn header(segment: u32, first_lsn: u64) -> SegmentHeader {
        SegmentHeader {
            segment: SegmentId(segment),
            first_lsn: Lsn(first_lsn),
            segment_size_bytes: SEGMENT_SIZE_BYTES,
        }
    }

    fn scanned_up_to(segment: u32, last_lsn: u64) -> LogScan {
        let mut scan = LogScan::new();
        scan.last_segment = Some(SegmentId(segment));
        scan.last_lsn = Lsn(last_lsn);
        scan
    }

    #[test]
    fn a_header_naming_another_segment_is_bad_and_a_zero_block_is_a_spare() {
        let mut block = vec![0; BLOCK_SIZE_BYTES as usize];
        assert!(matches!(
            classify_header(SegmentId(3), &block, SEGMENT_SIZE_BYTES),
            HeaderState::Zero
        ));
        encode_segment_header(&header(3, 10), &mut block);
        assert!(matches!(
            classify_header(SegmentId(3), &block, SEGMENT_SIZE_BYTES),
            HeaderState::Valid(h) if h == header(3, 10)
        ));
        assert!(matches!(
            classify_header(SegmentId(4), &block, SEGMENT_SIZE_BYTES),
            HeaderState::Bad(CorruptReason::HeaderFields)
        ));
        assert!(matches!(
            classify_header(SegmentId(3), &block, DATA_OFFSET_BYTES - 1),
            HeaderState::Bad(CorruptReason::HeaderFields)
        ));
    }

    #[test]
    fn lsns_are_contiguous_across_adjacent_segments_and_increase_across_a_gap() {
        assert!(LogScan::new().check_follows(&header(1, 1)).is_ok());
        assert!(LogScan::new().check_follows(&header(7, 500)).is_ok());
        assert!(LogScan::new().check_follows(&header(1, 0)).is_err());
        let scan = scanned_up_to(2, 100);
        assert!(scan.check_follows(&header(3, 101)).is_ok());
        assert!(scan.check_follows(&header(3, 102)).is_err());
        assert!(scan.check_follows(&header(5, 150)).is_ok());
        assert!(scan.check_follows(&header(5, 100)).is_err());
        assert_eq!(scan.next_segment(), SegmentId(3));
        assert_eq!(LogScan::new().next_segment(), SegmentId(1));
    }

    #[test]
    fn the_writer_continues_after_the_last_record_of_a_segment_of_the_configured_size() {
        let end = LogEnd {
            segment: SegmentId(2),
            offset: 3 * BLOCK_SIZE_BYTES + 24,
            tail: vec![7; 24],
            segment_size_bytes: SEGMENT_SIZE_BYTES,
        };
        let position = write_position(Some(end), SEGMENT_SIZE_BYTES);
        assert_eq!(position.segment, SegmentId(2));
        assert_eq!(position.offset, 3 * BLOCK_SIZE_BYTES + 24);
        assert_eq!(position.tail.segment, SegmentId(2));
        assert_eq!(position.tail.file_offset, 3 * BLOCK_SIZE_BYTES);
        assert_eq!(position.tail.bytes, vec![7; 24]);
    }

    #[test]
    fn a_segment_of_another_size_and_an_empty_log_make_the_first_append_roll() {
        let end = LogEnd {
            segment: SegmentId(2),
            offset: DATA_OFFSET_BYTES,
            tail: Vec::new(),
            segment_size_bytes: 2 * SEGMENT_SIZE_BYTES,
        };
        for (end, segment) in [(Some(end), SegmentId(2)), (None, SegmentId(0))] {
            let position = write_position(end, SEGMENT_SIZE_BYTES);
            assert_eq!(position.segment, segment);
            assert_eq!(position.offset, SEGMENT_SIZE_BYTES);
            assert_eq!(position.tail.segment, segment);
            assert_eq!(position.tail.file_offset, SEGMENT_SIZE_BYTES);
            assert!(position.tail.bytes.is_empty());
        }
    }
}
