//! The write side of the log in memory: LSN assignment, record placement, segment roll, and the
//! bounded buffer of appended records that the committer (`committer.rs`) has not taken yet.
//!
//! `append` never awaits and never does I/O. It encodes the record straight into the DMA buffer
//! of the open chunk (`aligned.rs`). The committer takes every chunk at once (`take_round`), which
//! is what makes group commit: everything appended while the previous fdatasync ran is written
//! and synced by the next one.
//!
//! Memory bound: chunks not yet taken hold at most `WRITE_BUFFER_BYTES_MAX` bytes of records
//! (`StorageError::Backpressure` beyond that); the round being written holds at most as much
//! again, plus block padding. Rounds whose fdatasync is in flight hold no buffer, only an entry
//! in `syncing` (at most `COMMITS_IN_FLIGHT_MAX`). A new chunk is `WRITE_CHUNK_BYTES` (or one
//! record, if larger).

use std::collections::VecDeque;
use std::sync::Arc;

use crate::aligned::{align_down, Chunk};
use crate::committer::COMMITS_IN_FLIGHT_MAX;
use crate::error::StorageError;
use crate::format::{
    decode_record, encode_record, encode_segment_header, payload_len_max, record_size_bytes,
    RecordScan, SegmentHeader, BLOCK_SIZE_BYTES, DATA_OFFSET_BYTES,
};
use crate::segment::{segment_file_name, SegmentEntry, SegmentTable};
use crate::{Lsn, RecordLocation, SegmentId};

/// Size of the DMA buffer a new chunk gets (a record larger than this gets a chunk of its own).
pub const WRITE_CHUNK_BYTES: u64 = 1 << 20;
/// Bound on appended bytes not yet taken by the committer.
pub const WRITE_BUFFER_BYTES_MAX: u64 = 16 << 20;

/// The partially written block at the write position, kept when no chunk is open so that the
/// next chunk can rewrite that block whole.
pub struct TailBlock {
    pub segment: SegmentId,
    pub file_offset: u64,
    pub bytes: Vec<u8>,
}

/// A chunk handed to the committer, kept readable until it is on disk.
pub struct InFlight {
    pub segment: SegmentId,
    pub file_offset: u64,
    pub bytes: std::rc::Rc<glommio::io::DmaBuffer>,
}

/// A round whose writes completed and whose fdatasyncs are in flight, or done while an earlier
/// round's are not (durability is reported in round order).
pub struct SyncingRound {
    /// Highest LSN the round wrote; identifies the round.
    pub last_lsn: Lsn,
    /// Every fdatasync of the round completed successfully.
    pub synced: bool,
}

/// Everything the committer takes in one round.
pub struct Round {
    pub chunks: Vec<Chunk>,
    pub last_lsn: Lsn,
}

/// Write-side state of one log.
pub struct WriterState {
    pub segment_size_bytes: u64,
    /// LSN the next append gets.
    pub next_lsn: Lsn,
    /// Segment being appended to. `SegmentId(0)` means none yet: the first append rolls to 1.
    pub active_segment: SegmentId,
    /// Offset in the active segment where the next record goes (8-byte aligned).
    pub active_offset: u64,
    /// Appended chunks not yet taken by the committer, in file order.
    pub chunks: VecDeque<Chunk>,
    /// Block at the write position when `chunks` is empty.
    pub tail: TailBlock,
    /// Record bytes in `chunks`.
    pub buffered_bytes: u64,
    /// Chunks of the round being written by the committer, until its writes complete.
    pub in_flight: Vec<InFlight>,
    /// Rounds written and not yet reported durable, oldest first; at most
    /// `COMMITS_IN_FLIGHT_MAX`.
    pub syncing: VecDeque<SyncingRound>,
    /// Highest LSN covered by a completed fdatasync.
    pub durable_lsn: Lsn,
    /// Set once, by the first write or fdatasync failure.
    pub failed: Option<Arc<StorageError>>,
    pub closing: bool,
}

