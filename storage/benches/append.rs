//! Append + group commit benchmarks: time from the first append of a batch until the whole
//! batch is durable, for payloads of 100 B, 1 KiB and 16 KiB and batches of 1, 16 and 256
//! records per commit; plus the cost of a 4 KiB write + fdatasync on zero-written versus
//! fallocated segment space; plus a confirm window: records appended in bursts of 1, 10 or 100
//! with at most `WINDOW_RECORDS` not yet durable, topped up as `durable_lsn` advances, the way
//! a publisher with 100 unconfirmed messages drives the log (throughput, and the median and p99
//! time from append to durable, printed at the end).
//!
//! The log lives on a glommio executor thread; criterion drives it from the main thread through
//! a channel and the executor reports the measured time. `HARE_BENCH_SMOKE=1` runs tiny sizes.
//! Each bench prints a checksum of what it wrote.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use glommio::io::{DmaFile, OpenOptions};
use glommio::{LocalExecutorBuilder, Placement};
use hare_storage::{Log, LogConfig};

enum Request {
    /// `iterations` commits of `batch` appends of `payload_bytes` each.
    Append {
        iterations: u64,
        batch: usize,
        payload_bytes: usize,
    },
    /// `iterations` × `WINDOW_RECORDS` appends of 100 B, `burst` at a time, with at most
    /// `WINDOW_RECORDS` not yet durable.
    Window {
        iterations: u64,
        burst: usize,
    },
    /// `iterations` 4 KiB writes + fdatasync into a file prepared by zero writes or fallocate.
    Prefill {
        iterations: u64,
        fallocate: bool,
    },
    Checksum,
    Stop,
}

/// Records a confirm-window publisher keeps not yet durable.
const WINDOW_RECORDS: u64 = 100;
/// Payload of each record of the window bench.
const WINDOW_PAYLOAD_BYTES: usize = 100;
/// Bound on the time-to-durable samples kept per burst size.
const LATENCY_SAMPLES_MAX: usize = 1 << 20;

fn bench_dir() -> PathBuf {
    std::env::var_os("HARE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hare-storage-bench"))
}

fn main() {
    let smoke = std::env::var_os("HARE_BENCH_SMOKE").is_some_and(|v| v == "1");
    let dir = bench_dir();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench directory can be created");
    let (request_tx, request_rx) = mpsc::channel::<Request>();
    let (reply_tx, reply_rx) = mpsc::channel::<(Duration, u64)>();
    let executor = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(2 << 20)
        .name("bench-log")
        .spawn(move || serve(dir, request_rx, reply_tx))
        .expect("executor starts (io_uring available)");

    let mut criterion = Criterion::default().configure_from_args();
    criterion = if smoke {
        criterion
            .sample_size(10)
            .warm_up_time(Duration::from_millis(20))
            .measurement_time(Duration::from_millis(100))
    } else {
        criterion
            .sample_size(30)
            .measurement_time(Duration::from_secs(3))
    };
    let payloads: &[usize] = if smoke { &[100] } else { &[100, 1024, 16384] };
    let batches: &[usize] = if smoke { &[1, 16] } else { &[1, 16, 256] };
    for &payload_bytes in payloads {
        let mut group = criterion.benchmark_group(format!("append_commit/{payload_bytes}B"));
        for &batch in batches {
            group.throughput(criterion::Throughput::Elements(batch as u64));
            group.bench_function(format!("batch_{batch}"), |b| {
                b.iter_custom(|iterations| {
                    let request = Request::Append {
                        iterations,
                        batch,
                        payload_bytes,
                    };
                    request_tx.send(request).expect("executor is running");
                    reply_rx.recv().expect("executor replies").0
                })
            });
        }
        group.finish();
    }
    let bursts: &[usize] = if smoke { &[10] } else { &[1, 10, 100] };
    let mut group = criterion.benchmark_group(format!("window_{WINDOW_RECORDS}"));
    group.throughput(criterion::Throughput::Elements(WINDOW_RECORDS));
    for &burst in bursts {
        group.bench_function(format!("burst_{burst}"), |b| {
            b.iter_custom(|iterations| {
                request_tx
                    .send(Request::Window { iterations, burst })
                    .expect("executor is running");
                reply_rx.recv().expect("executor replies").0
            })
        });
    }
    group.finish();
    let mut group = criterion.benchmark_group("write_4k_fdatasync");
    for (name, fallocate) in [("zero_written", false), ("fallocated", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                request_tx
                    .send(Request::Prefill {
                        iterations,
                        fallocate,
                    })
                    .expect("executor is running");
                reply_rx.recv().expect("executor replies").0
            })
        });
    }
    group.finish();
    request_tx
        .send(Request::Checksum)
        .expect("executor is running");
    let (_, checksum) = reply_rx.recv().expect("executor replies");
    println!("checksum {checksum:016x}");
    request_tx.send(Request::Stop).expect("executor is running");
    executor.join().expect("executor thread ends cleanly");
    criterion.final_summary();
}

