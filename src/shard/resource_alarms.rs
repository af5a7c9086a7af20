//! The memory and disk alarms (RabbitMQ's `vm_memory_high_watermark` and `disk_free_limit`).
//! While either is raised, connections that publish are blocked: they get
//! `connection.blocked` (if their client announced the capability), and a connection that
//! publishes while an alarm is up is no longer read until every alarm has cleared, while
//! connections that only consume keep being read, so queues drain (docs/ARCHITECTURE.md,
//! Alarms).
//!
//! A thread of its own (`start_monitor`) measures: every `MEMORY_CHECK_INTERVAL` the process's
//! resident memory (/proc/self/statm), every `DISK_CHECK_INTERVAL` the free space of the data
//! directory's filesystem (statvfs). The readings and the alarms live here, shared by all
//! shards: a connection's reader and the management API see them without a message, and each
//! shard, on its housekeeping tick, notices a change (`generation`) and blocks or unblocks its
//! own connections, as it does for a storage alarm.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often resident memory is measured. Floods of 64 KiB publishes were measured at a few
/// hundred MB/s into one broker on the 2-core development machine; even at 1 GB/s a period
/// lets RSS overshoot the watermark by about 10 MB before readers stop. Reading
/// /proc/self/statm costs a few microseconds of kernel time, a hundred times a second.
pub const MEMORY_CHECK_INTERVAL: Duration = Duration::from_millis(10);
/// How often, while the memory alarm is raised, the allocator is asked to give free pages
/// back (`release_free_memory`).
pub const TRIM_INTERVAL: Duration = Duration::from_millis(100);
/// How often free disk space is measured. RabbitMQ checks every 10 s (faster when close to
/// the limit); one statvfs is cheap, so a second bounds how far a fast publisher can fill the
/// disk past the limit to about a second of its writes.
pub const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A resource whose alarm blocks publishers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Disk,
}

impl Resource {
    /// The name RabbitMQ uses in `/api/health/checks/alarms`.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }

    /// The connection.blocked reason RabbitMQ sends for it.
    pub fn reason(self) -> &'static str {
        match self {
            Resource::Memory => "low on memory",
            Resource::Disk => "low on disk",
        }
    }
}

/// The limits, the last readings and the alarms, shared by every shard of one broker.
#[derive(Debug)]
pub struct ResourceAlarms {
    memory_limit: u64,
    disk_free_limit: u64,
    resident: AtomicU64,
    disk_free: AtomicU64,
    memory_alarm: AtomicBool,
    disk_alarm: AtomicBool,
    /// Counts alarm changes, so shards notice one without a message.
    generation: AtomicU64,
}

