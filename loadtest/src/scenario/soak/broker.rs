//! The broker under a soak: started by hareperf from `--restart-cmd`, killed with SIGKILL and
//! started again, and watched through `/proc` (resident memory and open descriptors).
//!
//! The command runs as `sh -c "exec CMD"` in a process group of its own, so a kill reaches
//! the broker and anything the command started, and the group leader's pid is the broker's
//! (the shell execs it). Without `--restart-cmd` there is no process to control: the soak runs
//! against a broker that is already up and samples `--broker-pid` if given.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::client::{AmqpUri, Connection};

/// How long a (re)started broker may take to accept AMQP connections.
pub const ACCEPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a clean stop (SIGTERM) may take before the broker is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of the end of the broker's log a failed start reads (it quotes the last 3 lines).
const LOG_TAIL_BYTES: usize = 2048;
/// Pause between two connection attempts while waiting for a start.
const PROBE_INTERVAL: Duration = Duration::from_millis(20);

/// A broker process hareperf controls.
#[derive(Debug)]
pub struct Broker {
    command: String,
    log: Option<std::path::PathBuf>,
    child: Option<Child>,
}

/// One resident-memory and descriptor reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub rss_kib: u64,
    pub fds: u64,
}

impl Broker {
    pub fn new(command: String, log: Option<std::path::PathBuf>) -> Broker {
        Broker {
            command,
            log,
            child: None,
        }
    }

    /// Starts the command and waits until the broker accepts an AMQP connection; returns how
    /// long that took.
    pub fn start(&mut self, uri: &AmqpUri) -> anyhow::Result<Duration> {
        use std::os::unix::process::CommandExt;
        let started = Instant::now();
        let (stdout, stderr) = match &self.log {
            Some(path) => {
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("opening the broker log {}", path.display()))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!("exec {}", self.command))
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the broker: {}", self.command))?;
        self.child = Some(child);
        self.wait_accepting(uri, started)?;
        Ok(started.elapsed())
    }

    /// Polls until a handshake succeeds; fails if the process exits or time runs out.
    fn wait_accepting(&mut self, uri: &AmqpUri, started: Instant) -> anyhow::Result<()> {
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    anyhow::bail!(
                        "the broker exited while starting ({status}){}",
                        self.log_tail()
                    );
                }
            }
            if let Ok(connection) = Connection::open(uri, "hareperf soak probe") {
                let _ = connection.close();
                return Ok(());
            }
            if started.elapsed() > ACCEPT_TIMEOUT {
                anyhow::bail!(
                    "the broker did not accept AMQP connections within {} s",
                    ACCEPT_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// The end of the broker's log (`--broker-log`), to say why a start failed.
    fn log_tail(&self) -> String {
        let Some(text) = self.log.as_ref().and_then(|path| std::fs::read(path).ok()) else {
            return String::new();
        };
        let start = text.len().saturating_sub(LOG_TAIL_BYTES);
        let tail = String::from_utf8_lossy(&text[start..]);
        let last: Vec<&str> = tail.lines().rev().take(3).collect();
        let lines: Vec<&str> = last.into_iter().rev().collect();
        format!("; its log ends: {}", lines.join(" | "))
    }

    /// The broker's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL to the whole process group, then reaps the broker.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        self.signal_group(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM (a clean shutdown that syncs the logs), SIGKILL after `STOP_TIMEOUT`.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        self.signal_pid(&child, libc::SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the broker exited with {status} on SIGTERM"
                );
                return Ok(());
            }
            std::thread::sleep(PROBE_INTERVAL);
        }
        self.child = Some(child);
        self.kill()?;
        anyhow::bail!(
            "the broker did not stop within {} s of SIGTERM and was killed",
            STOP_TIMEOUT.as_secs()
        )
    }

    fn signal_group(&self, signal: libc::c_int) {
        if let Some(pid) = self.pid().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) only sends a signal; a negative pid names the process group the
            // broker leads (created with process_group(0)), which exists until it is reaped.
            unsafe {
                libc::kill(-pid, signal);
            }
        }
    }

    fn signal_pid(&self, child: &Child, signal: libc::c_int) {
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) only sends a signal, to our own child, not yet reaped.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }
}

impl Drop for Broker {
    /// A soak that fails half-way must not leave its broker running.
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.kill();
        }
    }
}

/// Reads a process's resident memory and open descriptors; `None` if it is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let proc_dir = Path::new("/proc").join(pid.to_string());
    let status = std::fs::read_to_string(proc_dir.join("status")).ok()?;
    let rss_kib = crate::measure::proc_stat::parse_vm_rss_kib(&status)?;
    let fds = std::fs::read_dir(proc_dir.join("fd")).ok()?.count() as u64;
    Some(Usage { rss_kib, fds })
}
