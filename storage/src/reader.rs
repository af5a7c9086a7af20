//! Reading records back by location: from the write buffer when they are not on disk yet,
//! otherwise with aligned O_DIRECT reads, coalescing nearby records of a segment into one read.
//! Every record read is verified again (header, length, CRC) before its payload is returned.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::aligned::{align_down, align_up};
use crate::error::{InvalidLocationReason, StorageError};
use crate::format::{
    decode_record, record_size_bytes, RecordScan, DATA_OFFSET_BYTES, RECORD_HEADER_SIZE_BYTES,
};
use crate::log::LogCore;
use crate::{RecordLocation, SegmentId};

/// Records closer than this (end of one to start of the next) share a read.
pub const READ_COALESCE_GAP_BYTES: u64 = 64 << 10;
/// A coalesced read spans at most this many bytes (a single larger record still gets one read).
pub const READ_COALESCE_SPAN_BYTES_MAX: u64 = 1 << 20;

/// Where records are read from: a live log (its files, and its write buffers for records not
/// on disk yet) or a `SegmentReader` (the files alone).
pub(crate) trait RecordSource {
    fn dir(&self) -> &Path;
    fn segment_size_bytes(&self) -> u64;
    fn file(&self, segment: SegmentId) -> Option<Rc<DmaFile>>;
    /// The payload if the record is not on disk yet.
    fn in_memory(&self, location: &RecordLocation) -> Result<Option<Bytes>, StorageError>;
    fn count_reads(&self, read_ios: u64, records: u64);
}

impl RecordSource for LogCore {
    fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment_size_bytes(&self) -> u64 {
        self.segment_size_bytes
    }

    fn file(&self, segment: SegmentId) -> Option<Rc<DmaFile>> {
        self.segments
            .borrow()
            .entries
            .get(&segment)
            .and_then(|e| e.file.clone())
    }

    fn in_memory(&self, location: &RecordLocation) -> Result<Option<Bytes>, StorageError> {
        read_from_memory(self, location)
    }

    fn count_reads(&self, read_ios: u64, records: u64) {
        let mut stats = self.stats.borrow_mut();
        stats.read_ios += read_ios;
        stats.records_read += records;
    }
}

/// Reads the payloads of `locations`, in input order; fails with the first record (in input
/// order) that cannot be read.
pub async fn read_many(
    source: &impl RecordSource,
    locations: &[RecordLocation],
) -> Result<Vec<Bytes>, StorageError> {
    read_each(source, locations).await.into_iter().collect()
}

/// Reads the payloads of `locations`, in input order, each with its own result: a record that
/// fails its check (or whose read fails) does not keep the others from being returned.
pub async fn read_each(
    source: &impl RecordSource,
    locations: &[RecordLocation],
) -> Vec<Result<Bytes, StorageError>> {
    let mut results: Vec<Option<Result<Bytes, StorageError>>> = std::iter::repeat_with(|| None)
        .take(locations.len())
        .collect();
    let mut on_disk: Vec<usize> = Vec::new();
    for (index, location) in locations.iter().enumerate() {
        let found = check_bounds(location, source.segment_size_bytes())
            .and_then(|()| source.in_memory(location));
        match found {
            Ok(Some(payload)) => results[index] = Some(Ok(payload)),
            Ok(None) => on_disk.push(index),
            Err(error) => results[index] = Some(Err(error)),
        }
    }
    on_disk.sort_by_key(|&i| (locations[i].segment, locations[i].offset));
    let mut read_ios = 0;
    let mut start = 0;
    while start < on_disk.len() {
        let first = locations[on_disk[start]];
        let span_start = u64::from(first.offset);
        let mut span_end = record_end(&first);
        let mut end = start + 1;
        while let Some(&next_index) = on_disk.get(end) {
            let next = locations[next_index];
            let next_end = record_end(&next);
            let near = u64::from(next.offset) <= span_end + READ_COALESCE_GAP_BYTES;
            if next.segment != first.segment
                || !near
                || next_end.max(span_end) - span_start > READ_COALESCE_SPAN_BYTES_MAX
            {
                break;
            }
            span_end = span_end.max(next_end);
            end += 1;
        }
        let group = &on_disk[start..end];
        read_ios += 1;
        read_group(source, locations, group, span_start, span_end, &mut results).await;
        start = end;
    }
    source.count_reads(read_ios, locations.len() as u64);
    results
        .into_iter()
        .map(|r| r.expect("every location was read"))
        .collect()
}

