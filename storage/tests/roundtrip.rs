//! Append, group commit, read back and reopen.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use hare_storage::{InvalidConfigReason, Log, Lsn, SegmentId, StorageError};

#[test]
fn append_commit_reopen_returns_records_in_order() {
    let dir = test_dir("append_commit_reopen");
    let expected = run({
        let dir = dir.clone();
        async move {
            let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
            assert_eq!(report.records, 0);
            assert_eq!(report.last_lsn, Lsn(0));
            assert!(seen.is_empty());
            let mut expected = Vec::new();
            for i in 0..500u64 {
                let body = payload(i, (i as usize * 37) % 3000);
                let kind = (i % 7) as u8;
                let (lsn, location) = log.append(kind, &body).unwrap();
                assert_eq!(lsn, Lsn(i + 1));
                assert_eq!(location.offset % 8, 0);
                expected.push(Seen {
                    lsn,
                    kind,
                    location,
                    payload: body,
                });
                log.check_invariants();
            }
            log.wait_durable(Lsn(500)).await.unwrap();
            assert_eq!(log.durable_lsn(), Lsn(500));
            log.check_invariants();
            for record in &expected {
                assert_eq!(log.read(record.location).await.unwrap(), record.payload);
            }
            log.close().await.unwrap();
            expected
        }
    });
    let (seen, report) = run(async move {
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        // Appends after reopen continue the LSN sequence.
        let (lsn, _) = log.append(1, b"after").unwrap();
        assert_eq!(lsn, Lsn(501));
        log.wait_durable(lsn).await.unwrap();
        log.close().await.unwrap();
        (seen, report)
    });
    assert_eq!(report.records, 500);
    assert_eq!(report.last_lsn, Lsn(500));
    assert_eq!(report.torn_tail_bytes, 0);
    assert_eq!(seen, expected);
}

#[test]
fn append_parts_equals_append() {
    let dir = test_dir("append_parts");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let (_, a) = log.append(3, b"header+body").unwrap();
        let (_, b) = log.append_parts(3, &[b"header", b"+", b"body"]).unwrap();
        let (_, c) = log.append_parts(4, &[]).unwrap();
        // Readable from the write buffer before and from disk after the commit.
        assert_eq!(log.read(b).await.unwrap(), &b"header+body"[..]);
        log.wait_durable(Lsn(3)).await.unwrap();
        assert_eq!(log.read(a).await.unwrap(), log.read(b).await.unwrap());
        assert_eq!(log.read(c).await.unwrap().len(), 0);
        log.close().await.unwrap();
        let (_, _, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(seen[0].payload, seen[1].payload);
        assert_eq!(seen[2].kind, 4);
    });
}

#[test]
fn read_many_coalesces_adjacent_records_and_keeps_input_order() {
    let dir = test_dir("read_many");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let mut locations = Vec::new();
        for i in 0..64u64 {
            locations.push(log.append(0, &payload(i, 500)).unwrap().1);
        }
        log.wait_durable(Lsn(64)).await.unwrap();
        let before = log.stats().read_ios;
        let mut shuffled: Vec<usize> = (0..64).collect();
        fastrand::Rng::with_seed(3).shuffle(&mut shuffled);
        let asked: Vec<_> = shuffled.iter().map(|&i| locations[i]).collect();
        let payloads = log.read_many(&asked).await.unwrap();
        for (k, &i) in shuffled.iter().enumerate() {
            assert_eq!(payloads[k], payload(i as u64, 500));
        }
        // 64 records of ~520 bytes are ~33 KiB apart at most: one read.
        assert_eq!(log.stats().read_ios - before, 1);
        log.close().await.unwrap();
    });
}

#[test]
fn records_are_placed_without_spanning_segments_and_too_large_is_refused() {
    let dir = test_dir("roll_and_too_large");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let big = vec![7u8; 300_000];
        let mut locations = Vec::new();
        for _ in 0..10 {
            let (_, location) = log.append(1, &big).unwrap();
            assert!(u64::from(location.offset) + 300_020 <= TEST_SEGMENT_SIZE_BYTES);
            locations.push(location);
        }
        // Three 300 KB records fit in a 1 MiB segment (after the 4 KiB header block).
        assert_eq!(locations[3].segment, SegmentId(2));
        assert_eq!(locations[3].offset, 4096);
        let error = log
            .append(1, &vec![0u8; TEST_SEGMENT_SIZE_BYTES as usize])
            .unwrap_err();
        assert!(
            matches!(error, StorageError::RecordTooLarge { .. }),
            "{error}"
        );
        log.wait_durable(Lsn(10)).await.unwrap();
        let read = log.read_many(&locations).await.unwrap();
        assert!(read.iter().all(|p| p[..] == big[..]));
        log.check_invariants();
        log.close().await.unwrap();
        let (_, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(report.records, 10);
        assert_eq!(report.segments_scanned, 4);
        assert_eq!(
            seen.iter().map(|s| s.location).collect::<Vec<_>>(),
            locations
        );
    });
}

#[test]
fn second_open_of_the_same_directory_is_locked() {
    let dir = test_dir("lock");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let error = Log::open(config(&dir), |_| {})
            .await
            .err()
            .expect("second open fails");
        assert!(matches!(error, StorageError::Locked { .. }), "{error}");
        assert!(error.to_string().contains("LOCK"), "{error}");
        log.close().await.unwrap();
        // Released on close.
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_segment_size_is_refused() {
    let dir = test_dir("invalid_config");
    run(async move {
        let mut config = config(&dir);
        config.segment_size_bytes = 5000;
        let error = Log::open(config, |_| {}).await.err().unwrap();
        assert!(
            matches!(
                error,
                StorageError::InvalidConfig {
                    reason: InvalidConfigReason::SegmentSizeNotBlockMultiple
                }
            ),
            "{error}"
        );
    });
}
