//! Before recovery, `Log::open` waits until no other open file description of a segment file
//! exists (the writes a killed broker left in flight each hold one), and fails with `InUse`
//! once `in_use_wait` has passed. A `sleep` process holding a descriptor stands for the dead
//! broker's ring: the kernel does not tell them apart.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use hare_storage::{LogConfig, StorageError};

const RECORD_COUNT: u64 = 200;
const PAYLOAD_BYTES: usize = 9_000;

/// Writes `RECORD_COUNT` records (two segments) and closes the log.
fn populate(dir: &Path) {
    let dir = dir.to_path_buf();
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        for i in 0..RECORD_COUNT {
            log.append(2, &payload(i, PAYLOAD_BYTES)).unwrap();
        }
        log.close().await.unwrap();
    });
}

/// Another process holding the last segment open for writing, the way a broker opens it,
/// for `seconds`. (A descriptor of this process would not do: the log does not wait for its
/// own process's descriptors.)
fn hold_last_segment(dir: &Path, seconds: &str) -> Child {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(dir, 2))
        .unwrap();
    let mut command = Command::new("sleep");
    command.arg(seconds).stdin(Stdio::from(file));
    let child = command.spawn().unwrap();
    // The command keeps this process's copy of the descriptor until it is dropped.
    drop(command);
    child
}

#[test]
fn a_segment_file_another_process_holds_fails_the_open_once_the_wait_is_over() {
    let dir = test_dir("in_use_fails");
    populate(&dir);
    let mut held = hold_last_segment(&dir, "30");
    let short_wait = LogConfig {
        in_use_wait: Duration::from_millis(200),
        ..config(&dir)
    };
    let result = run(async move { open_collect(short_wait).await.map(|(_, report, _)| report) });
    held.kill().unwrap();
    held.wait().unwrap();
    match result {
        Err(StorageError::InUse { path, waited }) => {
            assert_eq!(path, segment_path(&dir, 2));
            assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
        }
        Ok(report) if report.in_use.unsupported => {
            eprintln!("file leases are unavailable on this filesystem; nothing to check");
            return;
        }
        other => panic!("expected InUse, got {other:?}"),
    }

    // Closed, the file is free: the log opens and recovers every record.
    let (_, report, seen) = run(open_collect(config(&dir))).unwrap();
    assert_eq!(seen.len() as u64, RECORD_COUNT);
    assert_eq!(report.in_use.files_in_use, 0);
}

#[test]
fn the_open_waits_for_the_other_process_to_close_the_file_then_recovers() {
    let dir = test_dir("in_use_waits");
    populate(&dir);
    let mut held = hold_last_segment(&dir, "0.05");
    let (_, report, seen) = run(open_collect(config(&dir))).unwrap();
    held.wait().unwrap();
    if report.in_use.unsupported {
        eprintln!("file leases are unavailable on this filesystem; nothing to check");
        return;
    }
    assert_eq!(report.in_use.files_in_use, 1);
    assert_eq!(seen.len() as u64, RECORD_COUNT);
}

#[test]
fn a_zero_wait_checks_once() {
    let dir = test_dir("in_use_zero");
    populate(&dir);
    let no_wait = LogConfig {
        in_use_wait: Duration::ZERO,
        ..config(&dir)
    };
    let (_, report, seen) = run(open_collect(no_wait)).unwrap();
    assert_eq!(seen.len() as u64, RECORD_COUNT);
    assert_eq!(report.in_use.files_in_use, 0);
}
