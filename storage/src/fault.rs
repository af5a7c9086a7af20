//! Fault injection: a hook the log consults before every data write and fdatasync.
//!
//! Production passes no injector. Tests use it to make a write or an fdatasync fail (EIO,
//! ENOSPC, ...) and check that the failure is fatal and that recovery keeps every record that
//! was reported durable.

use std::io;

use crate::SegmentId;

/// Decides whether an I/O operation fails. Returning `Some(error)` makes the operation fail with
/// that error instead of reaching the disk.
pub trait FaultInjector {
    /// Called before each write of `len` bytes at byte `offset` of `segment`'s file
    /// (commit writes and the zero-filling of new segments).
    fn before_write(&self, segment: SegmentId, offset: u64, len: usize) -> Option<io::Error>;
    /// Called before each fdatasync of `segment`'s file.
    fn before_fdatasync(&self, segment: SegmentId) -> Option<io::Error>;
}
