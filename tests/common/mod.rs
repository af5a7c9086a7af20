//! Test harness: starts the real `hare` binary on 127.0.0.1:0 in its own data directory under
//! `target/`, reads the address it prints, and kills it when dropped. Each test gets its own
//! broker process, so tests run in parallel without sharing state or ports.
//!
//! Durability tests keep a data directory across restarts: `kill9` (SIGKILL) and `restart`
//! (SIGTERM, then start again) hand the directory on instead of deleting it, `start_in` starts a
//! broker on an existing directory without wiping it, and `start_failure` runs the binary when it
//! is expected to refuse to start.

#![allow(dead_code)]

pub mod http;
pub mod memory;
pub mod pki;
pub mod raw;

use std::io::Read;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub addr: SocketAddr,
    /// The management HTTP API and the metrics endpoint (127.0.0.1, port 0 unless `start_on`
    /// chose the ports).
    pub management: SocketAddr,
    pub metrics: SocketAddr,
    /// The AMQPS listener, when started with `--tls-listen`.
    pub tls: Option<SocketAddr>,
    /// The broker's stdout, kept open so its later prints never hit a closed pipe.
    _stdout: BufReader<std::process::ChildStdout>,
    pub data_dir: PathBuf,
    /// The `--shards` the broker was started with (`restart` reuses it).
    pub shards: usize,
    /// Set once the directory was handed out (`kill9`): drop leaves it in place.
    keep_data_dir: bool,
}

static NEXT_BROKER: AtomicU64 = AtomicU64::new(0);

impl Broker {
    /// A broker with `shards` executors.
    pub fn start(shards: usize) -> Broker {
        Broker::start_with(shards, &[])
    }

