//! Helpers shared by the storage integration tests: a fresh directory on a real filesystem per
//! test, a small glommio executor, and a scriptable fault injector.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;

use glommio::{LocalExecutorBuilder, Placement};
use hare_storage::{FaultInjector, Log, LogConfig, Lsn, RecordLocation, SegmentId};

/// Small segments so tests roll quickly.
pub const TEST_SEGMENT_SIZE_BYTES: u64 = 1 << 20;

/// A fresh, empty directory for one test: `$HARE_TEST_DIR/<name>` or, by default, under cargo's
/// per-crate temporary directory in `target/` (a real filesystem: O_DIRECT needs one).
pub fn test_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("HARE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let dir = base.join("hare-storage").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test directory can be created");
    dir
}

/// Runs `future` on a new glommio executor on this thread with a small io_memory (tests run in
/// parallel threads under an 8 MiB memlock limit).
pub fn run<F, T>(future: F) -> T
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .make()
        .expect("executor starts (io_uring available)")
        .run(future)
}

pub fn config(dir: &std::path::Path) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        segment_size_bytes: TEST_SEGMENT_SIZE_BYTES,
        faults: None,
        in_use_wait: hare_storage::IN_USE_WAIT_DEFAULT,
    }
}

/// A record as seen by recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub lsn: Lsn,
    pub kind: u8,
    pub location: RecordLocation,
    pub payload: Vec<u8>,
}

/// Opens the log and collects every recovered record.
pub async fn open_collect(
    config: LogConfig,
) -> Result<(Log, hare_storage::RecoveryReport, Vec<Seen>), hare_storage::StorageError> {
    let mut seen = Vec::new();
    let (log, report) = Log::open(config, |r| {
        seen.push(Seen {
            lsn: r.lsn,
            kind: r.kind,
            location: r.location,
            payload: r.payload.to_vec(),
        })
    })
    .await?;
    Ok((log, report, seen))
}

/// Deterministic payload for record `i`.
pub fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while bytes.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// Path of segment `id` in `dir`.
pub fn segment_path(dir: &std::path::Path, id: u32) -> PathBuf {
    dir.join(hare_storage::segment_file_name(SegmentId(id)))
}

/// Fails the n-th write or fdatasync (0-based count of calls) with a given errno, once armed.
#[derive(Default)]
pub struct ScriptedFaults {
    pub armed: Cell<bool>,
    pub fail_write: Cell<bool>,
    pub fail_fdatasync: Cell<bool>,
    pub errno: Cell<i32>,
    pub log: RefCell<Vec<String>>,
}

impl ScriptedFaults {
    pub fn new(errno: i32) -> Rc<ScriptedFaults> {
        let faults = ScriptedFaults::default();
        faults.errno.set(errno);
        Rc::new(faults)
    }
}

impl FaultInjector for ScriptedFaults {
    fn before_write(&self, segment: SegmentId, offset: u64, len: usize) -> Option<io::Error> {
        self.log
            .borrow_mut()
            .push(format!("write {} {offset} {len}", segment.0));
        (self.armed.get() && self.fail_write.get())
            .then(|| io::Error::from_raw_os_error(self.errno.get()))
    }

    fn before_fdatasync(&self, segment: SegmentId) -> Option<io::Error> {
        self.log
            .borrow_mut()
            .push(format!("fdatasync {}", segment.0));
        (self.armed.get() && self.fail_fdatasync.get())
            .then(|| io::Error::from_raw_os_error(self.errno.get()))
    }
}

/// Waits until `condition` holds, checking every millisecond; panics after `timeout`.
pub async fn eventually(timeout: std::time::Duration, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
}
