//! Inputs the `storage_recovery` fuzz target (fuzz/, docs/fuzzing.md) found, replayed on stable:
//! a segment file with a valid header and the fuzzed bytes as its data area. Recovery must
//! report every record up to the first bad one and must find the same records again after it
//! cut the tail.

mod common;

use common::{open_collect, run, segment_path, test_dir, Seen};
use hare_storage::format::{encode_segment_header, SegmentHeader, DATA_OFFSET_BYTES};
use hare_storage::{LogConfig, Lsn, RecordLocation, SegmentId};

const SEGMENT_SIZE_BYTES: u64 = 32 << 10;

fn recover(name: &str, data: &[u8]) -> (Vec<Seen>, Vec<Seen>) {
    let dir = test_dir(name);
    let mut file = vec![0u8; DATA_OFFSET_BYTES as usize];
    let header = SegmentHeader {
        segment: SegmentId(1),
        first_lsn: Lsn(1),
        segment_size_bytes: SEGMENT_SIZE_BYTES,
    };
    encode_segment_header(&header, &mut file);
    file.extend_from_slice(data);
    std::fs::write(segment_path(&dir, 1), &file).expect("segment file can be written");
    let config = LogConfig {
        dir: dir.clone(),
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        faults: None,
        in_use_wait: hare_storage::IN_USE_WAIT_DEFAULT,
    };
    run(async move {
        let (log, _, first) = open_collect(config.clone()).await.expect("log opens");
        log.close().await.expect("log closes");
        let (log, report, second) = open_collect(config).await.expect("log opens again");
        log.close().await.expect("log closes");
        assert_eq!(report.torn_tail_bytes, 0);
        (first, second)
    })
}

fn record(lsn: u64, kind: u8, offset: u32, payload: &[u8]) -> Seen {
    Seen {
        lsn: Lsn(lsn),
        kind,
        location: RecordLocation {
            segment: SegmentId(1),
            offset,
            length: payload.len() as u32,
        },
        payload: payload.to_vec(),
    }
}

/// A valid record, then the start of a record the file ends in (41 bytes of data in all).
#[test]
fn valid_record_then_a_record_cut_by_the_end_of_the_file() {
    let data = [
        0x0d, 0x14, 0x06, 0x84, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x6f, 0x6e, 0x65, 0x00, 0x00, 0xe5, 0x4c, 0x31, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x77, 0x6f, 0x00, 0x00,
    ];
    let (first, second) = recover("fuzz-cut-by-end-of-file", &data);
    let expected = vec![record(1, 1, 4096, b"one")];
    assert_eq!(first, expected);
    assert_eq!(second, expected);
}

/// The fuzz target opened and closed logs in one directory, one after another: a log closed
/// while it was still zero-filling its spare segment in the background let that task write
/// zeros after the close, over what the next log of the directory had there (the fuzz target
/// saw a valid record vanish). `close` now waits for the spare, and the task keeps the
/// directory locked until it is done, so a dropped log cannot be reopened under it either.
#[test]
fn close_waits_for_the_spare_segment_being_prepared() {
    let dir = test_dir("fuzz-close-waits-for-spare");
    let config = common::config(&dir);
    let segment_size_bytes = config.segment_size_bytes;
    run(async move {
        for round in 0..20u64 {
            let (log, _, _) = open_collect(config.clone()).await.expect("log opens");
            let (lsn, _) = log.append(1, b"record").expect("append");
            log.wait_durable(lsn).await.expect("record durable");
            let (active, _) = log.end_position();
            log.close().await.expect("log closes");
            // Whatever the committer started preparing is complete once close returns.
            let spare = segment_path(&dir, active.0 + 1);
            if let Ok(metadata) = std::fs::metadata(&spare) {
                assert_eq!(metadata.len(), segment_size_bytes, "round {round}");
            }
            let (log, report, seen) = open_collect(config.clone()).await.expect("log reopens");
            assert_eq!(seen.len() as u64, round + 1);
            assert_eq!(report.torn_tail_bytes, 0);
            log.close().await.expect("log closes");
        }
    });
}