impl ResourceAlarms {
    pub fn new(memory_limit: u64, disk_free_limit: u64) -> ResourceAlarms {
        ResourceAlarms {
            memory_limit,
            disk_free_limit,
            resident: AtomicU64::new(0),
            disk_free: AtomicU64::new(u64::MAX),
            memory_alarm: AtomicBool::new(false),
            disk_alarm: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// The memory high watermark in bytes.
    pub fn memory_limit(&self) -> u64 {
        self.memory_limit
    }

    /// The disk free limit in bytes.
    pub fn disk_free_limit(&self) -> u64 {
        self.disk_free_limit
    }

    /// Changes so far: a shard that saw another value last time has alarms to act on.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Free disk space at the last measurement.
    pub fn disk_free(&self) -> u64 {
        self.disk_free.load(Ordering::Relaxed)
    }

    /// Resident memory at the last measurement.
    pub fn resident(&self) -> u64 {
        self.resident.load(Ordering::Relaxed)
    }

    pub fn raised(&self, resource: Resource) -> bool {
        match resource {
            Resource::Memory => self.memory_alarm.load(Ordering::Relaxed),
            Resource::Disk => self.disk_alarm.load(Ordering::Relaxed),
        }
    }

    /// True while either alarm is up: publishing connections are not read.
    pub fn any(&self) -> bool {
        self.raised(Resource::Memory) || self.raised(Resource::Disk)
    }

    /// The alarms in effect, memory first.
    pub fn in_effect(&self) -> Vec<Resource> {
        [Resource::Memory, Resource::Disk]
            .into_iter()
            .filter(|resource| self.raised(*resource))
            .collect()
    }

    /// Records resident memory; true if the memory alarm changed. Raised above the watermark
    /// and cleared at or below it, as RabbitMQ does: readers stop as soon as it is raised, so
    /// it does not flap while publishers wait, and it clears once consumers have drained
    /// enough for the allocator to give memory back.
    pub fn record_resident(&self, resident: u64) -> bool {
        self.resident.store(resident, Ordering::Relaxed);
        let over = resident > self.memory_limit;
        self.changed(self.memory_alarm.swap(over, Ordering::Relaxed) != over)
    }

    /// Records free disk space; true if the disk alarm changed. Raised below the limit,
    /// cleared at or above it.
    pub fn record_disk_free(&self, free: u64) -> bool {
        self.disk_free.store(free, Ordering::Relaxed);
        let low = free < self.disk_free_limit;
        self.changed(self.disk_alarm.swap(low, Ordering::Relaxed) != low)
    }

    fn changed(&self, changed: bool) -> bool {
        if changed {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        changed
    }
}

/// The connection.blocked reason for the alarms in effect (RabbitMQ joins them with " & ").
pub fn blocked_reason(resources: &[Resource]) -> String {
    resources
        .iter()
        .map(|resource| resource.reason())
        .collect::<Vec<_>>()
        .join(" & ")
}

/// This process's resident memory in bytes, from /proc/self/statm (0 if unreadable).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|field| field.parse().ok())
        .unwrap_or(0);
    pages * page_size_bytes()
}

fn page_size_bytes() -> u64 {
    // SAFETY: sysconf reads a constant of the running system and has no memory effects.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Physical memory in bytes (MemTotal of /proc/meminfo; 0 if unreadable).
pub fn memory_total_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    meminfo
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Bytes available to us on the filesystem holding `path` (u64::MAX if statvfs fails, so an
/// unreadable filesystem never raises the alarm by itself: the storage alarm covers a log
/// that cannot be written).
pub fn disk_free_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return u64::MAX;
    };
    // SAFETY: statvfs is plain data, fully written by a successful statvfs call.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated string that outlives the call; `stats` is a valid,
    // writable statvfs.
    let status = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    if status != 0 {
        return u64::MAX;
    }
    stats.f_bavail.saturating_mul(stats.f_frsize)
}

/// Starts the thread that measures memory and disk for the whole broker until `stop` is set.
/// A thread of its own, not a task on a shard: a shard busy reading a flood runs its other
/// tasks late, and the alarm is worth having only if it is measured on time. Shards learn of
/// a change on their next housekeeping tick (`ResourceAlarms::generation`); a connection's
/// reader looks at the alarms themselves.
pub fn start_monitor(
    alarms: Arc<ResourceAlarms>,
    data_dir: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::io::Result<JoinHandle<()>> {
    let per_disk_check =
        (DISK_CHECK_INTERVAL.as_millis() / MEMORY_CHECK_INTERVAL.as_millis()).max(1);
    let per_trim = (TRIM_INTERVAL.as_millis() / MEMORY_CHECK_INTERVAL.as_millis()).max(1);
    // The first measurement before start-up goes on: an alarm that holds from the start is
    // in effect for the first client.
    measure(&alarms, &data_dir, true, false);
    std::thread::Builder::new()
        .name("hare-alarms".into())
        .spawn(move || {
            let mut round: u128 = 1;
            while !stop.load(Ordering::Acquire) {
                std::thread::sleep(MEMORY_CHECK_INTERVAL);
                let check_disk = round.is_multiple_of(per_disk_check);
                let trim = alarms.raised(Resource::Memory) && round.is_multiple_of(per_trim);
                measure(&alarms, &data_dir, check_disk, trim);
                round += 1;
            }
        })
}

/// One measurement of memory (after giving free memory back, if `trim`) and, if `check_disk`,
/// of free disk space; a change of alarm is logged.
fn measure(alarms: &ResourceAlarms, data_dir: &std::path::Path, check_disk: bool, trim: bool) {
    if trim {
        release_free_memory();
    }
    if alarms.record_resident(resident_bytes()) {
        log_change(alarms, Resource::Memory);
    }
    if check_disk && alarms.record_disk_free(disk_free_bytes(data_dir)) {
        log_change(alarms, Resource::Disk);
    }
}

/// Hands the allocator's free pages back to the kernel. glibc's malloc returns memory to the
/// kernel only from the top of a heap: a queue drained from its head frees the oldest messages
/// first, low in the heap, so without this the resident size stays at its peak until the very
/// last message is gone, and the memory alarm would hold publishers long after the memory is
/// free. `malloc_trim` releases free pages inside the heaps too. It runs only while the alarm
/// is raised, on the blocking thread; it locks each arena in turn, briefly.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns free pages to the kernel; it takes the arenas' locks
    // itself and leaves every allocation in place.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn log_change(alarms: &ResourceAlarms, resource: Resource) {
    if !alarms.raised(resource) {
        tracing::info!(alarm = resource.name(), "alarm cleared");
        return;
    }
    match resource {
        Resource::Memory => tracing::warn!(
            resident = alarms.resident(),
            limit = alarms.memory_limit(),
            "memory alarm raised: publishers are blocked until memory use is below the high watermark"
        ),
        Resource::Disk => tracing::warn!(
            free = alarms.disk_free(),
            limit = alarms.disk_free_limit(),
            "disk alarm raised: publishers are blocked until free disk space is above the limit"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_alarm_raised_above_the_watermark_and_cleared_at_it() {
        let alarms = ResourceAlarms::new(1000, 50);
        assert!(!alarms.record_resident(1000));
        assert!(!alarms.any());
        assert!(alarms.record_resident(1001));
        assert!(alarms.raised(Resource::Memory));
        assert!(!alarms.record_resident(2000), "no change while over");
        assert!(alarms.record_resident(1000));
        assert!(!alarms.any());
    }

    #[test]
    fn disk_alarm_raised_below_the_limit() {
        let alarms = ResourceAlarms::new(1000, 50);
        assert!(!alarms.record_disk_free(50));
        assert!(alarms.record_disk_free(49));
        assert_eq!(alarms.in_effect(), vec![Resource::Disk]);
        assert!(alarms.record_resident(5000));
        assert_eq!(alarms.in_effect(), vec![Resource::Memory, Resource::Disk]);
        assert_eq!(
            blocked_reason(&alarms.in_effect()),
            "low on memory & low on disk"
        );
        assert!(alarms.record_disk_free(u64::MAX));
        assert_eq!(alarms.in_effect(), vec![Resource::Memory]);
    }
}
