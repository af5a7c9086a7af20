//! The metadata shard's writer of durable definitions: every metadata change that touched
//! something durable leaves one entry (`MetadataChange`) in `Shard::metadata_pending`; this
//! task appends everything pending as one batch with one fdatasync (group commit: changes made
//! while a batch is syncing share the next one), then releases the answers waiting for it. A
//! client therefore gets declare-ok, bind-ok or delete-ok only once the change is on disk.
//!
//! When the entries since the last snapshot outgrow `Config::metadata_compaction_bytes` and
//! twice the snapshot, a new snapshot of the metadata shard's registry starts the next
//! generation of the log, so the log stays proportional to the metadata and a change costs
//! O(1) on average. The same rewrite repairs the log after a failed append: the registry holds
//! every change the failed batch carried, so nothing is lost, and answers keep waiting
//! (retried every `RETRY_DELAY`) rather than acknowledge a change a restart would lose. File
//! I/O runs on glommio's blocking thread; collecting a snapshot runs on the shard.

use std::rc::Rc;
use std::time::{Duration, Instant};

use hare_storage::{MetadataLog, MetadataLogError};

use crate::shard::Shard;
use crate::vhost::metadata_record::MetadataSnapshot;

/// Wait before retrying after a failed write.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// One durable change waiting to be appended: its metadata version and its encoded entry.
pub struct PendingChange {
    pub version: u64,
    pub entry: Vec<u8>,
}

/// Runs on the metadata shard for the life of the broker.
pub async fn run_metadata_writer(shard: Rc<Shard>, mut log: MetadataLog) {
    let mut needs_rewrite = false;
    loop {
        if needs_rewrite || compaction_due(&shard, &log) {
            let (back, result) = rewrite(&shard, log).await;
            log = back;
            match result {
                Ok(rewritten) => {
                    needs_rewrite = false;
                    tracing::info!(
                        generation = log.generation(),
                        snapshot_bytes = log.snapshot_size_bytes(),
                        collect_ms = rewritten.collect.as_millis() as u64,
                        write_ms = rewritten.write.as_millis() as u64,
                        "metadata log rewritten"
                    );
                    written(&shard, rewritten.version);
                }
                Err(error) => {
                    // The snapshot took the pending entries it covered: only a successful
                    // rewrite makes them durable now.
                    needs_rewrite = true;
                    tracing::error!(%error, "cannot write the metadata log; retrying");
                    glommio::timer::sleep(RETRY_DELAY).await;
                }
            }
            continue;
        }
        let pending = std::mem::take(&mut *shard.metadata_pending.borrow_mut());
        let Some(version) = pending.last().map(|change| change.version) else {
            shard.definitions_wanted.wait().await;
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

/// A finished rewrite: the version its snapshot covers, and where the time went.
struct Rewritten {
    version: u64,
    /// Collecting and encoding the snapshot, on the shard.
    collect: Duration,
    /// Writing and syncing the new generation, on the blocking thread.
    write: Duration,
}

/// Writes a snapshot of the registry as the log's next generation.
async fn rewrite(
    shard: &Rc<Shard>,
    mut log: MetadataLog,
) -> (MetadataLog, Result<Rewritten, MetadataLogError>) {
    let started = Instant::now();
    let (version, snapshot) = {
        let registry = shard.registry.borrow();
        let shard_count = u16::try_from(shard.shard_count()).expect("shard count fits u16");
        let snapshot =
            MetadataSnapshot::collect(&registry, shard.next_metadata_id.get(), shard_count);
        (registry.version(), snapshot.encode())
    };
    let collect = started.elapsed();
    // Everything pending up to `version` is in the snapshot.
    shard
        .metadata_pending
        .borrow_mut()
        .retain(|change| change.version > version);
    glommio::executor()
        .spawn_blocking(move || {
            let started = Instant::now();
            let result = log.rewrite(&snapshot).map(|()| Rewritten {
                version,
                collect,
                write: started.elapsed(),
            });
            (log, result)
        })
        .await
}

fn written(shard: &Rc<Shard>, version: u64) {
    assert!(
        version >= shard.definitions_written.get(),
        "durable versions are written in order"
    );
    shard.definitions_written.set(version);
    super::metadata::release_answers(shard.as_ref());
}
