//! Crash test with a real process: a child appends and prints every LSN once `wait_durable`
//! returns; it is SIGKILLed at a seeded random moment; every printed LSN must be recovered.
//! Seed: `HARE_TEST_SEED` (printed on failure).

// Helpers in this test crate are test code too; clippy.toml only exempts #[test] fns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use hare_storage::Lsn;

const CHILD_DIR_ENV: &str = "HARE_STORAGE_CRASH_CHILD_DIR";

/// The child side: runs only when spawned by `kill_9_keeps_every_durable_lsn`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    run(async move {
        let (log, report, _) = open_collect(config(&dir)).await.unwrap();
        let mut next = report.last_lsn.0;
        loop {
            let mut last = Lsn(0);
            for _ in 0..16 {
                last = log
                    .append(1, &payload(next, 100 + (next as usize % 900)))
                    .unwrap()
                    .0;
                next += 1;
            }
            log.wait_durable(last).await.unwrap();
            println!("durable {}", last.0);
        }
    });
}

#[test]
fn kill_9_keeps_every_durable_lsn() {
    let seed = std::env::var("HARE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = test_dir("crash_kill_9");
    let mut durable_max = 0u64;
    for round in 0..3 {
        let stop_after = rng.usize(1..400);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_DIR_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut lines = 0;
        for line in stdout.lines() {
            let line = line.unwrap();
            if let Some(lsn) = line.strip_prefix("durable ") {
                durable_max = durable_max.max(lsn.parse().unwrap());
                lines += 1;
                if lines == stop_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let dir = dir.clone();
        let (count, last_lsn) = run(async move {
            let (log, report, seen) = open_collect(config(&dir)).await.unwrap();
            for (i, record) in seen.iter().enumerate() {
                assert_eq!(record.lsn, Lsn(i as u64 + 1), "seed {seed}");
                assert_eq!(
                    record.payload,
                    payload(i as u64, 100 + (i % 900)),
                    "seed {seed}"
                );
            }
            log.close().await.unwrap();
            (seen.len() as u64, report.last_lsn.0)
        });
        assert!(
            last_lsn >= durable_max,
            "seed {seed} round {round}: printed durable {durable_max}, recovered only {last_lsn}"
        );
        assert_eq!(count, last_lsn, "seed {seed}");
    }
}
