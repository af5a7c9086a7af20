//! Segment garbage collection: released segments are deleted, the active one never is.

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use hare_storage::{InvalidLocationReason, Lsn, SegmentId, StorageError};

#[test]
fn released_segments_are_deleted_and_the_active_one_is_kept() {
    let dir = test_dir("gc");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let mut per_segment: BTreeMap<SegmentId, u64> = BTreeMap::new();
        let mut locations = Vec::new();
        for i in 0..2_000u64 {
            let (_, location) = log.append(0, &payload(i, 2_000)).unwrap();
            log.add_live(location.segment, 1);
            *per_segment.entry(location.segment).or_default() += 1;
            locations.push(location);
        }
        log.wait_durable(Lsn(2_000)).await.unwrap();
        let active = *per_segment.keys().last().unwrap();
        assert!(active >= SegmentId(4), "several segments exist");
        let written: Vec<SegmentId> = per_segment.keys().copied().collect();
        assert_eq!(log.segment_ids(), written);
        let disk_before = segment_files_size_bytes(&dir);
        for (&segment, &count) in &per_segment {
            log.release(segment, count);
        }
        // Deletion runs in the background; this waits for whatever is still pending.
        log.collect_garbage().await.unwrap();
        for &segment in per_segment.keys() {
            assert_eq!(
                segment_path(&dir, segment.0).exists(),
                segment == active,
                "segment {segment:?}"
            );
        }
        assert_eq!(log.segment_ids(), vec![active]);
        assert!(segment_files_size_bytes(&dir) < disk_before);
        assert!(log.stats().segments_deleted >= per_segment.len() as u64 - 1);
        log.check_invariants();
        // The log goes on; a read of a deleted segment is a clear error.
        let error = log.read(locations[0]).await.unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::InvalidLocation {
                    reason: InvalidLocationReason::SegmentMissing,
                    ..
                }
            ),
            "{error}"
        );
        assert!(error.to_string().contains("deleted"), "{error}");
        let (lsn, _) = log.append(0, b"after gc").unwrap();
        log.wait_durable(lsn).await.unwrap();
        log.close().await.unwrap();
        let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
        assert_eq!(report.segments_scanned, 1);
        assert_eq!(seen.last().unwrap().payload, b"after gc");
        assert_eq!(seen.len() as u64, per_segment[&active] + 1);
        log.close().await.unwrap();
    });
}

#[test]
fn a_middle_segment_can_be_deleted_before_older_ones() {
    let dir = test_dir("gc_middle");
    run(async move {
        let (log, _, _) = open_collect(config(&dir)).await.unwrap();
        let mut per_segment: BTreeMap<SegmentId, u64> = BTreeMap::new();
        for i in 0..1_500u64 {
            let (_, location) = log.append(0, &payload(i, 2_000)).unwrap();
            log.add_live(location.segment, 1);
            *per_segment.entry(location.segment).or_default() += 1;
        }
        log.wait_durable(Lsn(1_500)).await.unwrap();
        log.release(SegmentId(2), per_segment[&SegmentId(2)]);
        log.collect_garbage().await.unwrap();
        assert!(!segment_path(&dir, 2).exists());
        assert!(segment_path(&dir, 1).exists());
        log.close().await.unwrap();
        let (log, _, seen) = open_collect(config(&dir)).await.unwrap();
        let expected: u64 = per_segment
            .iter()
            .filter(|(s, _)| **s != SegmentId(2))
            .map(|(_, c)| c)
            .sum();
        assert_eq!(seen.len() as u64, expected);
        log.close().await.unwrap();
    });
}

/// Bytes the segment files of `dir` take on disk, a prepared spare included.
fn segment_files_size_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".seg"))
        .map(|entry| entry.metadata().unwrap().len())
        .sum()
}
