//! Recovery benchmark: how long `Log::open` takes to scan and check a log of many small records
//! (1M of 100 B) and of fewer large ones (10k of 64 KiB), with a callback that touches each
//! payload. Each log is written once, then opened `OPENS` times; the median is printed with
//! the bytes scanned per second, to compare with the disk's sequential O_DIRECT read
//! bandwidth (`dd if=<segment> of=/dev/null iflag=direct bs=1M`).
//!
//! Not a criterion bench: one open of the large log takes seconds, and what matters is the
//! median of a few. `HARE_BENCH_SMOKE=1` runs tiny sizes; `HARE_BENCH_DIR` picks the
//! directory (default: under the target directory).

use std::path::PathBuf;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};
use hare_storage::{Log, LogConfig, WRITE_BUFFER_BYTES_MAX};

/// Opens of each log; the median is reported.
const OPENS: usize = 3;

fn main() {
    let smoke = std::env::var_os("HARE_BENCH_SMOKE").is_some_and(|v| v == "1");
    let dir = std::env::var_os("HARE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hare-recovery-bench"));
    let scale = if smoke { 100 } else { 1 };
    let scenarios = [
        ("1M x 100 B", 1_000_000 / scale, 100usize),
        ("10k x 64 KiB", 10_000 / scale, 64 << 10),
    ];
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(8 << 20)
        .name("bench-recovery")
        .spawn(move || async move {
            for (name, records, payload_bytes) in scenarios {
                let log_dir = dir.join(name.replace(' ', ""));
                let _ = std::fs::remove_dir_all(&log_dir);
                fill(&log_dir, records, payload_bytes).await;
                let mut durations = Vec::new();
                let mut scanned_bytes = 0;
                for _ in 0..OPENS {
                    let (duration, bytes) = open(&log_dir, records).await;
                    durations.push(duration);
                    scanned_bytes = bytes;
                }
                durations.sort();
                let median = durations[OPENS / 2];
                println!(
                    "recovery {name}: median {:.3} s of {:?}, {:.0} MB/s, {:.2} M records/s",
                    median.as_secs_f64(),
                    durations
                        .iter()
                        .map(|d| format!("{:.3}", d.as_secs_f64()))
                        .collect::<Vec<_>>(),
                    scanned_bytes as f64 / median.as_secs_f64() / 1e6,
                    records as f64 / median.as_secs_f64() / 1e6,
                );
                let _ = std::fs::remove_dir_all(&log_dir);
            }
        })
        .expect("executor starts (io_uring available)");
    executor.join().expect("bench executor finishes");
}

/// Writes `records` records of `payload_bytes` each and closes the log.
async fn fill(dir: &std::path::Path, records: u64, payload_bytes: usize) {
    let (log, _) = Log::open(LogConfig::new(dir), |_| {})
        .await
        .expect("bench log opens");
    let mut payload = vec![0u8; payload_bytes];
    for number in 0..records {
        payload[..8].copy_from_slice(&number.to_le_bytes());
        let (lsn, _) = log.append(1, &payload).expect("append fits the buffer");
        if log.buffered_bytes() > WRITE_BUFFER_BYTES_MAX / 2 {
            log.wait_durable(lsn).await.expect("bench log writes");
        }
    }
    log.close().await.expect("bench log closes");
}

/// Opens (recovers) the log once; returns the time recovery took and the bytes of its records.
async fn open(dir: &std::path::Path, records: u64) -> (Duration, u64) {
    let mut seen = 0u64;
    let mut bytes = 0u64;
    let (log, report) = Log::open(LogConfig::new(dir), |record| {
        seen += 1;
        bytes += record.payload.len() as u64 + 24;
        std::hint::black_box(record.payload.first());
    })
    .await
    .expect("bench log recovers");
    assert_eq!(seen, records, "every record recovered");
    log.close().await.expect("bench log closes");
    (report.duration, bytes)
}
