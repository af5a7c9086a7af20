//! Reading records back one by one: a damaged record fails alone (`Log::read_each`), and a
//! `SegmentReader` taken from a log keeps reading its records after the log is gone.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::FileExt;

use common::*;
use hare_storage::{Lsn, StorageError};

#[test]
fn read_each_returns_the_good_records_around_a_damaged_one() {
    let dir = test_dir("read_each_damaged");
    let dir_for_log = dir.clone();
    run(async move {
        let (log, _, _) = open_collect(config(&dir_for_log)).await.unwrap();
        let mut locations = Vec::new();
        for i in 0..32u64 {
            locations.push(log.append(0, &payload(i, 700)).unwrap().1);
        }
        log.wait_durable(Lsn(32)).await.unwrap();
        // Flip a payload byte of record 13 on disk (behind the log's back).
        let damaged = locations[13];
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(segment_path(&dir, damaged.segment.0))
            .unwrap();
        file.write_all_at(b"\x00\x01\x02", u64::from(damaged.offset) + 40)
            .unwrap();
        file.sync_all().unwrap();
        let before = log.stats().read_ios;
        let results = log.read_each(&locations).await;
        assert_eq!(log.stats().read_ios - before, 1, "still one coalesced read");
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(bytes) => assert_eq!(bytes, &payload(i as u64, 700), "record {i}"),
                Err(StorageError::Corrupt { offset, .. }) => {
                    assert_eq!(i, 13);
                    assert_eq!(*offset, u64::from(damaged.offset));
                }
                Err(other) => panic!("record {i}: {other}"),
            }
        }
        assert!(results[13].is_err());
        assert!(
            log.read_many(&locations).await.is_err(),
            "read_many fails as a whole"
        );
        log.close().await.unwrap();
    });
}

#[test]
fn a_segment_reader_reads_after_the_log_is_dropped_and_reopened() {
    let dir = test_dir("segment_reader");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let mut locations = Vec::new();
        for i in 0..2_000u64 {
            locations.push(log.append(1, &payload(i, 1_200)).unwrap().1);
        }
        log.wait_durable(Lsn(2_000)).await.unwrap();
        assert!(locations.last().unwrap().segment.0 >= 2, "several segments");
        let reader = log.segment_reader();
        drop(log);
        // Once the dropped log's tasks are gone (the broker waits a second before reopening
        // a failed log), the directory is free: the log opens again while the reader is in use.
        glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
        let (reopened, _, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(seen.len(), 2_000);
        let results = reader.read_each(&locations).await;
        for (i, result) in results.into_iter().enumerate() {
            assert_eq!(result.unwrap(), payload(i as u64, 1_200), "record {i}");
        }
        reopened.close().await.unwrap();
    });
}
