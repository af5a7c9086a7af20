//! The group committer: one task per log that writes what was appended, fdatasyncs it, and
//! advances `durable_lsn`. Also the background work that rides on it: preparing the next segment
//! file ahead of use, and deleting segments whose records are all dead.
//!
//! A round takes every buffered chunk at once and writes each chunk's whole blocks (the
//! partially filled last block is written padded with zeros and rewritten by the next round).
//! Once its writes complete, the round's fdatasyncs (one per segment file it wrote) run in a
//! task of their own, and the committer starts the next round at once if anything was appended
//! meanwhile: there is no linger timer, so the batch size adapts to the fdatasync latency.
//! At most `COMMITS_IN_FLIGHT_MAX` rounds have fdatasyncs in flight; writes stay strictly
//! ordered, since a round can rewrite the block the previous round ended in.
//!
//! Durability is reported in round order: when a round's fdatasyncs complete, `durable_lsn`
//! advances over it and every later round already synced, but not while an earlier round's
//! fdatasync is still in flight. So `durable_lsn` never goes backwards, and never passes a
//! round whose own fdatasync has not succeeded. (A later fdatasync of the same file does cover
//! an earlier round's completed writes, but after a failed fdatasync the kernel may have dropped
//! dirty state, so no later success is taken as proof of an earlier round.) A write or
//! fdatasync error fails the log for good: nothing is reported durable after it, and it is never
//! retried, since a retry could report lost data as durable.

use std::path::PathBuf;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use glommio::io::DmaFile;

use crate::error::StorageError;
use crate::fault::FaultInjector;
use crate::log::{LogCore, Spare};
use crate::segment::{create_zeroed_segment, segment_file_name, sync_directory};
use crate::writer::{verify_chunk_records, InFlight, Round, SyncingRound};
use crate::{Lsn, SegmentId};

/// Bound on commit rounds whose fdatasyncs are in flight at once. Two let a round be written
/// and synced while the previous round's fdatasync runs; more did not help on the disks
/// measured (docs/BENCHMARKS.md).
pub const COMMITS_IN_FLIGHT_MAX: usize = 2;
const _: () = assert!(COMMITS_IN_FLIGHT_MAX >= 1);

/// The segment files one round wrote, in the order it wrote them.
type WrittenFiles = Vec<(SegmentId, Rc<DmaFile>)>;

/// The committer task body; returns when the log is closed (after a final flush, with every
/// round synced) or failed.
pub async fn run(core: Rc<LogCore>) {
    loop {
        let round = loop {
            let listener = core.work.listen();
            {
                let mut state = core.state.borrow_mut();
                if state.failed.is_some() {
                    return;
                }
                if state.syncing.len() < COMMITS_IN_FLIGHT_MAX {
                    if let Some(round) = state.take_round() {
                        break Some(round);
                    }
                }
                if state.closing && state.chunks.is_empty() && state.syncing.is_empty() {
                    break None;
                }
            }
            ensure_spare(&core);
            // Appends, close and every completed round's fdatasyncs notify `work`.
            listener.await;
        };
        let Some(round) = round else { return };
        let last_lsn = round.last_lsn;
        let result = write_round(&core, round).await;
        // The records are readable from their files now; a later round never clears this.
        core.state.borrow_mut().in_flight.clear();
        match result {
            Ok(files) => start_sync(&core, last_lsn, files),
            Err(error) => {
                fail(&core, error);
                return;
            }
        }
        ensure_spare(&core);
    }
}

