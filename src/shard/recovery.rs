//! Start-up of a shard's durable state: the data directory lock, then, on each shard, opening
//! its log, replaying it, and putting recovered messages back into their queues before the
//! shard serves anything. Recovered messages are marked redelivered: the log does not record
//! deliveries, so any of them may have been delivered before the restart.

use std::fs::File;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::ids::ShardId;
use crate::shard::persistence::{Persistence, PersistenceError};
use crate::shard::Shard;

/// What one shard found at start-up, reported to the main thread.
#[derive(Debug, Clone)]
pub struct ShardRecovery {
    pub shard: ShardId,
    pub queues: usize,
    pub messages: usize,
    pub records: u64,
    pub torn_tail_bytes: u64,
    pub duration: Duration,
}

/// Holds `data_dir/LOCK` for the life of the process: a second broker on the same directory
/// would corrupt it.
pub struct DataDirLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data directory {path} is in use by another Hare process (it holds {path}/LOCK); stop it or choose another --data-dir")]
    Locked { path: PathBuf },
}

/// Creates and locks the data directory. Start-up only (blocking std calls, before any
/// executor runs).
pub fn lock_data_dir(path: &Path) -> Result<DataDirLock, DataDirError> {
    let io = |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(io)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path.join("LOCK"))
        .map_err(io)?;
    // SAFETY: flock(2) on a descriptor `file` owns; the lock lives as long as `file`.
    let status = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if status != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(DataDirError::Locked {
                path: path.to_path_buf(),
            });
        }
        return Err(io(error));
    }
    Ok(DataDirLock { _file: file })
}

/// The directory of a shard's log.
pub fn shard_log_dir(data_dir: &Path, shard: ShardId) -> PathBuf {
    data_dir.join(format!("shard-{}", shard.0))
}

/// Opens the shard's log and refills its durable queues. The queues' runtimes must already
/// exist (installed from the durable definitions).
pub async fn recover(shard: &Rc<Shard>) -> Result<ShardRecovery, PersistenceError> {
    let dir = shard_log_dir(&shard.config.data_dir, shard.id);
    let faults = shard.config.storage_fault.clone().map(|fault| {
        Rc::new(crate::shard::fault::CountingFault::new(fault))
            as Rc<dyn hare_storage::FaultInjector>
    });
    // A broker killed a moment ago may still have writes to this log in flight: the log waits
    // for them as long as start-up waits for the addresses it held.
    let in_use_wait = shard.config.listen_retry;
    let (persistence, recovered, report) =
        Persistence::open(dir, shard.config.segment_size_bytes, faults, in_use_wait).await?;
    let mut summary = ShardRecovery {
        shard: shard.id,
        queues: 0,
        messages: 0,
        records: report.records,
        torn_tail_bytes: report.torn_tail_bytes,
        duration: report.duration,
    };
    {
        let mut queues = shard.queues.borrow_mut();
        for (id, next) in &recovered.next_ids {
            if let Some(queue) = queues.get_mut(id) {
                queue.skip_ids_below(*next);
            }
        }
        for (id, messages) in recovered.queues {
            match queues.get_mut(&id).filter(|queue| queue.durable) {
                Some(queue) => {
                    summary.queues += 1;
                    summary.messages += messages.len();
                    let deadlines = recovered.deadlines.get(&id).map_or(&[][..], Vec::as_slice);
                    queue.restore(messages, deadlines);
                    crate::shard::timers::schedule(shard, queue);
                    shard.mark_dirty(id);
                }
                // The queue is gone (deleted, or its definition was not durable).
                None => persistence.discard_recovered(messages),
            }
        }
    }
    let persistence = Rc::new(persistence);
    shard.install_persistence(persistence.clone());
    glommio::spawn_local(persistence.run_confirmer(shard.clone())).detach();
    Ok(summary)
}
