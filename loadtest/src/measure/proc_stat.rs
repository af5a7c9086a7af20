//! CPU time and resident memory of a process, from Linux's `/proc`.
//!
//! ```text
//! /proc/PID/stat:    pid (comm) state ppid ... utime(14) stime(15) ...   in clock ticks
//! /proc/PID/status:  VmRSS:     12345 kB
//! ```
//!
//! `comm` may contain spaces and parentheses, so fields are counted after the last ')'.

use std::io;

/// Which process to read: hareperf itself or another one (the broker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    OwnProcess,
    Pid(u32),
}

impl Process {
    fn path(self, file: &str) -> String {
        match self {
            Process::OwnProcess => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }
}

/// User plus system CPU seconds the process has used so far.
pub fn cpu_seconds(process: Process) -> io::Result<f64> {
    let stat = std::fs::read_to_string(process.path("stat"))?;
    let ticks = parse_cpu_ticks(&stat).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected /proc/PID/stat layout",
        )
    })?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Resident set size in KiB.
pub fn rss_kib(process: Process) -> io::Result<u64> {
    let status = std::fs::read_to_string(process.path("status"))?;
    parse_vm_rss_kib(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc/PID/status"))
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, after_comm) = stat.rsplit_once(')')?;
    // After ')' come fields 3 (state) onwards; utime and stime are fields 14 and 15.
    let mut fields = after_comm.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The VmRSS line of `/proc/PID/status`, in KiB.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        // Linux has used 100 on every common architecture for decades.
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ticks_even_with_a_hostile_command_name() {
        let stat = "4242 (evil) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 \
                    3 0 100 1000 50 18446744073709551615";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\thare\nVmPeak:\t 99 kB\nVmRSS:\t   20480 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(20480));
        assert_eq!(parse_vm_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn reads_its_own_process() {
        let mut spin = 0u64;
        for i in 0..2_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert!(spin > 0);
        assert!(cpu_seconds(Process::OwnProcess).unwrap() >= 0.0);
        assert!(rss_kib(Process::OwnProcess).unwrap() > 0);
    }
}
