//! `StorageError`: every operating failure of the log, with the context needed to act on it.
//!
//! A write or fdatasync failure is fatal for a `Log`: it is stored once and every later call
//! returns `StorageError::Failed` carrying it (shared through an `Arc`, so errors stay `Send`).

use std::path::PathBuf;
use std::sync::Arc;

use crate::format::CorruptReason;
use crate::SegmentId;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Another open `Log` (in this or another process) holds `dir/LOCK`.
    #[error(
        "log directory is locked: {path} is held by another open log (another broker process, or \
         a second open in this one); stop it or use another data directory"
    )]
    Locked { path: PathBuf },

    /// A segment file was still open in another process (another open file description
    /// exists) when `Log::open` gave up waiting: most likely a broker killed a moment ago whose
    /// writes are still in flight, or another program reading the file.
    #[error(
        "log file {path} is still open in another process after waiting {:.1} s (a stopped \
         broker's writes still in flight, or another program has it open); recovery would not \
         be safe",
        waited.as_secs_f64()
    )]
    InUse {
        path: PathBuf,
        waited: std::time::Duration,
    },

    /// An operating-system I/O error.
    #[error("{operation} failed on {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A write transferred fewer bytes than asked (`io_kind` is `WriteZero`).
    #[error("{operation} failed on {path}: short write: {written_bytes} of {asked_bytes} bytes")]
    ShortWrite {
        operation: &'static str,
        path: PathBuf,
        written_bytes: u64,
        asked_bytes: u64,
    },

    /// A record or segment header that must be valid is not (never silently dropped).
    #[error("corrupt log: segment {} offset {offset}: {reason}", segment.0)]
    Corrupt {
        segment: SegmentId,
        offset: u64,
        reason: CorruptReason,
    },

    /// The payload does not fit in one segment.
    #[error("record of {payload_len} bytes exceeds the maximum of {payload_len_max} bytes")]
    RecordTooLarge {
        payload_len: u64,
        payload_len_max: u64,
    },

    /// The write buffer is at its bound; retry after `wait_durable` or `durable_changed`.
    #[error("write buffer full: {buffered_bytes} bytes buffered, bound {buffered_bytes_max}")]
    Backpressure {
        buffered_bytes: u64,
        buffered_bytes_max: u64,
    },

    /// The log failed earlier (write or fdatasync error); nothing more is accepted.
    #[error("log failed: {cause}")]
    Failed { cause: Arc<StorageError> },

    /// The configuration is unusable.
    #[error("invalid log configuration: {reason}")]
    InvalidConfig { reason: InvalidConfigReason },

    /// A location that this log never returned, or whose segment was deleted.
    #[error("no record at segment {} offset {offset} length {length}: {reason}", segment.0)]
    InvalidLocation {
        segment: SegmentId,
        offset: u32,
        length: u32,
        reason: InvalidLocationReason,
    },

    /// The log was closed.
    #[error("log is closed")]
    Closed,
}

/// Why a `LogConfig` is refused. Carried by `StorageError::InvalidConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidConfigReason {
    #[error("segment_size_bytes must be a multiple of 4096")]
    SegmentSizeNotBlockMultiple,
    #[error("segment_size_bytes must be at least 8192")]
    SegmentSizeTooSmall,
    #[error("segment_size_bytes must be below 4 GiB")]
    SegmentSizeTooLarge,
}

/// Why a `RecordLocation` holds no record. Carried by `StorageError::InvalidLocation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLocationReason {
    #[error("segment deleted or never written")]
    SegmentMissing,
    #[error("offset is not a record boundary")]
    NotRecordBoundary,
    #[error("record would run past the end of the segment")]
    PastSegmentEnd,
    #[error("record runs past the end of the file")]
    PastFileEnd,
    #[error("no record at this location")]
    NoRecord,
}

impl StorageError {
    /// Wraps a glommio or std I/O error with the operation and path it concerns.
    pub(crate) fn io(
        operation: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        StorageError::Io {
            operation,
            path: path.into(),
            source: source.into(),
        }
    }

    /// The `std::io::ErrorKind` of the underlying I/O error, if this is one (`WriteZero` for a
    /// short write).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            StorageError::Io { source, .. } => Some(source.kind()),
            StorageError::ShortWrite { .. } => Some(std::io::ErrorKind::WriteZero),
            StorageError::Failed { cause } => cause.io_kind(),
            _ => None,
        }
    }

    /// The raw OS error number (ENOSPC, EIO, ...) of the underlying I/O error, if any.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            StorageError::Io { source, .. } => source.raw_os_error(),
            StorageError::Failed { cause } => cause.raw_os_error(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_write_reads_as_an_io_error_of_kind_write_zero() {
        let error = StorageError::ShortWrite {
            operation: "write segment",
            path: PathBuf::from("/log/0000000001.seg"),
            written_bytes: 4096,
            asked_bytes: 8192,
        };
        assert_eq!(
            error.to_string(),
            "write segment failed on /log/0000000001.seg: short write: 4096 of 8192 bytes"
        );
        assert_eq!(error.io_kind(), Some(std::io::ErrorKind::WriteZero));
        assert_eq!(error.raw_os_error(), None);
        let failed = StorageError::Failed {
            cause: Arc::new(error),
        };
        assert_eq!(failed.io_kind(), Some(std::io::ErrorKind::WriteZero));
    }
}
