//! Fault injection: a hook the log consults before every data write and fdatasync.
//!
//! Production passes no injector. Tests use it to make a write or an fdatasync fail (EIO,
//! ENOSPC, ...) and check that the failure is fatal and that recovery keeps every record that
//! was reported durable. `delay_fdatasync` holds an fdatasync back, so that tests can keep one
//! commit's fdatasync in flight while later commits are written and synced.

use std::io;
use std::time::Duration;

use crate::SegmentId;

/// Decides whether an I/O operation fails. Returning `Some(error)` makes the operation fail with
/// that error instead of reaching the disk.
pub trait FaultInjector {
    /// Called before each write of `len` bytes at byte `offset` of `segment`'s file
    /// (commit writes and the zero-filling of new segments).
    fn before_write(&self, segment: SegmentId, offset: u64, len: usize) -> Option<io::Error>;
    /// Called before each fdatasync of `segment`'s file.
    fn before_fdatasync(&self, segment: SegmentId) -> Option<io::Error>;
    /// Called right after `before_fdatasync` for the same commit fdatasync, whatever it returned:
    /// `Some(delay)` holds that fdatasync (or its injected failure) back for `delay` before it
    /// is issued. The committer keeps going meanwhile.
    fn delay_fdatasync(&self, _segment: SegmentId) -> Option<Duration> {
        None
    }
}