/// Executor side: owns the log, serves requests until `Stop`.
async fn serve(
    dir: PathBuf,
    requests: mpsc::Receiver<Request>,
    replies: mpsc::Sender<(Duration, u64)>,
) {
    let config = LogConfig {
        dir: dir.join("log"),
        segment_size_bytes: 64 << 20,
        faults: None,
        in_use_wait: hare_storage::IN_USE_WAIT_DEFAULT,
    };
    let (log, _) = Log::open(config, |_| {}).await.expect("bench log opens");
    let mut checksum = 0u64;
    let body = vec![0xA5u8; 16384];
    let mut latencies: BTreeMap<usize, Vec<Duration>> = BTreeMap::new();
    loop {
        let request = match requests.try_recv() {
            Ok(request) => request,
            Err(mpsc::TryRecvError::Empty) => {
                // Idle between measurements: poll the channel without blocking the executor.
                glommio::timer::sleep(Duration::from_micros(200)).await;
                continue;
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        };
        match request {
            Request::Append {
                iterations,
                batch,
                payload_bytes,
            } => {
                let started = Instant::now();
                for _ in 0..iterations {
                    let mut last = None;
                    for _ in 0..batch {
                        let (lsn, location) = loop {
                            match log.append(1, &body[..payload_bytes]) {
                                Ok(placed) => break placed,
                                Err(hare_storage::StorageError::Backpressure { .. }) => {
                                    log.durable_changed()
                                        .await
                                        .expect("bench log stays healthy");
                                }
                                Err(error) => panic!("append failed: {error}"),
                            }
                        };
                        checksum = checksum.rotate_left(7) ^ lsn.0 ^ u64::from(location.offset);
                        last = Some(lsn);
                    }
                    let lsn = last.expect("batches are not empty");
                    log.wait_durable(lsn)
                        .await
                        .expect("bench log stays healthy");
                }
                replies
                    .send((started.elapsed(), checksum))
                    .expect("bench thread listens");
            }
            Request::Window { iterations, burst } => {
                let samples = latencies.entry(burst).or_default();
                let started = Instant::now();
                window(&log, iterations, burst, &body, samples, &mut checksum).await;
                replies
                    .send((started.elapsed(), checksum))
                    .expect("bench thread listens");
            }
            Request::Prefill {
                iterations,
                fallocate,
            } => {
                let elapsed = write_fdatasync(&dir, iterations, fallocate).await;
                replies
                    .send((elapsed, checksum))
                    .expect("bench thread listens");
            }
            Request::Checksum => {
                let stats = log.stats();
                checksum ^= stats.commits.rotate_left(32) ^ log.durable_lsn().0;
                eprintln!("log stats: {stats:?}");
                for (burst, samples) in &mut latencies {
                    samples.sort_unstable();
                    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize];
                    eprintln!(
                        "window_{WINDOW_RECORDS}/burst_{burst}: append to durable p50 {:?} p99 {:?} ({} records)",
                        at(0.5),
                        at(0.99),
                        samples.len()
                    );
                }
                replies
                    .send((Duration::ZERO, checksum))
                    .expect("bench thread listens");
            }
            Request::Stop => break,
        }
    }
    log.close().await.expect("bench log closes");
}