    pub fn start_with(shards: usize, extra_args: &[&str]) -> Broker {
        let data_dir = fresh_data_dir();
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir).expect("create test data dir");
        Broker::spawn(&data_dir, shards, Listen::ANY, extra_args)
    }

    /// A broker on an existing data directory, which is NOT wiped: it recovers what is there.
    /// The new broker owns the directory again and deletes it when dropped.
    pub fn start_in(data_dir: &Path, shards: usize) -> Broker {
        Broker::spawn(data_dir, shards, Listen::ANY, &[])
    }

    /// `start_in` with extra command-line arguments.
    pub fn start_in_with(data_dir: &Path, shards: usize, extra_args: &[&str]) -> Broker {
        Broker::spawn(data_dir, shards, Listen::ANY, extra_args)
    }

    /// `start_in_with` on fixed addresses, for a restart that must get the same ports.
    pub fn start_on(data_dir: &Path, shards: usize, listen: Listen, extra_args: &[&str]) -> Broker {
        Broker::spawn(data_dir, shards, listen, extra_args)
    }

    /// `start_on` with the broker's log (stderr) appended to the file `log`, for tests that
    /// check what it logged.
    pub fn start_on_logged(
        data_dir: &Path,
        shards: usize,
        listen: Listen,
        extra_args: &[&str],
        log: &Path,
    ) -> Broker {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the broker log file");
        Broker::spawn_with_stderr(data_dir, shards, listen, extra_args, file.into())
    }

    /// Runs the binary on `data_dir` expecting it to refuse to start; returns its exit status
    /// and its stderr. Panics if it prints its listening line or runs for more than 10 s.
    pub fn start_failure(data_dir: &Path, shards: usize) -> (ExitStatus, String) {
        Broker::start_failure_with(data_dir, shards, &[])
    }

    /// `start_failure` with extra command-line arguments.
    pub fn start_failure_with(
        data_dir: &Path,
        shards: usize,
        extra_args: &[&str],
    ) -> (ExitStatus, String) {
        Broker::start_failure_on(data_dir, shards, Listen::ANY, extra_args)
    }

    /// `start_failure_with` on fixed addresses.
    pub fn start_failure_on(
        data_dir: &Path,
        shards: usize,
        listen: Listen,
        extra_args: &[&str],
    ) -> (ExitStatus, String) {
        let mut child = broker_command(data_dir, shards, listen, extra_args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hare");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        // Read both pipes on threads so a chatty child cannot block on a full pipe.
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let pid = child.id() as i32;
        let (exited, exit) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = exited.send(child.wait());
        });
        let status = match exit.recv_timeout(Duration::from_secs(10)) {
            Ok(status) => status.expect("wait for hare"),
            Err(_) => {
                // SAFETY: kill(2) on our own child's pid; the waiting thread reaps it.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                panic!("hare was expected to refuse to start but kept running");
            }
        };
        let stdout = out.join().expect("stdout reader");
        assert!(
            !stdout.contains("listening"),
            "hare started although it should not have: {stdout:?}"
        );
        (status, err.join().expect("stderr reader"))
    }

    fn spawn(data_dir: &Path, shards: usize, listen: Listen, extra_args: &[&str]) -> Broker {
        Broker::spawn_with_stderr(data_dir, shards, listen, extra_args, Stdio::inherit())
    }

    fn spawn_with_stderr(
        data_dir: &Path,
        shards: usize,
        listen: Listen,
        extra_args: &[&str],
        stderr: Stdio,
    ) -> Broker {
        let mut child = broker_command(data_dir, shards, listen, extra_args)
            .stderr(stderr)
            .spawn()
            .expect("spawn hare");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let started = start_watchdog(child.id());
        let mut management = None;
        let mut metrics = None;
        let mut tls = None;
        // One line per control-plane listener and the AMQPS one, then the AMQP address line.
        let addr = loop {
            let mut line = String::new();
            stdout.read_line(&mut line).expect("read hare's stdout");
            let url = |prefix: &str| {
                let rest = line.strip_prefix(prefix)?;
                rest.strip_prefix("http://")
                    .or_else(|| rest.strip_prefix("https://"))
                    .map(|address| address.trim().trim_end_matches("/metrics").to_owned())
            };
            if let Some(address) = url("hare management API on ") {
                management = address.parse().ok();
            } else if let Some(address) = url("hare metrics on ") {
                metrics = address.parse().ok();
            } else if let Some(rest) = line.strip_prefix("hare AMQPS (TLS) on ") {
                tls = rest.trim().parse().ok();
            } else {
                break line
                    .strip_prefix("hare listening on ")
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|word| word.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("hare did not print its address (killed after {START_LIMIT:?} without it?): {line:?}")
                    });
            }
        };
        let _ = started.send(());
        Broker {
            child,
            addr,
            management: management.expect("hare printed its management address"),
            metrics: metrics.expect("hare printed its metrics address"),
            tls,
            _stdout: stdout,
            data_dir: data_dir.to_path_buf(),
            shards,
            keep_data_dir: false,
        }
    }

    /// The broker's process id (for `/proc/PID/...`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    /// Sends SIGTERM and waits for a clean exit. A broker still running after 20 s is killed and
    /// the test fails (its data directory is kept for a look).
    pub fn stop(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for hare") {
                break status;
            }
            if Instant::now() > deadline {
                self.keep_data_dir = true;
                panic!(
                    "hare did not exit within 20 s of SIGTERM (data dir {})",
                    self.data_dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::mem::forget(self);
        status
    }

    /// SIGKILLs the broker (no shutdown work at all) and returns its data directory, which is
    /// left in place for `start_in`.
    pub fn kill9(mut self) -> PathBuf {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGKILL);
        }
        let _ = self.child.wait();
        self.keep_data_dir = true;
        self.data_dir.clone()
    }

    /// Stops the broker cleanly (SIGTERM; it must exit 0) and starts a new one on the same
    /// data directory with the same shard count.
    pub fn restart(self) -> Broker {
        let data_dir = self.data_dir.clone();
        let shards = self.shards;
        let status = self.stop();
        assert!(status.success(), "hare exited with {status} on SIGTERM");
        Broker::start_in(&data_dir, shards)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !self.keep_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// A new, unused data directory path under `test_dir()`.
pub fn fresh_data_dir() -> PathBuf {
    test_dir().join(format!(
        "broker-{}-{}",
        std::process::id(),
        NEXT_BROKER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Where a test broker's three listeners go.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    pub amqp: SocketAddr,
    pub management: SocketAddr,
    pub metrics: SocketAddr,
}

impl Listen {
    /// 127.0.0.1 port 0 for each: the broker picks free ports and prints them.
    pub const ANY: Listen = Listen {
        amqp: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
        management: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
        metrics: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
    };

    /// Three distinct ports free right now on 127.0.0.1 (bound together on port 0, then
    /// released), for brokers that must come back on the same ports.
    pub fn free() -> Listen {
        let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        let (amqp, management, metrics) = (bind(), bind(), bind());
        let address = |listener: &std::net::TcpListener| listener.local_addr().expect("address");
        Listen {
            amqp: address(&amqp),
            management: address(&management),
            metrics: address(&metrics),
        }
    }
}

fn broker_command(data_dir: &Path, shards: usize, listen: Listen, extra_args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hare"));
    command
        .arg("--listen")
        .arg(listen.amqp.to_string())
        .args(["--shards", &shards.to_string()])
        .arg("--management-listen")
        .arg(listen.management.to_string())
        .arg("--metrics-listen")
        .arg(listen.metrics.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        // Small segments keep each test broker's disk work small.
        .args(["--segment-size-bytes", "1048576"])
        .args(extra_args)
        .env(
            "HARE_LOG",
            std::env::var("HARE_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped());
    command
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

/// How long a broker may take to print its address before its test gives up on it.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Kills the broker `pid` with SIGKILL unless told within `START_LIMIT` that it started: a
/// start that hangs then fails its test (its stdout ends) instead of blocking the suite.
fn start_watchdog(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (started, wait) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(START_LIMIT) {
            eprintln!("hare (pid {pid}) did not start within {START_LIMIT:?}: killing it");
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    });
    started
}
