//! `Log`: the public handle of one shard's log, and `LogCore`, the state its tasks share.
//!
//! The handle is `!Send`: it lives on the executor that opened it. It owns the directory lock and
//! the committer task; dropping it cancels the committer (use `close` to flush first).

use std::cell::RefCell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::Task;

use crate::error::{InvalidConfigReason, StorageError};
use crate::fault::FaultInjector;
use crate::lock::DirLock;
use crate::notify::{Event, LsnWaiters};
use crate::recovery::recover;
use crate::segment::SegmentTable;
use crate::segment_reader::SegmentReader;
use crate::writer::WriterState;
use crate::{
    committer, reader, LogConfig, Lsn, RecordLocation, RecoveredRecord, RecoveryReport, SegmentId,
};

/// Counters of one log, for tests, benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub appends: u64,
    /// Group-commit rounds reported durable (each ends with one fdatasync per segment written).
    pub commits: u64,
    pub fdatasyncs: u64,
    pub bytes_written: u64,
    /// Read I/Os issued by `read` and `read_many` (after coalescing).
    pub read_ios: u64,
    pub records_read: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
}

/// A prepared (zero-filled) file for the next segment.
pub(crate) enum Spare {
    None,
    Preparing(SegmentId),
    Ready(SegmentId, Rc<DmaFile>),
    /// Preparation failed; the committer creates the file itself when it needs it.
    Failed,
}

/// State shared by the handle, the committer and the background tasks of one log.
pub(crate) struct LogCore {
    pub dir: PathBuf,
    pub segment_size_bytes: u64,
    pub faults: Option<Rc<dyn FaultInjector>>,
    pub state: RefCell<WriterState>,
    pub segments: RefCell<SegmentTable>,
    pub spare: RefCell<Spare>,
    /// Segments whose live count reached zero; deleted once collectable.
    pub gc_candidates: RefCell<std::collections::BTreeSet<SegmentId>>,
    /// Segment deletions in progress, and the event notified when one finishes.
    pub deletions_in_progress: std::cell::Cell<usize>,
    pub deletion_done: Event,
    pub stats: RefCell<LogStats>,
    /// Wakes the committer (appends, close).
    pub work: Event,
    /// Notified when durable_lsn advances or the log fails.
    pub durable_changed: Event,
    /// Notified when a spare segment finishes preparing.
    pub spare_ready: Event,
    pub waiters: LsnWaiters,
    /// The directory lock. The task preparing a spare segment holds a clone: a log dropped
    /// while it zero-fills keeps its directory locked until the task is done, so a log opened
    /// again on the directory never sees that file change under it.
    pub lock: Rc<DirLock>,
}

impl LogCore {
    pub fn failed_error(&self) -> Option<StorageError> {
        let state = self.state.borrow();
        state.failed.as_ref().map(|cause| StorageError::Failed {
            cause: cause.clone(),
        })
    }
}

/// The durable log of one shard. See the crate documentation.
pub struct Log {
    committer: RefCell<Option<Task<()>>>,
    core: Rc<LogCore>,
}

