//! Segment files: naming, creation (preallocated and zero-filled), and the table of open
//! segments with their live-record counts for garbage collection.
//!
//! A segment is `dir/<id, 10 digits>.seg`, exactly `segment_size_bytes` long. Its bytes are
//! written with zeros when it is created, ahead of use, so that a commit write lands on allocated,
//! already-written blocks: fdatasync then flushes data only, without a metadata (extent)
//! update. The table knows nothing of records; the caller tells it how many records of a segment
//! are still live, and a segment whose count drops to zero is deleted once it is no longer being
//! written and everything in it is durable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use crate::error::StorageError;
use crate::fault::FaultInjector;
use crate::{Lsn, SegmentId};

/// Size of each zero-filling write when a segment is created.
pub const ZERO_FILL_CHUNK_BYTES: u64 = 1 << 20;
/// File name suffix of segments.
pub const SEGMENT_SUFFIX: &str = ".seg";

/// `0000000042.seg` for segment 42.
pub fn segment_file_name(segment: SegmentId) -> String {
    format!("{:010}{SEGMENT_SUFFIX}", segment.0)
}

/// The segment id of a file name written by [`segment_file_name`], else `None`.
pub fn parse_segment_file_name(name: &str) -> Option<SegmentId> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(SegmentId)
}

/// Lists the segment files of `dir` in id order. Other files are left alone and logged.
/// Blocking `std::fs` call: used only by recovery, before the log accepts work.
pub fn list_segment_files(dir: &Path) -> Result<Vec<(SegmentId, PathBuf)>, StorageError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|source| StorageError::io("list log directory", dir, source))?;
    let mut segments = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| StorageError::io("list log directory", dir, source))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match parse_segment_file_name(&name) {
            Some(segment) => segments.push((segment, entry.path())),
            None if name == crate::lock::LOCK_FILE_NAME => {}
            None => {
                tracing::warn!(file = %entry.path().display(), "ignoring unexpected file in log directory")
            }
        }
    }
    segments.sort_by_key(|(segment, _)| *segment);
    Ok(segments)
}

/// Opens an existing segment file for reading and writing (O_DIRECT).
pub async fn open_segment_file(path: &Path) -> Result<Rc<DmaFile>, StorageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .dma_open(path)
        .await
        .map_err(|source| StorageError::io("open segment", path, source))?;
    Ok(Rc::new(file))
}

/// Creates (or reuses) `dir/<segment>.seg`, writes `size_bytes` of zeros into it, fdatasyncs it
/// and fsyncs the directory, so the new name and its blocks survive a crash.
pub async fn create_zeroed_segment(
    dir: &Path,
    segment: SegmentId,
    size_bytes: u64,
    faults: Option<&Rc<dyn FaultInjector>>,
) -> Result<Rc<DmaFile>, StorageError> {
    let path = dir.join(segment_file_name(segment));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(&path)
        .await
        .map_err(|source| StorageError::io("create segment", &path, source))?;
    let chunk_bytes = ZERO_FILL_CHUNK_BYTES.min(size_bytes);
    let mut zeros = glommio::allocate_dma_buffer(chunk_bytes as usize);
    zeros.as_bytes_mut().fill(0);
    let zeros = Rc::new(zeros);
    let mut offset = 0;
    while offset < size_bytes {
        if let Some(error) = faults.and_then(|f| f.before_write(segment, offset, zeros.len())) {
            return Err(StorageError::io("zero-fill segment", &path, error));
        }
        let written = file
            .write_rc_at(zeros.clone(), offset)
            .await
            .map_err(|source| StorageError::io("zero-fill segment", &path, source))?;
        if written != zeros.len() {
            return Err(StorageError::ShortWrite {
                operation: "zero-fill segment",
                path,
                written_bytes: written as u64,
                asked_bytes: zeros.len() as u64,
            });
        }
        offset += chunk_bytes;
        glommio::yield_if_needed().await;
    }
    if let Some(error) = faults.and_then(|f| f.before_fdatasync(segment)) {
        return Err(StorageError::io("fdatasync new segment", &path, error));
    }
    file.fdatasync()
        .await
        .map_err(|source| StorageError::io("fdatasync new segment", &path, source))?;
    sync_directory(dir).await?;
    Ok(Rc::new(file))
}

/// fsyncs a directory so that created or removed names in it are durable.
pub async fn sync_directory(dir: &Path) -> Result<(), StorageError> {
    let directory = glommio::io::Directory::open(dir)
        .await
        .map_err(|source| StorageError::io("open log directory", dir, source))?;
    directory
        .sync()
        .await
        .map_err(|source| StorageError::io("fsync log directory", dir, source))?;
    directory
        .close()
        .await
        .map_err(|source| StorageError::io("close log directory", dir, source))
}

/// One segment known to the log.
pub struct SegmentEntry {
    pub path: PathBuf,
    /// Open file, once created (a segment rolled to by `append` gets its file at its first
    /// commit).
    pub file: Option<Rc<DmaFile>>,
    /// Records of this segment the caller still needs (see `Log::add_live`).
    pub live_count: u64,
    /// Highest LSN stored in this segment (`Lsn(0)` when none yet).
    pub last_lsn: Lsn,
}

/// All segments of a log, in id order. The highest id is the one being written.
#[derive(Default)]
pub struct SegmentTable {
    pub entries: BTreeMap<SegmentId, SegmentEntry>,
}

impl SegmentTable {
    /// Adds a segment; ids only grow.
    pub fn insert(&mut self, segment: SegmentId, entry: SegmentEntry) {
        if let Some((&last, _)) = self.entries.last_key_value() {
            assert!(segment > last, "segment ids only grow");
        }
        self.entries.insert(segment, entry);
    }

    /// The segment being written (highest id).
    pub fn active(&self) -> Option<SegmentId> {
        self.entries.last_key_value().map(|(&segment, _)| segment)
    }

    /// Segments that can be deleted now: not the active one, no live records, and all their
    /// records durable.
    pub fn collectable(&self, durable_lsn: Lsn) -> Vec<SegmentId> {
        let active = self.active();
        self.entries
            .iter()
            .filter(|(&segment, entry)| {
                Some(segment) != active && entry.live_count == 0 && entry.last_lsn <= durable_lsn
            })
            .map(|(&segment, _)| segment)
            .collect()
    }

    /// Checks the table's invariants.
    pub fn check_invariants(&self) {
        let mut last_lsn = Lsn(0);
        for entry in self.entries.values() {
            if entry.last_lsn != Lsn(0) {
                assert!(entry.last_lsn > last_lsn, "segments hold increasing lsns");
                last_lsn = entry.last_lsn;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_roundtrip() {
        assert_eq!(segment_file_name(SegmentId(42)), "0000000042.seg");
        assert_eq!(
            parse_segment_file_name("0000000042.seg"),
            Some(SegmentId(42))
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("000000004x.seg"), None);
        assert_eq!(parse_segment_file_name("0000000042.tmp"), None);
        assert_eq!(parse_segment_file_name("9999999999.seg"), None);
    }
}
