//! Arbitrary segment bytes → the segment log's recovery (`hare_storage::Log::open`) on a real
//! segment file (in /dev/shm when it exists, so fdatasync costs nothing), on one glommio
//! executor kept for the whole run.
//!
//! The first input byte picks the shape of the file:
//! - bit 0 set: the rest is the whole file, header block included (recovery must not panic;
//!   a bad header is a torn tail or corruption, never a crash);
//! - else a valid header for segment 1 (first LSN from the byte's high bits), then either the
//!   rest as the data area (bit 1 clear) or records built from the rest with valid checksums,
//!   each optionally damaged (bit 1 set).
//!
//! With a valid header the log must open, and report exactly the records an independent walk
//! of the bytes with `decode_record` finds: every record up to the first bad one, none after
//! it. A second open must then find the same records and no torn tail (the first cut it).
#![no_main]

use std::path::PathBuf;

use glommio::{LocalExecutor, LocalExecutorBuilder, Placement};
use hare_storage::format::{
    decode_record, encode_record, encode_segment_header, record_size_bytes, RecordScan,
    SegmentHeader, BLOCK_SIZE_BYTES, DATA_OFFSET_BYTES,
};
use hare_storage::{segment_file_name, Log, LogConfig, Lsn, SegmentId};
use libfuzzer_sys::fuzz_target;

const SEGMENT_SIZE_BYTES: u64 = 32 << 10;

thread_local! {
    static EXECUTOR: LocalExecutor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(512 << 10)
        .make()
        .expect("executor starts (io_uring available)");
    static DIR: PathBuf = {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("hare-fuzz-storage-{}", std::process::id()))
    };
}

/// (lsn, kind, offset, payload) of one recovered record.
type Seen = (u64, u8, u32, Vec<u8>);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let first_lsn = 1 + u64::from(mode >> 2);
    let (file, checked) = if mode & 1 == 1 {
        (rest.to_vec(), false)
    } else {
        let mut file = vec![0u8; DATA_OFFSET_BYTES as usize];
        let header = SegmentHeader {
            segment: SegmentId(1),
            first_lsn: Lsn(first_lsn),
            segment_size_bytes: SEGMENT_SIZE_BYTES,
        };
        encode_segment_header(&header, &mut file[..BLOCK_SIZE_BYTES as usize]);
        if mode & 2 == 0 {
            file.extend_from_slice(rest);
        } else {
            file.extend_from_slice(&built_records(rest, first_lsn));
        }
        (file, true)
    };
    let mut file = file;
    file.truncate(SEGMENT_SIZE_BYTES as usize);
    DIR.with(|dir| {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("fuzz directory can be created");
        std::fs::write(dir.join(segment_file_name(SegmentId(1))), &file)
            .expect("segment file can be written");
        let first = open(dir);
        if checked {
            let expected = walk(&file, first_lsn);
            let (seen, _) = first.expect("a log with a valid header opens");
            assert_eq!(seen, expected, "recovery and the record walk disagree");
            let (again, torn) = open(dir).expect("a recovered log opens again");
            assert_eq!(again, expected, "a second recovery finds other records");
            assert_eq!(torn, 0, "the first recovery left a torn tail");
        }
    });
});

/// Opens the log in `dir`, collects its records and closes it.
fn open(dir: &std::path::Path) -> Result<(Vec<Seen>, u64), hare_storage::StorageError> {
    let config = LogConfig {
        dir: dir.to_path_buf(),
        segment_size_bytes: SEGMENT_SIZE_BYTES,
        faults: None,
        // Nothing else opens these files: check once, never wait.
        in_use_wait: std::time::Duration::ZERO,
    };
    EXECUTOR.with(|executor| {
        executor.run(async move {
            let mut seen = Vec::new();
            let (log, report) = Log::open(config, |record| {
                seen.push((
                    record.lsn.0,
                    record.kind,
                    record.location.offset,
                    record.payload.to_vec(),
                ));
            })
            .await?;
            assert_eq!(report.records, seen.len() as u64);
            log.close().await?;
            Ok((seen, report.torn_tail_bytes))
        })
    })
}

/// Records with valid checksums from `[kind, length, damage, payload[length]]` chunks; a damage
/// octet of 0xf0 and above flips one of the record's first 16 bytes.
fn built_records(mut rest: &[u8], first_lsn: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lsn = first_lsn;
    while let Some((&[kind, length, damage], tail)) = rest.split_first_chunk::<3>() {
        let length = usize::from(length).min(tail.len());
        let (payload, tail) = tail.split_at(length);
        rest = tail;
        let at = out.len();
        out.resize(at + record_size_bytes(length as u64) as usize, 0);
        encode_record(&mut out[at..], kind, Lsn(lsn), &[payload]);
        if damage >= 0xf0 {
            out[at + usize::from(damage & 0x0f)] ^= 0x55;
        }
        lsn += 1;
    }
    out
}

/// The records an in-memory walk of the data area finds, up to the end marker or the first
/// record that is not valid (or does not fit in the file).
fn walk(file: &[u8], first_lsn: u64) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut offset = DATA_OFFSET_BYTES;
    let mut expected = Lsn(first_lsn);
    loop {
        let bytes = file.get(offset as usize..).unwrap_or_default();
        match decode_record(bytes, SEGMENT_SIZE_BYTES - offset, Some(expected)) {
            Ok(RecordScan::Record {
                kind,
                lsn,
                payload_len,
                size_bytes,
            }) => {
                let payload = bytes[20..20 + payload_len as usize].to_vec();
                seen.push((lsn.0, kind, offset as u32, payload));
                offset += size_bytes;
                expected = Lsn(lsn.0 + 1);
            }
            Ok(RecordScan::End) | Err(_) => return seen,
        }
    }
}
