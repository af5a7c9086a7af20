//! `Scanner`: reads one segment front to back for recovery, through large aligned O_DIRECT
//! reads with `RECOVERY_READS_AHEAD` more reads in flight beyond the one being decoded, so
//! the disk streams while the CPU checks records.
//!
//! ```text
//! segment: | previous window | window (decoded now) | ahead 1 (in flight) | ahead 2 (in flight) |
//!                       [ record ]  <- straddles two windows: its bytes are copied together
//! ```
//!
//! A read ahead is queued into the ring the moment it is made (its future is polled once), so
//! it goes to the kernel at the executor's next I/O cycle, at the latest when the scan waits
//! for the window it needs next. Windows are adjacent; the few records that straddle two are
//! copied into one buffer (`joined`); a record larger than a window gets a read of its own.

use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use glommio::io::{DmaFile, ReadResult};

use crate::aligned::{align_down, align_up};
use crate::error::StorageError;
use crate::format::BLOCK_SIZE_BYTES;

/// Size of each read while scanning (records larger than this get a read of their own).
pub const RECOVERY_READ_BYTES: u64 = 1 << 20;
/// Reads kept in flight ahead of the window being decoded.
pub const RECOVERY_READS_AHEAD: usize = 2;

type ReadFuture<'a> = Pin<Box<dyn Future<Output = Result<ReadResult, StorageError>> + 'a>>;

/// A read ahead: queued (maybe finished already), not yet waited for.
struct Ahead<'a> {
    offset: u64,
    length: u64,
    read: ReadState<'a>,
}

enum ReadState<'a> {
    InFlight(ReadFuture<'a>),
    Done(Result<ReadResult, StorageError>),
}

/// Bytes read from `offset` on.
struct Window {
    offset: u64,
    bytes: ReadResult,
}

impl Window {
    fn end(&self) -> u64 {
        self.offset + self.bytes.len() as u64
    }

    fn covers(&self, from: u64, to: u64) -> bool {
        from >= self.offset && to <= self.end()
    }
}

/// Reads a segment through adjacent aligned windows, with reads in flight ahead.
pub struct Scanner<'a> {
    file: &'a DmaFile,
    path: &'a Path,
    /// Reads never go past this offset: the segment size its header states.
    pub limit: u64,
    window: Option<Window>,
    /// The window before `window`, kept for a record that straddles the two.
    previous: Option<Window>,
    /// A straddling record's bytes, from the offset it starts at.
    joined: Option<(u64, Vec<u8>)>,
    ahead: VecDeque<Ahead<'a>>,
    /// Where the next read ahead starts.
    ahead_offset: u64,
}

