//! `hare-storage`: a segmented, append-only log of opaque records with group commit, for one
//! shard of Hare. It knows records, LSNs, offsets and segments — never messages or queues.
//!
//! A [`Log`] lives on one glommio executor (`!Send`). [`Log::append`] copies a record into an
//! aligned DMA buffer and returns its [`Lsn`] and [`RecordLocation`] without I/O. A committer task
//! writes everything appended so far (whole 4 KiB blocks, O_DIRECT) and starts its fdatasync,
//! then starts the next round at once if more arrived, with no linger timer: commits are
//! pipelined, up to [`COMMITS_IN_FLIGHT_MAX`] fdatasyncs in flight, while writes stay strictly
//! ordered. [`Log::durable_lsn`] advances, and waiters wake, in round order: a round is reported
//! durable once its own fdatasync and every earlier round's have succeeded. Any write or
//! fdatasync error makes the log failed for good, and nothing is reported durable after it.
//!
//! On disk (`docs/storage-format.md` has every byte):
//!
//! ```text
//! dir/LOCK               flock'ed while the log is open
//! dir/0000000001.seg     segment 1: [header block 4 KiB][record][record]...[zeros]
//! dir/0000000002.seg     segment 2 ...
//!
//! record, 8-byte aligned, little-endian:
//! +--------+-------------+------+-------+----------+--------+---------+---------+
//! | crc32  | payload_len | kind | flags | reserved |  lsn   | payload | pad → 8 |
//! |  u32   |     u32     |  u8  |  u8   |   u16    |  u64   |  bytes  |  zeros  |
//! +--------+-------------+------+-------+----------+--------+---------+---------+
//!  crc32 (crc32fast, IEEE) covers payload_len .. end of payload
//! ```
//!
//! Modules: [`format`](mod@format) (bytes), `aligned` (DMA chunks), `segment` (files, GC table),
//! `writer` (placement, bounded buffer), `committer` (pipelined group commit), `reader` (O_DIRECT reads),
//! `segment_reader` (reads that outlive a failed log), `recovery` (scan, torn tail), `scanner`
//! (recovery's reads ahead), `lock` (directory lock), `quiesce` (waiting for another process's
//! writes in flight before recovery), [`fault`] (fault injection), `notify` (waiters).
//!
//! Beside the segment logs, [`MetadataLog`] (`metadata_log`, bytes in
//! [`metadata_format`](mod@metadata_format)) keeps small opaque entries (the broker's durable
//! definitions) as snapshots plus appended batches, with plain buffered I/O.

mod aligned;
mod committer;
mod error;
pub mod fault;
pub mod format;
mod lock;
mod log;
pub mod metadata_format;
mod metadata_log;
mod notify;
mod quiesce;
mod reader;
mod recovery;
mod scanner;
mod segment;
mod segment_reader;
mod writer;

use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

pub use crate::committer::COMMITS_IN_FLIGHT_MAX;
pub use crate::error::{InvalidConfigReason, InvalidLocationReason, StorageError};
pub use crate::fault::FaultInjector;
pub use crate::format::CorruptReason;
pub use crate::log::{Log, LogStats};
pub use crate::metadata_log::{
    metadata_generation_file_name, CompactionSource, MetadataLog, MetadataLogError,
    MetadataOpenReport, RecoveredMetadata,
};
pub use crate::quiesce::{InUseWait, IN_USE_WAIT_DEFAULT};
pub use crate::reader::{READ_COALESCE_GAP_BYTES, READ_COALESCE_SPAN_BYTES_MAX};
pub use crate::segment::segment_file_name;
pub use crate::segment_reader::SegmentReader;
pub use crate::writer::{WRITE_BUFFER_BYTES_MAX, WRITE_CHUNK_BYTES};

/// Default size of a segment file.
pub const SEGMENT_SIZE_BYTES_DEFAULT: u64 = 64 << 20;

/// Configuration of one log.
#[derive(Clone)]
pub struct LogConfig {
    /// Directory of the log: segment files and the LOCK file. Created if missing.
    pub dir: PathBuf,
    /// Size of each segment file; a multiple of 4096, at least 8 KiB, below 4 GiB.
    pub segment_size_bytes: u64,
    /// Fault injection for tests; `None` in production.
    pub faults: Option<Rc<dyn FaultInjector>>,
    /// How long `Log::open` waits, before recovery, for segment files another process still
    /// has open (a killed broker's writes in flight); then it fails with `InUse`. Zero checks
    /// once.
    pub in_use_wait: Duration,
}

impl LogConfig {
    /// A configuration with 64 MiB segments and no fault injection.
    pub fn new(dir: impl Into<PathBuf>) -> LogConfig {
        LogConfig {
            dir: dir.into(),
            segment_size_bytes: SEGMENT_SIZE_BYTES_DEFAULT,
            faults: None,
            in_use_wait: IN_USE_WAIT_DEFAULT,
        }
    }
}

impl std::fmt::Debug for LogConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogConfig")
            .field("dir", &self.dir)
            .field("segment_size_bytes", &self.segment_size_bytes)
            .field("faults", &self.faults.is_some())
            .field("in_use_wait", &self.in_use_wait)
            .finish()
    }
}

/// Log sequence number: 1-based, contiguous over the life of a log. `Lsn(0)` means "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

/// Identifier of a segment file (`dir/<id, 10 digits>.seg`); ids start at 1 and only grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentId(pub u32);

/// Where a record is: segment, byte offset of its header, payload length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordLocation {
    pub segment: SegmentId,
    /// Byte offset of the record header in the segment.
    pub offset: u32,
    /// Payload length in bytes.
    pub length: u32,
}

/// A record found by recovery; `payload` is only valid during the callback.
#[derive(Debug)]
pub struct RecoveredRecord<'a> {
    pub lsn: Lsn,
    pub kind: u8,
    pub location: RecordLocation,
    pub payload: &'a [u8],
}

/// What `Log::open` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments_scanned: u32,
    pub records: u64,
    /// Non-zero bytes found (and zeroed) after the last valid record of the last segment.
    pub torn_tail_bytes: u64,
    pub duration: Duration,
    /// Highest recovered LSN (`Lsn(0)` for an empty log).
    pub last_lsn: Lsn,
    /// The wait, before the scan, for segment files another process still had open.
    pub in_use: InUseWait,
}
