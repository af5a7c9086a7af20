//! File descriptors: every connection holds two (its socket and the writer's duplicate), and
//! the process limit (`ulimit -n`, RLIMIT_NOFILE) bounds them. RabbitMQ 3.13 has no
//! descriptor alarm; Hare warns once when more than 90 % are in use, shows it as
//! `rabbitmq_alarms_file_descriptor_limit` 1 in the metrics until use falls under 80 %, and
//! when a connection cannot get its descriptors (accept or the writer's duplicate fails with
//! EMFILE or ENFILE) it logs once per episode, and the accept loop backs off instead of
//! retrying in a tight loop. Clients refused meanwhile see their connection reset or wait in
//! the listen backlog; new ones are served once connections close.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::shard::Shard;

/// Share of the limit in use above which the alarm is raised, in percent.
const ALARM_PERCENT: u64 = 90;
/// Share below which it clears (a gap so it does not flap around one value).
const CLEAR_PERCENT: u64 = 80;
/// How often the accepting shard counts its descriptors.
const CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Pause after an accept that failed for want of descriptors: long enough not to spin, short
/// enough that a freed descriptor is used soon.
pub const EXHAUSTED_BACKOFF: Duration = Duration::from_millis(100);
/// Pause after any other accept failure (a connection reset before it was accepted).
const OTHER_BACKOFF: Duration = Duration::from_millis(5);

/// Process-wide: descriptors are a property of the process, not of a shard.
static ALARM: AtomicBool = AtomicBool::new(false);

/// More than 90 % of the descriptor limit is in use (until use falls under 80 %).
pub fn alarm() -> bool {
    ALARM.load(Ordering::Relaxed)
}

/// Descriptors this process has open (0 if they cannot be counted, e.g. when none is left
/// to read /proc with).
pub fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |entries| entries.count() as u64)
}

/// The process's descriptor limit (RLIMIT_NOFILE's soft value).
pub fn descriptor_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct into `limit`.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if status == 0 {
        limit.rlim_cur
    } else {
        0
    }
}

/// Raises or clears the alarm for `used` of `limit` descriptors; true when it changed.
fn update_alarm(used: u64, limit: u64) -> bool {
    if limit == 0 || used == 0 {
        return false;
    }
    let percent = used.saturating_mul(100) / limit;
    let raised = alarm();
    if !raised && percent > ALARM_PERCENT {
        ALARM.store(true, Ordering::Relaxed);
        tracing::warn!(
            used,
            limit,
            "file descriptors: more than {ALARM_PERCENT} % of the limit in use; new connections will soon be refused (raise `ulimit -n`)"
        );
        return true;
    }
    if raised && percent < CLEAR_PERCENT {
        ALARM.store(false, Ordering::Relaxed);
        tracing::info!(
            used,
            limit,
            "file descriptors: use is back under {CLEAR_PERCENT} %"
        );
        return true;
    }
    false
}

/// Counts the descriptors every few seconds for the accepting shard until shutdown. The count
/// reads /proc/self/fd, whose length grows with the connections (two entries each), so it
/// runs on glommio's blocking thread rather than on the shard's data path.
pub async fn watch(shard: Rc<Shard>) {
    let checks = async {
        loop {
            let used = glommio::executor().spawn_blocking(open_descriptors).await;
            update_alarm(used, descriptor_limit());
            glommio::timer::sleep(CHECK_INTERVAL).await;
        }
    };
    futures_lite::future::or(checks, shard.shutdown.wait()).await;
}

/// Set while descriptors have run out, so that an episode is logged once, not per client.
static EXHAUSTED: AtomicBool = AtomicBool::new(false);

/// An accept failed: how long the accept loop waits before the next one.
pub fn accept_failed(error: &std::io::Error) -> Duration {
    if out_of_descriptors(error) {
        EXHAUSTED_BACKOFF
    } else {
        tracing::debug!(%error, "accept failed");
        OTHER_BACKOFF
    }
}

/// True if `error` is EMFILE or ENFILE; the first of an episode is logged and raises the
/// alarm. A connection that cannot get its descriptors reports it here too (its socket is
/// then closed: the client sees the connection reset).
pub fn out_of_descriptors(error: &std::io::Error) -> bool {
    if !matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) {
        return false;
    }
    if !EXHAUSTED.swap(true, Ordering::Relaxed) {
        ALARM.store(true, Ordering::Relaxed);
        tracing::error!(
            %error,
            limit = descriptor_limit(),
            "out of file descriptors: new connections are refused until some close (raise `ulimit -n`)"
        );
    }
    true
}

/// A connection got all its descriptors: an exhaustion episode, if any, is over.
pub fn descriptors_available() {
    if EXHAUSTED.load(Ordering::Relaxed) && EXHAUSTED.swap(false, Ordering::Relaxed) {
        tracing::info!("file descriptors available again: accepting connections");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_backs_off_and_other_failures_retry_soon() {
        let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
        assert_eq!(accept_failed(&emfile), EXHAUSTED_BACKOFF);
        assert!(EXHAUSTED.load(Ordering::Relaxed));
        assert_eq!(accept_failed(&emfile), EXHAUSTED_BACKOFF);
        descriptors_available();
        assert!(!EXHAUSTED.load(Ordering::Relaxed));
        let reset = std::io::Error::from_raw_os_error(libc::ECONNABORTED);
        assert_eq!(accept_failed(&reset), OTHER_BACKOFF);
        assert!(!EXHAUSTED.load(Ordering::Relaxed));
    }
}
