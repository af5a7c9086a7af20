//! `SegmentReader`: a read-only view of a log's segment files that outlives the `Log` it came
//! from. When a log fails (a write or fdatasync error) its owner closes it and opens it again;
//! the records already on disk are still readable meanwhile, and consumers of a backlog keep
//! draining them through this view. It reads the files alone (records still in the failed
//! log's write buffer are not there), holds no lock and never writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::DmaFile;

use crate::error::StorageError;
use crate::reader::{self, RecordSource};
use crate::{RecordLocation, SegmentId};

/// The segment files of a log as they were when the view was taken.
pub struct SegmentReader {
    dir: PathBuf,
    segment_size_bytes: u64,
    files: BTreeMap<SegmentId, Rc<DmaFile>>,
}

impl SegmentReader {
    pub(crate) fn new(
        dir: PathBuf,
        segment_size_bytes: u64,
        files: BTreeMap<SegmentId, Rc<DmaFile>>,
    ) -> SegmentReader {
        SegmentReader {
            dir,
            segment_size_bytes,
            files,
        }
    }

    /// Reads records with coalesced I/O, each with its own result, in input order (see
    /// `Log::read_each`).
    pub async fn read_each(
        &self,
        locations: &[RecordLocation],
    ) -> Vec<Result<Bytes, StorageError>> {
        reader::read_each(self, locations).await
    }
}

impl RecordSource for SegmentReader {
    fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment_size_bytes(&self) -> u64 {
        self.segment_size_bytes
    }

    fn file(&self, segment: SegmentId) -> Option<Rc<DmaFile>> {
        self.files.get(&segment).cloned()
    }

    fn in_memory(&self, _location: &RecordLocation) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    fn count_reads(&self, _read_ios: u64, _records: u64) {}
}