impl WriterState {
    /// Places and encodes one record. `segments` learns about rolled-to segments and last LSNs.
    pub fn append(
        &mut self,
        segments: &mut SegmentTable,
        dir: &std::path::Path,
        kind: u8,
        parts: &[&[u8]],
    ) -> Result<(Lsn, RecordLocation), StorageError> {
        if let Some(cause) = &self.failed {
            return Err(StorageError::Failed {
                cause: cause.clone(),
            });
        }
        if self.closing {
            return Err(StorageError::Closed);
        }
        let payload_len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let payload_len_max = payload_len_max(self.segment_size_bytes);
        if payload_len > payload_len_max {
            return Err(StorageError::RecordTooLarge {
                payload_len,
                payload_len_max,
            });
        }
        let size_bytes = record_size_bytes(payload_len);
        if self.buffered_bytes + size_bytes > WRITE_BUFFER_BYTES_MAX {
            return Err(StorageError::Backpressure {
                buffered_bytes: self.buffered_bytes,
                buffered_bytes_max: WRITE_BUFFER_BYTES_MAX,
            });
        }
        if self.active_offset + size_bytes > self.segment_size_bytes {
            self.roll(segments, dir, size_bytes);
        }
        self.ensure_chunk(size_bytes);
        let lsn = self.next_lsn;
        let offset = self.active_offset;
        let chunk = self
            .chunks
            .back_mut()
            .expect("ensure_chunk leaves an open chunk");
        let start = (offset - chunk.file_offset) as usize;
        let out = &mut chunk.buffer.as_bytes_mut()[start..start + size_bytes as usize];
        encode_record(out, kind, lsn, parts);
        chunk.fill = start + size_bytes as usize;
        if chunk.first_lsn == Lsn(0) {
            chunk.first_lsn = lsn;
        }
        chunk.last_lsn = lsn;
        self.active_offset += size_bytes;
        self.next_lsn = Lsn(lsn.0 + 1);
        self.buffered_bytes += size_bytes;
        let entry = segments
            .entries
            .get_mut(&self.active_segment)
            .expect("the active segment is in the table");
        entry.last_lsn = lsn;
        let location = RecordLocation {
            segment: self.active_segment,
            offset: u32::try_from(offset)
                .expect("segment_size_bytes fits in u32 (checked at open)"),
            length: u32::try_from(payload_len).expect("payload_len_max fits in u32"),
        };
        Ok((lsn, location))
    }

    /// Starts the next segment: its header block becomes the prefix of a new chunk, so it is
    /// written with the segment's first commit.
    fn roll(&mut self, segments: &mut SegmentTable, dir: &std::path::Path, size_bytes: u64) {
        let segment = SegmentId(
            self.active_segment
                .0
                .checked_add(1)
                .expect("segment ids never run out"),
        );
        let mut header_block = vec![0u8; BLOCK_SIZE_BYTES as usize];
        let header = SegmentHeader {
            segment,
            first_lsn: self.next_lsn,
            segment_size_bytes: self.segment_size_bytes,
        };
        encode_segment_header(&header, &mut header_block);
        let capacity = WRITE_CHUNK_BYTES
            .max(DATA_OFFSET_BYTES + size_bytes)
            .min(self.segment_size_bytes);
        self.chunks
            .push_back(Chunk::new(segment, 0, &header_block, capacity));
        self.active_segment = segment;
        self.active_offset = DATA_OFFSET_BYTES;
        segments.insert(
            segment,
            SegmentEntry {
                path: dir.join(segment_file_name(segment)),
                file: None,
                live_count: 0,
                last_lsn: Lsn(0),
            },
        );
    }

    /// Makes sure the last chunk continues at the write position with `size_bytes` free.
    fn ensure_chunk(&mut self, size_bytes: u64) {
        if let Some(chunk) = self.chunks.back() {
            let continues =
                chunk.segment == self.active_segment && chunk.end_offset() == self.active_offset;
            if continues && chunk.free_bytes() as u64 >= size_bytes {
                return;
            }
        }
        let (file_offset, prefix) = match self.chunks.back() {
            Some(chunk) if chunk.segment == self.active_segment => {
                assert_eq!(
                    chunk.end_offset(),
                    self.active_offset,
                    "chunks are contiguous"
                );
                (chunk.tail_block_offset(), chunk.tail_block().to_vec())
            }
            _ => {
                assert_eq!(
                    self.tail.segment, self.active_segment,
                    "tail is at the write position"
                );
                let end = self.tail.file_offset + self.tail.bytes.len() as u64;
                assert_eq!(end, self.active_offset, "tail is at the write position");
                (self.tail.file_offset, std::mem::take(&mut self.tail.bytes))
            }
        };
        assert_eq!(file_offset, align_down(self.active_offset));
        let needed = prefix.len() as u64 + size_bytes;
        let room = self.segment_size_bytes - file_offset;
        let capacity = WRITE_CHUNK_BYTES.max(needed).min(room);
        assert!(
            capacity >= needed,
            "the caller rolled when the record did not fit"
        );
        self.chunks.push_back(Chunk::new(
            self.active_segment,
            file_offset,
            &prefix,
            capacity,
        ));
    }

