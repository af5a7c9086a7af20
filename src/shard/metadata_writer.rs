//! The metadata shard's writer of durable definitions: every metadata change that touched
//! something durable leaves one entry (`MetadataChange`) in `Shard::metadata_pending`; this
//! task appends everything pending as one batch with one fdatasync (group commit: changes made
//! while a batch is syncing share the next one), then releases the answers waiting for it. A
//! client therefore gets declare-ok, bind-ok or delete-ok only once the change is on disk.
//!
//! Compaction keeps the log proportional to the metadata: when the entries after the snapshot
//! reach twice the snapshot and `Config::metadata_compaction_bytes`, a thread of its own reads
//! the synced log back, replays it (the same code as start-up, so every compaction also checks
//! the log) and encodes one snapshot, while this task goes on appending; the new generation
//! then starts with that snapshot and carries over what was appended meanwhile. So a change
//! costs O(1) on average and the shard never stops for a snapshot.
//!
//! A failed append leaves the file's tail unknown. The repair is a rewrite from the registry
//! (collected on the shard, O(n), rare): it holds every change the failed batch carried, so
//! nothing is lost, and answers keep waiting (retried every `RETRY_DELAY`) rather than
//! acknowledge a change a restart would lose. File I/O runs on glommio's blocking thread.

use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hare_storage::{CompactionSource, MetadataLog, MetadataLogError};

use crate::shard::metadata_recovery::{replay, MetadataRecoveryError};
use crate::shard::Shard;
use crate::vhost::metadata_record::MetadataSnapshot;

/// Wait before retrying after a failed write.
const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How often the writer looks whether a running compaction finished, when nothing else wakes
/// it.
const COMPACTION_POLL: Duration = Duration::from_millis(10);

/// One durable change waiting to be appended: its metadata version and its encoded entry.
pub struct PendingChange {
    pub version: u64,
    pub entry: Vec<u8>,
}

/// A compaction running on its own thread.
struct Compaction {
    source: CompactionSource,
    started: Instant,
    thread: JoinHandle<Result<Vec<u8>, MetadataRecoveryError>>,
}

/// Runs on the metadata shard for the life of the broker.
pub async fn run_metadata_writer(shard: Rc<Shard>, mut log: MetadataLog) {
    let mut needs_rewrite = false;
    let mut compaction: Option<Compaction> = None;
    loop {
        if needs_rewrite {
            // A rewrite makes a new generation: a compaction of the old one no longer fits.
            compaction = None;
            let (back, rewritten) = rewrite(&shard, log).await;
            log = back;
            needs_rewrite = !rewritten;
            if !rewritten {
                glommio::timer::sleep(RETRY_DELAY).await;
            }
            continue;
        }
        if compaction
            .as_ref()
            .is_some_and(|running| running.thread.is_finished())
        {
            let finished = compaction.take().expect("checked above");
            let (back, installed) = install(log, finished).await;
            log = back;
            needs_rewrite = !installed;
            continue;
        }
        if compaction.is_none() && compaction_due(&shard, &log) {
            compaction = start_compaction(&log);
            // No thread for it (the process is out of threads): snapshot from memory instead.
            needs_rewrite = compaction.is_none();
            if needs_rewrite {
                continue;
            }
        }
        let pending = std::mem::take(&mut *shard.metadata_pending.borrow_mut());
        let Some(version) = pending.last().map(|change| change.version) else {
            if compaction.is_some() {
                futures_lite::future::or(
                    shard.definitions_wanted.wait(),
                    glommio::timer::sleep(COMPACTION_POLL),
                )
                .await;
            } else {
                shard.definitions_wanted.wait().await;
            }
            continue;
        };
        let (back, result) = glommio::executor()
            .spawn_blocking(move || {
                let entries: Vec<&[u8]> = pending.iter().map(|change| &change.entry[..]).collect();
                let result = log.append(&entries);
                (log, result)
            })
            .await;
        log = back;
        match result {
            Ok(()) => written(&shard, version),
            Err(error) => {
                tracing::error!(%error, "cannot append to the metadata log; rewriting it");
                needs_rewrite = true;
            }
        }
    }
}