/// Writes one round's chunks, in order; returns the segment files it wrote.
async fn write_round(core: &Rc<LogCore>, round: Round) -> Result<WrittenFiles, StorageError> {
    let segment_size_bytes = core.segment_size_bytes;
    let mut writes = Vec::with_capacity(round.chunks.len());
    for mut chunk in round.chunks {
        // Check on-disk data twice: re-verify every record before it is submitted.
        verify_chunk_records(&chunk, segment_size_bytes);
        let length = chunk.seal_for_write();
        assert_eq!(chunk.file_offset % 4096, 0, "writes are block aligned");
        assert_eq!(length % 4096, 0, "writes are whole blocks");
        assert!(
            chunk.file_offset + length as u64 <= segment_size_bytes,
            "writes stay in the segment"
        );
        writes.push(InFlight {
            segment: chunk.segment,
            file_offset: chunk.file_offset,
            bytes: Rc::new(chunk.buffer),
        });
    }
    {
        let mut state = core.state.borrow_mut();
        assert!(state.in_flight.is_empty(), "one round is written at a time");
        state.in_flight = writes
            .iter()
            .map(|w| InFlight {
                segment: w.segment,
                file_offset: w.file_offset,
                bytes: w.bytes.clone(),
            })
            .collect();
    }
    let mut written: WrittenFiles = Vec::new();
    // Chunks of one segment can share a block (the later one holds more of it), so they are
    // written one after the other, in order.
    for write in writes {
        let file = segment_file(core, write.segment).await?;
        let path = core.dir.join(segment_file_name(write.segment));
        let length = write.bytes.len();
        if let Some(error) = core
            .faults
            .as_ref()
            .and_then(|f| f.before_write(write.segment, write.file_offset, length))
        {
            return Err(StorageError::io("write segment", path, error));
        }
        let done = file
            .write_rc_at(write.bytes, write.file_offset)
            .await
            .map_err(|source| StorageError::io("write segment", &path, source))?;
        if done != length {
            return Err(StorageError::ShortWrite {
                operation: "write segment",
                path,
                written_bytes: done as u64,
                asked_bytes: length as u64,
            });
        }
        core.stats.borrow_mut().bytes_written += length as u64;
        if !written.iter().any(|(segment, _)| *segment == write.segment) {
            written.push((write.segment, file));
        }
    }
    Ok(written)
}

/// Queues a written round for durability and starts its fdatasyncs in a task of their own.
fn start_sync(core: &Rc<LogCore>, last_lsn: Lsn, files: WrittenFiles) {
    {
        let mut state = core.state.borrow_mut();
        if state.failed.is_some() {
            // An earlier round's fdatasync failed while this one was written.
            return;
        }
        assert!(
            state.syncing.len() < COMMITS_IN_FLIGHT_MAX,
            "the committer takes a round only with room for its fdatasync"
        );
        let previous = state
            .syncing
            .back()
            .map_or(state.durable_lsn, |r| r.last_lsn);
        assert!(last_lsn > previous, "rounds are synced in lsn order");
        state.syncing.push_back(SyncingRound {
            last_lsn,
            synced: false,
        });
    }
    // The task holds no strong reference: dropping the log drops the state it would report to.
    let weak: Weak<LogCore> = Rc::downgrade(core);
    let dir = core.dir.clone();
    let faults = core.faults.clone();
    glommio::spawn_local(async move {
        let result = sync_files(&weak, &dir, faults.as_ref(), files).await;
        if let Some(core) = weak.upgrade() {
            complete_sync(&core, last_lsn, result);
        }
    })
    .detach();
}

/// fdatasyncs every file a round wrote, one after the other.
async fn sync_files(
    core: &Weak<LogCore>,
    dir: &std::path::Path,
    faults: Option<&Rc<dyn FaultInjector>>,
    files: WrittenFiles,
) -> Result<(), StorageError> {
    for (segment, file) in files {
        let path = dir.join(segment_file_name(segment));
        let fault = faults.and_then(|f| f.before_fdatasync(segment));
        if let Some(delay) = faults.and_then(|f| f.delay_fdatasync(segment)) {
            glommio::timer::sleep(delay).await;
        }
        if let Some(error) = fault {
            return Err(StorageError::io("fdatasync segment", path, error));
        }
        file.fdatasync()
            .await
            .map_err(|source| StorageError::io("fdatasync segment", &path, source))?;
        if let Some(core) = core.upgrade() {
            core.stats.borrow_mut().fdatasyncs += 1;
        }
    }
    Ok(())
}