/// Drives `iterations` × `WINDOW_RECORDS` appends like a publisher with a confirm window:
/// appends `burst` records whenever that many fit in the window, yields between bursts (so the
/// committer can start a round meanwhile), and otherwise waits for `durable_lsn` to advance.
/// Pushes each record's append-to-durable time into `samples`.
async fn window(
    log: &Log,
    iterations: u64,
    burst: usize,
    body: &[u8],
    samples: &mut Vec<Duration>,
    checksum: &mut u64,
) {
    let total = iterations * WINDOW_RECORDS;
    let burst = burst as u64;
    let base = log.durable_lsn().0;
    let mut appended_at: VecDeque<Instant> = VecDeque::with_capacity(WINDOW_RECORDS as usize);
    let (mut appended, mut confirmed) = (0u64, 0u64);
    while confirmed < total {
        let durable = log.durable_lsn().0 - base;
        while confirmed < durable {
            let at = appended_at
                .pop_front()
                .expect("durable records were appended");
            if samples.len() < LATENCY_SAMPLES_MAX {
                samples.push(at.elapsed());
            }
            confirmed += 1;
        }
        let count = burst.min(total - appended);
        if count > 0 && appended - confirmed + count <= WINDOW_RECORDS {
            for _ in 0..count {
                let (lsn, location) = log
                    .append(1, &body[..WINDOW_PAYLOAD_BYTES])
                    .expect("a window of 100 records never hits backpressure");
                *checksum = checksum.rotate_left(7) ^ lsn.0 ^ u64::from(location.offset);
                appended_at.push_back(Instant::now());
            }
            appended += count;
            glommio::executor().yield_now().await;
        } else if confirmed < total {
            log.durable_changed()
                .await
                .expect("bench log stays healthy");
        }
    }
}

/// Prepares a 64 MiB file (zeros written, or fallocate only), then times `iterations`
/// sequential 4 KiB writes, each followed by fdatasync.
async fn write_fdatasync(dir: &std::path::Path, iterations: u64, fallocate: bool) -> Duration {
    const FILE_BYTES: u64 = 64 << 20;
    let path = dir.join(if fallocate {
        "fallocated"
    } else {
        "zero_written"
    });
    let _ = std::fs::remove_file(&path);
    let file: DmaFile = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .dma_open(&path)
        .await
        .expect("bench file opens");
    if fallocate {
        file.pre_allocate(FILE_BYTES, false)
            .await
            .expect("fallocate works");
    } else {
        let mut zeros = file.alloc_dma_buffer(1 << 20);
        zeros.as_bytes_mut().fill(0);
        let zeros = Rc::new(zeros);
        for offset in (0..FILE_BYTES).step_by(1 << 20) {
            file.write_rc_at(zeros.clone(), offset)
                .await
                .expect("zero fill works");
        }
    }
    file.fdatasync().await.expect("fdatasync works");
    let mut block = file.alloc_dma_buffer(4096);
    block.as_bytes_mut().fill(0x5A);
    let block = Rc::new(block);
    let started = Instant::now();
    for i in 0..iterations {
        let offset = (i * 4096) % FILE_BYTES;
        file.write_rc_at(block.clone(), offset)
            .await
            .expect("write works");
        file.fdatasync().await.expect("fdatasync works");
    }
    let elapsed = started.elapsed();
    file.close().await.expect("close works");
    let _ = std::fs::remove_file(&path);
    elapsed
}
