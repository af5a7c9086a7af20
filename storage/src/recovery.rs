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
use std::time::Instant;

use glommio::io::{DmaFile, ReadResult};

use crate::aligned::{align_down, align_up};
use crate::error::StorageError;
use crate::format::{
    decode_record, decode_segment_header, CorruptReason, DecodeError, RecordScan, SegmentHeader,
    BLOCK_SIZE_BYTES, DATA_OFFSET_BYTES, RECORD_HEADER_SIZE_BYTES,
};
use crate::segment::{
    list_segment_files, open_segment_file, short_write, SegmentEntry, SegmentTable,
};
use crate::writer::TailBlock;
use crate::{Lsn, RecordLocation, RecoveredRecord, RecoveryReport, SegmentId};

/// Size of each read while scanning (records larger than this get a read of their own).
pub const RECOVERY_READ_BYTES: u64 = 1 << 20;

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

/// Scans `dir` (see the module rules). Calls `on_record` for every valid record in LSN order.
pub async fn recover(
    dir: &Path,
    segment_size_bytes: u64,
    on_record: &mut dyn FnMut(RecoveredRecord<'_>),
) -> Result<Recovered, StorageError> {
    let started = Instant::now();
    let mut files = Vec::new();
    for (segment, path) in list_segment_files(dir)? {
        let file = open_segment_file(&path).await?;
        let size_bytes = file
            .file_size()
            .await
            .map_err(|e| StorageError::io("stat segment", &path, e))?;
        let header_bytes = read(&file, &path, 0, BLOCK_SIZE_BYTES).await?;
        let header = match decode_segment_header(&header_bytes) {
            Err(CorruptReason::HeaderMissing) => HeaderState::Zero,
            Err(reason) => HeaderState::Bad(reason),
            Ok(h) if h.segment != segment || !valid_size(h.segment_size_bytes, size_bytes) => {
                HeaderState::Bad(CorruptReason::HeaderFields)
            }
            Ok(h) => HeaderState::Valid(h),
        };
        files.push(SegmentFile {
            segment,
            path,
            file,
            size_bytes,
            header,
        });
    }
    let mut report = RecoveryReport {
        segments_scanned: 0,
        records: 0,
        torn_tail_bytes: 0,
        duration: Default::default(),
        last_lsn: Lsn(0),
    };
    let last_written = files
        .iter()
        .rposition(|f| !matches!(f.header, HeaderState::Zero));
    let mut segments = SegmentTable::default();
    let mut last_lsn = Lsn(0);
    let mut previous: Option<SegmentId> = None;
    let mut end: Option<(SegmentId, u64, Vec<u8>, u64)> = None;
    let mut zeroed_tail: Option<usize> = None;
    for (index, entry) in files.iter().enumerate() {
        let Some(last_written) = last_written else {
            break;
        };
        if index > last_written {
            break;
        }
        let is_last = index == last_written;
        let header = match &entry.header {
            HeaderState::Valid(header) => *header,
            HeaderState::Zero => {
                return Err(corrupt(entry.segment, 0, CorruptReason::HeaderMissing));
            }
            HeaderState::Bad(reason) => {
                if !is_last || first_record_is_valid(entry, last_lsn).await? {
                    return Err(corrupt(entry.segment, 0, *reason));
                }
                tracing::warn!(segment = entry.segment.0, %reason, "torn segment header at the tail; zeroing the segment");
                report.torn_tail_bytes += zero_from(entry, segment_size_bytes, 0).await?;
                zeroed_tail = Some(index);
                break;
            }
        };
        check_segment_lsn(entry.segment, previous, last_lsn, header.first_lsn)?;
        report.segments_scanned += 1;
        let mut scanner = Scanner {
            file: &entry.file,
            path: &entry.path,
            window_offset: 0,
            window: None,
        };
        let scan_end = header.segment_size_bytes;
        let mut offset = DATA_OFFSET_BYTES;
        let mut expected = header.first_lsn;
        let cut: Option<CorruptReason> = loop {
            let space = scan_end - offset;
            if space < RECORD_HEADER_SIZE_BYTES {
                break None;
            }
            let bytes = scanner
                .at(offset, RECORD_HEADER_SIZE_BYTES, scan_end)
                .await?;
            let decoded = match decode_record(bytes, space, Some(expected)) {
                Err(DecodeError::Incomplete { need_bytes }) => {
                    let bytes = scanner.at(offset, need_bytes, scan_end).await?;
                    match decode_record(bytes, space, Some(expected)) {
                        Err(DecodeError::Incomplete { .. }) => {
                            Err(DecodeError::Corrupt(CorruptReason::LengthOutOfBounds {
                                payload_len: 0,
                            }))
                        }
                        other => other,
                    }
                }
                other => other,
            };
            match decoded {
                Ok(RecordScan::End) => break None,
                Ok(RecordScan::Record {
                    kind,
                    lsn,
                    payload_len,
                    size_bytes,
                }) => {
                    let bytes = scanner.at(offset, size_bytes, scan_end).await?;
                    let payload =
                        &bytes[RECORD_HEADER_SIZE_BYTES as usize..][..payload_len as usize];
                    let location = RecordLocation {
                        segment: entry.segment,
                        offset: u32::try_from(offset).expect("segment sizes fit in u32"),
                        length: payload_len,
                    };
                    on_record(RecoveredRecord {
                        lsn,
                        kind,
                        location,
                        payload,
                    });
                    report.records += 1;
                    last_lsn = lsn;
                    offset += size_bytes;
                    expected = Lsn(lsn.0 + 1);
                }
                Err(DecodeError::Corrupt(reason)) => break Some(reason),
                Err(DecodeError::Incomplete { .. }) => unreachable!("handled above"),
            }
        };
        if let Some(reason) = cut {
            if !is_last {
                return Err(corrupt(entry.segment, offset, reason));
            }
            tracing::warn!(segment = entry.segment.0, offset, %reason, "torn tail; cutting the log here");
        }
        let tail_start = align_down(offset);
        let tail = scanner
            .at(tail_start, offset - tail_start, scan_end)
            .await?[..(offset - tail_start) as usize]
            .to_vec();
        if is_last {
            report.torn_tail_bytes += zero_from(entry, header.segment_size_bytes, offset).await?;
        }
        let segment_last_lsn = if expected == header.first_lsn {
            Lsn(0)
        } else {
            Lsn(expected.0 - 1)
        };
        segments.insert(
            entry.segment,
            SegmentEntry {
                path: entry.path.clone(),
                file: Some(entry.file.clone()),
                live_count: 0,
                last_lsn: segment_last_lsn,
            },
        );
        previous = Some(entry.segment);
        end = Some((entry.segment, offset, tail, header.segment_size_bytes));
    }
    let spare = keep_spare(
        &files,
        previous,
        zeroed_tail,
        last_written,
        segment_size_bytes,
    )?;
    report.last_lsn = last_lsn;
    report.duration = started.elapsed();
    let (active_segment, active_offset, tail) = match end {
        // A last segment of another size than configured is closed: the first append rolls.
        Some((segment, _, _, size)) if size != segment_size_bytes => (
            segment,
            segment_size_bytes,
            TailBlock {
                segment,
                file_offset: segment_size_bytes,
                bytes: Vec::new(),
            },
        ),
        Some((segment, offset, bytes, _)) => (
            segment,
            offset,
            TailBlock {
                segment,
                file_offset: align_down(offset),
                bytes,
            },
        ),
        None => (
            SegmentId(0),
            segment_size_bytes,
            TailBlock {
                segment: SegmentId(0),
                file_offset: segment_size_bytes,
                bytes: Vec::new(),
            },
        ),
    };
    Ok(Recovered {
        report,
        segments,
        next_lsn: Lsn(last_lsn.0 + 1),
        active_segment,
        active_offset,
        tail,
        spare,
    })
}

/// The first segment file after the log's last segment, if it can serve as the next segment;
/// other spare files are removed (blocking `std::fs`, start-up only).
fn keep_spare(
    files: &[SegmentFile],
    last_segment: Option<SegmentId>,
    zeroed_tail: Option<usize>,
    last_written: Option<usize>,
    segment_size_bytes: u64,
) -> Result<Option<(SegmentId, Rc<DmaFile>)>, StorageError> {
    let next = SegmentId(last_segment.map_or(1, |s| s.0 + 1));
    let first_spare = zeroed_tail.or(last_written.map(|i| i + 1)).unwrap_or(0);
    let mut kept = None;
    for entry in files.iter().skip(first_spare) {
        let zeroed = Some(entry.segment) != last_segment;
        if zeroed
            && kept.is_none()
            && entry.segment == next
            && entry.size_bytes == segment_size_bytes
        {
            kept = Some((entry.segment, entry.file.clone()));
        } else if zeroed {
            tracing::info!(file = %entry.path.display(), "removing unused preallocated segment");
            std::fs::remove_file(&entry.path)
                .map_err(|source| StorageError::io("remove spare segment", &entry.path, source))?;
        }
    }
    Ok(kept)
}

fn valid_size(header_size_bytes: u64, file_size_bytes: u64) -> bool {
    header_size_bytes.is_multiple_of(BLOCK_SIZE_BYTES)
        && header_size_bytes > DATA_OFFSET_BYTES
        && header_size_bytes <= u64::from(u32::MAX)
        && file_size_bytes >= DATA_OFFSET_BYTES
}

fn check_segment_lsn(
    segment: SegmentId,
    previous: Option<SegmentId>,
    last_lsn: Lsn,
    first_lsn: Lsn,
) -> Result<(), StorageError> {
    let adjacent = previous.is_some_and(|p| p.0 + 1 == segment.0);
    let ok = if adjacent {
        first_lsn.0 == last_lsn.0 + 1
    } else {
        first_lsn > last_lsn && first_lsn.0 > 0
    };
    if ok {
        Ok(())
    } else {
        Err(corrupt(
            segment,
            0,
            CorruptReason::SegmentLsnGap {
                expected: last_lsn.0 + 1,
                found: first_lsn.0,
            },
        ))
    }
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
    while window < size_bytes {
        let length = RECOVERY_READ_BYTES.min(size_bytes - window);
        let bytes = read(&entry.file, &entry.path, window, length).await?;
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
                return Err(short_write(
                    "zero torn tail",
                    &entry.path,
                    written,
                    length as usize,
                ));
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

async fn read(
    file: &DmaFile,
    path: &Path,
    offset: u64,
    length: u64,
) -> Result<ReadResult, StorageError> {
    assert_eq!(offset % BLOCK_SIZE_BYTES, 0);
    file.read_at_aligned(offset, align_up(length) as usize)
        .await
        .map_err(|source| StorageError::io("read segment", path, source))
}

fn corrupt(segment: SegmentId, offset: u64, reason: CorruptReason) -> StorageError {
    StorageError::Corrupt {
        segment,
        offset,
        reason,
    }
}

/// Reads a segment through a sliding aligned window.
struct Scanner<'a> {
    file: &'a DmaFile,
    path: &'a Path,
    window_offset: u64,
    window: Option<ReadResult>,
}

impl Scanner<'_> {
    /// The bytes from `offset` to the end of the window, at least `length` of them unless the
    /// file ends first, never past `limit`.
    async fn at(&mut self, offset: u64, length: u64, limit: u64) -> Result<&[u8], StorageError> {
        let covered = self.window.as_ref().is_some_and(|w| {
            offset >= self.window_offset && offset + length <= self.window_offset + w.len() as u64
        });
        if !covered {
            let start = align_down(offset);
            let want = (offset - start + length)
                .max(RECOVERY_READ_BYTES)
                .min(limit - start);
            self.window = Some(read(self.file, self.path, start, want).await?);
            self.window_offset = start;
        }
        let window = self.window.as_ref().expect("window was just read");
        let from = ((offset - self.window_offset) as usize).min(window.len());
        Ok(&window[from..])
    }
}
