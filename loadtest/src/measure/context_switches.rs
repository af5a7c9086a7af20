//! Context switches of a process: the sum over its threads of the two counters Linux keeps in
//! every `/proc/PID/task/TID/status`.
//!
//! ```text
//! voluntary_ctxt_switches:        1234      (the thread blocked: read, futex, io_uring wait)
//! nonvoluntary_ctxt_switches:     56        (the scheduler took the CPU away)
//! ```
//!
//! A delta between two reads misses whatever threads that exited between them had done:
//! `/proc` forgets a thread when it exits.

use std::io;

use super::proc_stat::Process;

/// Context switches summed over the threads alive at the time of the read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadSwitches {
    pub switches: u64,
    pub threads: u64,
}

/// Reads every thread of `process`. A thread that exits while the directory is listed is
/// skipped, not an error.
pub fn context_switches(process: Process) -> io::Result<ThreadSwitches> {
    let tasks = match process {
        Process::OwnProcess => "/proc/self/task".to_string(),
        Process::Pid(pid) => format!("/proc/{pid}/task"),
    };
    let mut total = ThreadSwitches::default();
    for entry in std::fs::read_dir(&tasks)? {
        let Ok(status) = std::fs::read_to_string(entry?.path().join("status")) else {
            continue;
        };
        if let Some(switches) = parse_switches(&status) {
            total.switches += switches;
            total.threads += 1;
        }
    }
    if total.threads == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no context switch counters under {tasks}"),
        ));
    }
    Ok(total)
}

/// `voluntary_ctxt_switches` + `nonvoluntary_ctxt_switches` from the text of a `status` file.
pub fn parse_switches(status: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].trim().parse().ok()
    };
    Some(field("voluntary_ctxt_switches:")? + field("nonvoluntary_ctxt_switches:")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tail of a recorded `/proc/PID/task/TID/status` of a broker shard thread.
    const RECORDED: &str = "Name:\thare-shard-1\nUmask:\t0022\nState:\tS (sleeping)\n\
        Tgid:\t81234\nNgid:\t0\nPid:\t81237\nPPid:\t1\nThreads:\t5\n\
        Cpus_allowed_list:\t0-1\nMems_allowed:\t1\nMems_allowed_list:\t0\n\
        voluntary_ctxt_switches:\t48213\nnonvoluntary_ctxt_switches:\t1907\n";

    #[test]
    fn sums_voluntary_and_nonvoluntary_switches() {
        assert_eq!(parse_switches(RECORDED), Some(50_120));
    }

    #[test]
    fn a_status_without_the_counters_is_none() {
        assert_eq!(parse_switches("Name:\thare\nVmRSS:\t 20 kB\n"), None);
        let half = "voluntary_ctxt_switches:\t3\n";
        assert_eq!(parse_switches(half), None);
        let garbled = "voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n";
        assert_eq!(parse_switches(garbled), None);
    }

    #[test]
    fn a_sleeping_thread_switches_voluntarily() {
        let own = || {
            let status = std::fs::read_to_string("/proc/thread-self/status").unwrap();
            parse_switches(&status).unwrap()
        };
        let before = own();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(own() > before);
        assert!(context_switches(Process::OwnProcess).unwrap().threads >= 1);
    }
}