/// True once the entries after the snapshot are worth a new snapshot.
fn compaction_due(shard: &Shard, log: &MetadataLog) -> bool {
    let threshold = shard
        .config
        .metadata_compaction_bytes
        .max(2 * log.snapshot_size_bytes());
    log.bytes_since_snapshot() >= threshold
}

/// Reads the log's synced prefix back and replays it into one snapshot, on a thread of its
/// own (a replay of millions of objects takes seconds; the shard must not wait for it).
fn start_compaction(log: &MetadataLog) -> Option<Compaction> {
    let source = log.compaction_source();
    let reading = source.clone();
    let thread = std::thread::Builder::new()
        .name("hare-metadata-compaction".into())
        .spawn(move || {
            let recovered = reading.read()?;
            let (snapshot, _) = replay(&recovered, reading.path())?;
            Ok(snapshot.encode())
        })
        .inspect_err(|error| tracing::error!(%error, "cannot start a metadata log compaction"))
        .ok()?;
    Some(Compaction {
        source,
        started: Instant::now(),
        thread,
    })
}

/// Starts the next generation with a finished compaction's snapshot. Returns false if the log
/// must be rewritten from the registry instead (the compaction or its installation failed).
async fn install(mut log: MetadataLog, compaction: Compaction) -> (MetadataLog, bool) {
    let snapshot = match compaction.thread.join() {
        Ok(Ok(snapshot)) => snapshot,
        Ok(Err(error)) => {
            tracing::error!(%error, "metadata log compaction failed; rewriting from memory");
            return (log, false);
        }
        Err(_) => {
            tracing::error!("metadata log compaction panicked; rewriting from memory");
            return (log, false);
        }
    };
    let replay_ms = compaction.started.elapsed().as_millis() as u64;
    let source = compaction.source;
    let (log, result) = glommio::executor()
        .spawn_blocking(move || {
            let result = log.install_compacted(&source, &snapshot);
            (log, result)
        })
        .await;
    match result {
        Ok(installed) => {
            tracing::info!(
                generation = log.generation(),
                installed,
                snapshot_bytes = log.snapshot_size_bytes(),
                replay_ms,
                "metadata log compacted"
            );
            (log, true)
        }
        Err(error) => {
            tracing::error!(%error, "cannot install a compacted metadata log; rewriting it");
            (log, false)
        }
    }
}

/// Writes a snapshot of the registry as the log's next generation; true once it is durable.
async fn rewrite(shard: &Rc<Shard>, mut log: MetadataLog) -> (MetadataLog, bool) {
    let started = Instant::now();
    let (version, snapshot) = {
        let registry = shard.registry.borrow();
        let shard_count = u16::try_from(shard.shard_count()).expect("shard count fits u16");
        let snapshot =
            MetadataSnapshot::collect(&registry, shard.next_metadata_id.get(), shard_count);
        (registry.version(), snapshot.encode())
    };
    let collect_ms = started.elapsed().as_millis() as u64;
    // Everything pending up to `version` is in the snapshot; if the write fails, the next
    // rewrite's snapshot will hold it.
    shard
        .metadata_pending
        .borrow_mut()
        .retain(|change| change.version > version);
    let (log, result): (MetadataLog, Result<(), MetadataLogError>) = glommio::executor()
        .spawn_blocking(move || {
            let result = log.rewrite(&snapshot);
            (log, result)
        })
        .await;
    match result {
        Ok(()) => {
            tracing::info!(
                generation = log.generation(),
                snapshot_bytes = log.snapshot_size_bytes(),
                collect_ms,
                "metadata log rewritten from memory"
            );
            written(shard, version);
            (log, true)
        }
        Err(error) => {
            tracing::error!(%error, "cannot write the metadata log; retrying");
            (log, false)
        }
    }
}

fn written(shard: &Rc<Shard>, version: u64) {
    assert!(
        version >= shard.definitions_written.get(),
        "durable versions are written in order"
    );
    shard.definitions_written.set(version);
    super::metadata::release_answers(shard.as_ref());
}
