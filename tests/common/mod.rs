//! Test harness: starts the real `hare` binary on 127.0.0.1:0 in its own data directory under
//! `target/`, reads the address it prints, and kills it when dropped. Each test gets its own
//! broker process, so tests run in parallel without sharing state or ports.

#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
}

static NEXT_BROKER: AtomicU64 = AtomicU64::new(0);

impl Broker {
    /// A broker with `shards` executors.
    pub fn start(shards: usize) -> Broker {
        Broker::start_with(shards, &[])
    }

    pub fn start_with(shards: usize, extra_args: &[&str]) -> Broker {
        let data_dir = test_dir().join(format!(
            "broker-{}-{}",
            std::process::id(),
            NEXT_BROKER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).expect("create test data dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_hare"))
            .args(["--listen", "127.0.0.1:0", "--shards", &shards.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(extra_args)
            .env(
                "HARE_LOG",
                std::env::var("HARE_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn hare");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read hare's first line");
        let addr = line
            .split_whitespace()
            .nth(3)
            .and_then(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("hare did not print its address: {line:?}"));
        Broker {
            child,
            addr,
            data_dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait for hare");
        std::mem::forget(self);
        status
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// Where tests put broker data: a real filesystem under target/ (HARE_TEST_DIR overrides).
pub fn test_dir() -> PathBuf {
    std::env::var_os("HARE_TEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hare-tests"))
}

/// Polls `check` until it returns Some or `timeout` passes.
pub async fn eventually<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
