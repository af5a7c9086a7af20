//! Recovery: torn tails are cut (and the log continues after the last good record), damage in
//! older segments is reported as corruption, stray files are handled.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;
use hare_storage::{CorruptReason, Lsn, SegmentId, StorageError};

const RECORD_COUNT: u64 = 300;
const PAYLOAD_BYTES: usize = 9_000;

/// Writes `RECORD_COUNT` records (about 2.6 MiB: three segments) and returns what was written.
fn populate(dir: &Path) -> Vec<Seen> {
    let dir = dir.to_path_buf();
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let mut written = Vec::new();
        for i in 0..RECORD_COUNT {
            let body = payload(i, PAYLOAD_BYTES - (i as usize % 50));
            let (lsn, location) = log.append(2, &body).unwrap();
            written.push(Seen {
                lsn,
                kind: 2,
                location,
                payload: body,
            });
        }
        log.close().await.unwrap();
        assert!(written.last().unwrap().location.segment >= SegmentId(3));
        written
    })
}

fn patch(dir: &Path, segment: SegmentId, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(dir, segment.0))
        .unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Reopens after damage to the tail; checks that exactly `kept` records come back, that the
/// log continues right after them, and that the continuation survives another reopen.
fn assert_recovers(dir: &Path, written: &[Seen], kept: usize) -> hare_storage::RecoveryReport {
    let dir = dir.to_path_buf();
    let written = written.to_vec();
    run(async move {
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(seen, written[..kept].to_vec());
        assert_eq!(report.last_lsn, Lsn(kept as u64));
        let (lsn, location) = log.append(9, b"after the tear").unwrap();
        assert_eq!(lsn, Lsn(kept as u64 + 1));
        let last = &written[kept - 1].location;
        if location.segment == last.segment {
            assert_eq!(
                u64::from(location.offset),
                u64::from(last.offset) + (20 + u64::from(last.length)).next_multiple_of(8)
            );
        }
        log.wait_durable(lsn).await.unwrap();
        log.check_invariants();
        log.close().await.unwrap();
        let (log, again, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(
            again.torn_tail_bytes, 0,
            "the tail was zeroed by the first recovery"
        );
        assert_eq!(seen.len(), kept + 1);
        assert_eq!(seen[..kept], written[..kept]);
        assert_eq!(seen[kept].payload, b"after the tear");
        assert_eq!(seen[kept].location, location);
        log.close().await.unwrap();
        report
    })
}

#[test]
fn truncated_in_the_middle_of_the_last_record() {
    let dir = test_dir("torn_truncated");
    let written = populate(&dir);
    let last = written.last().unwrap().location;
    let file = OpenOptions::new()
        .write(true)
        .open(segment_path(&dir, last.segment.0))
        .unwrap();
    file.set_len(u64::from(last.offset) + 100).unwrap();
    drop(file);
    let report = assert_recovers(&dir, &written, written.len() - 1);
    assert!(report.torn_tail_bytes > 0);
    let size = std::fs::metadata(segment_path(&dir, last.segment.0))
        .unwrap()
        .len();
    assert_eq!(
        size, TEST_SEGMENT_SIZE_BYTES,
        "the truncated segment is restored to full size"
    );
}

#[test]
fn partially_zeroed_last_record() {
    let dir = test_dir("torn_zeroed");
    let written = populate(&dir);
    let last = written.last().unwrap().location;
    patch(
        &dir,
        last.segment,
        u64::from(last.offset) + 4000,
        &[0u8; 3000],
    );
    assert_recovers(&dir, &written, written.len() - 1);
}

#[test]
fn random_garbage_after_the_last_record() {
    let dir = test_dir("torn_garbage_after");
    let written = populate(&dir);
    let last = written.last().unwrap().location;
    let end = (u64::from(last.offset) + 20 + u64::from(last.length)).next_multiple_of(8);
    let mut rng = fastrand::Rng::with_seed(11);
    let garbage: Vec<u8> = (0..777).map(|_| rng.u8(1..)).collect();
    patch(&dir, last.segment, end, &garbage);
    let report = assert_recovers(&dir, &written, written.len());
    assert_eq!(report.torn_tail_bytes, 777);
}

#[test]
fn bit_flip_in_the_last_record_of_the_last_segment_is_a_torn_tail() {
    let dir = test_dir("torn_bit_flip_last");
    let written = populate(&dir);
    let last = written.last().unwrap().location;
    patch(&dir, last.segment, u64::from(last.offset) + 500, &[0x5A]);
    assert_recovers(&dir, &written, written.len() - 1);
}

#[test]
fn bit_flip_in_an_older_segment_is_corruption() {
    let dir = test_dir("corrupt_older");
    let written = populate(&dir);
    let victim = written
        .iter()
        .find(|s| s.location.segment == SegmentId(2))
        .unwrap()
        .location;
    let offset = u64::from(victim.offset) + 30;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment_path(&dir, 2))
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, offset).unwrap();
    file.write_all_at(&[byte[0] ^ 0x01], offset).unwrap();
    drop(file);
    run(async move {
        let error = open_collect(config(&dir)).await.err().expect("open fails");
        match error {
            StorageError::Corrupt {
                segment,
                offset,
                reason,
            } => {
                assert_eq!(segment, SegmentId(2));
                assert_eq!(offset, u64::from(victim.offset));
                assert_eq!(reason, CorruptReason::RecordChecksum);
            }
            other => panic!("expected Corrupt, got {other}"),
        }
    });
}

