//! Reading records back by location: from the write buffer when they are not on disk yet,
//! otherwise with aligned O_DIRECT reads, coalescing nearby records of a segment into one read.
//! Every record read is verified again (header, length, CRC) before its payload is returned.

use std::rc::Rc;

use bytes::Bytes;

use crate::aligned::{align_down, align_up};
use crate::error::{InvalidLocationReason, StorageError};
use crate::format::{
    decode_record, record_size_bytes, RecordScan, DATA_OFFSET_BYTES, RECORD_HEADER_SIZE_BYTES,
};
use crate::log::LogCore;
use crate::RecordLocation;

/// Records closer than this (end of one to start of the next) share a read.
pub const READ_COALESCE_GAP_BYTES: u64 = 64 << 10;
/// A coalesced read spans at most this many bytes (a single larger record still gets one read).
pub const READ_COALESCE_SPAN_BYTES_MAX: u64 = 1 << 20;

/// Reads the payloads of `locations`, in input order.
pub async fn read_many(
    core: &Rc<LogCore>,
    locations: &[RecordLocation],
) -> Result<Vec<Bytes>, StorageError> {
    let mut results: Vec<Option<Bytes>> = vec![None; locations.len()];
    let mut on_disk: Vec<usize> = Vec::new();
    for (index, location) in locations.iter().enumerate() {
        check_bounds(location, core.segment_size_bytes)?;
        match read_from_memory(core, location)? {
            Some(payload) => results[index] = Some(payload),
            None => on_disk.push(index),
        }
    }
    on_disk.sort_by_key(|&i| (locations[i].segment, locations[i].offset));
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
        read_group(core, locations, group, span_start, span_end, &mut results).await?;
        start = end;
    }
    core.stats.borrow_mut().records_read += locations.len() as u64;
    Ok(results
        .into_iter()
        .map(|r| r.expect("every location was read"))
        .collect())
}

/// One aligned read covering `[span_start, span_end)` of a segment, then each record sliced out.
async fn read_group(
    core: &Rc<LogCore>,
    locations: &[RecordLocation],
    group: &[usize],
    span_start: u64,
    span_end: u64,
    results: &mut [Option<Bytes>],
) -> Result<(), StorageError> {
    let segment = locations[group[0]].segment;
    let file = core
        .segments
        .borrow()
        .entries
        .get(&segment)
        .and_then(|e| e.file.clone());
    let Some(file) = file else {
        let l = locations[group[0]];
        return Err(StorageError::InvalidLocation {
            segment,
            offset: l.offset,
            length: l.length,
            reason: InvalidLocationReason::SegmentMissing,
        });
    };
    let read_start = align_down(span_start);
    let read_length = align_up(span_end) - read_start;
    let bytes = file
        .read_at_aligned(read_start, read_length as usize)
        .await
        .map_err(|source| {
            StorageError::io(
                "read record",
                core.dir.join(crate::segment_file_name(segment)),
                source,
            )
        })?;
    core.stats.borrow_mut().read_ios += 1;
    for &index in group {
        let location = locations[index];
        let from = (u64::from(location.offset) - read_start) as usize;
        let record = bytes.get(from..).unwrap_or(&[]);
        results[index] = Some(verify(record, &location, core.segment_size_bytes)?);
    }
    Ok(())
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
