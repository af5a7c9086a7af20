//! The metadata log's crash behaviour is its specification: whatever a crash leaves on disk
//! (a torn last batch, a half-written next generation, two generations), opening gives back
//! exactly the entries whose append returned, plus at most the batch being written; and
//! damage to synced data is reported, never repaired by dropping entries.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use hare_storage::metadata_format::MetadataCorruptReason;
use hare_storage::{metadata_generation_file_name, MetadataLog, MetadataLogError};

fn entries_of(dir: &Path) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (_, recovered) = MetadataLog::open(dir)
        .expect("the log opens")
        .expect("a generation exists");
    (
        recovered.snapshot().to_vec(),
        recovered.entries().map(<[u8]>::to_vec).collect(),
    )
}

fn entry(i: usize) -> Vec<u8> {
    format!("entry {i:05} {}", "x".repeat(i % 23)).into_bytes()
}

fn generation_file(dir: &Path, generation: u32) -> PathBuf {
    dir.join(metadata_generation_file_name(generation))
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("the test directory is readable")
        .map(|entry| {
            let name = entry.expect("directory entries are readable").file_name();
            name.to_string_lossy().into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn an_empty_directory_has_no_log_until_one_is_created() {
    let dir = common::test_dir("metadata_empty");
    assert!(MetadataLog::open(&dir).unwrap().is_none());
    MetadataLog::create(&dir, b"first snapshot").unwrap();
    let (snapshot, entries) = entries_of(&dir);
    assert_eq!(snapshot, b"first snapshot");
    assert!(entries.is_empty());
    assert!(
        MetadataLog::create(&dir, b"again").is_err(),
        "create never shadows an existing generation"
    );
}

#[test]
fn appended_batches_come_back_in_order_after_a_reopen() {
    let dir = common::test_dir("metadata_append");
    let mut log = MetadataLog::create(&dir, b"s").unwrap();
    let mut expected = Vec::new();
    for batch in 0..50 {
        let batch_entries: Vec<Vec<u8>> = (0..batch % 7).map(|i| entry(batch * 10 + i)).collect();
        let borrowed: Vec<&[u8]> = batch_entries.iter().map(Vec::as_slice).collect();
        log.append(&borrowed).unwrap();
        expected.extend(batch_entries);
    }
    drop(log);
    let (log, recovered) = MetadataLog::open(&dir).unwrap().unwrap();
    assert_eq!(recovered.report.batches, 50);
    assert_eq!(recovered.report.torn_tail_bytes, 0);
    let entries: Vec<Vec<u8>> = recovered.entries().map(<[u8]>::to_vec).collect();
    assert_eq!(entries, expected);
    assert!(log.bytes_since_snapshot() > 0);
}

/// Every length the last batch's write could have reached before a crash: the entries of the
/// earlier batches always come back, the torn batch never partly, and appending goes on.
#[test]
fn a_torn_last_batch_is_cut_at_every_length_and_appends_continue() {
    let dir = common::test_dir("metadata_torn");
    let mut log = MetadataLog::create(&dir, b"snapshot").unwrap();
    log.append(&[b"one", b"two"]).unwrap();
    let synced_len = fs::metadata(log.path()).unwrap().len();
    log.append(&[b"three", b"four, a longer entry"]).unwrap();
    let path = log.path();
    drop(log);
    let full = fs::read(&path).unwrap();
    for len in synced_len as usize..full.len() {
        fs::write(&path, &full[..len]).unwrap();
        let (mut log, recovered) = MetadataLog::open(&dir).unwrap().unwrap();
        let entries: Vec<Vec<u8>> = recovered.entries().map(<[u8]>::to_vec).collect();
        assert_eq!(
            entries,
            vec![b"one".to_vec(), b"two".to_vec()],
            "length {len}"
        );
        assert_eq!(recovered.report.torn_tail_bytes, (len as u64) - synced_len);
        assert_eq!(fs::metadata(&path).unwrap().len(), synced_len, "truncated");
        log.append(&[b"after"]).unwrap();
        drop(log);
        let (_, entries) = entries_of(&dir);
        assert_eq!(entries.last().unwrap(), b"after", "length {len}");
    }
}

/// A torn write can leave any bytes (zeros or garbage) where the last batch was going.
#[test]
fn garbage_after_the_last_batch_is_a_torn_tail() {
    let dir = common::test_dir("metadata_garbage_tail");
    let mut log = MetadataLog::create(&dir, b"snapshot").unwrap();
    log.append(&[b"kept"]).unwrap();
    let path = log.path();
    drop(log);
    let mut rng = fastrand::Rng::with_seed(7);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend((0..300).map(|_| rng.u8(..)));
    fs::write(&path, &bytes).unwrap();
    let (_, entries) = entries_of(&dir);
    assert_eq!(entries, vec![b"kept".to_vec()]);
}

#[test]
fn a_damaged_batch_before_a_good_one_is_corruption_not_a_tail() {
    let dir = common::test_dir("metadata_corrupt_middle");
    let mut log = MetadataLog::create(&dir, b"snapshot").unwrap();
    log.append(&[b"first"]).unwrap();
    let first_end = fs::metadata(log.path()).unwrap().len() as usize;
    log.append(&[b"second"]).unwrap();
    log.append(&[b"third"]).unwrap();
    let path = log.path();
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    // A flipped bit in the second batch's payload.
    bytes[first_end + 30] ^= 0x10;
    fs::write(&path, &bytes).unwrap();
    match MetadataLog::open(&dir) {
        Err(MetadataLogError::Corrupt { offset, reason, .. }) => {
            assert_eq!(offset, first_end as u64);
            assert_eq!(reason, MetadataCorruptReason::Checksum);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing was repaired");
}

#[test]
fn a_damaged_snapshot_is_corruption_and_deletes_nothing() {
    let dir = common::test_dir("metadata_corrupt_snapshot");
    let mut log = MetadataLog::create(&dir, b"old snapshot").unwrap();
    log.rewrite(b"new snapshot").unwrap();
    let path = log.path();
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    bytes[40] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        MetadataLog::open(&dir),
        Err(MetadataLogError::Corrupt { offset: 24, .. })
    ));
    assert!(path.exists());
}

#[test]
fn a_rewrite_starts_a_generation_with_the_snapshot_and_deletes_the_old_one() {
    let dir = common::test_dir("metadata_rewrite");
    let mut log = MetadataLog::create(&dir, b"one").unwrap();
    log.append(&[b"a", b"b"]).unwrap();
    log.rewrite(b"one+a+b").unwrap();
    assert_eq!(log.generation(), 2);
    assert_eq!(log.bytes_since_snapshot(), 0);
    log.append(&[b"c"]).unwrap();
    drop(log);
    assert_eq!(files_in(&dir), vec![metadata_generation_file_name(2)]);
    let (snapshot, entries) = entries_of(&dir);
    assert_eq!(snapshot, b"one+a+b");
    assert_eq!(entries, vec![b"c".to_vec()]);
}

/// A crash while the next generation is written leaves its temporary file: the old
/// generation is still the log, whatever the temporary file holds.
#[test]
fn a_crash_while_writing_the_next_generation_keeps_the_old_one() {
    let dir = common::test_dir("metadata_crash_in_rewrite");
    let mut log = MetadataLog::create(&dir, b"one").unwrap();
    log.append(&[b"a"]).unwrap();
    log.rewrite(b"one+a").unwrap();
    let complete = fs::read(log.path()).unwrap();
    drop(log);
    // Generation 1 again as the visible log, and generation 2 as a partial temporary file.
    fs::remove_file(generation_file(&dir, 2)).unwrap();
    let mut log = MetadataLog::create(&dir, b"one").unwrap();
    log.append(&[b"a"]).unwrap();
    drop(log);
    for len in [0, 10, 16, 30, complete.len() - 1, complete.len()] {
        let temporary = dir.join(format!("{}.tmp", metadata_generation_file_name(2)));
        fs::write(&temporary, &complete[..len]).unwrap();
        let (snapshot, entries) = entries_of(&dir);
        assert_eq!(snapshot, b"one", "temporary length {len}");
        assert_eq!(entries, vec![b"a".to_vec()]);
        assert!(!temporary.exists(), "the temporary file is removed");
    }
}

/// A crash after the rename and before the old file's deletion leaves two generations.
#[test]
fn the_newest_of_two_generations_wins_and_the_older_is_deleted() {
    let dir = common::test_dir("metadata_two_generations");
    let mut log = MetadataLog::create(&dir, b"one").unwrap();
    log.append(&[b"a"]).unwrap();
    let old = fs::read(log.path()).unwrap();
    log.rewrite(b"one+a").unwrap();
    log.append(&[b"b"]).unwrap();
    drop(log);
    fs::write(generation_file(&dir, 1), &old).unwrap();
    let (snapshot, entries) = entries_of(&dir);
    assert_eq!(snapshot, b"one+a");
    assert_eq!(entries, vec![b"b".to_vec()]);
    assert_eq!(files_in(&dir), vec![metadata_generation_file_name(2)]);
}

/// Seeded: a random history of appends and rewrites, then a crash that cuts the file at a
/// random point of the last write. What comes back is exactly the acknowledged history, or
/// that plus the last batch when its write happened to be complete.
#[test]
fn random_histories_recover_exactly_what_was_acknowledged() {
    let seed = std::env::var("HARE_TEST_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    for round in 0..40 {
        let dir = common::test_dir(&format!("metadata_random_{round}"));
        let mut log = MetadataLog::create(&dir, b"0").unwrap();
        // The model: the snapshot is every entry so far, joined.
        let mut acknowledged: Vec<Vec<u8>> = Vec::new();
        let mut snapshot_covers = 0;
        let mut snapshot_expected = b"0".to_vec();
        for step in 0..rng.usize(1..40) {
            if rng.u8(..) < 30 {
                snapshot_expected = acknowledged.concat();
                log.rewrite(&snapshot_expected).unwrap();
                snapshot_covers = acknowledged.len();
            } else {
                let batch: Vec<Vec<u8>> =
                    (0..rng.usize(0..4)).map(|i| entry(step * 4 + i)).collect();
                let borrowed: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
                log.append(&borrowed).unwrap();
                acknowledged.extend(batch);
            }
        }
        let before_last = fs::metadata(log.path()).unwrap().len();
        let last: Vec<Vec<u8>> = (0..rng.usize(1..4)).map(|i| entry(1000 + i)).collect();
        let borrowed: Vec<&[u8]> = last.iter().map(Vec::as_slice).collect();
        log.append(&borrowed).unwrap();
        let path = log.path();
        drop(log);
        let full = fs::read(&path).unwrap();
        let cut = rng.usize(before_last as usize..=full.len());
        fs::write(&path, &full[..cut]).unwrap();

        let (snapshot, entries) = entries_of(&dir);
        assert_eq!(snapshot, snapshot_expected, "seed {seed} round {round}");
        let mut expected = acknowledged[snapshot_covers..].to_vec();
        if cut == full.len() {
            expected.extend(last);
        }
        assert_eq!(entries, expected, "seed {seed} round {round} cut {cut}");
    }
}

/// A compaction reads a synced prefix on another thread while appends go on; installing its
/// snapshot carries over what was appended meanwhile, and the log continues after it.
#[test]
fn a_compacted_snapshot_keeps_what_was_appended_while_it_was_made() {
    let dir = common::test_dir("metadata_compaction");
    let mut log = MetadataLog::create(&dir, b"s").unwrap();
    log.append(&[b"a", b"b"]).unwrap();
    let source = log.compaction_source();
    log.append(&[b"c"]).unwrap();
    log.append(&[b"d", b"e"]).unwrap();
    let prefix = source.read().unwrap();
    assert_eq!(prefix.snapshot(), b"s");
    let entries: Vec<Vec<u8>> = prefix.entries().map(<[u8]>::to_vec).collect();
    assert_eq!(entries, vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(log.install_compacted(&source, b"s+a+b").unwrap());
    assert_eq!(log.generation(), 2);
    log.append(&[b"f"]).unwrap();
    drop(log);
    let (snapshot, entries) = entries_of(&dir);
    assert_eq!(snapshot, b"s+a+b");
    let expected: Vec<Vec<u8>> = [b"c", b"d", b"e", b"f"]
        .iter()
        .map(|e| e.to_vec())
        .collect();
    assert_eq!(entries, expected);
    assert_eq!(files_in(&dir), vec![metadata_generation_file_name(2)]);
}

/// A compaction that finishes after the log moved on (a rewrite made a new generation) no
/// longer fits: it is dropped, and nothing changes.
#[test]
fn a_compaction_of_an_older_generation_is_dropped() {
    let dir = common::test_dir("metadata_compaction_stale");
    let mut log = MetadataLog::create(&dir, b"s").unwrap();
    log.append(&[b"a"]).unwrap();
    let source = log.compaction_source();
    log.rewrite(b"s+a").unwrap();
    log.append(&[b"b"]).unwrap();
    assert!(!log.install_compacted(&source, b"stale").unwrap());
    drop(log);
    let (snapshot, entries) = entries_of(&dir);
    assert_eq!(snapshot, b"s+a");
    assert_eq!(entries, vec![b"b".to_vec()]);
}

/// A prefix that is not whole any more is reported, never replayed in part.
#[test]
fn a_damaged_compaction_prefix_is_corruption() {
    let dir = common::test_dir("metadata_compaction_damaged");
    let mut log = MetadataLog::create(&dir, b"s").unwrap();
    log.append(&[b"a"]).unwrap();
    let source = log.compaction_source();
    let path = log.path();
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 1;
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        source.read(),
        Err(MetadataLogError::Corrupt { .. })
    ));
}

/// A client chooses the bytes of its binding arguments, which an entry quotes verbatim: a
/// torn batch that quotes bytes shaped like whole records (of every alignment, with a huge
/// sequence) is still a torn tail, because those records' CRCs do not hold the file's salt.
#[test]
fn records_quoted_inside_a_torn_batch_do_not_make_it_corruption() {
    use hare_storage::metadata_format::{encode_record, MetadataRecordKind};
    let dir = common::test_dir("metadata_forged_tail");
    let mut log = MetadataLog::create(&dir, b"snapshot").unwrap();
    log.append(&[b"kept"]).unwrap();
    let synced_len = fs::metadata(log.path()).unwrap().len() as usize;
    let mut forged = Vec::new();
    for shift in 0..8 {
        forged.resize(forged.len().next_multiple_of(8) + shift, 0xaa);
        let mut record = Vec::new();
        encode_record(
            &mut record,
            0,
            MetadataRecordKind::Batch,
            u64::MAX / 2,
            b"forged",
        );
        forged.extend_from_slice(&record);
    }
    log.append(&[&forged]).unwrap();
    let path = log.path();
    drop(log);
    let full = fs::read(&path).unwrap();
    for cut in [
        full.len() - 1,
        full.len() - 8,
        synced_len + 40,
        synced_len + 100,
    ] {
        fs::write(&path, &full[..cut]).unwrap();
        let (_, entries) = entries_of(&dir);
        assert_eq!(entries, vec![b"kept".to_vec()], "cut at {cut}");
        fs::write(&path, &full).unwrap();
    }
}
