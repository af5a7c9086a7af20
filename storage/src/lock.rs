//! The directory lock: `dir/LOCK`, held with `flock(LOCK_EX | LOCK_NB)` for the life of a `Log`.
//!
//! flock locks belong to the open file description, so a second open in the same process fails
//! just like one from another process. The file is also written non-empty on purpose: glommio
//! 0.9 probes io_uring polling support with a read of the first DMA file an executor opens, and
//! an empty file makes that probe succeed wrongly (later O_DIRECT reads fail with EOPNOTSUPP).
//! `Log::open` opens this file with O_DIRECT first.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::StorageError;

/// Name of the lock file inside the log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";
/// The lock file is padded to this size so the O_DIRECT probe read finds data.
const LOCK_FILE_SIZE_BYTES: usize = 4096;

/// A held directory lock; released when dropped (the descriptor closes).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock on `dir/LOCK`, creating the file. Blocking `std::fs` calls: this runs once,
    /// at start-up, before the log accepts any work.
    pub fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(LOCK_FILE_NAME);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StorageError::io("open lock file", &path, source))?;
        // SAFETY: flock takes a valid descriptor owned by `file`, which outlives the call;
        // it does not touch memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let error = std::io::Error::last_os_error();
            if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Err(StorageError::Locked { path });
            }
            return Err(StorageError::io("flock lock file", &path, error));
        }
        let mut contents = format!("hare-storage lock, pid {}\n", std::process::id()).into_bytes();
        contents.resize(LOCK_FILE_SIZE_BYTES, b' ');
        if let Some(last) = contents.last_mut() {
            *last = b'\n';
        }
        file.set_len(0)
            .and_then(|()| file.write_all(&contents))
            .map_err(|source| StorageError::io("write lock file", &path, source))?;
        Ok(DirLock { _file: file, path })
    }

    /// Path of the lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
