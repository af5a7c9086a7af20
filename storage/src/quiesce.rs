//! Before recovery reads a log, wait until no other open file description of any of its
//! segment files exists: then no write of another process can still be in flight on them.
//!
//! Why: a process killed with SIGKILL is reaped before the kernel has torn down its io_uring
//! instances. The O_DIRECT writes it had submitted (commit writes at the tail, zero-filling of
//! a spare segment) stay in flight until they complete, for milliseconds on a busy disk. If
//! the next process scanned the tail first and then wrote new records there, a late write of
//! the dead one could land on records it has already confirmed. The directory lock does not
//! cover this: it is free as soon as the process is reaped. Nor does a free listening port:
//! one ring holds it, and each shard has its own.
//!
//! How: every request in flight holds a reference to its file's open file description, and a
//! write lease (`fcntl(F_SETLEASE, F_WRLCK)`) is granted only when the caller's own
//! description is the only one open for the inode (the kernel compares its writer and reader
//! counts with the caller's). So the lease is taken on each segment file, from a fresh
//! descriptor, and given back at once; a file refused with EAGAIN is tried again with a
//! growing pause until a deadline. The pass is repeated over a fresh listing until one finds
//! every file free, so a file that appeared meanwhile is covered too. A file this process
//! itself still has open (a log dropped without closing, reopened in the same process) is not
//! waited for: the lease cannot tell its descriptors from another's. Leases need the file's
//! owner (or CAP_LEASE), `/proc/sys/fs/leases-enable`, and a filesystem that supports them;
//! without them the wait is skipped (logged once per process) and the directory lock is all
//! that protects the log, as before.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::StorageError;
use crate::segment::list_segment_files;

/// Default of `LogConfig::in_use_wait`: far longer than a killed process's writes stay in
/// flight (milliseconds; some hundreds on a busy disk).
pub const IN_USE_WAIT_DEFAULT: Duration = Duration::from_secs(10);

/// First and longest pause between two passes over the files.
const PAUSE_FIRST: Duration = Duration::from_millis(1);
const PAUSE_MAX: Duration = Duration::from_millis(100);

/// Set once the "leases unavailable" warning was logged: it holds for the whole data directory.
static UNSUPPORTED_LOGGED: AtomicBool = AtomicBool::new(false);

/// What the wait found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InUseWait {
    /// Segment files found open elsewhere on the first pass.
    pub files_in_use: usize,
    /// Time from the first pass to the one that found every file free.
    pub waited: Duration,
    /// Leases are not available here: nothing was checked.
    pub unsupported: bool,
}

/// The answer of one file.
enum Lease {
    /// Granted (and given back): no other open file description exists.
    Free,
    /// EAGAIN: another open file description exists.
    InUse,
    /// Leases cannot be used on this file (EINVAL, EACCES, ...).
    Unsupported(std::io::Error),
}

/// Waits until no other open file description of any segment file of `dir` exists, for at
/// most `limit`; fails with `StorageError::InUse` naming a file still open after it.
pub async fn wait_until_unused(dir: &Path, limit: Duration) -> Result<InUseWait, StorageError> {
    let started = Instant::now();
    let deadline = started + limit;
    let mut pause = PAUSE_FIRST;
    let mut report = InUseWait::default();
    loop {
        let (in_use, first_in_use) = match pass(dir)? {
            Pass::AllFree => break,
            Pass::Unsupported(path, error) => {
                log_unsupported(&path, &error);
                report.unsupported = true;
                return Ok(report);
            }
            Pass::InUse { count, first } => (count, first),
        };
        if report.files_in_use == 0 {
            report.files_in_use = in_use;
            tracing::warn!(
                dir = %dir.display(),
                files = in_use,
                wait_secs = limit.as_secs_f64(),
                "log files are still open in another process (a broker that just stopped may \
                 still have writes to them in flight); waiting before recovery"
            );
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StorageError::InUse {
                path: first_in_use,
                waited: now - started,
            });
        }
        glommio::timer::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(PAUSE_MAX);
    }
    report.waited = started.elapsed();
    if report.files_in_use > 0 {
        tracing::info!(
            dir = %dir.display(),
            waited_ms = report.waited.as_millis() as u64,
            "log files free; recovering"
        );
    }
    Ok(report)
}

/// One pass over the segment files of `dir`.
enum Pass {
    AllFree,
    InUse { count: usize, first: PathBuf },
    Unsupported(PathBuf, std::io::Error),
}

fn pass(dir: &Path) -> Result<Pass, StorageError> {
    let mut count = 0;
    let mut first = None;
    for (_, path) in list_segment_files(dir)? {
        match try_lease(&path)? {
            Some(Lease::Free) | None => {}
            Some(Lease::InUse) => {
                count += 1;
                first.get_or_insert(path);
            }
            Some(Lease::Unsupported(error)) => return Ok(Pass::Unsupported(path, error)),
        }
    }
    Ok(match first {
        None => Pass::AllFree,
        Some(first) => Pass::InUse { count, first },
    })
}

/// Takes and gives back a write lease on `path`; `None` if the file is gone (deleted since
/// the listing: nothing will read it).
fn try_lease(path: &Path) -> Result<Option<Lease>, StorageError> {
    // Read-only: the lease is about other descriptions, and this one must not count as a
    // writer. Blocking std calls: start-up only, before the log accepts work.
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(StorageError::io("open segment to lease", path, source)),
    };
    // SAFETY: fcntl(2) with F_SETLEASE on a descriptor `file` owns, which outlives the call;
    // it touches no memory.
    let status = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_WRLCK) };
    if status != 0 {
        let error = std::io::Error::last_os_error();
        return Ok(Some(match error.raw_os_error() {
            // A descriptor of this very process (a log dropped without closing its files,
            // whose close glommio had not yet run) also refuses the lease, and hides whether
            // another process holds the file too: this process's own I/O is not waited for.
            Some(libc::EAGAIN) if open_in_this_process(&file) => Lease::Free,
            Some(libc::EAGAIN) => Lease::InUse,
            _ => Lease::Unsupported(error),
        }));
    }
    // Given back before anything else opens the file: an open by this process later would
    // otherwise have to break it. Closing `file` would release it too; this is explicit.
    // SAFETY: as above.
    let status = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
    if status != 0 {
        let source = std::io::Error::last_os_error();
        return Err(StorageError::io("release segment lease", path, source));
    }
    Ok(Some(Lease::Free))
}

/// Whether another descriptor of this process refers to the same file as `file`.
fn open_in_this_process(file: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = file.metadata() else {
        return false;
    };
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_own_lease_fd =
            entry.file_name().to_str().and_then(|n| n.parse().ok()) == Some(file.as_raw_fd());
        !is_own_lease_fd
            && std::fs::metadata(entry.path())
                .is_ok_and(|meta| meta.dev() == target.dev() && meta.ino() == target.ino())
    })
}

fn log_unsupported(path: &Path, error: &std::io::Error) {
    if !UNSUPPORTED_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            file = %path.display(),
            %error,
            "file leases are unavailable here (they need the files' owner or CAP_LEASE, \
             fs.leases-enable=1 and a filesystem that supports them): recovery cannot check that \
             a broker that just stopped has no writes to the log still in flight"
        );
    }
}