impl<'a> Scanner<'a> {
    pub fn new(file: &'a DmaFile, path: &'a Path, limit: u64) -> Scanner<'a> {
        Scanner {
            file,
            path,
            limit,
            window: None,
            previous: None,
            joined: None,
            ahead: VecDeque::new(),
            ahead_offset: 0,
        }
    }

    /// The bytes from `offset` on, at least `length` of them unless the file ends first, never
    /// past `limit`.
    pub async fn at(&mut self, offset: u64, length: u64) -> Result<&[u8], StorageError> {
        let end = (offset + length).min(self.limit);
        if !self.holds(offset, end) {
            if self.next_is_ahead(offset, end) {
                self.advance().await?;
            }
            if self.straddles(offset, end) {
                self.join(offset, end);
            } else if !self.holds(offset, end) {
                self.read_fresh(offset, end).await?;
            }
        }
        Ok(self.slice(offset))
    }

    /// The bytes of the block that `end_offset` falls in, up to `end_offset`: the writer
    /// rewrites that block whole with its first commit.
    pub async fn tail_block(&mut self, end_offset: u64) -> Result<Vec<u8>, StorageError> {
        let block_start = align_down(end_offset);
        let length = end_offset - block_start;
        let bytes = self.at(block_start, length).await?;
        Ok(bytes[..length as usize].to_vec())
    }

    fn holds(&self, offset: u64, end: u64) -> bool {
        self.window.as_ref().is_some_and(|w| w.covers(offset, end))
            || self
                .joined
                .as_ref()
                .is_some_and(|(at, bytes)| *at == offset && end - offset <= bytes.len() as u64)
    }

    /// Whether `[offset, end)` starts in the previous window and ends in the current one.
    fn straddles(&self, offset: u64, end: u64) -> bool {
        match (&self.previous, &self.window) {
            (Some(previous), Some(window)) => {
                previous.covers(offset, offset)
                    && offset < previous.end()
                    && previous.end() == window.offset
                    && end <= window.end()
            }
            _ => false,
        }
    }

    /// Whether the first read ahead, with what is left of the window, holds `[offset, end)`.
    fn next_is_ahead(&self, offset: u64, end: u64) -> bool {
        match (&self.window, self.ahead.front()) {
            (Some(window), Some(next)) => {
                next.offset == window.end()
                    && offset >= window.offset
                    && end <= next.offset + next.length
            }
            _ => false,
        }
    }

    fn join(&mut self, offset: u64, end: u64) {
        let (Some(previous), Some(window)) = (&self.previous, &self.window) else {
            return;
        };
        let mut bytes = Vec::with_capacity((end - offset) as usize);
        bytes.extend_from_slice(&previous.bytes[(offset - previous.offset) as usize..]);
        bytes.extend_from_slice(&window.bytes[..(end - window.offset) as usize]);
        self.joined = Some((offset, bytes));
    }

    fn slice(&self, offset: u64) -> &[u8] {
        if let Some((at, bytes)) = &self.joined {
            if *at == offset {
                return bytes;
            }
        }
        match &self.window {
            Some(window) if window.covers(offset, offset) => {
                &window.bytes[(offset - window.offset) as usize..]
            }
            _ => &[],
        }
    }

    /// Makes the first read ahead the window, and queues the next.
    async fn advance(&mut self) -> Result<(), StorageError> {
        let Some(next) = self.ahead.pop_front() else {
            return Ok(());
        };
        let bytes = match next.read {
            ReadState::InFlight(read) => read.await?,
            ReadState::Done(result) => result?,
        };
        let short = (bytes.len() as u64) < next.length;
        self.previous = self.window.replace(Window {
            offset: next.offset,
            bytes,
        });
        self.joined = None;
        if short {
            // The file ends here: whatever is ahead reads nothing.
            self.ahead.clear();
        } else {
            self.queue_ahead();
        }
        Ok(())
    }

    /// Reads `[align_down(offset), end)` (at least a whole window) now, dropping what was
    /// read or queued before.
    async fn read_fresh(&mut self, offset: u64, end: u64) -> Result<(), StorageError> {
        self.ahead.clear();
        self.previous = None;
        self.joined = None;
        let start = align_down(offset);
        let want = (end - start)
            .max(RECOVERY_READ_BYTES)
            .min(self.limit - start);
        let bytes = read(self.file, self.path, start, want).await?;
        let window = Window {
            offset: start,
            bytes,
        };
        let full = window.bytes.len() as u64 >= want;
        self.ahead_offset = window.end();
        self.window = Some(window);
        if full {
            self.queue_ahead();
        }
        Ok(())
    }

    /// Tops the reads ahead up to `RECOVERY_READS_AHEAD`, each queued into the ring at once.
    fn queue_ahead(&mut self) {
        while self.ahead.len() < RECOVERY_READS_AHEAD && self.ahead_offset < self.limit {
            let offset = self.ahead_offset;
            debug_assert_eq!(offset % BLOCK_SIZE_BYTES, 0);
            let length = RECOVERY_READ_BYTES.min(self.limit - offset);
            let mut future: ReadFuture<'a> = Box::pin(read(self.file, self.path, offset, length));
            // The first poll queues the read; the result, if it is already there, is kept.
            let mut context = Context::from_waker(Waker::noop());
            let read = match future.as_mut().poll(&mut context) {
                Poll::Ready(result) => ReadState::Done(result),
                Poll::Pending => ReadState::InFlight(future),
            };
            self.ahead.push_back(Ahead {
                offset,
                length,
                read,
            });
            self.ahead_offset = offset + length;
        }
    }
}

/// One aligned read of `length` bytes (rounded up to whole blocks) at `offset`.
pub async fn read(
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
