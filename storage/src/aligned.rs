//! Block-aligned arithmetic and `Chunk`, a DMA buffer that mirrors a block-aligned range of one
//! segment file while records are appended to it.
//!
//! A chunk starts at a block boundary of its segment. Its first bytes may be a copy of bytes
//! already written (the partially filled tail block of the previous commit, or the segment
//! header block), so a commit can always write whole blocks: the tail block is rewritten by
//! the next commit with more records in it.
//!
//! ```text
//! file:   ... | block k (partly written) | block k+1 | ...
//! chunk:      [ copied tail bytes | new records ... | fill ... zero pad to block ]
//!             ^ file_offset                         ^ fill (bytes meaningful)
//! ```

use glommio::io::DmaBuffer;

use crate::format::BLOCK_SIZE_BYTES;
use crate::{Lsn, SegmentId};

/// Rounds `value` down to a multiple of `BLOCK_SIZE_BYTES`.
pub fn align_down(value: u64) -> u64 {
    value - value % BLOCK_SIZE_BYTES
}

/// Rounds `value` up to a multiple of `BLOCK_SIZE_BYTES`.
pub fn align_up(value: u64) -> u64 {
    value.next_multiple_of(BLOCK_SIZE_BYTES)
}

/// A DMA buffer holding appended, not yet written bytes of one segment.
pub struct Chunk {
    pub segment: SegmentId,
    /// Byte offset in the segment file of `buffer[0]`; a multiple of `BLOCK_SIZE_BYTES`.
    pub file_offset: u64,
    /// Meaningful bytes in `buffer` (copied prefix + records).
    pub fill: usize,
    /// Offset in `buffer` of the first record appended to this chunk (after the copied prefix).
    pub records_start: usize,
    /// LSNs of the first and last record appended to this chunk; `Lsn(0)` when none yet.
    pub first_lsn: Lsn,
    pub last_lsn: Lsn,
    pub buffer: DmaBuffer,
}

impl Chunk {
    /// A chunk of `capacity_bytes` (rounded up to whole blocks) for `segment` at `file_offset`,
    /// starting with a copy of `prefix` (the bytes of the file from `file_offset` on that must be
    /// kept).
    pub fn new(segment: SegmentId, file_offset: u64, prefix: &[u8], capacity_bytes: u64) -> Chunk {
        assert_eq!(
            file_offset % BLOCK_SIZE_BYTES,
            0,
            "chunks start on a block boundary"
        );
        assert!((prefix.len() as u64) < capacity_bytes);
        let capacity = align_up(capacity_bytes) as usize;
        let mut buffer = glommio::allocate_dma_buffer(capacity);
        buffer.as_bytes_mut()[..prefix.len()].copy_from_slice(prefix);
        Chunk {
            segment,
            file_offset,
            fill: prefix.len(),
            records_start: prefix.len(),
            first_lsn: Lsn(0),
            last_lsn: Lsn(0),
            buffer,
        }
    }

    /// Bytes still free in the buffer.
    pub fn free_bytes(&self) -> usize {
        self.buffer.len() - self.fill
    }

    /// File offset just past the meaningful bytes.
    pub fn end_offset(&self) -> u64 {
        self.file_offset + self.fill as u64
    }

    /// The bytes of the partially filled last block, which the next chunk must start with.
    pub fn tail_block(&self) -> &[u8] {
        let start = (self.fill as u64 - self.fill as u64 % BLOCK_SIZE_BYTES) as usize;
        &self.buffer.as_bytes()[start..self.fill]
    }

    /// File offset of the block that `tail_block` belongs to.
    pub fn tail_block_offset(&self) -> u64 {
        align_down(self.end_offset())
    }

    /// Zero-pads to a whole block and shrinks the buffer to exactly the bytes to write.
    /// Consumes the chunk's capacity: a sealed chunk accepts no more records.
    pub fn seal_for_write(&mut self) -> usize {
        let write_len = align_up(self.fill as u64) as usize;
        self.buffer.as_bytes_mut()[self.fill..write_len].fill(0);
        self.buffer.trim_to_size(write_len);
        write_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alignment_helpers() {
        assert_eq!(align_down(0), 0);
        assert_eq!(align_down(4095), 0);
        assert_eq!(align_down(4096), 4096);
        assert_eq!(align_up(1), 4096);
        assert_eq!(align_up(4096), 4096);
        assert_eq!(align_up(4097), 8192);
    }
}