/// One aligned read covering `[span_start, span_end)` of a segment, then each record sliced
/// out and checked. A failed read fails every record of the group.
async fn read_group(
    source: &impl RecordSource,
    locations: &[RecordLocation],
    group: &[usize],
    span_start: u64,
    span_end: u64,
    results: &mut [Option<Result<Bytes, StorageError>>],
) {
    let segment = locations[group[0]].segment;
    let Some(file) = source.file(segment) else {
        for &index in group {
            results[index] = Some(Err(invalid(
                &locations[index],
                InvalidLocationReason::SegmentMissing,
            )));
        }
        return;
    };
    let read_start = align_down(span_start);
    let read_length = align_up(span_end) - read_start;
    let bytes = match file.read_at_aligned(read_start, read_length as usize).await {
        Ok(bytes) => bytes,
        Err(error) => {
            let error = std::io::Error::from(error);
            let path = source.dir().join(crate::segment_file_name(segment));
            for &index in group {
                results[index] = Some(Err(StorageError::io(
                    "read record",
                    path.clone(),
                    copy_io_error(&error),
                )));
            }
            return;
        }
    };
    for &index in group {
        let location = locations[index];
        let from = (u64::from(location.offset) - read_start) as usize;
        let record = bytes.get(from..).unwrap_or(&[]);
        results[index] = Some(verify(record, &location, source.segment_size_bytes()));
    }
}

/// The same error for another record of a failed read (`io::Error` is not `Clone`).
fn copy_io_error(error: &std::io::Error) -> std::io::Error {
    match error.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(error.kind(), error.to_string()),
    }
}

/// The payload if the record is still in the write buffer or being written.
fn read_from_memory(
    core: &LogCore,
    location: &RecordLocation,
) -> Result<Option<Bytes>, StorageError> {
    let state = core.state.borrow();
    let start = u64::from(location.offset);
    let end = record_end(location);
    let buffers = state
        .chunks
        .iter()
        .map(|c| (c.segment, c.file_offset, &c.buffer.as_bytes()[..c.fill]))
        .chain(
            state
                .in_flight
                .iter()
                .map(|w| (w.segment, w.file_offset, w.bytes.as_bytes())),
        );
    for (segment, file_offset, bytes) in buffers {
        if segment == location.segment
            && file_offset <= start
            && end <= file_offset + bytes.len() as u64
        {
            let from = (start - file_offset) as usize;
            return verify(&bytes[from..], location, core.segment_size_bytes).map(Some);
        }
    }
    Ok(None)
}

/// Verifies the record at the start of `bytes` against its location; returns a copy of its payload.
fn verify(
    bytes: &[u8],
    location: &RecordLocation,
    segment_size_bytes: u64,
) -> Result<Bytes, StorageError> {
    let space = segment_size_bytes - u64::from(location.offset);
    match decode_record(bytes, space, None) {
        Ok(RecordScan::Record { payload_len, .. }) if payload_len == location.length => {
            let payload = &bytes[RECORD_HEADER_SIZE_BYTES as usize..][..payload_len as usize];
            Ok(Bytes::copy_from_slice(payload))
        }
        Ok(RecordScan::Record { .. }) => Err(StorageError::Corrupt {
            segment: location.segment,
            offset: u64::from(location.offset),
            reason: crate::format::CorruptReason::LocationMismatch,
        }),
        Ok(RecordScan::End) => Err(invalid(location, InvalidLocationReason::NoRecord)),
        Err(crate::format::DecodeError::Incomplete { .. }) => {
            Err(invalid(location, InvalidLocationReason::PastFileEnd))
        }
        Err(crate::format::DecodeError::Corrupt(reason)) => Err(StorageError::Corrupt {
            segment: location.segment,
            offset: u64::from(location.offset),
            reason,
        }),
    }
}

fn check_bounds(location: &RecordLocation, segment_size_bytes: u64) -> Result<(), StorageError> {
    let offset = u64::from(location.offset);
    if offset % 8 != 0 || offset < DATA_OFFSET_BYTES {
        return Err(invalid(location, InvalidLocationReason::NotRecordBoundary));
    }
    if record_end(location) > segment_size_bytes {
        return Err(invalid(location, InvalidLocationReason::PastSegmentEnd));
    }
    Ok(())
}

fn record_end(location: &RecordLocation) -> u64 {
    u64::from(location.offset) + record_size_bytes(u64::from(location.length))
}

fn invalid(location: &RecordLocation, reason: InvalidLocationReason) -> StorageError {
    StorageError::InvalidLocation {
        segment: location.segment,
        offset: location.offset,
        length: location.length,
        reason,
    }
}