    /// Takes every buffered chunk for the committer; `None` when there is nothing to write.
    pub fn take_round(&mut self) -> Option<Round> {
        let last = self.chunks.back()?;
        let last_lsn = last.last_lsn;
        assert_ne!(
            last_lsn,
            Lsn(0),
            "a chunk is only created by an append that fills it"
        );
        self.tail = TailBlock {
            segment: last.segment,
            file_offset: last.tail_block_offset(),
            bytes: last.tail_block().to_vec(),
        };
        self.buffered_bytes = 0;
        Some(Round {
            chunks: self.chunks.drain(..).collect(),
            last_lsn,
        })
    }

    /// Checks the writer's invariants; tests call it after mutations.
    pub fn check_invariants(&self) {
        assert!(
            self.durable_lsn < self.next_lsn,
            "durable lsn never passes appended lsn"
        );
        assert!(self.syncing.len() <= COMMITS_IN_FLIGHT_MAX);
        let mut reported = self.durable_lsn;
        for round in &self.syncing {
            assert!(
                round.last_lsn > reported,
                "syncing rounds follow durable_lsn in order"
            );
            reported = round.last_lsn;
        }
        assert!(
            reported < self.next_lsn,
            "syncing rounds hold appended lsns"
        );
        assert_eq!(self.active_offset % 8, 0, "records are 8-byte aligned");
        assert!(self.active_offset <= self.segment_size_bytes);
        if self.active_segment != SegmentId(0) {
            assert!(self.active_offset >= DATA_OFFSET_BYTES);
        }
        let mut buffered = 0;
        let mut previous: Option<&Chunk> = None;
        for chunk in &self.chunks {
            assert_eq!(chunk.file_offset % BLOCK_SIZE_BYTES, 0);
            assert!(chunk.fill <= chunk.buffer.len());
            assert!(chunk.first_lsn <= chunk.last_lsn);
            assert!(chunk.last_lsn < self.next_lsn);
            if let Some(previous) = previous {
                assert!(
                    chunk.first_lsn == Lsn(previous.last_lsn.0 + 1),
                    "lsns are contiguous"
                );
                if chunk.segment == previous.segment {
                    assert_eq!(chunk.file_offset, previous.tail_block_offset());
                }
            }
            verify_chunk_records(chunk, self.segment_size_bytes);
            buffered += (chunk.fill - chunk.records_start) as u64;
            previous = Some(chunk);
        }
        assert_eq!(
            buffered, self.buffered_bytes,
            "buffered_bytes counts the chunks"
        );
        assert!(self.buffered_bytes <= WRITE_BUFFER_BYTES_MAX);
    }
}

/// Re-decodes every record of a chunk: checksum, length, alignment and LSN sequence. Called on
/// every chunk before it is submitted for writing; a failure is a bug in this crate.
pub fn verify_chunk_records(chunk: &Chunk, segment_size_bytes: u64) {
    let bytes = &chunk.buffer.as_bytes()[..chunk.fill];
    let mut position = chunk.records_start;
    let mut expected = chunk.first_lsn;
    while position < chunk.fill {
        assert_eq!(position % 8, 0, "records are 8-byte aligned");
        let space = segment_size_bytes - (chunk.file_offset + position as u64);
        match decode_record(&bytes[position..], space, Some(expected)) {
            Ok(RecordScan::Record { size_bytes, .. }) => {
                position += size_bytes as usize;
                expected = Lsn(expected.0 + 1);
            }
            other => panic!("record at offset {position} of a chunk does not verify: {other:?}"),
        }
    }
    assert_eq!(
        position, chunk.fill,
        "records end exactly at the chunk fill"
    );
    if chunk.last_lsn != Lsn(0) {
        assert_eq!(
            expected.0,
            chunk.last_lsn.0 + 1,
            "chunk lsn range matches its records"
        );
    }
}
