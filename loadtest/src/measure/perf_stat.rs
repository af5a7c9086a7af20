//! Syscalls, `io_uring_enter` calls and context switches of the broker, counted by Linux
//! `perf stat` attached to its pid for the run (`--broker-perf`).
//!
//! ```text
//! perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,context-switches -p PID
//! ```
//!
//! perf counts until it gets SIGINT, then writes one CSV line per event to stderr:
//! `value,unit,event,run time,percent running,...`, the value being `<not supported>` or
//! `<not counted>` when it could not count. Tracepoints cost the broker a little on every
//! syscall, which is why this is opt-in. Anything that goes wrong (no perf, no permission, no
//! tracepoints) makes the counts absent with a reason, never fails the run.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The events asked for, in the order perf prints them.
const SYSCALLS: &str = "raw_syscalls:sys_enter";
const IO_URING_ENTER: &str = "syscalls:sys_enter_io_uring_enter";
const CONTEXT_SWITCHES: &str = "context-switches";

/// How long perf may take to print its counts after SIGINT.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What perf counted over the window; an event it could not count is `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PerfCounts {
    pub syscalls: Option<u64>,
    pub io_uring_enter: Option<u64>,
    pub context_switches: Option<u64>,
}

impl PerfCounts {
    fn is_empty(&self) -> bool {
        self.syscalls.is_none() && self.io_uring_enter.is_none() && self.context_switches.is_none()
    }
}

/// A running `perf stat`, or why there is none. Dropped unstopped (a run that failed), it
/// kills perf rather than leave it attached to the broker.
#[derive(Debug)]
pub struct PerfStat {
    child: Result<Child, String>,
}

impl PerfStat {
    /// Attaches `perf stat` to `pid`. perf needs a moment to attach, so its window starts a
    /// little after this returns.
    pub fn start(pid: u32) -> PerfStat {
        let events = format!("{SYSCALLS},{IO_URING_ENTER},{CONTEXT_SWITCHES}");
        let child = Command::new("perf")
            .args(["stat", "-x,", "-e", &events, "-p", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run perf: {e}"));
        PerfStat { child }
    }

    /// Stops perf with SIGINT and reads its counts, or says why there are none.
    pub fn stop(mut self) -> Result<PerfCounts, String> {
        let mut child = std::mem::replace(&mut self.child, Err(String::new()))?;
        let exited_early = matches!(child.try_wait(), Ok(Some(_)));
        if !exited_early {
            let pid = libc::pid_t::try_from(child.id()).map_err(|e| e.to_string())?;
            // SAFETY: kill only sends a signal to the perf process this function owns (it has
            // not been reaped, so the pid cannot have been reused).
            unsafe { libc::kill(pid, libc::SIGINT) };
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(child.try_wait(), Ok(Some(_))) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("perf did not stop after SIGINT".to_string());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut output = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut output);
        }
        let counts = parse_csv(&output);
        if exited_early || counts.is_empty() {
            return Err(format!("perf counted nothing: {}", first_words(&output)));
        }
        Ok(counts)
    }
}

impl Drop for PerfStat {
    fn drop(&mut self) {
        if let Ok(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The start of perf's complaint: its first two non-empty lines (perf says "Error:" on a line
/// of its own, then why).
fn first_words(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .take(2)
        .collect();
    if lines.is_empty() {
        "no output".to_string()
    } else {
        lines.join(" ")
    }
}

/// The counts in perf's `-x,` output; lines it could not count, and anything else, are skipped.
pub fn parse_csv(output: &str) -> PerfCounts {
    let mut counts = PerfCounts::default();
    for line in output.lines() {
        let mut fields = line.split(',');
        let (Some(value), Some(_unit), Some(event)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(value) = value.trim().parse::<u64>() else {
            continue;
        };
        match event.trim() {
            SYSCALLS => counts.syscalls = Some(value),
            IO_URING_ENTER => counts.io_uring_enter = Some(value),
            CONTEXT_SWITCHES => counts.context_switches = Some(value),
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_recorded_output() {
        // What perf stat -x, printed attached to a busy process, with an io_uring line added.
        let output = "83851,,raw_syscalls:sys_enter,112288421,100.00,746.747,K/sec\n\
                      41077,,syscalls:sys_enter_io_uring_enter,112288421,100.00,365.811,K/sec\n\
                      76,,context-switches,112288421,100.00,676.828,/sec\n";
        assert_eq!(
            parse_csv(output),
            PerfCounts {
                syscalls: Some(83_851),
                io_uring_enter: Some(41_077),
                context_switches: Some(76),
            }
        );
    }

    #[test]
    fn events_perf_could_not_count_are_absent() {
        let output = "# started on Thu Dec  3 15:58:42 2026\n\n\
                      1203,,raw_syscalls:sys_enter,1000000,100.00,,\n\
                      <not supported>,,syscalls:sys_enter_io_uring_enter,0,100.00,,\n\
                      <not counted>,,context-switches,0,100.00,,\n";
        assert_eq!(
            parse_csv(output),
            PerfCounts {
                syscalls: Some(1203),
                ..Default::default()
            }
        );
        let refused = "Error:\nNo permission to enable raw_syscalls:sys_enter event.\n\n\
                       You may not have permission to collect stats.\n";
        assert!(parse_csv(refused).is_empty());
        assert_eq!(
            first_words(refused),
            "Error: No permission to enable raw_syscalls:sys_enter event."
        );
        assert_eq!(first_words(""), "no output");
    }

    #[test]
    fn a_missing_perf_is_a_reason_not_a_failure() {
        let missing = PerfStat {
            child: Err("cannot run perf: not found".into()),
        };
        assert_eq!(missing.stop(), Err("cannot run perf: not found".into()));
    }
}