/// Records the outcome of the fdatasyncs of the round ending at `last_lsn`, and reports as
/// durable every round, oldest first, whose fdatasyncs and all earlier rounds' succeeded.
fn complete_sync(core: &Rc<LogCore>, last_lsn: Lsn, result: Result<(), StorageError>) {
    if core.state.borrow().failed.is_some() {
        // Nothing is reported durable once the log failed, even a round that synced.
        return;
    }
    if let Err(error) = result {
        fail(core, error);
        return;
    }
    let (durable, rounds) = {
        let mut state = core.state.borrow_mut();
        let round = state
            .syncing
            .iter_mut()
            .find(|r| r.last_lsn == last_lsn)
            .expect("a syncing round stays queued until reported or failed");
        assert!(!round.synced, "a round is synced once");
        round.synced = true;
        let mut durable = None;
        let mut rounds = 0;
        while state.syncing.front().is_some_and(|r| r.synced) {
            let round = state.syncing.pop_front().expect("front was just checked");
            durable = Some(round.last_lsn);
            rounds += 1;
        }
        (durable, rounds)
    };
    if let Some(durable) = durable {
        advance(core, durable, rounds);
        collect_candidates(core);
    }
    // A slot for another round's fdatasync is free (or close may be waiting for the last one).
    core.work.notify();
}

/// Publishes a new durable LSN, the end of `rounds` rounds, and wakes whoever waits for it.
fn advance(core: &LogCore, last_lsn: Lsn, rounds: u64) {
    {
        let mut state = core.state.borrow_mut();
        assert!(
            last_lsn > state.durable_lsn,
            "the durable lsn only moves forward"
        );
        assert!(
            last_lsn < state.next_lsn,
            "only appended records become durable"
        );
        if let Some(next) = state.syncing.front() {
            assert!(next.last_lsn > last_lsn, "rounds are reported in lsn order");
        }
        state.durable_lsn = last_lsn;
    }
    core.stats.borrow_mut().commits += rounds;
    core.waiters.wake_up_to(last_lsn.0);
    core.durable_changed.notify();
}

/// Makes the log failed: buffered records are dropped, every waiter gets the error.
fn fail(core: &LogCore, error: StorageError) {
    tracing::error!(%error, "log failed; no more records are accepted");
    {
        let mut state = core.state.borrow_mut();
        state.failed = Some(Arc::new(error));
        state.chunks.clear();
        state.buffered_bytes = 0;
        state.syncing.clear();
    }
    core.waiters.wake_all();
    core.durable_changed.notify();
    core.work.notify();
}

/// The open file of `segment`, creating it (or taking the prepared spare) on first use.
async fn segment_file(core: &Rc<LogCore>, segment: SegmentId) -> Result<Rc<DmaFile>, StorageError> {
    loop {
        let entry_file = core
            .segments
            .borrow()
            .entries
            .get(&segment)
            .map(|e| e.file.clone());
        match entry_file {
            Some(Some(file)) => return Ok(file),
            Some(None) => {}
            None => panic!("segment {} being written is in the table", segment.0),
        }
        let listener = core.spare_ready.listen();
        let spare = std::mem::replace(&mut *core.spare.borrow_mut(), Spare::None);
        match spare {
            Spare::Ready(id, file) if id == segment => {
                set_file(core, segment, file.clone());
                return Ok(file);
            }
            Spare::Preparing(id) if id == segment => {
                *core.spare.borrow_mut() = Spare::Preparing(id);
                listener.await;
            }
            other => {
                if let Spare::Ready(id, _) | Spare::Preparing(id) = other {
                    assert!(id > segment, "a spare is prepared for a later segment only");
                    *core.spare.borrow_mut() = other;
                }
                let file = create_zeroed_segment(
                    &core.dir,
                    segment,
                    core.segment_size_bytes,
                    core.faults.as_ref(),
                )
                .await?;
                core.stats.borrow_mut().segments_created += 1;
                set_file(core, segment, file.clone());
                return Ok(file);
            }
        }
    }
}