#[test]
fn garbage_older_segment_is_corruption() {
    let dir = test_dir("corrupt_garbage_segment");
    populate(&dir);
    let mut rng = fastrand::Rng::with_seed(5);
    let garbage: Vec<u8> = (0..TEST_SEGMENT_SIZE_BYTES).map(|_| rng.u8(..)).collect();
    std::fs::write(segment_path(&dir, 1), &garbage).unwrap();
    run(async move {
        let error = open_collect(config(&dir)).await.err().expect("open fails");
        assert!(
            matches!(
                error,
                StorageError::Corrupt {
                    segment: SegmentId(1),
                    offset: 0,
                    reason: CorruptReason::BadMagic
                }
            ),
            "{error}"
        );
    });
}

#[test]
fn wrong_magic_in_an_older_segment_is_corruption() {
    let dir = test_dir("corrupt_magic");
    populate(&dir);
    patch(&dir, SegmentId(2), 0, b"NOTHARE!");
    run(async move {
        let error = open_collect(config(&dir)).await.err().expect("open fails");
        assert!(
            matches!(
                error,
                StorageError::Corrupt {
                    segment: SegmentId(2),
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("segment 2"), "{error}");
    });
}

#[test]
fn garbage_tail_segment_is_a_torn_tail_and_stray_files_are_ignored() {
    let dir = test_dir("torn_garbage_segment");
    let written = populate(&dir);
    let next = written.last().unwrap().location.segment.0 + 1;
    let mut rng = fastrand::Rng::with_seed(9);
    let garbage: Vec<u8> = (0..10_000).map(|_| rng.u8(..)).collect();
    std::fs::write(segment_path(&dir, next), &garbage).unwrap();
    std::fs::write(dir.join("notes.txt"), b"not a segment").unwrap();
    assert_recovers(&dir, &written, written.len());
    assert!(
        dir.join("notes.txt").exists(),
        "unknown files are left alone"
    );
}

#[test]
fn damaged_header_of_a_tail_segment_with_records_is_corruption() {
    let dir = test_dir("corrupt_tail_header");
    let written = populate(&dir);
    let last = written.last().unwrap().location.segment;
    patch(&dir, last, 20, &[0xFF]);
    run(async move {
        let error = open_collect(config(&dir)).await.err().expect("open fails");
        assert!(
            matches!(
                error,
                StorageError::Corrupt {
                    reason: CorruptReason::HeaderChecksum,
                    ..
                }
            ),
            "{error}"
        );
    });
}

#[test]
fn torn_first_record_of_a_fresh_log() {
    let dir = test_dir("torn_first_record");
    let written = populate(&dir);
    // Keep only segment 1 and tear its very first record.
    for segment in 2..=written.last().unwrap().location.segment.0 {
        std::fs::remove_file(segment_path(&dir, segment)).unwrap();
    }
    patch(&dir, SegmentId(1), 4096 + 8, &[0xEE; 4]);
    run(async move {
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert!(seen.is_empty());
        assert_eq!(report.last_lsn, Lsn(0));
        let (lsn, location) = log.append(1, b"first").unwrap();
        assert_eq!(lsn, Lsn(1));
        assert_eq!(location.segment, SegmentId(1));
        assert_eq!(location.offset, 4096);
        log.close().await.unwrap();
        let (_, _, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(seen.len(), 1);
    });
}

/// Recovery reads a segment in windows of 1 MiB with reads in flight ahead: records that
/// straddle two windows, and records larger than a window or two, come back whole and in
/// order, and damage found in a later window is still a torn tail cut at the right record.
#[test]
fn records_straddling_reads_and_larger_than_reads_are_recovered_and_cut_where_damaged() {
    const SEGMENT_SIZE_BYTES: u64 = 16 << 20;
    let dir = test_dir("recovery_windows");
    let config = hare_storage::LogConfig {
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        ..config(&dir)
    };
    let written = {
        let config = config.clone();
        run(async move {
            let (log, _, _) = open_collect(config).await.unwrap();
            let mut rng = fastrand::Rng::with_seed(7);
            let mut written = Vec::new();
            for i in 0..400u64 {
                let len = match i {
                    100 => 1_500_000,
                    200 => 2_600_000,
                    _ => rng.usize(1..40_000),
                };
                let body = payload(i, len);
                let (lsn, location) = log.append(3, &body).unwrap();
                written.push(Seen {
                    lsn,
                    kind: 3,
                    location,
                    payload: body,
                });
                if log.buffered_bytes() > hare_storage::WRITE_BUFFER_BYTES_MAX / 2 {
                    log.wait_durable(lsn).await.unwrap();
                }
            }
            log.close().await.unwrap();
            written
        })
    };
    assert!(
        written
            .iter()
            .all(|w| w.location.segment == written[0].location.segment),
        "one segment, so damage anywhere in it is a torn tail"
    );
    {
        let (config, written) = (config.clone(), written.clone());
        run(async move {
            let (log, report, seen) = open_collect(config).await.unwrap();
            assert_eq!(seen, written);
            assert_eq!(report.torn_tail_bytes, 0);
            log.close().await.unwrap();
        });
    }
    // Damage a record about 9 MiB in: several windows after the first.
    let damaged = written
        .iter()
        .position(|w| u64::from(w.location.offset) > 9 << 20)
        .unwrap();
    let location = written[damaged].location;
    patch(
        &dir,
        location.segment,
        u64::from(location.offset) + 30,
        b"\xff\xfe",
    );
    run(async move {
        let (log, report, seen) = open_collect(config).await.unwrap();
        assert_eq!(seen, written[..damaged].to_vec());
        assert!(report.torn_tail_bytes > 0);
        log.close().await.unwrap();
    });
}