impl Log {
    /// Locks `config.dir`, waits until no other process has its segment files open (at most
    /// `config.in_use_wait`, else `InUse`), recovers it (calling `on_record` for every valid record in LSN order,
    /// cutting a torn tail, failing with `Corrupt` for damage in an older segment) and starts the
    /// committer. Must be called inside a glommio executor.
    pub async fn open(
        config: LogConfig,
        mut on_record: impl FnMut(RecoveredRecord<'_>),
    ) -> Result<(Log, RecoveryReport), StorageError> {
        validate(&config)?;
        // Start-up only: blocking std::fs calls before the log accepts any work.
        std::fs::create_dir_all(&config.dir)
            .map_err(|source| StorageError::io("create log directory", &config.dir, source))?;
        let lock = DirLock::acquire(&config.dir)?;
        // The lock proves no live process uses the directory, not that a killed one has no
        // writes in flight: wait for those before reading the tail (see quiesce.rs).
        let in_use = crate::quiesce::wait_until_unused(&config.dir, config.in_use_wait).await?;
        // glommio probes O_DIRECT polling support with the first DMA file an executor opens;
        // the lock file is non-empty, so the probe is meaningful (see lock.rs).
        let probe = DmaFile::open(lock.path())
            .await
            .map_err(|source| StorageError::io("open lock file (O_DIRECT)", lock.path(), source))?;
        probe
            .close()
            .await
            .map_err(|source| StorageError::io("close lock file", lock.path(), source))?;
        let recovered = recover(&config.dir, config.segment_size_bytes, &mut on_record).await?;
        let report = RecoveryReport {
            in_use,
            ..recovered.report.clone()
        };
        let state = WriterState {
            segment_size_bytes: config.segment_size_bytes,
            next_lsn: recovered.next_lsn,
            active_segment: recovered.active_segment,
            active_offset: recovered.active_offset,
            chunks: Default::default(),
            tail: recovered.tail,
            buffered_bytes: 0,
            in_flight: Vec::new(),
            syncing: Default::default(),
            durable_lsn: report.last_lsn,
            failed: None,
            closing: false,
        };
        let spare = match recovered.spare {
            Some((segment, file)) => Spare::Ready(segment, file),
            None => Spare::None,
        };
        let core = Rc::new(LogCore {
            dir: config.dir,
            segment_size_bytes: config.segment_size_bytes,
            faults: config.faults,
            state: RefCell::new(state),
            segments: RefCell::new(recovered.segments),
            spare: RefCell::new(spare),
            gc_candidates: Default::default(),
            deletions_in_progress: Default::default(),
            deletion_done: Event::default(),
            stats: Default::default(),
            work: Event::default(),
            durable_changed: Event::default(),
            spare_ready: Event::default(),
            waiters: LsnWaiters::default(),
            lock: Rc::new(lock),
        });
        let committer = glommio::spawn_local(committer::run(core.clone()));
        let log = Log {
            committer: RefCell::new(Some(committer)),
            core,
        };
        Ok((log, report))
    }

    /// Appends a record to the write buffer; never awaits, never does I/O.
    pub fn append(&self, kind: u8, payload: &[u8]) -> Result<(Lsn, RecordLocation), StorageError> {
        self.append_parts(kind, &[payload])
    }

    /// Appends a record whose payload is the concatenation of `parts`.
    pub fn append_parts(
        &self,
        kind: u8,
        parts: &[&[u8]],
    ) -> Result<(Lsn, RecordLocation), StorageError> {
        let core = &self.core;
        let result = core.state.borrow_mut().append(
            &mut core.segments.borrow_mut(),
            &core.dir,
            kind,
            parts,
        )?;
        core.stats.borrow_mut().appends += 1;
        core.work.notify();
        Ok(result)
    }

    /// Where the next record goes: (active segment, byte offset). Right after `open`, every
    /// record before this position was recovered and every location at or after it holds
    /// none (`SegmentId(0)` for an empty log).
    pub fn end_position(&self) -> (SegmentId, u64) {
        let state = self.core.state.borrow();
        (state.active_segment, state.active_offset)
    }

    /// Bytes appended and not yet handed to a write: appends fail with `Backpressure` above
    /// `WRITE_BUFFER_BYTES_MAX`.
    pub fn buffered_bytes(&self) -> u64 {
        self.core.state.borrow().buffered_bytes
    }

    /// Highest LSN covered by a completed fdatasync.
    pub fn durable_lsn(&self) -> Lsn {
        self.core.state.borrow().durable_lsn
    }

    /// Resolves once `durable_lsn() >= lsn`, or with the error that made the log fail. Once the
    /// log has failed it resolves with that error even for an `lsn` that was durable before:
    /// `durable_lsn` still tells which records are safe.
    pub async fn wait_durable(&self, lsn: Lsn) -> Result<(), StorageError> {
        WaitDurable {
            core: &self.core,
            lsn,
            id: None,
        }
        .await
    }

    /// Resolves at the next advance of `durable_lsn` (with its new value) or when the log fails.
    pub async fn durable_changed(&self) -> Result<Lsn, StorageError> {
        let listener = self.core.durable_changed.listen();
        if let Some(error) = self.core.failed_error() {
            return Err(error);
        }
        listener.await;
        match self.core.failed_error() {
            Some(error) => Err(error),
            None => Ok(self.durable_lsn()),
        }
    }

    /// Reads one record's payload back (from the write buffer if it is not on disk yet).
    pub async fn read(&self, location: RecordLocation) -> Result<Bytes, StorageError> {
        let mut payloads = reader::read_many(&*self.core, &[location]).await?;
        Ok(payloads
            .pop()
            .expect("read_many returns one payload per location"))
    }

    /// Reads many records with coalesced I/O; results are in input order.
    pub async fn read_many(
        &self,
        locations: &[RecordLocation],
    ) -> Result<Vec<Bytes>, StorageError> {
        reader::read_many(&*self.core, locations).await
    }

    /// Reads many records with coalesced I/O, each with its own result, in input order: one
    /// record that fails its check (`Corrupt`, `InvalidLocation`) or whose read fails (`Io`)
    /// does not keep the others from arriving.
    pub async fn read_each(
        &self,
        locations: &[RecordLocation],
    ) -> Vec<Result<Bytes, StorageError>> {
        reader::read_each(&*self.core, locations).await
    }

    /// A read-only view of the segment files as they are now, that stays usable after this
    /// log is dropped (see `SegmentReader`).
    pub fn segment_reader(&self) -> SegmentReader {
        let files = self
            .core
            .segments
            .borrow()
            .entries
            .iter()
            .filter_map(|(segment, entry)| entry.file.clone().map(|file| (*segment, file)))
            .collect();
        SegmentReader::new(self.core.dir.clone(), self.core.segment_size_bytes, files)
    }

    /// Counts `count` more live records in `segment` (records the caller keeps).
    pub fn add_live(&self, segment: SegmentId, count: u64) {
        let mut segments = self.core.segments.borrow_mut();
        if let Some(entry) = segments.entries.get_mut(&segment) {
            entry.live_count += count;
        } else {
            tracing::warn!(
                segment = segment.0,
                "add_live for a segment the log does not have"
            );
        }
    }

    /// Counts `count` records of `segment` as dead; at zero the segment file is deleted once it is
    /// not the segment being written and all its records are durable.
    pub fn release(&self, segment: SegmentId, count: u64) {
        {
            let mut segments = self.core.segments.borrow_mut();
            let Some(entry) = segments.entries.get_mut(&segment) else {
                tracing::warn!(
                    segment = segment.0,
                    "release for a segment the log does not have"
                );
                return;
            };
            assert!(
                entry.live_count >= count,
                "release never exceeds add_live for a segment"
            );
            entry.live_count -= count;
            if entry.live_count > 0 {
                return;
            }
        }
        self.core.gc_candidates.borrow_mut().insert(segment);
        committer::collect_candidates(&self.core);
    }

    /// Deletes every segment with no live records that is not being written and is durable,
    /// whether or not `release` was called for it (for use after recovery accounting), and waits
    /// for the files to be removed. Returns how many segments were deleted.
    pub async fn collect_garbage(&self) -> Result<usize, StorageError> {
        let durable = self.durable_lsn();
        let collectable = self.core.segments.borrow().collectable(durable);
        self.core.gc_candidates.borrow_mut().extend(collectable);
        let deleted = committer::delete_candidates(&self.core).await?;
        loop {
            let listener = self.core.deletion_done.listen();
            if self.core.deletions_in_progress.get() == 0 {
                return Ok(deleted);
            }
            listener.await;
        }
    }

    /// Ids of the segment files holding records, oldest first (not counting a prepared spare).
    pub fn segment_ids(&self) -> Vec<SegmentId> {
        self.core
            .segments
            .borrow()
            .entries
            .keys()
            .copied()
            .collect()
    }

    /// `Err(Failed)` once a write or fdatasync has failed.
    pub fn health(&self) -> Result<(), StorageError> {
        match self.core.failed_error() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Counters.
    pub fn stats(&self) -> LogStats {
        *self.core.stats.borrow()
    }

    /// Asserts the writer's and the segment table's invariants (tests call it after mutations).
    pub fn check_invariants(&self) {
        self.core.state.borrow().check_invariants();
        self.core.segments.borrow().check_invariants();
    }

    /// Flushes what is buffered, stops the committer, waits for a spare segment being prepared
    /// and releases the directory lock.
    pub async fn close(self) -> Result<(), StorageError> {
        self.core.state.borrow_mut().closing = true;
        self.core.work.notify();
        let committer = self.committer.borrow_mut().take();
        if let Some(task) = committer {
            task.await;
        }
        // A spare segment still being zero-filled would be written after the log is closed.
        loop {
            let listener = self.core.spare_ready.listen();
            if !matches!(*self.core.spare.borrow(), Spare::Preparing(_)) {
                break;
            }
            listener.await;
        }
        let health = self.health();
        self.close_files().await;
        health
    }

    /// Closes the segment files now rather than on drop: glommio closes a dropped file at its
    /// next I/O cycle, which never comes if the executor stops first, and a descriptor left
    /// open would keep the files looking in use to the next open (see quiesce.rs).
    async fn close_files(&self) {
        let mut files: Vec<Rc<DmaFile>> = self
            .core
            .segments
            .borrow_mut()
            .entries
            .values_mut()
            .filter_map(|entry| entry.file.take())
            .collect();
        if let Spare::Ready(_, file) =
            std::mem::replace(&mut *self.core.spare.borrow_mut(), Spare::None)
        {
            files.push(file);
        }
        for file in files {
            // A file a reader still holds is closed when that reader drops it.
            if let Ok(file) = Rc::try_unwrap(file) {
                if let Err(error) = file.close().await {
                    tracing::warn!(%error, "could not close a segment file");
                }
            }
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.core.state.borrow_mut().closing = true;
        // Dropping the task cancels the committer; what it had not synced is not durable.
        drop(self.committer.borrow_mut().take());
    }
}

fn validate(config: &LogConfig) -> Result<(), StorageError> {
    use crate::format::{BLOCK_SIZE_BYTES, DATA_OFFSET_BYTES};
    let size = config.segment_size_bytes;
    if !size.is_multiple_of(BLOCK_SIZE_BYTES) {
        return Err(StorageError::InvalidConfig {
            reason: InvalidConfigReason::SegmentSizeNotBlockMultiple,
        });
    }
    if size < DATA_OFFSET_BYTES + BLOCK_SIZE_BYTES {
        return Err(StorageError::InvalidConfig {
            reason: InvalidConfigReason::SegmentSizeTooSmall,
        });
    }
    if size > u64::from(u32::MAX) {
        return Err(StorageError::InvalidConfig {
            reason: InvalidConfigReason::SegmentSizeTooLarge,
        });
    }
    Ok(())
}

/// Future of `wait_durable`: registered under its LSN so only the commits that reach it wake it.
struct WaitDurable<'a> {
    core: &'a LogCore,
    lsn: Lsn,
    id: Option<u64>,
}

impl Future for WaitDurable<'_> {
    type Output = Result<(), StorageError>;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Self::Output> {
        if let Some(error) = self.core.failed_error() {
            return Poll::Ready(Err(error));
        }
        if self.core.state.borrow().durable_lsn >= self.lsn {
            return Poll::Ready(Ok(()));
        }
        let id = match self.id {
            Some(id) => id,
            None => {
                let id = self.core.waiters.next_id();
                self.id = Some(id);
                id
            }
        };
        self.core.waiters.register(self.lsn.0, id, context.waker());
        Poll::Pending
    }
}

impl Drop for WaitDurable<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            self.core.waiters.remove(self.lsn.0, id);
        }
    }
}