fn set_file(core: &LogCore, segment: SegmentId, file: Rc<DmaFile>) {
    let mut segments = core.segments.borrow_mut();
    let entry = segments
        .entries
        .get_mut(&segment)
        .expect("segment being written is in the table");
    entry.file = Some(file);
}

/// Starts preparing the file of the segment after the active one, in the background.
fn ensure_spare(core: &Rc<LogCore>) {
    if !matches!(*core.spare.borrow(), Spare::None) {
        return;
    }
    let active = core.state.borrow().active_segment;
    let active_has_file = active == SegmentId(0)
        || core
            .segments
            .borrow()
            .entries
            .get(&active)
            .is_some_and(|e| e.file.is_some());
    if !active_has_file || core.state.borrow().closing {
        return;
    }
    let next = SegmentId(active.0 + 1);
    *core.spare.borrow_mut() = Spare::Preparing(next);
    let weak: Weak<LogCore> = Rc::downgrade(core);
    let dir: PathBuf = core.dir.clone();
    let size = core.segment_size_bytes;
    let faults = core.faults.clone();
    let lock = core.lock.clone();
    glommio::spawn_local(async move {
        let result = create_zeroed_segment(&dir, next, size, faults.as_ref()).await;
        // The directory stays locked until the file is written (see `LogCore::lock`).
        drop(lock);
        let Some(core) = weak.upgrade() else { return };
        let spare = match result {
            Ok(file) => {
                core.stats.borrow_mut().segments_created += 1;
                Spare::Ready(next, file)
            }
            Err(error) => {
                tracing::warn!(%error, segment = next.0, "preparing the next segment failed");
                Spare::Failed
            }
        };
        *core.spare.borrow_mut() = spare;
        core.spare_ready.notify();
    })
    .detach();
}

/// Deletes, in the background, the GC candidates that can be deleted now.
pub fn collect_candidates(core: &Rc<LogCore>) {
    if core.gc_candidates.borrow().is_empty() {
        return;
    }
    let weak = Rc::downgrade(core);
    glommio::spawn_local(async move {
        if let Some(core) = weak.upgrade() {
            if let Err(error) = delete_candidates(&core).await {
                tracing::warn!(%error, "deleting a dead segment failed");
            }
        }
    })
    .detach();
}

/// Deletes the GC candidates that are collectable now; returns how many were deleted.
pub async fn delete_candidates(core: &Rc<LogCore>) -> Result<usize, StorageError> {
    let durable = core.state.borrow().durable_lsn;
    let collectable = core.segments.borrow().collectable(durable);
    let mut removed = Vec::new();
    {
        let mut candidates = core.gc_candidates.borrow_mut();
        let mut segments = core.segments.borrow_mut();
        for segment in collectable {
            if candidates.remove(&segment) {
                if let Some(entry) = segments.entries.remove(&segment) {
                    removed.push(entry);
                }
            }
        }
    }
    let count = removed.len();
    core.deletions_in_progress
        .set(core.deletions_in_progress.get() + count);
    let result = remove_files(core, removed).await;
    core.deletions_in_progress
        .set(core.deletions_in_progress.get() - count);
    core.deletion_done.notify();
    result.map(|()| count)
}

async fn remove_files(
    core: &LogCore,
    removed: Vec<crate::segment::SegmentEntry>,
) -> Result<(), StorageError> {
    let count = removed.len();
    for entry in removed {
        match entry.file {
            Some(file) => file.remove().await,
            None => Ok(()),
        }
        .map_err(|source| StorageError::io("delete segment", &entry.path, source))?;
        core.stats.borrow_mut().segments_deleted += 1;
    }
    if count > 0 {
        sync_directory(&core.dir).await?;
    }
    Ok(())
}
